"""The ML runtime image (images/ml-runtime): built and pushed to the private registry by the
program with pulumi-docker-build, so `pulumi up` and the image reference move together."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build

from components.registry.registry import PUSH_USER

CONTEXT = "images/ml-runtime"


@dataclass(frozen=True)
class MlRuntimeImageArgs:
    registry: str  # host:port
    tag: str
    push_password: pulumi.Output[str]  # secret
    after: tuple[pulumi.Resource, ...] = ()


class MlRuntimeImage(pulumi.ComponentResource):
    ref: pulumi.Output[str]  # repo:tag@sha256:digest once pushed

    def __init__(self, name: str, args: MlRuntimeImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:images:MlRuntimeImage", name, None, opts)
        repo = f"{args.registry}/akiba/ml-runtime"
        image = docker_build.Image(
            "ml-runtime",
            context={"location": CONTEXT},
            dockerfile={"location": f"{CONTEXT}/Dockerfile"},
            platforms=["linux/amd64"],
            tags=[f"{repo}:{args.tag}"],
            push=True,
            registries=[{"address": args.registry, "username": PUSH_USER, "password": args.push_password}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        # Pods pull by digest: the tag may move, what was tested may not.
        self.ref = image.digest.apply(lambda d: f"{repo}:{args.tag}@{d}" if d else f"{repo}:{args.tag}")
        self.register_outputs({"ref": self.ref})
