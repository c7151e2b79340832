"""The RBAC authorizer, offline: which rules reach an identity, through which binding and role,
and everything else that identity can act as.

As the API server decides (plugin/pkg/auth/authorizer/rbac): a ClusterRoleBinding's rules apply
in every namespace and to cluster-scoped objects, a RoleBinding's only inside its namespace;
a ClusterRole with an aggregationRule holds the rules of every ClusterRole its selectors match
(the aggregation controller's work, done here to a fixed point). Beyond one identity's own
bindings, a subject also acts as every ServiceAccount of a namespace where it can start a pod
(a pod names any ServiceAccount of its namespace), mint a token, impersonate the account or read
its Secrets (a legacy token Secret holds the account's token) — and as whatever those reach.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from tools.plan.access import builtin
from tools.plan.access.model import Binding, Identity, Objects, Role, Rule

# What starts a pod in a namespace: the pod itself or any controller that makes one.
POD_MAKERS: tuple[tuple[str, str], ...] = (
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
)


@dataclass(frozen=True)
class Request:
    """One API request. namespace "" is a cluster-scoped object, or a list across all namespaces."""

    verb: str
    group: str
    resource: str
    namespace: str
    name: str = ""  # "" any object


@dataclass(frozen=True)
class Grant:
    """A rule as it reaches a subject: where it applies and the path that grants it."""

    scope: str  # a namespace, or "*" (a ClusterRoleBinding: every namespace and the cluster)
    rule: Rule
    path: str  # "RoleBinding ns/x -> Role ns/y -> rule ...", after how the subject got there

    def applies_in(self, namespace: str) -> bool:
        return self.scope == "*" or self.scope == namespace

    def allows(self, request: Request, named_only: bool = True) -> bool:
        """Whether the rule admits the request. A rule limited to named objects admits a request
        for "any object" when `named_only` (a yes for questions that fail on any access) and not
        otherwise (a positive check needs the right to every object)."""
        if request.namespace == "" and self.scope != "*":
            return False
        if request.namespace and not self.applies_in(request.namespace):
            return False
        rule = self.rule
        if not rule.resources or not (
            rule.verb(request.verb) and rule.group(request.group) and rule.resource(request.resource)
        ):
            return False
        if rule.names:
            return request.name in rule.names if request.name else named_only
        return True


@dataclass
class Reach:
    """Everything one subject can do: its identities (itself first) and every grant they hold."""

    label: str
    identity: Identity
    grants: list[Grant] = field(default_factory=list)
    acts_as: dict[str, str] = field(default_factory=dict)  # identity label -> how
    unknown: list[str] = field(default_factory=list)  # bindings to a role nobody declares

    def allowed(self, request: Request, named_only: bool = True) -> list[Grant]:
        return [g for g in self.grants if g.allows(request, named_only)]

    def can(self, request: Request, named_only: bool = True) -> bool:
        return any(g.allows(request, named_only) for g in self.grants)


class Authorizer:
    """The plan's roles and bindings with the built-in ones, aggregation resolved."""

    def __init__(self, objects: Objects) -> None:
        self.roles: dict[tuple[str, str, str], Role] = {("ClusterRole", "", r.name): r for r in builtin.ROLES}
        for r in objects.roles:
            key = (str(r.kind), r.namespace, r.name)
            if key in self.roles:
                # The API server reconciles its own roles at start, adding back what they lack:
                # a plan's object of the same name ends up with both rule sets.
                known = self.roles[key]
                r = replace(r, rules=known.rules + r.rules, aggregation=r.aggregation or known.aggregation)
            self.roles[key] = r
        self.rules = _aggregate(self.roles)
        names = {(b.kind, b.namespace, b.name) for b in objects.bindings}
        self.bindings: list[Binding] = [
            *objects.bindings,
            *(b for b in builtin.BINDINGS if (b.kind, b.namespace, b.name) not in names),
        ]
        self.namespaces: set[str] = set(objects.namespaces) | objects.used | set(builtin.NAMESPACES)
        self.namespaces |= {r.namespace for r in objects.roles if r.namespace}
        self.namespaces |= {b.namespace for b in self.bindings if b.namespace}
        self.namespaces |= {ns for ns, _ in objects.service_accounts}
        # The ServiceAccounts a pod in each namespace can name: those declared, `default` (the
        # controller makes it in every namespace), and any a binding names (a chart may make it).
        self.accounts: dict[str, set[str]] = {ns: {"default"} for ns in self.namespaces}
        for ns, name in objects.service_accounts:
            self.accounts.setdefault(ns, {"default"}).add(name)
        for b in self.bindings:
            for s in b.subjects:
                if s.kind == "ServiceAccount" and s.namespace:
                    self.namespaces.add(s.namespace)
                    self.accounts.setdefault(s.namespace, {"default"}).add(s.name)

    def role_key(self, binding: Binding) -> tuple[str, str, str]:
        return (binding.role_kind, binding.namespace if binding.role_kind == "Role" else "", binding.role_name)

    def grants(self, identity: Identity) -> tuple[list[Grant], list[str]]:
        """Every rule that reaches `identity` through its own bindings; bindings whose role is
        unknown (or of a kind RBAC does not accept) are returned apart."""
        grants, unknown = [], []
        for b in self.bindings:
            if not any(s.applies_to(identity) for s in b.subjects):
                continue
            key = self.role_key(b)
            if key not in self.roles or (b.kind == "ClusterRoleBinding" and b.role_kind != "ClusterRole"):
                unknown.append(f"{b.label} -> {b.role_label} (not declared by the plan nor built in)")
                continue
            role = self.roles[key]
            scope = b.namespace or "*"
            for rule, origin in self.rules[key]:
                via = f" <- {origin}" if origin else ""
                grants.append(Grant(scope, rule, f"{b.label} -> {role.label}{via} -> rule '{rule}'"))
        return grants, unknown

    def reach(self, identity: Identity) -> Reach:
        """`identity`'s grants, then those of every ServiceAccount it can act as, transitively."""
        out = Reach(identity.label, identity)
        queue: list[tuple[Identity, str]] = [(identity, "")]
        seen = {identity.user}
        while queue:
            current, how = queue.pop(0)
            grants, unknown = self.grants(current)
            out.grants += [Grant(g.scope, g.rule, how + g.path) for g in grants]
            out.unknown += [how + u for u in unknown]
            for ns, name, why in self._accounts_reached(grants):
                account = Identity.service_account(ns, name)
                if account.user in seen:
                    continue
                seen.add(account.user)
                step = f"{how}{why} => as {account.label}: "
                out.acts_as[account.label] = step.removesuffix(": ")
                queue.append((account, step))
        return out

    def _accounts_reached(self, grants: Iterable[Grant]) -> list[tuple[str, str, str]]:
        """(namespace, ServiceAccount, the grant's path) for each account the grants let one act as."""
        found = []
        for ns in sorted(self.namespaces):
            for name in sorted(self.accounts.get(ns, ())):
                for g in grants:
                    if _acts_as(g, ns, name):
                        found.append((ns, name, g.path))
                        break
        return found


