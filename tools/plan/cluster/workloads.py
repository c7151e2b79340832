"""Pod templates from the Kubernetes objects the plan declares: Deployments (with their replicas),
StatefulSets, DaemonSets, Jobs, CronJobs and bare Pods, as the scheduler will see their pods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.plan.cluster.model import Container, Requirement, Toleration, Workload, limits_of, requests_of
from tools.plan.runner import Plan

# Built-in PriorityClasses (the scheduler places the critical ones first).
PRIORITIES = {"system-node-critical": 2_000_001_000, "system-cluster-critical": 2_000_000_000}
KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


def _containers(spec: Mapping[str, Any], key: str, init: bool) -> list[Container]:
    pod_ctx = spec.get("securityContext") or {}
    out = []
    for c in spec.get(key) or []:
        ctx = c.get("securityContext") or {}
        caps = ctx.get("capabilities") or {}
        ports = c.get("ports") or []
        host_ports = tuple(
            (int(p["hostPort"] if "hostPort" in p else p["containerPort"]), str(p.get("protocol", "TCP")))
            for p in ports
            if "hostPort" in p or spec.get("hostNetwork")
        )
        uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        out.append(
            Container(
                name=str(c["name"]),
                image=str(c.get("image", "")),
                command=tuple(str(x) for x in c.get("command") or ()),
                args=tuple(str(x) for x in c.get("args") or ()),
                requests=requests_of(c.get("resources")),
                limits=limits_of(c.get("resources")),
                host_ports=host_ports,
                run_as_user=None if uid is None else int(uid),
                run_as_non_root=None if non_root is None else bool(non_root),
                privileged=bool(ctx.get("privileged")),
                caps_add=frozenset(caps.get("add") or ()),
                caps_drop=frozenset(caps.get("drop") or ()),
                init=init,
                profiles=localhost_profiles(ctx, pod_ctx),
            )
        )
    return out


def localhost_profiles(ctx: Mapping[str, Any], pod_ctx: Mapping[str, Any]) -> tuple[str, ...]:
    """The Localhost seccomp and AppArmor profiles a container runs under (its own setting, else
    the pod's): the kubelet refuses to start it on a node that does not have them."""
    out = []
    for field, kind in (("seccompProfile", "seccomp"), ("appArmorProfile", "apparmor")):
        profile = ctx.get(field) or pod_ctx.get(field) or {}
        if profile.get("type") == "Localhost":
            out.append(f"{kind}:{profile.get('localhostProfile', '')}")
    return tuple(out)


def affinity_terms(spec: Mapping[str, Any]) -> tuple[tuple[Requirement, ...], ...]:
    node = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    return tuple(
        tuple(
            Requirement(str(e["key"]), str(e["operator"]), tuple(str(v) for v in e.get("values") or ()))
            for e in term.get("matchExpressions") or ()
        )
        for term in node.get("nodeSelectorTerms") or ()
    )


def _one_per_node(spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Required anti-affinity against its own pods per hostname: at most one pod a node."""
    anti = ((spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or []
    for term in anti:
        match = (term.get("labelSelector") or {}).get("matchLabels") or {}
        if term.get("topologyKey") == "kubernetes.io/hostname" and all(labels.get(k) == v for k, v in match.items()):
            return True
    return False


def pod_workload(
    kind: str,
    namespace: str,
    name: str,
    source: str,
    template: Mapping[str, Any],
    replicas: int,
    **extra: Any,
) -> Workload:
    """A Workload from a pod template (metadata + spec)."""
    spec = template.get("spec") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    containers = _containers(spec, "initContainers", True) + _containers(spec, "containers", False)
    derived: dict[str, Any] = {
        "one_per_node": _one_per_node(spec, labels),
        "priority": PRIORITIES.get(str(spec.get("priorityClassName", "")), 0),
        "priority_class": str(spec.get("priorityClassName") or ""),
    }
    return Workload(
        kind=kind,
        namespace=namespace,
        name=name,
        source=source,
        replicas=replicas,
        node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
        affinity_terms=affinity_terms(spec),
        tolerations=tuple(Toleration.of(t) for t in spec.get("tolerations") or ()),
        containers=tuple(containers),
        host_network=bool(spec.get("hostNetwork")),
        claims=tuple(
            str(v["persistentVolumeClaim"]["claimName"])
            for v in spec.get("volumes") or ()
            if "persistentVolumeClaim" in v
        ),
        pull_secrets=tuple(str(s["name"]) for s in spec.get("imagePullSecrets") or ()),
        **(derived | extra),
    )


def of_manifest(manifest: Mapping[str, Any]) -> Workload | None:
    """The pods one object asks for, or None if it is not a workload."""
    kind = manifest.get("kind")
    if kind not in KINDS:
        return None
    meta = manifest.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name", "?"))
    spec = manifest.get("spec") or {}
    source = f"{kind} {namespace}/{name}"
    if kind == "Pod":
        return pod_workload(kind, namespace, name, source, manifest, 1)
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return pod_workload(kind, namespace, name, source, job.get("template") or {}, int(job.get("parallelism", 1)))
    if kind == "Job":
        return pod_workload(kind, namespace, name, source, spec.get("template") or {}, int(spec.get("parallelism", 1)))
    replicas = 0 if kind == "DaemonSet" else int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    rolling = kind == "Deployment" and strategy.get("type", "RollingUpdate") == "RollingUpdate"
    surge = max_surge((strategy.get("rollingUpdate") or {}).get("maxSurge", "25%"), replicas) if rolling else 0
    return pod_workload(
        kind, namespace, name, source, spec.get("template") or {}, replicas, rolling=rolling, surge=surge
    )


def max_surge(value: int | str, replicas: int) -> int:
    """A Deployment's maxSurge in pods: a count, or a percentage of the replicas rounded up."""
    if isinstance(value, str) and value.endswith("%"):
        return -(-replicas * int(value[:-1]) // 100)
    return int(value)


def of_plan(plan: Plan) -> list[Workload]:
    """Every workload object the program declares directly (charts are in `charts/`)."""
    found = []
    for r in plan.resources:
        if r.type.startswith("kubernetes:") and r.type.rsplit(":", 1)[-1] in KINDS:
            workload = of_manifest(r.raw_inputs)
            if workload is not None:
                found.append(workload)
    return found
