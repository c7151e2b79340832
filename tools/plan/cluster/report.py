"""The cluster check's answers where a reviewer reads them: the nodes as registered, the
placement table (workload -> nodes it can land on, * where its pods were placed), the problems."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from tools.plan.cluster import quantity
from tools.plan.cluster.model import GPU, Node
from tools.plan.cluster.rules import Report
from tools.plan.cluster.scheduler import Placement


def _nodes(report: Report) -> list[str]:
    """Each node with what its placed pods request of what it offers (a template: per new node)."""
    rows: list[tuple[str, ...]] = [("node", "kind", "cpu req/alloc", "memory req/alloc", "gpus", "taints")]
    for n in report.nodes:
        name = f"{n.name} (burst, up to {n.max_count})" if n.template else n.name
        taints = ", ".join(f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in n.taints)
        used = report.requested.get(n.name, {})
        rows.append(
            (
                name,
                n.kind,
                "/".join(quantity.show("cpu", v) for v in (used.get("cpu", Decimal(0)), n.capacity["cpu"])),
                "/".join(quantity.show("memory", v) for v in (used.get("memory", Decimal(0)), n.capacity["memory"])),
                str(n.gpus or "-"),
                taints or "-",
            )
        )
    return _table(rows)


def _lands_on(p: Placement, real: list[Node]) -> str:
    placed = {n.name for n in p.placed}
    burst_added = [n.name for n in p.placed if n.name not in {c.name for c in p.candidates} and n.kind == "burst"]
    candidates = [c for c in p.candidates if not c.template]
    names = [f"{c.name}*" if c.name in placed else c.name for c in candidates]
    if len(candidates) == len(real) and len(real) > 6:
        names = [f"all {len(real)} nodes ({len(placed & {c.name for c in candidates})} placed)"]
    names += [f"{t.name}{'*' if t.name in placed or burst_added else ''} (burst)" for t in p.candidates if t.template]
    return " ".join(names) or "NONE"


def _pods(p: Placement) -> str:
    w = p.workload
    if w.replicas == 0:
        return f"{len([n for n in p.placed if not n.template])}/node"
    return f"{len(p.placed)}/{w.replicas}"


def placement_lines(report: Report) -> list[str]:
    real = [n for n in report.nodes if not n.template]
    rows: list[tuple[str, ...]] = [("workload", "pods", "gpu", "can land on (* placed)")]
    for p in report.placements:
        gpus = p.workload.requests.get(GPU)
        rows.append((p.workload.label, _pods(p), quantity.show(GPU, gpus) if gpus else "-", _lands_on(p, real)))
    return _table(rows)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]


def render(report: Report) -> list[str]:
    lines = ["Cluster check: nodes as they register", *_nodes(report), ""]
    lines += ["Placement (workload -> nodes it can land on; * = where the check placed its pods)"]
    lines += placement_lines(report)
    if report.external:
        lines += ["", "Pulled from the platform registry, built elsewhere (their teams push them):"]
        lines += [f"  {repo}  ({', '.join(users)})" for repo, users in sorted(report.external.items())]
    lines += ["", f"cluster check: {len(report.problems)} problem(s)"]
    lines += [f"  {p}" for p in report.problems]
    return lines


def document(report: Report) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "name": n.name,
                "kind": n.kind,
                "template": n.template,
                "labels": n.labels,
                "taints": [t.__dict__ for t in n.taints],
                "allocatable": {k: str(v) for k, v in n.capacity.items()} | {GPU: n.gpus},
            }
            for n in report.nodes
        ],
        "placements": [
            {
                "workload": p.workload.label,
                "source": p.workload.source,
                "replicas": p.workload.replicas,
                "canLandOn": [n.name for n in p.candidates],
                "placedOn": [n.name for n in p.placed],
                "pending": p.pending,
            }
            for p in report.placements
        ],
        "builtImages": report.built,
        "externalImages": report.external,
        "problems": [{"rule": p.rule, "subject": p.subject, "message": p.message} for p in report.problems],
    }


def write(report: Report, out: Path) -> Path:
    (out / "placement.txt").write_text("\n".join(render(report)) + "\n")
    (out / "placement.json").write_text(json.dumps(document(report), indent=2) + "\n")
    return out / "placement.txt"
