"""What the access check reasons about: RBAC rules, roles, bindings and the identities they bind,
read from the rendered manifests the way the API server's RBAC authorizer reads the objects.
Plain data; `objects` builds it from the plan, `builtin` adds what every kubeadm cluster has."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

READ_VERBS = frozenset({"get", "list", "watch"})
AUTHENTICATED = "system:authenticated"
SERVICE_ACCOUNTS = "system:serviceaccounts"


def _strings(raw: Any) -> frozenset[str]:
    return frozenset(str(x) for x in raw or ())


@dataclass(frozen=True)
class Rule:
    """One PolicyRule. An empty `names` means every object; `urls` are nonResourceURLs."""

    verbs: frozenset[str]
    groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    urls: frozenset[str] = frozenset()

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Rule:
        return cls(
            verbs=_strings(raw.get("verbs")),
            groups=_strings(raw.get("apiGroups")),
            resources=_strings(raw.get("resources")),
            names=_strings(raw.get("resourceNames")),
            urls=_strings(raw.get("nonResourceURLs")),
        )

    def verb(self, verb: str) -> bool:
        return "*" in self.verbs or verb in self.verbs

    def group(self, group: str) -> bool:
        return "*" in self.groups or group in self.groups

    def resource(self, resource: str) -> bool:
        """rbac/v1 ResourceMatches: exact, `*`, or `*/<subresource>`."""
        if "*" in self.resources or resource in self.resources:
            return True
        return "/" in resource and f"*/{resource.split('/', 1)[1]}" in self.resources

    @property
    def writes(self) -> frozenset[str]:
        """Every verb that is not a read (`*` included)."""
        return self.verbs - READ_VERBS

    def __str__(self) -> str:
        if self.urls:
            return f"{','.join(sorted(self.verbs))} {','.join(sorted(self.urls))}"
        groups = ",".join(g or "core" for g in sorted(self.groups))
        names = f" named {','.join(sorted(self.names))}" if self.names else ""
        return f"{','.join(sorted(self.verbs))} {','.join(sorted(self.resources))} ({groups}){names}"


@dataclass(frozen=True)
class Selector:
    """A label selector of an aggregationRule (matchLabels and matchExpressions)."""

    labels: tuple[tuple[str, str], ...]
    expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Selector:
        return cls(
            tuple(sorted((str(k), str(v)) for k, v in (raw.get("matchLabels") or {}).items())),
            tuple(
                (str(e["key"]), str(e["operator"]), tuple(str(v) for v in e.get("values") or ()))
                for e in raw.get("matchExpressions") or ()
            ),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        if not all(labels.get(k) == v for k, v in self.labels):
            return False
        for key, op, values in self.expressions:
            value = labels.get(key)
            ok = {
                "In": value is not None and value in values,
                "NotIn": value is None or value not in values,
                "Exists": value is not None,
                "DoesNotExist": value is None,
            }.get(op, False)
            if not ok:
                return False
        # An empty selector selects nothing in an aggregationRule (the controller skips it).
        return bool(self.labels or self.expressions)


@dataclass(frozen=True)
class Role:
    kind: Literal["Role", "ClusterRole"]
    namespace: str  # "" for a ClusterRole
    name: str
    rules: tuple[Rule, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    aggregation: tuple[Selector, ...] | None = None  # a ClusterRole's aggregationRule
    source: str = "plan"  # "plan", or where a built-in one is defined

    @property
    def label(self) -> str:
        return f"Role {self.namespace}/{self.name}" if self.namespace else f"ClusterRole {self.name}"


@dataclass(frozen=True)
class Subject:
    kind: str  # User, Group, ServiceAccount
    name: str
    namespace: str = ""  # ServiceAccounts

    def applies_to(self, identity: Identity) -> bool:
        """rbac.appliesTo: a user by name, a group by membership, a ServiceAccount by its user name."""
        if self.kind == "User":
            return self.name == identity.user
        if self.kind == "Group":
            return self.name in identity.groups
        if self.kind == "ServiceAccount":
            return identity.user == service_account_user(self.namespace, self.name)
        return False

    def __str__(self) -> str:
        return (
            f"ServiceAccount {self.namespace}/{self.name}"
            if self.kind == "ServiceAccount"
            else f"{self.kind} {self.name}"
        )


@dataclass(frozen=True)
class Binding:
    kind: Literal["RoleBinding", "ClusterRoleBinding"]
    namespace: str  # "" for a ClusterRoleBinding
    name: str
    role_kind: str  # Role or ClusterRole
    role_name: str
    subjects: tuple[Subject, ...]
    source: str = "plan"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    @property
    def role_label(self) -> str:
        return (
            f"Role {self.namespace}/{self.role_name}" if self.role_kind == "Role" else f"ClusterRole {self.role_name}"
        )


@dataclass(frozen=True)
class Identity:
    """Who a request authenticates as: a user name and its groups (system:authenticated always)."""

    user: str
    groups: frozenset[str]
    label: str  # how the report names it

    @classmethod
    def user_named(cls, name: str, label: str = "") -> Identity:
        return cls(name, frozenset({AUTHENTICATED}), label or name)

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Identity:
        return cls(
            service_account_user(namespace, name),
            frozenset({AUTHENTICATED, SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}"}),
            f"ServiceAccount {namespace}/{name}",
        )


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass
class Objects:
    """What the RBAC authorizer and the check read: roles, bindings, ServiceAccounts, namespaces."""

    roles: list[Role] = field(default_factory=list)
    bindings: list[Binding] = field(default_factory=list)
    service_accounts: set[tuple[str, str]] = field(default_factory=set)  # (namespace, name)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    # Namespaces objects (or charts) are put in without the plan declaring the Namespace.
    used: set[str] = field(default_factory=set)
    # PersistentVolumes the plan declares -> the claim each is reserved for ("" none): one
    # reserved for no claim binds to any claim that names it (spec.volumeName), in any namespace.
    volumes: dict[str, str] = field(default_factory=dict)

    def add(self, manifest: Mapping[str, Any]) -> None:
        """One rendered object; of kinds the check does not read, only the namespace counts."""
        kind = str(manifest.get("kind", ""))
        meta = manifest.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "")
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        if namespace:
            self.used.add(namespace)
        if kind == "Namespace":
            self.namespaces[name] = labels
        elif kind == "PersistentVolume":
            ref = (manifest.get("spec") or {}).get("claimRef") or {}
            self.volumes[name] = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
        elif kind == "ServiceAccount":
            self.service_accounts.add((namespace or "default", name))
        elif kind in ("Role", "ClusterRole"):
            aggregation = manifest.get("aggregationRule")
            self.roles.append(
                Role(
                    kind="Role" if kind == "Role" else "ClusterRole",
                    namespace=(namespace or "default") if kind == "Role" else "",
                    name=name,
                    rules=tuple(Rule.of(r) for r in manifest.get("rules") or ()),
                    labels=labels,
                    aggregation=tuple(Selector.of(s) for s in aggregation.get("clusterRoleSelectors") or ())
                    if kind == "ClusterRole" and aggregation
                    else None,
                )
            )
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            ref = manifest.get("roleRef") or {}
            self.bindings.append(
                Binding(
                    kind="RoleBinding" if kind == "RoleBinding" else "ClusterRoleBinding",
                    namespace=(namespace or "default") if kind == "RoleBinding" else "",
                    name=name,
                    role_kind=str(ref.get("kind", "")),
                    role_name=str(ref.get("name", "")),
                    subjects=tuple(
                        Subject(str(s.get("kind", "")), str(s.get("name", "")), str(s.get("namespace") or ""))
                        for s in manifest.get("subjects") or ()
                    ),
                )
            )