def _acts_as(grant: Grant, namespace: str, account: str) -> bool:
    if not grant.applies_in(namespace):
        return False
    makes_pods = any(grant.allows(Request("create", g, r, namespace)) for g, r in POD_MAKERS)
    return (
        makes_pods
        or grant.allows(Request("create", "", "serviceaccounts/token", namespace, account))
        or grant.allows(Request("impersonate", "", "serviceaccounts", namespace, account))
        or grant.allows(Request("get", "", "secrets", namespace))
        or grant.allows(Request("list", "", "secrets", namespace))
    )


def _aggregate(roles: dict[tuple[str, str, str], Role]) -> dict[tuple[str, str, str], list[tuple[Rule, str]]]:
    """Each role's rules with where each came from ("" its own, else the aggregated ClusterRole)."""
    rules: dict[tuple[str, str, str], list[tuple[Rule, str]]] = {
        key: [(r, "") for r in role.rules] for key, role in roles.items()
    }
    aggregated = [key for key, role in roles.items() if role.aggregation is not None]
    changed, rounds = True, 0
    # An aggregated role can itself be selected (view -> edit -> admin); bounded for cycles.
    while changed and rounds <= len(aggregated):
        changed, rounds = False, rounds + 1
        for key in aggregated:
            selectors = roles[key].aggregation or ()
            collected: list[tuple[Rule, str]] = []
            for other_key, other in sorted(roles.items()):
                if other_key == key or other.kind != "ClusterRole":
                    continue
                if any(s.matches(other.labels) for s in selectors):
                    for rule, origin in rules[other_key]:
                        entry = (rule, origin or other.label)
                        if entry not in collected:
                            collected.append(entry)
            if collected != rules[key]:
                rules[key] = collected
                changed = True
    return rules
