"""The platform's namespaces, each with its Pod Security level."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from components.context import PlatformContext

PodSecurity = Literal["privileged", "baseline", "restricted"]


@dataclass(frozen=True)
class PlatformNamespacesArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    namespaces: dict[str, PodSecurity]  # name -> enforced Pod Security Standard
    depends_on: tuple[pulumi.Resource, ...] = ()  # e.g. the first controller's deployment


def declare_namespace(
    name: str,
    level: PodSecurity,
    ctx: PlatformContext,
    opts: pulumi.ResourceOptions,
    *,
    warn: PodSecurity | None = None,
    labels: Mapping[str, str] | None = None,
) -> k8s.core.v1.Namespace:
    """A namespace with the platform labels and an enforced Pod Security level. `warn` (a
    stricter level) is also audited: users see what would break under it before it is enforced.
    `labels` add to the platform's (e.g. akiba.io/engineer on an engineer's namespace)."""
    audit = {"pod-security.kubernetes.io/audit": warn} if warn else {}
    return k8s.core.v1.Namespace(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name,
            labels={
                **ctx.labels,
                **(labels or {}),
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/warn": warn or level,
                **audit,
            },
        ),
        opts=opts,
    )


class PlatformNamespaces(pulumi.ComponentResource):
    """Namespaces other components deploy into (`self.names[...]`)."""

    def __init__(self, name: str, args: PlatformNamespacesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:k8s:PlatformNamespaces", name, None, opts)
        self.namespaces: dict[str, k8s.core.v1.Namespace] = {}
        for ns, level in args.namespaces.items():
            self.namespaces[ns] = declare_namespace(
                ns,
                level,
                args.ctx,
                pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on)),
            )
        self.names = {ns: r.metadata.name for ns, r in self.namespaces.items()}
        self.register_outputs({"names": self.names})
