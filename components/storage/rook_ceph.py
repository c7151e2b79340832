"""Rook runs Ceph on the bare-metal nodes' SSDs: the operator (Helm chart, pinned to the CRDs
the tests validate against), the Ceph CSI drivers, and one CephCluster whose OSDs are exactly the
disks each node declares. Host networking, so libvirt hypervisors outside Kubernetes reach the
monitors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.bootstrap import CONTROL_PLANE_TAINT, GPU_TAINT
from components.cluster.helm import pinned_chart
from components.cluster.namespaces import declare_namespace
from components.cluster.placement import NOT_ON_CEPH_BACKED_VMS
from components.cluster.priorities import PLATFORM
from components.context import PlatformContext

NAMESPACE = "rook-ceph"
ROOK_CHART_VERSION = "v1.20.6"  # ../shared/crds/rook-ceph-v1.20.6.crds.yaml
ROOK_REPO = "https://charts.rook.io/release"
CEPH_IMAGE = "quay.io/ceph/ceph:v19.2.3"  # Squid
CLUSTER_NAME = "rook-ceph"
# Ceph runs on the office nodes, controllers included (tolerated in case a controller is ever
# tainted again), and never on a burst node: those carry the GPU taint, which Ceph does not tolerate.
TOLERATIONS = [{"key": CONTROL_PLANE_TAINT["key"], "operator": "Exists", "effect": CONTROL_PLANE_TAINT["effect"]}]
# Every Ceph daemon's placement: the office nodes, never a VM that boots from this Ceph.
PLACEMENT: dict[str, Any] = {"tolerations": TOLERATIONS, "nodeAffinity": NOT_ON_CEPH_BACKED_VMS}
# What Ceph's daemons hold back for themselves on a node (requests, no limits: a limit would
# throttle or OOM-kill an OSD in recovery, when it needs most). Memory is what they use: an
# OSD's default memory target is 4 GiB, an MDS's cache 4 GiB. CPU is their idle share: six OSDs
# on an 8-thread PC that also trains models; recovery borrows what GPU jobs leave idle.
DAEMON_REQUESTS = {
    "mon": {"requests": {"cpu": "250m", "memory": "1Gi"}},
    "mgr": {"requests": {"cpu": "100m", "memory": "512Mi"}},
    "osd": {"requests": {"cpu": "250m", "memory": "4Gi"}},
}
MDS_REQUESTS = {"requests": {"cpu": "250m", "memory": "4Gi"}}
# Rook 1.20 no longer runs the CSI drivers: its chart installs ceph-csi-operator, and the
# ceph-csi-drivers chart (with Rook's values, deploy/charts/ceph-csi-drivers/values.yaml at v1.20.6)
# declares the drivers the operator runs. Without it no claim on a Ceph StorageClass ever binds.
CSI_DRIVERS_CHART = "ceph-csi-drivers"
CSI_DRIVERS_VERSION = "1.0.4"  # ceph-csi-operator v1.0.4, the one rook-ceph v1.20.6 installs
CSI_DRIVERS_REPO = "https://ceph.github.io/ceph-csi-operator"
RBD_DRIVER = f"{NAMESPACE}.rbd.csi.ceph.com"
CEPHFS_DRIVER = f"{NAMESPACE}.cephfs.csi.ceph.com"


def csi_drivers_values(node_count: int) -> dict[str, Any]:
    """Rook's values for ceph-csi-drivers, plus snapshots for RBD (the golden database's) and a
    controller per node up to two, so provisioning survives a node (required anti-affinity)."""
    controller = {"replicas": min(2, node_count), "tolerations": TOLERATIONS}
    # The node plugin mounts volumes for the pods of its node: burst nodes too (a Job there
    # checkpoints to its home and writes results to CephFS, across the WireGuard link).
    node_plugin = {
        "tolerations": [*TOLERATIONS, {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}]
    }
    return {
        "operatorConfig": {
            "namespace": NAMESPACE,
            "driverSpecDefaults": {
                "imageSet": {"name": "rook-csi-operator-image-set-configmap"},
                "nodePlugin": {"priorityClassName": "system-node-critical"},
                "controllerPlugin": {"priorityClassName": "system-cluster-critical"},
            },
        },
        "drivers": {
            "rbd": {
                "enabled": True,
                "name": RBD_DRIVER,
                "snapshotPolicy": "volumeSnapshot",
                "controllerPlugin": controller,
                "nodePlugin": node_plugin,
            },
            "cephfs": {
                "enabled": True,
                "name": CEPHFS_DRIVER,
                "controllerPlugin": controller,
                "nodePlugin": node_plugin,
            },
            "nfs": {"enabled": False},
            "nvmeof": {"enabled": False},
        },
    }


@dataclass(frozen=True)
class CephHost:
    """A node Ceph runs on, with the disks it hands to OSDs."""

    hostname: str  # the Kubernetes node name, e.g. "akiba01"
    devices: tuple[str, ...]  # whole disks for OSDs, stable paths; never the boot disk; may be empty


def ceph_cluster_spec(nodes: tuple[CephHost, ...], mons: Literal[1, 3, 5]) -> dict[str, Any]:
    """The CephCluster spec: OSDs on exactly the declared SSDs (never the USB boot disk)."""
    return {
        "cephVersion": {"image": CEPH_IMAGE, "allowUnsupported": False},
        "dataDirHostPath": "/var/lib/rook",
        # Host networking binds each mon's ports on its node: one per node (the spec checks there
        # are enough nodes).
        "mon": {"count": mons, "allowMultiplePerNode": False},
        # snap_schedule takes the homes' snapshots (components/storage/home_snapshots.py).
        "mgr": {
            "count": 2 if len(nodes) > 1 else 1,
            "modules": [{"name": "rook", "enabled": True}, {"name": "snap_schedule", "enabled": True}],
        },
        "dashboard": {"enabled": True, "ssl": True},
        "network": {"provider": "host"},
        "crashCollector": {"disable": False},
        "placement": {"all": PLACEMENT},
        # Ceph's daemons are the cluster's storage: above every workload, as Rook's example sets them
        # (rook v1.20.6 deploy/examples/cluster.yaml priorityClassNames).
        "priorityClassNames": {
            "mon": "system-node-critical",
            "osd": "system-node-critical",
            "mgr": "system-cluster-critical",
        },
        # What Ceph's daemons hold back for themselves on a node (requests, no limits: a limit
        # would OOM-kill an OSD under recovery). An OSD's default memory target is 4 GiB.
        "resources": DAEMON_REQUESTS,
        "storage": {
            "useAllNodes": False,
            "useAllDevices": False,
            "nodes": [
                {"name": n.hostname, "devices": [{"name": disk} for disk in n.devices]} for n in nodes if n.devices
            ],
        },
        "disruptionManagement": {"managePodBudgets": True},
    }


@dataclass(frozen=True)
class RookCephArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    nodes: tuple[CephHost, ...]  # every node (Ceph's daemons may run on any), with its OSD disks
    mons: Literal[1, 3, 5]  # Ceph monitors; 3 in prod


class RookCeph(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    cluster: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: RookCephArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:RookCeph", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ns = declare_namespace(NAMESPACE, "privileged", args.ctx, on_cluster)  # OSDs: raw devices, host network
        operator = pinned_chart(
            "rook-ceph",
            chart="rook-ceph",
            version=ROOK_CHART_VERSION,
            repo=ROOK_REPO,
            namespace=ns.metadata.name,
            values={
                "crds": {"enabled": True},
                "csi": {"installCsiOperator": True},
                "tolerations": TOLERATIONS,
                "priorityClassName": PLATFORM,
                "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            },
            opts=on_cluster,
        )
        pinned_chart(
            CSI_DRIVERS_CHART,
            chart=CSI_DRIVERS_CHART,
            version=CSI_DRIVERS_VERSION,
            repo=CSI_DRIVERS_REPO,
            namespace=ns.metadata.name,
            values=csi_drivers_values(len(args.nodes)),
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[operator])),
        )
        self.cluster = k8s.apiextensions.CustomResource(
            CLUSTER_NAME,
            api_version="ceph.rook.io/v1",
            kind="CephCluster",
            metadata={"name": CLUSTER_NAME, "namespace": NAMESPACE, "labels": args.ctx.labels},
            spec=ceph_cluster_spec(args.nodes, args.mons),
            opts=args.ctx.stateful(self, provider=args.provider, depends_on=[operator]),
        )
        self.namespace = ns.metadata.name
        self.register_outputs({"namespace": self.namespace})
