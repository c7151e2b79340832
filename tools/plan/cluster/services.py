"""The `service` rule: a NodePort Service with externalTrafficPolicy Local (each engineer's `ssh`,
the homes' NFS) answers on a node only where one of its pods runs there (kube-proxy drops the
rest, which is what keeps the client's address), so its pods must run somewhere, and a named
targetPort must be a port those pods' containers declare (else every connection is refused).

Pods that an operator makes (Rook's NFS server) have no template in the plan: such a Service is
not judged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tools.plan.cluster.scheduler import Placement
from tools.plan.runner import Plan

_TEMPLATES = {
    "kubernetes:apps/v1:DaemonSet": "DaemonSet",
    "kubernetes:apps/v1:Deployment": "Deployment",
    "kubernetes:apps/v1:StatefulSet": "StatefulSet",
}


@dataclass(frozen=True)
class _Template:
    kind: str
    namespace: str
    name: str
    labels: dict[str, str]
    port_names: frozenset[str]


def _templates(plan: Plan) -> list[_Template]:
    out = []
    for typ, kind in _TEMPLATES.items():
        for r in plan.by_type(typ):
            meta = r.raw_inputs.get("metadata") or {}
            template = (r.raw_inputs.get("spec") or {}).get("template") or {}
            pod: dict[str, Any] = template.get("spec") or {}
            names = {
                str(p["name"])
                for c in [*(pod.get("containers") or ()), *(pod.get("initContainers") or ())]
                for p in c.get("ports") or ()
                if "name" in p
            }
            labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
            ns = str(meta.get("namespace", "default"))
            out.append(_Template(kind, ns, str(meta.get("name")), labels, frozenset(names)))
    return out


def problems(plan: Plan, placements: Iterable[Placement]) -> list[tuple[str, str]]:
    placed = {(p.workload.kind, p.workload.namespace, p.workload.name): p.placed for p in placements}
    templates = _templates(plan)
    out = []
    for r in plan.by_type("kubernetes:core/v1:Service"):
        spec, meta = r.raw_inputs.get("spec") or {}, r.raw_inputs.get("metadata") or {}
        if spec.get("type") != "NodePort" or spec.get("externalTrafficPolicy") != "Local":
            continue
        ns, selector = str(meta.get("namespace", "default")), spec.get("selector") or {}
        subject = f"Service {ns}/{meta.get('name')}"
        matched = [t for t in templates if t.namespace == ns and selector and selector.items() <= t.labels.items()]
        if not matched:
            continue
        nodes = sorted({n.name for t in matched for n in placed.get((t.kind, t.namespace, t.name), ())})
        if not nodes:
            out.append((subject, "its pods run on no node: with externalTrafficPolicy Local its port answers nowhere"))
        for port in spec.get("ports") or ():
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, str) and not any(target in t.port_names for t in matched):
                out.append(
                    (subject, f"targetPort {target!r} is no port of its pods ({', '.join(t.name for t in matched)})")
                )
    return out
