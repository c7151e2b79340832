"""Any Kubernetes object from its manifest, top-level fields included.

`pulumi_kubernetes.apiextensions.CustomResource` only takes `spec`, but some kinds have other
top-level fields (a VolumeSnapshotClass has `driver` and `deletionPolicy`). The provider
handles every custom kind as unstructured data under `kubernetes:<apiVersion>:<kind>`, which is
what this registers."""

from __future__ import annotations

from typing import Any

import pulumi


class KubernetesObject(pulumi.CustomResource):
    def __init__(self, name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        super().__init__(f"kubernetes:{api_version}:{kind}", name, dict(manifest), opts)
