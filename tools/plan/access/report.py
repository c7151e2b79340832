"""The access check's answers where a reviewer reads them: one row per subject (each engineer, the
consumer, any client certificate), what it can do in its own namespace, in other engineers', in
the platform's and on cluster-scoped objects; who else it acts as; the problems."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.plan.access.builtin import CLUSTER_SCOPED, SELF_REVIEWS
from tools.plan.access.evaluator import Reach, Request
from tools.plan.access.model import READ_VERBS
from tools.plan.access.questions import Problem, namespaced

COLUMNS = ("subject", "own namespace", "other engineers' namespaces", "platform namespaces", "cluster-scoped")


@dataclass(frozen=True)
class Row:
    subject: str
    own: str
    others: str
    platform: str
    cluster: str
    acts_as: tuple[str, ...] = ()


@dataclass
class Report:
    engineers: list[str]
    rows: list[Row]
    reaches: list[Reach]
    problems: list[Problem] = field(default_factory=list)
    platform: list[str] = field(default_factory=list)  # the namespaces counted as the platform's


def cell(reach: Reach, namespace: str) -> str:
    """ "none", "full", or what is granted: read and/or write, with or without Secrets."""
    rules = [g.rule for g in reach.grants if g.applies_in(namespace) and g.rule.resources and namespaced(g.rule)]
    reads = any(r.verbs & (READ_VERBS | {"*"}) for r in rules)
    writes = any(r.writes for r in rules)
    if not (reads or writes):
        return "none"
    secrets = any(reach.can(Request(v, "", "secrets", namespace)) for v in ("get", "list"))
    if reads and writes and secrets and reach.can(Request("create", "", "pods", namespace)):
        return "full"
    text = ", ".join(p for p, on in (("read", reads), ("write", writes)) if on)
    return text + (" + secrets" if secrets else " (no secrets)")


def cluster_cell(reach: Reach) -> str:
    """Cluster-scoped objects only (nodes, namespaces, volumes, roles...), asking about oneself aside."""
    rules = [
        g.rule
        for g in reach.grants
        if g.scope == "*" and any(r == "*" or (r in CLUSTER_SCOPED and r not in SELF_REVIEWS) for r in g.rule.resources)
    ]
    if any("*" in r.verbs and "*" in r.resources and "*" in r.groups for r in rules):
        return "full"
    reads = any(r.verbs & (READ_VERBS | {"*"}) for r in rules)
    writes = any(r.writes for r in rules)
    return ", ".join(p for p, on in (("read", reads), ("write", writes)) if on) or "none"


def summary(cells: dict[str, str]) -> str:
    """One cell for many namespaces: the same everywhere, or each answer with where it holds."""
    if not cells:
        return "-"
    by_cell: dict[str, list[str]] = {}
    for ns, c in cells.items():
        by_cell.setdefault(c, []).append(ns)
    if len(by_cell) == 1:
        return next(iter(by_cell))
    common = max(by_cell, key=lambda c: len(by_cell[c]))
    parts = [f"{c} in {', '.join(sorted(ns))}" for c, ns in sorted(by_cell.items()) if c != common]
    return "; ".join([*parts, f"{common} elsewhere"])


def row(reach: Reach, home: str, others: Sequence[str], platform: Sequence[str]) -> Row:
    return Row(
        subject=reach.label,
        own=cell(reach, home) if home else "-",
        others=summary({ns: cell(reach, ns) for ns in others}),
        platform=summary({ns: cell(reach, ns) for ns in platform}),
        cluster=cluster_cell(reach),
        acts_as=tuple(sorted(reach.acts_as)),
    )


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]


def render(report: Report) -> list[str]:
    lines = ["Access check: what each subject can do (RBAC as rendered, built-in roles included)"]
    lines += _table([COLUMNS, *((r.subject, r.own, r.others, r.platform, r.cluster) for r in report.rows)])
    lines.append("  (full: read, write, Secrets and new pods; each grant's path is in access.json)")
    if report.platform:
        lines.append(f"  platform namespaces: {', '.join(report.platform)}")
    for r in report.rows:
        if r.acts_as:
            lines.append(f"  {r.subject} also acts as: {', '.join(r.acts_as)}")
    lines += ["", f"access check: {len(report.problems)} problem(s)"]
    lines += [f"  {p}" for p in report.problems]
    return lines


def document(report: Report) -> dict[str, Any]:
    return {
        "engineers": report.engineers,
        "platformNamespaces": report.platform,
        "table": [
            dict(zip(COLUMNS, (r.subject, r.own, r.others, r.platform, r.cluster), strict=True))
            | {"actsAs": list(r.acts_as)}
            for r in report.rows
        ],
        "reach": {
            reach.label: {
                "actsAs": reach.acts_as,
                "grants": [{"scope": g.scope, "path": g.path} for g in reach.grants],
            }
            for reach in report.reaches
        },
        "problems": [{"rule": p.rule, "subject": p.subject, "message": p.message} for p in report.problems],
    }


def write(report: Report, out: Path) -> Path:
    (out / "access.txt").write_text("\n".join(render(report)) + "\n")
    (out / "access.json").write_text(json.dumps(document(report), indent=2) + "\n")
    return out / "access.txt"
