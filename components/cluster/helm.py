"""One way to install a Helm chart: always an exact version (the policy pack refuses ranges)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def pinned_chart(
    name: str,
    *,
    chart: str,
    version: str,
    namespace: pulumi.Input[str],
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    repo: str | None = None,  # None for an OCI chart reference
) -> k8s.helm.v4.Chart:
    return k8s.helm.v4.Chart(
        name,
        chart=chart,
        version=version,
        repository_opts={"repo": repo} if repo else None,
        namespace=namespace,
        values=values,
        opts=opts,
    )
