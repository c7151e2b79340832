"""Shared homes: one CephFS volume per engineer, claim `home` in their namespace (eng-<login>),
owned by the engineer's uid/gid, mounted at /home/<login> in their home container on every node
and in their Jobs. Their NFS exports for clients outside Kubernetes are
components.storage.homes_nfs.

A home claim from before the engineers' namespaces (akiba-homes/home-<login>) is adopted with
`homeVolume`: the new claim names that PersistentVolume (see README, "Moving homes into the
engineers' namespaces").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.priorities import INTERACTIVE
from components.context import PlatformContext
from components.storage.ceph_storage import CEPHFS_CLASS
from components.tenants.names import ENGINEER_LABEL, HOME_CLAIM, engineer_namespace

BUSYBOX = "docker.io/library/busybox:1.37.0"
OWNER_JOB = "home-owner"


@dataclass(frozen=True)
class Home:
    """One engineer's home volume and who owns it."""

    name: str  # the engineer's login name: /home/<name>
    uid: int  # owner, the same on every node and container, e.g. 2001
    gid: int  # the owner's group, e.g. 2001
    size: str  # CephFS quota, e.g. "100Gi"
    volume_name: str | None = None  # an existing PersistentVolume to bind (adoption), e.g. "pvc-0b7c..."


def claim_spec(home: Home) -> dict[str, Any]:
    return {
        "accessModes": ["ReadWriteMany"],  # the same home in every container on every node
        "storageClassName": CEPHFS_CLASS,
        "resources": {"requests": {"storage": home.size}},
        **({"volumeName": home.volume_name} if home.volume_name else {}),
    }


def chown_job(home: Home, labels: dict[str, str]) -> dict[str, Any]:
    """A one-shot Job that gives the new volume to its owner (CephFS volumes start root:root)."""
    owner = f"{home.uid}:{home.gid}"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": OWNER_JOB, "namespace": engineer_namespace(home.name), "labels": labels},
        "spec": {
            "backoffLimit": 3,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    # The home is unusable until it ran: the engineer's own top class (an engineer's
                    # namespace admits no pod of the platform's, components/tenants/quota.py).
                    "priorityClassName": INTERACTIVE,
                    "automountServiceAccountToken": False,
                    # Root with CHOWN and FOWNER only: both in Pod Security's baseline, which the
                    # engineer's namespace enforces. No user namespace: the owner is the real uid.
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
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
                    "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": HOME_CLAIM}}],
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
    after: tuple[pulumi.Resource, ...]  # the filesystem and its StorageClass, the PriorityClasses
    namespaces: Mapping[str, pulumi.Resource] = field(default_factory=dict)  # login -> their Namespace


class SharedHomes(pulumi.ComponentResource):
    claims: dict[str, tuple[str, str]]  # engineer -> (namespace, claim)
    resources: dict[str, pulumi.Resource]  # engineer -> their claim, for what mounts it

    def __init__(self, name: str, args: SharedHomesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:SharedHomes", name, None, opts)
        ctx = args.ctx
        self.claims, self.resources = {}, {}
        for home in args.homes:
            labels = {**ctx.labels, ENGINEER_LABEL: home.name}
            namespace = [args.namespaces[home.name]] if home.name in args.namespaces else []
            after = [*namespace, *args.after]
            # Logical name as before (home-<login>): a claim still in akiba-homes is a planned
            # replacement of a protected resource, which the engine refuses until it is adopted.
            claim = k8s.core.v1.PersistentVolumeClaim(
                f"home-{home.name}",
                metadata={"name": HOME_CLAIM, "namespace": engineer_namespace(home.name), "labels": labels},
                spec=claim_spec(home),
                opts=ctx.stateful(self, provider=args.provider, depends_on=after),
            )
            job = chown_job(home, labels)
            k8s.batch.v1.Job(
                f"home-owner-{home.name}",
                metadata=job["metadata"],
                spec=job["spec"],
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[claim, *after]),
            )
            self.claims[home.name] = (engineer_namespace(home.name), HOME_CLAIM)
            self.resources[home.name] = claim

        self.register_outputs({"claims": {login: f"{ns}/{c}" for login, (ns, c) in self.claims.items()}})
