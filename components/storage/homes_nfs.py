"""NFS exports of the engineers' homes for clients outside Kubernetes (the dev desktop, VMs).

This replaces the article's corosync/pacemaker NFS pair. Rook's CephNFS is active/passive
through Kubernetes: when the node running the NFS server dies, the pod is rescheduled. The
server tolerates an unreachable node for 30 s only (default 300 s), so a client stalls for
roughly node detection (~40 s) + 30 s + pod start (~20 s) + the NFSv4 grace period (90 s):
about three minutes, then carries on (hard mounts retry; nothing is lost).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.priorities import PLATFORM
from components.context import PlatformContext
from components.storage.rook_ceph import CEPH_IMAGE, PLACEMENT, TOLERATIONS
from components.storage.rook_ceph import NAMESPACE as ROOK_NAMESPACE

NFS_NAME = "homes"
NFS_PSEUDO_PATH = "/homes"
FAST_FAILOVER = [
    {"key": f"node.kubernetes.io/{cond}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    for cond in ("not-ready", "unreachable")
]


def export_script(filesystem: str) -> str:
    """Create the NFS export of the CSI subvolumes (idempotent), with Rook's admin credentials."""
    return "\n".join(
        [
            "set -eu",
            'mon_host=$(sed "s/[a-z0-9]*=//g" /etc/rook/mon-endpoints)',
            'printf "[global]\\nmon_host = %s\\n" "$mon_host" > /etc/ceph/ceph.conf',
            'printf "[%s]\\nkey = %s\\n" "$ROOK_CEPH_USERNAME" "$ROOK_CEPH_SECRET" > /etc/ceph/keyring',
            f"ceph nfs export info {NFS_NAME} {NFS_PSEUDO_PATH} >/dev/null 2>&1 ||"
            f" ceph nfs export create cephfs --cluster-id {NFS_NAME} --pseudo-path {NFS_PSEUDO_PATH}"
            f" --fsname {filesystem} --path /volumes/csi",
        ]
    )


@dataclass(frozen=True)
class HomesNfsArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    filesystem: str  # the CephFS the homes live on, e.g. "homes"
    nfs_node_port: int  # NodePort of the NFS export for clients outside Kubernetes, e.g. 32049
    after: tuple[pulumi.Resource, ...]  # the filesystem, the homes, the PriorityClasses
    # Where the server and its Service were declared before they moved here (the homes
    # component's URN): an alias, so the move neither replaces nor deletes them.
    moved_from: pulumi.Input[str] | None = None


class HomesNfs(pulumi.ComponentResource):
    nfs_port: int

    def __init__(self, name: str, args: HomesNfsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:HomesNfs", name, None, opts)
        ctx = args.ctx
        moved = [pulumi.Alias(parent=args.moved_from)] if args.moved_from else []
        nfs = k8s.apiextensions.CustomResource(
            "cephnfs-homes",
            api_version="ceph.rook.io/v1",
            kind="CephNFS",
            metadata={"name": NFS_NAME, "namespace": ROOK_NAMESPACE, "labels": ctx.labels},
            spec={
                "server": {
                    "active": 1,
                    "priorityClassName": PLATFORM,
                    "placement": {
                        "tolerations": [*TOLERATIONS, *FAST_FAILOVER],
                        "nodeAffinity": PLACEMENT["nodeAffinity"],
                    },
                    "resources": {"limits": {"memory": "2Gi"}},
                }
            },
            # Its grace and export records live in RADOS: protect it like the rest of Ceph.
            opts=ctx.stateful(self, provider=args.provider, depends_on=list(args.after), aliases=moved),
        )
        k8s.batch.v1.Job(
            "homes-nfs-export",
            metadata={"name": "homes-nfs-export", "namespace": ROOK_NAMESPACE, "labels": ctx.labels},
            spec={
                "backoffLimit": 10,  # the NFS server may take a while to come up
                "template": {
                    "metadata": {"labels": ctx.labels},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "priorityClassName": PLATFORM,
                        "tolerations": TOLERATIONS,
                        "containers": [
                            {
                                "name": "export",
                                "image": CEPH_IMAGE,
                                "command": ["bash", "-c", export_script(args.filesystem)],
                                "env": [
                                    {
                                        "name": "ROOK_CEPH_USERNAME",
                                        "valueFrom": {
                                            "secretKeyRef": {"name": "rook-ceph-mon", "key": "ceph-username"}
                                        },
                                    },
                                    {
                                        "name": "ROOK_CEPH_SECRET",
                                        "valueFrom": {"secretKeyRef": {"name": "rook-ceph-mon", "key": "ceph-secret"}},
                                    },
                                ],
                                "securityContext": {"allowPrivilegeEscalation": False},
                                "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}},
                                "volumeMounts": [
                                    {"name": "mon-endpoints", "mountPath": "/etc/rook"},
                                    {"name": "ceph-config", "mountPath": "/etc/ceph"},
                                ],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "mon-endpoints",
                                "configMap": {
                                    "name": "rook-ceph-mon-endpoints",
                                    "items": [{"key": "data", "path": "mon-endpoints"}],
                                },
                            },
                            {"name": "ceph-config", "emptyDir": {}},
                        ],
                    },
                },
            },
            # args.after: its PriorityClass too (admission refuses a pod naming a missing class).
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[nfs, *args.after]),
        )
        # NFS for clients outside Kubernetes, on every node's address: failover moves the pod,
        # not the endpoint.
        self.nfs_port = args.nfs_node_port
        k8s.core.v1.Service(
            "homes-nfs",
            metadata={"name": "homes-nfs", "namespace": ROOK_NAMESPACE, "labels": ctx.labels},
            spec={
                "type": "NodePort",
                "selector": {"app": "rook-ceph-nfs", "ceph_nfs": NFS_NAME},
                "ports": [{"name": "nfs", "port": 2049, "targetPort": 2049, "nodePort": self.nfs_port}],
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[nfs], aliases=moved),
        )
        self.register_outputs({"port": self.nfs_port})
