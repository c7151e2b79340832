"""Shared homes: one CephFS volume per engineer, owned by the engineer's uid/gid, mounted at
/home/<name> in every home container on every node; and an NFS export of the same tree for
clients outside Kubernetes (the dev desktop, VMs).

This replaces the article's corosync/pacemaker NFS pair. Rook's CephNFS is active/passive
through Kubernetes: when the node running the NFS server dies, the pod is rescheduled. The
server tolerates an unreachable node for 30 s only (default 300 s), so a client stalls for
roughly node detection (~40 s) + 30 s + pod start (~20 s) + the NFSv4 grace period (90 s):
about three minutes, then carries on (hard mounts retry; nothing is lost).
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
from components.storage.rook_ceph import CEPH_IMAGE, PLACEMENT, TOLERATIONS
from components.storage.rook_ceph import NAMESPACE as ROOK_NAMESPACE

NAMESPACE = "akiba-homes"
NFS_NAME = "homes"
NFS_PSEUDO_PATH = "/homes"
BUSYBOX = "docker.io/library/busybox:1.37.0"
FAST_FAILOVER = [
    {"key": f"node.kubernetes.io/{cond}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    for cond in ("not-ready", "unreachable")
]


@dataclass(frozen=True)
class Home:
    """One engineer's home volume and who owns it."""

    name: str  # the engineer's login name: /home/<name>
    uid: int  # owner, the same on every node and container, e.g. 2001
    gid: int  # the owner's group, e.g. 2001
    size: str  # CephFS quota, e.g. "100Gi"


def home_claim(home: Home) -> str:
    return f"home-{home.name}"


def chown_job(home: Home, labels: dict[str, str]) -> dict[str, Any]:
    """A one-shot Job that gives the new volume to its owner (CephFS volumes start root:root)."""
    owner = f"{home.uid}:{home.gid}"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"home-owner-{home.name}", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 3,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "priorityClassName": PLATFORM,  # the home is unusable until it ran
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "chown",
                            "image": BUSYBOX,
                            # Only the top directory: files inside keep whatever owner they have.
                            "command": [
                                "sh",
                                "-c",
                                f"chown {owner} /home/{home.name} && chmod 0750 /home/{home.name}",
                            ],
                            "securityContext": {
                                "runAsUser": 0,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
                            },
                            "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
                            "volumeMounts": [{"name": "home", "mountPath": f"/home/{home.name}"}],
                        }
                    ],
                    "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": home_claim(home)}}],
                },
            },
        },
    }


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
class SharedHomesArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    filesystem: str  # the CephFS the homes live on, e.g. "homes"
    nfs_node_port: int  # NodePort of the NFS export for clients outside Kubernetes, e.g. 32049
    homes: tuple[Home, ...]  # one per engineer
    after: tuple[pulumi.Resource, ...]  # the filesystem and its StorageClass


class SharedHomes(pulumi.ComponentResource):
    claims: dict[str, str]  # engineer -> claim name (in NAMESPACE)
    nfs_port: int

    def __init__(self, name: str, args: SharedHomesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:SharedHomes", name, None, opts)
        ctx = args.ctx
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        # privileged: the home containers' dind sidecar (the policy pack allows only that one).
        ns = declare_namespace(NAMESPACE, "privileged", ctx, on_cluster)
        self.claims = {}
        for home in args.homes:
            labels = {**ctx.labels, "akiba.io/engineer": home.name}
            claim = k8s.core.v1.PersistentVolumeClaim(
                home_claim(home),
                metadata={"name": home_claim(home), "namespace": NAMESPACE, "labels": labels},
                spec={
                    "accessModes": ["ReadWriteMany"],  # the same home in every container on every node
                    "storageClassName": CEPHFS_CLASS,
                    "resources": {"requests": {"storage": home.size}},
                },
                opts=ctx.stateful(self, provider=args.provider, depends_on=[ns, *args.after]),
            )
            job = chown_job(home, labels)
            k8s.batch.v1.Job(
                job["metadata"]["name"],
                metadata=job["metadata"],
                spec=job["spec"],
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[claim, *args.after]),
            )
            self.claims[home.name] = home_claim(home)

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
            opts=ctx.stateful(self, provider=args.provider, depends_on=list(args.after)),
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
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[nfs]),
        )
        self.register_outputs({"claims": self.claims})
