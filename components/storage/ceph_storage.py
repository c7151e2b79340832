"""What Kubernetes and the hypervisors consume from Ceph: a block pool for volumes (the
default StorageClass), a block pool for VM disks, a CephFS for homes (ReadWriteMany), the
snapshot machinery, and cephx clients with least privilege."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.k8s_object import KubernetesObject
from components.context import PlatformContext
from components.storage.rook_ceph import CEPHFS_DRIVER, CLUSTER_NAME, MDS_REQUESTS, NAMESPACE, PLACEMENT, RBD_DRIVER

# pulumi-kubernetes (4.18+) awaits a custom resource only when told what "ready" means.
WAIT_FOR = "pulumi.com/waitFor"
RBD_CLASS = "akiba-rbd"
CEPHFS_CLASS = "akiba-cephfs"
RBD_SNAPSHOT_CLASS = "akiba-rbd"
# Engineers' scratch claims and snapshots: Delete in every stack. The Retain classes keep a
# deleted claim's volume (Released) in Ceph, and the quota counts only live claims: create and
# delete in a loop would fill Ceph to its full ratio and stop every home, database and VM disk.
# An engineer's quota admits one claim of the Retain CephFS class (their home) and none of the
# Retain RBD class (components/tenants/quota.py).
RBD_SCRATCH_CLASS = "akiba-rbd-scratch"  # ReadWriteOnce
CEPHFS_SCRATCH_CLASS = "akiba-cephfs-scratch"  # ReadWriteMany
RBD_SCRATCH_SNAPSHOT_CLASS = "akiba-rbd-scratch"
# The golden database's rotated snapshots (components/storage/personal_databases.py): Delete in
# every stack, so rotation frees them in Ceph. Personal clones made from a snapshot outlive it:
# ceph-csi clones with `--rbd-default-clone-format 2` and deletes a snapshot by `rbd snap rm` +
# `rbd trash mv` (ceph/ceph-csi docs/design/proposals/rbd-snap-clone.md), so a snapshot that
# still has clones waits in Ceph's trash until its last clone is gone (tests/test_backups.py
# shows this on a real Ceph).
GOLDEN_SNAPSHOT_CLASS = "akiba-rbd-golden"
HOME_SNAPSHOTS_CLIENT = "home-snapshots"  # components/storage/home_snapshots.py
SNAPSHOTTER = "https://raw.githubusercontent.com/kubernetes-csi/external-snapshotter/v8.6.0"
SNAPSHOTTER_FILES = [
    f"{SNAPSHOTTER}/client/config/crd/snapshot.storage.k8s.io_volumesnapshotclasses.yaml",
    f"{SNAPSHOTTER}/client/config/crd/snapshot.storage.k8s.io_volumesnapshotcontents.yaml",
    f"{SNAPSHOTTER}/client/config/crd/snapshot.storage.k8s.io_volumesnapshots.yaml",
    f"{SNAPSHOTTER}/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml",
    f"{SNAPSHOTTER}/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml",
]


def pool_spec(replicas: int) -> dict[str, Any]:
    return {
        "failureDomain": "host",
        "replicated": {"size": replicas, "requireSafeReplicaSize": replicas > 1},
    }


def csi_secrets(driver: str) -> dict[str, str]:
    """The secrets Rook creates for its CSI drivers, as StorageClass parameters."""
    kind = "rbd" if driver == "rbd" else "cephfs"
    return {
        "csi.storage.k8s.io/provisioner-secret-name": f"rook-csi-{kind}-provisioner",
        "csi.storage.k8s.io/provisioner-secret-namespace": NAMESPACE,
        "csi.storage.k8s.io/controller-expand-secret-name": f"rook-csi-{kind}-provisioner",
        "csi.storage.k8s.io/controller-expand-secret-namespace": NAMESPACE,
        "csi.storage.k8s.io/node-stage-secret-name": f"rook-csi-{kind}-node",
        "csi.storage.k8s.io/node-stage-secret-namespace": NAMESPACE,
    }


@dataclass(frozen=True)
class CephPools:
    """The pools and the filesystem Ceph serves, and how many copies of each object it keeps."""

    replicas: int  # copies of every object, one per host; 3 in prod
    block_pool: str  # RBD pool behind the default StorageClass, e.g. "kube-rbd"
    vm_pool: str  # RBD pool for VM disks, e.g. "vm-disks"
    filesystem: str  # CephFS for the homes, e.g. "homes"


def client_caps(pools: CephPools) -> dict[str, dict[str, str]]:
    """cephx clients outside Rook's own CSI users, each limited to what it uses."""
    return {
        # libvirt on the hypervisors: RBD images in the VM pool only.
        "libvirt": {"mon": "profile rbd", "osd": f"profile rbd pool={pools.vm_pool}"},
        # Backups of the homes from outside Kubernetes: read-only CephFS.
        "homes-backup": {
            "mon": "allow r",
            "mds": "allow r",
            "osd": f"allow r pool={pools.filesystem}-data0",
        },
        # The homes' snapshot schedules: read the maps to connect, then the snap_schedule module
        # only (tests/test_backups.py shows the real manager refuses it anything else).
        HOME_SNAPSHOTS_CLIENT: {"mon": "allow r", "mgr": "allow module snap_schedule rw"},
    }


