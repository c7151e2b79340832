"""The `quota` rule: in every namespace with a ResourceQuota, what the plan itself puts there must
fit it. The API server admits objects against the quota one by one and refuses the one that
crosses it: an engineer's namespace whose quota is smaller than the platform's own pods there (a
home DaemonSet, one pod per node) is an engineer who cannot log in on some node, however good
their GPU share looks on paper.

Counted as the quota admission plugin counts them: pods with their requests and limits after the
namespace's LimitRange filled in the missing ones (a container above the LimitRange's max is
refused whatever the quota) (a pod's request: its containers' sum, or its
largest init container); a DaemonSet's pod for every node it selects (fitting or not: the
controller creates it, the scheduler leaves it Pending), with the burst group at its maximum;
claims and their requested storage, in all and per StorageClass (a claim naming none has the
default class's); Services and their node ports. A quota scoped by
PriorityClass (an engineer's `reserved-priorities`, pods: 0) counts only the pods of the classes
it selects, a pod that names none having the global default's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tools.plan.cluster import quantity
from tools.plan.cluster.model import Container, Workload
from tools.plan.cluster.scheduler import Placement
from tools.plan.runner import Plan

# Quota names that need every container to state a value (the quota plugin refuses the pod with
# "must specify ..." otherwise); extended resources such as GPUs do not.
_MUST_SPECIFY = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
_ALIASES = {"cpu": "requests.cpu", "memory": "requests.memory", "storage": "requests.storage"}


@dataclass
class _Usage:
    """What the plan puts in one namespace, by quota resource name, and who puts it there."""

    amounts: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    who: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    refused: list[str] = field(default_factory=list)  # objects admission refuses whatever the amounts

    def add(self, resource: str, amount: Decimal, label: str) -> None:
        if amount:
            self.amounts[resource] += amount
            self.who[resource].append(label)


def _meta(raw: Mapping[str, Any]) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name", "?"))


_Bounds = tuple[dict[str, Decimal], dict[str, Decimal], dict[str, Decimal]]


def _limit_defaults(plan: Plan) -> dict[str, _Bounds]:
    """Per namespace: the LimitRange's container (default request, default limit, max)."""
    found: dict[str, _Bounds] = {}
    for r in plan.by_type("kubernetes:core/v1:LimitRange"):
        ns, _ = _meta(r.raw_inputs)
        requests, limits, most = found.setdefault(ns, ({}, {}, {}))
        for item in (r.raw_inputs.get("spec") or {}).get("limits") or ():
            if item.get("type") != "Container":
                continue
            for k, v in (item.get("max") or {}).items():
                most[k] = min(quantity.parse(v), most.get(k, quantity.parse(v)))
            # The API server defaults a missing default limit to the max (SetDefaults_LimitRangeItem).
            default = {k: quantity.parse(v) for k, v in ((item.get("max") or {}) | (item.get("default") or {})).items()}
            limits.update(default)
            # A LimitRange without defaultRequest takes its default limit as the default request.
            requests.update(default | {k: quantity.parse(v) for k, v in (item.get("defaultRequest") or {}).items()})
    return found


def _pod_amounts(containers: Iterable[tuple[Container, dict[str, Decimal], dict[str, Decimal]]]) -> dict[str, Decimal]:
    """requests.* and limits.* of one pod: app containers summed, the largest init container."""
    total: dict[str, Decimal] = defaultdict(Decimal)
    init: dict[str, Decimal] = defaultdict(Decimal)
    for c, requests, limits in containers:
        for prefix, values in (("requests", requests), ("limits", limits)):
            for k, v in values.items():
                name = f"{prefix}.{k}"
                if c.init:
                    init[name] = max(init[name], v)
                else:
                    total[name] += v
    return {k: max(total.get(k, Decimal(0)), init.get(k, Decimal(0))) for k in {*total, *init}}


def _pods(p: Placement) -> int:
    """Pods the workload has in its namespace at once."""
    if not p.workload.daemonset:
        return p.workload.replicas
    return sum(n.max_count if n.template else 1 for n in p.placed) + len(p.pending)


