"""What `make plan` prints: the resource tree, counts per type, and the stack outputs."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from tools.plan.runner import Plan


def tree(plan: Plan) -> list[str]:
    children: dict[str, list[int]] = defaultdict(list)
    known = {r.urn for r in plan.resources}
    for i, r in enumerate(plan.resources):
        children[r.parent if r.parent in known else ""].append(i)
    lines = [f"pulumi:pulumi:Stack  akiba-{plan.stack}"]

    def walk(parent: str, depth: int) -> None:
        for i in children.get(parent, []):
            r = plan.resources[i]
            flags = " [protect]" if r.protect else ""
            lines.append(f"{'    ' * depth}+ {r.type}  {r.name}{flags}")
            walk(r.urn, depth + 1)

    walk("", 1)
    return lines


def counts(plan: Plan) -> list[str]:
    c = Counter(r.type for r in plan.resources)
    width = max(len(t) for t in c) if c else 0
    lines = [f"  {t:<{width}}  {n:>5}" for t, n in sorted(c.items())]
    return [*lines, f"  {'total':<{width}}  {len(plan.resources):>5}"]


def outputs(plan: Plan) -> list[str]:
    lines = []
    for name in sorted(plan.outputs):
        value = plan.outputs[name]
        text = json.dumps(value) if not isinstance(value, str) or "\n" in value else value
        if len(text) > 110:
            text = text[:107] + "..."
        lines.append(f"  {name}: {text}")
    return lines


def render(plan: Plan) -> str:
    parts = [
        f"Offline plan of stack '{plan.stack}' (what `pulumi preview` would create):",
        *tree(plan),
        "",
        "Resources by type:",
        *counts(plan),
        "",
        "Outputs (secrets shown as [secret]):",
        *outputs(plan),
    ]
    return "\n".join(parts)
