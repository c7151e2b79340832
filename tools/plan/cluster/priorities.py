"""The `priority` rule: every pod's priorityClassName names a PriorityClass that will exist.

The API server's Priority admission plugin rejects a pod whose class does not exist ("no
PriorityClass with name ... was found", kubernetes plugin/pkg/admission/priority/admission.go):
a Deployment or Job is accepted, but its controller can never create a pod (FailedCreate events
only). The classes that always exist are the built-in system ones; the rest must be declared by
the plan. Also checked, as the API server would refuse them: a declared class named `system-...`
(reserved, pkg/apis/scheduling/validation) and more than one `globalDefault` class (admission:
"only one default can exist").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tools.plan.cluster import charts, workloads
from tools.plan.runner import Plan

PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"


def declared(plan: Plan) -> dict[str, Mapping[str, Any]]:
    """The PriorityClasses the plan creates, by name."""
    return {str((r.raw_inputs.get("metadata") or {}).get("name")): r.raw_inputs for r in plan.by_type(PRIORITY_CLASS)}


def _pod_spec(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = manifest.get("spec") or {}
    if manifest.get("kind") == "Pod":
        return spec
    if manifest.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def pod_classes(plan: Plan) -> Iterator[tuple[str, str]]:
    """(workload label, priorityClassName) for every pod template that names a class: the
    program's own objects and what the modelled charts render."""
    for r in plan.resources:
        if r.type.startswith("kubernetes:") and r.type.rsplit(":", 1)[-1] in workloads.KINDS:
            name = str(_pod_spec(r.raw_inputs).get("priorityClassName") or "")
            meta = r.raw_inputs.get("metadata") or {}
            if name:
                yield f"{r.raw_inputs.get('kind')} {meta.get('namespace') or 'default'}/{meta.get('name')}", name
    for r in plan.by_type(charts.CHART):
        chart = str(r.raw_inputs.get("chart", "")).rsplit("/", 1)[-1]
        model = charts.MODELS.get(chart)
        if model is None or model[0] != str(r.raw_inputs.get("version", "")):
            continue  # the `chart` rule reports it
        namespace = str(r.raw_inputs.get("namespace") or "default")
        for pod in model[1](r.raw_inputs.get("values") or {}):
            if pod.priority:
                yield f"{pod.kind} {namespace}/{pod.name}", pod.priority


def problems(plan: Plan) -> list[tuple[str, str]]:
    """(subject, message) for each pod whose class will not exist, and each class the API refuses."""
    classes = declared(plan)
    found: list[tuple[str, str]] = []
    for name in sorted(classes):
        if name.startswith("system-"):
            found.append((f"PriorityClass {name}", "the system- prefix is reserved: the API server refuses it"))
    defaults = sorted(n for n, c in classes.items() if c.get("globalDefault"))
    if len(defaults) > 1:
        found.append(
            (
                "PriorityClass " + ", ".join(defaults),
                "more than one globalDefault: admission refuses all but the first (only one default can exist)",
            )
        )
    known = set(classes) | set(workloads.PRIORITIES)
    for label, name in sorted(set(pod_classes(plan))):
        if name not in known:
            found.append(
                (
                    label,
                    f"priorityClassName {name}: no such PriorityClass in the plan, so admission refuses "
                    f"its pods (no PriorityClass with name {name} was found)",
                )
            )
    return found