def _add_workload(usage: _Usage, w: Workload, pods: int, hard: Mapping[str, Decimal], defaults: Any) -> None:
    default_requests, default_limits, most = defaults
    effective = []
    for c in w.containers:
        requests = {**default_requests, **c.requests}
        limits = {**default_limits, **c.limits}
        effective.append((c, requests, limits))
        for name in _MUST_SPECIFY:
            prefix, resource = name.split(".", 1)
            if name in hard and resource not in (requests if prefix == "requests" else limits):
                usage.refused.append(
                    f"{w.label} container {c.name} states no {name} and no LimitRange gives one: "
                    f"the quota refuses its pods (must specify {name})"
                )
        for resource, bound in most.items():
            # The LimitRanger's max: on the limit, which must then be there, and on the request.
            for kind, stated in (("limit", limits), ("request", requests)):
                if stated.get(resource, Decimal(0)) > bound:
                    usage.refused.append(
                        f"{w.label} container {c.name} {kind}s {quantity.show(resource, stated[resource])} "
                        f"{resource}, above the LimitRange's max of {quantity.show(resource, bound)} per "
                        "container: the API server refuses its pods"
                    )
            if resource not in limits:
                usage.refused.append(
                    f"{w.label} container {c.name} states no {resource} limit and the LimitRange sets a "
                    "max: the API server refuses its pods (no limit is specified)"
                )
        for resource, limit in limits.items():
            if requests.get(resource, Decimal(0)) > limit:
                usage.refused.append(
                    f"{w.label} container {c.name} requests more {resource} than its limit "
                    f"({quantity.show(resource, requests[resource])} > {quantity.show(resource, limit)}, the "
                    "LimitRange's default where it states none): the API server refuses its pods"
                )
    label = f"{w.label}: {pods} pod(s)"
    usage.add("pods", Decimal(pods), label)
    for name, amount in _pod_amounts(effective).items():
        usage.add(name, amount * pods, label)


@dataclass(frozen=True)
class _Quota:
    """One ResourceQuota: its bounds, and the pods its scopes select (none: all of them)."""

    namespace: str
    label: str  # "ResourceQuota <namespace>/<name>"
    hard: dict[str, Decimal]
    # (scopeName, operator, values) of spec.scopeSelector, and spec.scopes as (name, "Exists", ()).
    scopes: tuple[tuple[str, str, tuple[str, ...]], ...]

    def unknown_scopes(self) -> list[str]:
        return sorted({name for name, _, _ in self.scopes if name != "PriorityClass"})

    def selects(self, w: Workload, default_class: str) -> bool:
        """As the quota plugin matches a pod (its priorityClassName after the Priority plugin
        gave one that names none the global default's)."""
        name = w.priority_class or default_class
        for scope, operator, values in self.scopes:
            if scope != "PriorityClass":
                continue  # reported by unknown_scopes
            if operator == "In" and name not in values:
                return False
            if operator == "NotIn" and name in values:
                return False
            if operator == "Exists" and not name:
                return False
            if operator == "DoesNotExist" and name:
                return False
        return True


def _quotas(plan: Plan) -> list[_Quota]:
    found = []
    for r in plan.by_type("kubernetes:core/v1:ResourceQuota"):
        ns, name = _meta(r.raw_inputs)
        spec = r.raw_inputs.get("spec") or {}
        hard = {_ALIASES.get(str(k), str(k)): quantity.parse(v) for k, v in (spec.get("hard") or {}).items()}
        scopes: list[tuple[str, str, tuple[str, ...]]] = [(str(s), "Exists", ()) for s in spec.get("scopes") or ()]
        for e in (spec.get("scopeSelector") or {}).get("matchExpressions") or ():
            scopes.append((str(e.get("scopeName")), str(e.get("operator")), tuple(map(str, e.get("values") or ()))))
        found.append(_Quota(ns, f"ResourceQuota {ns}/{name}", hard, tuple(scopes)))
    return found


def _default_class(plan: Plan) -> str:
    """The PriorityClass a pod that names none is given ("" when no class is the default)."""
    for r in plan.by_type("kubernetes:scheduling.k8s.io/v1:PriorityClass"):
        if r.raw_inputs.get("globalDefault"):
            return str((r.raw_inputs.get("metadata") or {}).get("name", ""))
    return ""


