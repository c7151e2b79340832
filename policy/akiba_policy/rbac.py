"""RBAC the program declares (a pinned chart's own RBAC is not visible offline; in a preview
the exemptions list covers its operator roles, never its bindings to cluster-admin).

- rbac-no-cluster-admin: no binding to cluster-admin (a RoleBinding to it also lets a
  namespace's holder rewrite its own ResourceQuota), no ClusterRoleBinding to admin/edit
  (every namespace's Secrets), and no subject that is everyone: system:authenticated,
  system:unauthenticated, system:serviceaccounts, system:anonymous.
- rbac-least-privilege: no `*` verb or resource, no escalate/bind/impersonate (each lets a
  holder grant itself more), no nodes/proxy (the kubelet API: exec into any pod of a node)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .context import PlanContext
from .k8s import get, kind
from .model import PlannedResource, PolicyConfig

EVERYONE = {
    ("Group", "system:authenticated"),
    ("Group", "system:unauthenticated"),
    ("Group", "system:serviceaccounts"),
    ("User", "system:anonymous"),
}
CLUSTER_WIDE_WRITERS = {"admin", "edit"}
ESCALATING_VERBS = {"escalate", "bind", "impersonate"}
HOST_RESOURCES = {"nodes/proxy"}


def rbac_no_cluster_admin(res: PlannedResource, _: PolicyConfig, __: PlanContext) -> Iterator[str]:
    k = (kind(res) or "").removesuffix("Patch")
    if k not in ("RoleBinding", "ClusterRoleBinding"):
        return
    role = get(res.props, "roleRef", "name")
    if get(res.props, "roleRef", "kind") == "ClusterRole":
        if role == "cluster-admin":
            yield f"{k} grants cluster-admin"
        elif k == "ClusterRoleBinding" and role in CLUSTER_WIDE_WRITERS:
            yield f"ClusterRoleBinding grants {role!r} in every namespace (every namespace's Secrets)"
    for s in res.props.get("subjects") or []:
        if isinstance(s, Mapping) and (s.get("kind"), s.get("name")) in EVERYONE:
            yield f"{k} binds {role!r} to {s.get('name')} (everyone)"


def rbac_least_privilege(res: PlannedResource, _: PolicyConfig, __: PlanContext) -> Iterator[str]:
    if (kind(res) or "").removesuffix("Patch") not in ("Role", "ClusterRole"):
        return
    for i, rule in enumerate(res.props.get("rules") or []):
        if not isinstance(rule, Mapping):
            continue
        verbs = {str(v) for v in rule.get("verbs") or []}
        resources = {str(r) for r in rule.get("resources") or []}
        if "*" in verbs or "*" in resources or any(r.endswith("/*") or r.startswith("*/") for r in resources):
            yield f"rules[{i}] grants a wildcard (verbs {sorted(verbs)}, resources {sorted(resources)})"
        if found := sorted(verbs & ESCALATING_VERBS):
            yield f"rules[{i}] grants {', '.join(found)}: its holder can give itself more"
        if found := sorted(resources & HOST_RESOURCES):
            yield f"rules[{i}] grants {', '.join(found)}: the kubelet API of every node"
