"""The offline policy gate: the policy pack's rules over the recorded plan, no credentials."""

from __future__ import annotations

from policy.akiba_policy import gate
from policy.akiba_policy.model import PlannedResource, Violation
from tools.plan.runner import Plan


def planned(plan: Plan) -> list[PlannedResource]:
    return [
        PlannedResource(
            type=r.type,
            name=r.name,
            urn=r.urn,
            props=r.raw_inputs,
            protect=r.protect,
            secret_paths=frozenset(r.secret_paths),
        )
        for r in plan.resources
    ]


def check(plan: Plan) -> list[Violation]:
    return gate.check(planned(plan))


def report(violations: list[Violation]) -> tuple[list[str], bool]:
    """Lines to print and whether the plan passes (no mandatory violation)."""
    mandatory = [v for v in violations if v.level == "mandatory"]
    advisory = [v for v in violations if v.level == "advisory"]
    lines = [f"policy gate: {len(mandatory)} mandatory, {len(advisory)} advisory violation(s)"]
    lines += [f"  {v}" for v in mandatory + advisory]
    return lines, not mandatory