def _default_storage_class(plan: Plan) -> str | None:
    """The StorageClass a claim that names none is given (None when no class is the default)."""
    for r in plan.by_type("kubernetes:storage.k8s.io/v1:StorageClass"):
        meta = r.raw_inputs.get("metadata") or {}
        if (meta.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
            return str(meta.get("name"))
    return None


def _usage(
    plan: Plan,
    placements: list[Placement],
    quota: _Quota,
    default_class: str,
    defaults: Any,
    default_storage_class: str | None = None,
) -> _Usage:
    """What the plan puts under one quota: a scoped quota counts only the pods its scopes select
    (PriorityClass scopes track pods and their compute resources, never claims or Services)."""
    found = _Usage()
    ns = quota.namespace
    for p in placements:
        if p.workload.namespace == ns and quota.selects(p.workload, default_class):
            _add_workload(found, p.workload, _pods(p), quota.hard, defaults.get(ns, ({}, {}, {})))
    if quota.scopes:
        return found
    for r in plan.by_type("kubernetes:core/v1:PersistentVolumeClaim"):
        if _meta(r.raw_inputs)[0] == ns:
            name = _meta(r.raw_inputs)[1]
            spec = r.raw_inputs.get("spec") or {}
            storage = quantity.parse((spec.get("resources") or {}).get("requests", {}).get("storage") or 0)
            label = f"PersistentVolumeClaim {ns}/{name}"
            found.add("persistentvolumeclaims", Decimal(1), label)
            found.add("requests.storage", storage, label)
            # Per StorageClass too; a claim that names none is given the default class first
            # (the DefaultStorageClass admission plugin runs before ResourceQuota), "" is none.
            storage_class = spec.get("storageClassName", default_storage_class)
            if storage_class:
                found.add(f"{storage_class}.storageclass.storage.k8s.io/persistentvolumeclaims", Decimal(1), label)
                found.add(f"{storage_class}.storageclass.storage.k8s.io/requests.storage", storage, label)
    for r in plan.by_type("kubernetes:core/v1:Service"):
        if _meta(r.raw_inputs)[0] == ns:
            name = _meta(r.raw_inputs)[1]
            spec = r.raw_inputs.get("spec") or {}
            kind, ports = spec.get("type", "ClusterIP"), len(spec.get("ports") or ())
            label = f"Service {ns}/{name}"
            found.add("services", Decimal(1), label)
            if kind in ("NodePort", "LoadBalancer"):
                found.add("services.nodeports", Decimal(ports), label)
            if kind == "LoadBalancer":
                found.add("services.loadbalancers", Decimal(1), label)
    return found


def _show(resource: str, amount: Decimal) -> str:
    base = resource.split(".", 1)[1] if resource.startswith(("requests.", "limits.")) else resource
    return quantity.show(base, amount)


def problems(plan: Plan, placements: list[Placement]) -> list[tuple[str, str]]:
    """(subject, message) for every quota the plan's own objects in its namespace exceed. Each
    quota must hold on its own (two in one namespace: the smaller bound is the one that bites)."""
    defaults, default_class = _limit_defaults(plan), _default_class(plan)
    default_storage_class = _default_storage_class(plan)
    out: list[tuple[str, str]] = []
    said: set[tuple[str, str]] = set()  # (namespace, reason): a LimitRange refusal once per namespace
    for quota in sorted(_quotas(plan), key=lambda q: q.label):
        for scope in quota.unknown_scopes():
            out.append((quota.label, f"scope {scope}: the check counts PriorityClass scopes only"))
        usage = _usage(plan, placements, quota, default_class, defaults, default_storage_class)
        for reason in sorted(set(usage.refused)):
            if (quota.namespace, reason) not in said:
                said.add((quota.namespace, reason))
                out.append((quota.label, reason))
        for resource, allowed in sorted(quota.hard.items()):
            needed = usage.amounts.get(resource, Decimal(0))
            if needed > allowed:
                who = "; ".join(usage.who[resource])
                scoped = f" of the classes its scope selects ({_scope_text(quota)})" if quota.scopes else ""
                out.append(
                    (
                        quota.label,
                        f"{resource}: the plan's own objects{scoped} in namespace {quota.namespace} need "
                        f"{_show(resource, needed)} ({who}), the quota allows {_show(resource, allowed)}: the API "
                        "server refuses what crosses it (a home pod refused is an engineer who cannot log in on "
                        "that node)",
                    )
                )
    return out


def _scope_text(quota: _Quota) -> str:
    return "; ".join(f"{name} {op} {', '.join(values)}".rstrip() for name, op, values in quota.scopes)
