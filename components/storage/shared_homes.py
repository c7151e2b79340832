"""Shared homes: one CephFS volume per engineer, owned by the engineer's uid/gid, mounted at
/home/<name> in every home container on every node. Their NFS exports for clients outside
Kubernetes are components.storage.homes_nfs.
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

NAMESPACE = "akiba-homes"
BUSYBOX = "docker.io/library/busybox:1.37.0"


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


@dataclass(frozen=True)
class SharedHomesArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    filesystem: str  # the CephFS the homes live on, e.g. "homes"
    homes: tuple[Home, ...]  # one per engineer
    after: tuple[pulumi.Resource, ...]  # the filesystem and its StorageClass


class SharedHomes(pulumi.ComponentResource):
    claims: dict[str, str]  # engineer -> claim name (in NAMESPACE)

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

        self.register_outputs({"claims": self.claims})