@dataclass(frozen=True)
class CephStorageArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    pools: CephPools  # what to declare, and with how many copies
    cluster: pulumi.Resource  # the CephCluster


class CephStorage(pulumi.ComponentResource):
    client_secret_names: dict[str, str]

    def __init__(self, name: str, args: CephStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:CephStorage", name, None, opts)
        ctx, pools = args.ctx, args.pools
        retain = "Retain" if ctx.protect_stateful else "Delete"  # prod: deleting a claim keeps the image
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.cluster])

        def cr(
            kind: str, cr_name: str, spec: dict[str, Any], stateful: bool = False, wait_for: str | None = None
        ) -> k8s.apiextensions.CustomResource:
            opts = ctx.stateful(self, provider=args.provider, depends_on=[args.cluster]) if stateful else on_cluster
            metadata: dict[str, Any] = {"name": cr_name, "namespace": NAMESPACE, "labels": ctx.labels}
            if wait_for:
                metadata["annotations"] = {WAIT_FOR: wait_for}
            return k8s.apiextensions.CustomResource(
                f"{kind.lower()}-{cr_name}",
                api_version="ceph.rook.io/v1",
                kind=kind,
                metadata=metadata,
                spec=spec,
                opts=opts,
            )

        cr("CephBlockPool", pools.block_pool, pool_spec(pools.replicas), stateful=True)
        cr("CephBlockPool", pools.vm_pool, pool_spec(pools.replicas), stateful=True)
        cr(
            "CephFilesystem",
            pools.filesystem,
            {
                "metadataPool": pool_spec(pools.replicas),
                "dataPools": [{"name": "data0", **pool_spec(pools.replicas)}],
                "preserveFilesystemOnDelete": True,
                "metadataServer": {
                    "priorityClassName": "system-cluster-critical",  # every home is behind it
                    "activeCount": 1,
                    "activeStandby": True,
                    "placement": PLACEMENT,
                    "resources": MDS_REQUESTS,
                },
            },
            stateful=True,
        )
        self.client_secret_names = {}
        clients = {}
        for client, caps in client_caps(pools).items():
            # Rook writes the client's key Secret, then reports the phase Ready (cephclient
            # controller): the provider waits for that, so the read below finds the Secret.
            clients[client] = cr("CephClient", client, {"caps": caps}, wait_for="jsonpath={.status.phase}=Ready")
            self.client_secret_names[client] = f"rook-ceph-client-{client}"  # Rook writes the key there
        # The libvirt key, read back from the Secret Rook wrote, for the hypervisors (a secret).
        libvirt_secret = k8s.core.v1.Secret.get(
            "rook-ceph-client-libvirt",
            f"{NAMESPACE}/{self.client_secret_names['libvirt']}",
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[clients["libvirt"]]),
        )
        self.libvirt_key = pulumi.Output.secret(
            libvirt_secret.data.apply(lambda data: base64.b64decode(data["libvirt"]).decode())
        )

        rbd_parameters = {
            "clusterID": NAMESPACE,
            "pool": pools.block_pool,
            "imageFormat": "2",
            "imageFeatures": "layering",
            "csi.storage.k8s.io/fstype": "ext4",
            **csi_secrets("rbd"),
        }
        cephfs_parameters = {
            "clusterID": NAMESPACE,
            "fsName": pools.filesystem,
            "pool": f"{pools.filesystem}-data0",
            **csi_secrets("cephfs"),
        }
        k8s.storage.v1.StorageClass(
            RBD_CLASS,
            metadata={
                "name": RBD_CLASS,
                "labels": ctx.labels,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            provisioner=RBD_DRIVER,
            parameters=rbd_parameters,
            reclaim_policy=retain,
            allow_volume_expansion=True,
            volume_binding_mode="Immediate",
            opts=on_cluster,
        )
        k8s.storage.v1.StorageClass(
            CEPHFS_CLASS,
            metadata={"name": CEPHFS_CLASS, "labels": ctx.labels},
            provisioner=CEPHFS_DRIVER,
            parameters=cephfs_parameters,
            reclaim_policy=retain,
            allow_volume_expansion=True,
            opts=on_cluster,
        )
        # The same pools, Delete: a deleted scratch claim frees its space in Ceph.
        for scratch, driver, parameters in (
            (RBD_SCRATCH_CLASS, RBD_DRIVER, rbd_parameters),
            (CEPHFS_SCRATCH_CLASS, CEPHFS_DRIVER, cephfs_parameters),
        ):
            k8s.storage.v1.StorageClass(
                scratch,
                metadata={"name": scratch, "labels": ctx.labels},
                provisioner=driver,
                parameters=parameters,
                reclaim_policy="Delete",
                allow_volume_expansion=True,
                opts=on_cluster,
            )
        snapshotter = k8s.yaml.v2.ConfigGroup(
            "external-snapshotter",
            files=SNAPSHOTTER_FILES,
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        # One class per deletion policy, all on RBD with the provisioner's credentials:
        # - akiba-rbd, Retain in prod: deleting a VolumeSnapshot object leaves the RBD snapshot in Ceph;
        # - scratch, Delete: an engineer's deleted snapshot frees its space (their count is quota'd);
        # - golden, Delete even in prod: these snapshots are reproducible (tomorrow's refresh makes
        #   new ones), and Retain would pile every rotated one up in Ceph for ever.
        after_snapshotter = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=[snapshotter, args.cluster]
        )
        for resource, name, deletion in (
            ("volumesnapshotclass-rbd", RBD_SNAPSHOT_CLASS, retain),
            ("volumesnapshotclass-rbd-scratch", RBD_SCRATCH_SNAPSHOT_CLASS, "Delete"),
            ("volumesnapshotclass-rbd-golden", GOLDEN_SNAPSHOT_CLASS, "Delete"),
        ):
            KubernetesObject(
                resource,
                {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshotClass",
                    "metadata": {"name": name, "labels": ctx.labels},
                    "driver": RBD_DRIVER,
                    "deletionPolicy": deletion,
                    "parameters": {
                        "clusterID": NAMESPACE,
                        "csi.storage.k8s.io/snapshotter-secret-name": "rook-csi-rbd-provisioner",
                        "csi.storage.k8s.io/snapshotter-secret-namespace": NAMESPACE,
                    },
                },
                opts=after_snapshotter,
            )
        self.register_outputs({"clientSecrets": self.client_secret_names, "cluster": CLUSTER_NAME})
