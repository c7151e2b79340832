"""How rules read Kubernetes objects: kind, namespace, the pod spec of every pod-bearing kind,
and the objects a ConfigGroup declares inline (the engine registers them as children; the
offline plan sees only the group)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from .model import PlannedResource

# Where each pod-bearing kind keeps its pod spec (a `<Kind>Patch` patches the same place).
POD_SPEC: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
INLINE_GROUPS = {"kubernetes:yaml/v2:ConfigGroup"}


def get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def kind(res: PlannedResource) -> str | None:
    """The object's kind from its type token (`kubernetes:apps/v1:Deployment`); None for
    helm/yaml groups and anything not Kubernetes."""
    if not res.type.startswith("kubernetes:") or res.type.startswith(("kubernetes:helm", "kubernetes:yaml")):
        return None
    return res.type.rsplit(":", 1)[-1]


def base_kind(res: PlannedResource) -> str | None:
    """`DeploymentPatch` and `Deployment` are both a Deployment to a rule."""
    found = kind(res)
    return found.removesuffix("Patch") if found else None


def namespace_of(res: PlannedResource) -> str:
    ns = get(res.props, "metadata", "namespace")
    return ns if isinstance(ns, str) and ns else "default"


def name_of(res: PlannedResource) -> str:
    name = get(res.props, "metadata", "name")
    return name if isinstance(name, str) and name else res.name


def pod_path(res: PlannedResource) -> tuple[str, ...] | None:
    return POD_SPEC.get(base_kind(res) or "")


def pod_spec(res: PlannedResource) -> Mapping[str, Any] | None:
    path = pod_path(res)
    spec = get(res.props, *path) if path else None
    return spec if isinstance(spec, Mapping) else None


def pod_metadata(res: PlannedResource) -> Mapping[str, Any]:
    """The pod's own metadata (a template's for controllers)."""
    path = pod_path(res)
    if not path:
        return {}
    meta = res.props.get("metadata") if len(path) == 1 else get(res.props, *path[:-1], "metadata")
    return meta if isinstance(meta, Mapping) else {}


def containers(
    spec: Mapping[str, Any] | None, fields: tuple[str, ...] = CONTAINER_FIELDS
) -> Iterator[Mapping[str, Any]]:
    for key in fields:
        for container in (spec or {}).get(key) or []:
            if isinstance(container, Mapping):
                yield container


def type_token(api_version: str, kind_: str) -> str:
    """The Pulumi type of an object: `v1` is `core/v1`."""
    return f"kubernetes:{api_version if '/' in api_version else f'core/{api_version}'}:{kind_}"


def inline_objects(res: PlannedResource) -> Iterator[PlannedResource]:
    """What a ConfigGroup declares in `yaml`/`objs`, as the children the engine would register
    (remote `files` are read by the provider only; a preview sees those children)."""
    if res.type not in INLINE_GROUPS:
        return
    docs: list[Any] = list(res.props.get("objs") or [])
    texts = res.props.get("yaml")
    for text in [texts] if isinstance(texts, str) else texts or []:
        try:
            docs += list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
    prefix, _, _ = res.urn.rpartition("::")
    # An inline object is as secret as the group's input it came from.
    hidden = res.secret_paths is None or any(p.startswith(("yaml", "objs")) for p in res.secret_paths)
    for doc in docs:
        if not isinstance(doc, Mapping):
            continue
        api, kind_ = str(doc.get("apiVersion") or ""), str(doc.get("kind") or "")
        typ = type_token(api, kind_)
        name = f"{res.name}:{get(doc, 'metadata', 'namespace') or ''}/{get(doc, 'metadata', 'name') or ''}"
        secret = None if hidden else frozenset[str]()
        yield PlannedResource(typ, name, f"{prefix}${typ}::{name}", doc, res.protect, secret)


def expand(resources: list[PlannedResource]) -> list[PlannedResource]:
    return [child for res in resources for child in (res, *inline_objects(res))]
