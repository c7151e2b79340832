"""Images this repository builds (images/<name>/), built and pushed to the private registry by
the program with pulumi-docker-build, so `pulumi up` and the image references move together:
the ML runtime image (images/ml-runtime) and the GPU benchmark (images/gpu-benchmark, FROM the
ML runtime image by digest, plus this repository's benchmarks/gpu package)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_docker_build as docker_build

from components.registry.registry import PUSH_USER


@dataclass(frozen=True)
class ContainerImageArgs:
    registry: str  # host:port of the private registry, e.g. registry.akiba.lan:30443
    repository: str  # path in it, e.g. akiba/ml-runtime
    tag: str  # e.g. 2.13.0-cu126-1
    context: str  # build context, relative to the repository root, e.g. images/ml-runtime
    dockerfile: str  # e.g. images/ml-runtime/Dockerfile
    push_password: pulumi.Output[str]  # secret
    build_args: dict[str, pulumi.Input[str]] = field(default_factory=dict)  # e.g. BASE: another image's ref
    after: tuple[pulumi.Resource, ...] = ()


class ContainerImage(pulumi.ComponentResource):
    ref: pulumi.Output[str]  # host:port/repository:tag@sha256:digest once pushed

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # The ML runtime image was an akiba:images:MlRuntimeImage: the alias keeps its state.
        alias = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_="akiba:images:MlRuntimeImage")])
        super().__init__("akiba:images:ContainerImage", name, None, pulumi.ResourceOptions.merge(alias, opts))
        repo = f"{args.registry}/{args.repository}"
        image = docker_build.Image(
            args.repository.rsplit("/", 1)[-1],
            context={"location": args.context},
            dockerfile={"location": args.dockerfile},
            build_args=args.build_args or None,
            platforms=["linux/amd64"],
            tags=[f"{repo}:{args.tag}"],
            push=True,
            # A preview must not build (the ML image is ~10 GB); the SDK defaults this to true
            # (pulumi_docker_build/image.py, ImageArgs: `if build_on_preview is None: ... = True`).
            build_on_preview=False,
            registries=[{"address": args.registry, "username": PUSH_USER, "password": args.push_password}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        # Pods pull by digest: the tag may move, what was tested may not.
        self.ref = image.digest.apply(lambda d: f"{repo}:{args.tag}@{d}" if d else f"{repo}:{args.tag}")
        self.register_outputs({"ref": self.ref})
