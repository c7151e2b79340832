"""Keeps the (large) ML image on every GPU node, whoever is logged in: a DaemonSet whose init
container pulls the image and exits, and whose pause container holds the pod, so the kubelet's
image GC never counts the image unused and a first login or Job does not wait for a pull."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.context import PlatformContext
from components.engineers.home_containers import ON_GPU_NODES

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
NAME = "ml-image-prepull"


def prepull_pod(image: str, labels: dict[str, str]) -> dict[str, Any]:
    small = {"limits": {"cpu": "50m", "memory": "32Mi"}}
    locked = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            **ON_GPU_NODES,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [
                {"name": "pull", "image": image, "command": ["true"], "resources": small, "securityContext": locked}
            ],
            "containers": [{"name": "hold", "image": PAUSE_IMAGE, "resources": small, "securityContext": locked}],
        },
    }


@dataclass(frozen=True)
class ImagePrepullArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    namespace: pulumi.Input[str]  # a platform namespace, e.g. akiba-system
    image: pulumi.Input[str]  # the ML runtime image, pinned
    after: tuple[pulumi.Resource, ...] = ()


class ImagePrepull(pulumi.ComponentResource):
    def __init__(self, name: str, args: ImagePrepullArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:homes:ImagePrepull", name, None, opts)
        labels = {**args.ctx.labels, "app.kubernetes.io/name": NAME}
        k8s.apps.v1.DaemonSet(
            NAME,
            metadata={"name": NAME, "namespace": args.namespace, "labels": labels},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                "template": pulumi.Output.from_input(args.image).apply(lambda image: prepull_pod(image, labels)),
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after)),
        )
        self.register_outputs({})
