"""Scheduled etcd snapshots, kept on CephFS.

A CronJob runs on one controller at a time: `etcdctl snapshot save` against the node's own etcd
member (stacked etcd listens on 127.0.0.1:2379; hostNetwork reaches it) with the client
certificate kubeadm gives every controller (etcd/healthcheck-client), then names the snapshot by
time and node and deletes all but the newest `keep`. The snapshots live on the CephFS claim
`akiba-backup/etcd-snapshots`, which the off-site copy mounts too. The restore is kubeadm's and
etcd's documented one (README, "Restoring etcd").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.namespaces import declare_namespace
from components.cluster.priorities import PLATFORM
from components.context import PlatformContext
from components.storage.ceph_storage import CEPHFS_CLASS

NAMESPACE = "akiba-backup"
CLAIM = "etcd-snapshots"
NAME = "etcd-snapshot"
# kubeadm 1.36's etcd (cmd/kubeadm/app/constants/constants.go, SupportedEtcdVersion[36]; bumped
# to 3.6.9-0 by kubernetes/kubernetes#137956): the same etcdctl as the members it talks to.
ETCD_IMAGE = "registry.k8s.io/etcd:3.6.9-0"
# The etcd image has no shell: the renaming and pruning run in busybox.
BUSYBOX = "docker.io/library/busybox:1.37.0"
PKI = "/etc/kubernetes/pki/etcd"
MOUNT = "/snapshots"
INCOMING = f"{MOUNT}/incoming.db"  # not etcd-*.db: a failed run leaves nothing pruning counts
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


@dataclass(frozen=True)
class EtcdBackupArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    schedule: str  # cron
    keep: int
    claim_size: str = "20Gi"  # the etcd database stays under its 2 GiB quota (etcd's default)
    after: tuple[pulumi.Resource, ...] = ()  # the CephFS StorageClass, the PriorityClasses


def _security(**extra: Any) -> dict[str, Any]:
    # root only to read the etcd client key (0600 root:root) and write to the claim; nothing else.
    return {
        "runAsUser": 0,
        "runAsNonRoot": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        **extra,
    }


# (volume name, file under PKI): the client side of etcd's TLS only, never a key that signs.
PKI_FILES = (
    ("etcd-ca-crt", "ca.crt"),
    ("etcd-client-crt", "healthcheck-client.crt"),
    ("etcd-client-key", "healthcheck-client.key"),
)


def pod_spec(keep: int) -> dict[str, Any]:
    """The snapshot pod: etcdctl first (an init container, so the pruning never runs after a
    failed save), then busybox names the file and prunes."""
    prune = (
        "set -eu\n"
        f"cd {MOUNT}\n"
        'name="etcd-$(date -u +%Y%m%dT%H%M%SZ)-${NODE_NAME}.db"\n'
        f'mv {INCOMING} "$name"\n'
        # Timestamped names sort by age: keep the newest.
        f"ls -1 etcd-*.db | sort -r | tail -n +{keep + 1} | xargs -r rm -f --\n"
        'echo "saved $name; $(ls -1 etcd-*.db | wc -l) snapshot(s) kept"\n'
    )
    volumes_mounts = [{"name": "snapshots", "mountPath": MOUNT}]
    return {
        "restartPolicy": "Never",
        "priorityClassName": PLATFORM,  # the cluster's own backup: nothing else should take its place
        "hostNetwork": True,  # etcd's client port listens on the node's 127.0.0.1
        "nodeSelector": {CONTROL_PLANE: ""},
        "tolerations": [{"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"}],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [
            {
                "name": "save",
                "image": ETCD_IMAGE,
                "command": [
                    "etcdctl",
                    "--endpoints=https://127.0.0.1:2379",
                    f"--cacert={PKI}/ca.crt",
                    f"--cert={PKI}/healthcheck-client.crt",
                    f"--key={PKI}/healthcheck-client.key",
                    "snapshot",
                    "save",
                    INCOMING,
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                "securityContext": _security(),
                # The three files etcdctl needs, each on its own: the directory also holds the etcd
                # CA's key, with which anyone in this pod could mint clients to every Secret.
                "volumeMounts": [
                    *volumes_mounts,
                    *({"name": volume, "mountPath": f"{PKI}/{file}", "readOnly": True} for volume, file in PKI_FILES),
                ],
            }
        ],
        "containers": [
            {
                "name": "rotate",
                "image": BUSYBOX,
                "command": ["sh", "-c", prune],
                "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "100m", "memory": "64Mi"},
                },
                "securityContext": _security(),
                "volumeMounts": volumes_mounts,
            }
        ],
        "volumes": [
            *({"name": volume, "hostPath": {"path": f"{PKI}/{file}", "type": "File"}} for volume, file in PKI_FILES),
            {"name": "snapshots", "persistentVolumeClaim": {"claimName": CLAIM}},
        ],
    }


class EtcdBackup(pulumi.ComponentResource):
    """The `akiba-backup` namespace (privileged: the snapshot pod mounts a host path and uses
    the host's network), the `etcd-snapshots` claim and the CronJob."""

    def __init__(self, name: str, args: EtcdBackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:cluster:EtcdBackup", name, None, opts)
        ctx = args.ctx
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        ns = declare_namespace(NAMESPACE, "privileged", ctx, k8s_opts)
        self.namespace = ns.metadata.name
        in_ns = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[ns]))
        labels = {**ctx.labels, "app.kubernetes.io/name": NAME}
        self.claim = k8s.core.v1.PersistentVolumeClaim(
            CLAIM,
            metadata={"name": CLAIM, "namespace": NAMESPACE, "labels": ctx.labels},
            spec={
                "accessModes": ["ReadWriteMany"],  # the off-site copy mounts it too
                "storageClassName": CEPHFS_CLASS,
                "resources": {"requests": {"storage": args.claim_size}},
            },
            opts=ctx.stateful(self, provider=args.provider, depends_on=[ns, *args.after]),
        )
        k8s.batch.v1.CronJob(
            NAME,
            metadata={"name": NAME, "namespace": NAMESPACE, "labels": labels},
            spec={
                "schedule": args.schedule,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 3600,  # a controller rebooting at the hour still gets its run
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 2,  # another try may land on another controller
                        "activeDeadlineSeconds": 1800,
                        "template": {"metadata": {"labels": labels}, "spec": pod_spec(args.keep)},
                    }
                },
            },
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[self.claim])),
        )
        self.register_outputs({"namespace": self.namespace, "claim": CLAIM})
