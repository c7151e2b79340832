"""The offline policy gate: the policy pack's rules over the recorded plan, no credentials."""

from __future__ import annotations

from policy.akiba_policy import gate
from policy.akiba_policy.model import PlannedResource, Violation
from tools.plan.runner import Plan


def planned(plan: Plan) -> list[PlannedResource]:
    # An input holding another resource's id (securityGroupId) refers to that resource, as the
    # engine's property dependencies say in a preview.
    by_id = {r.id: r.urn for r in plan.resources if r.id}
    return [
        PlannedResource(
            type=r.type,
            name=r.name,
            urn=r.urn,
            props=r.raw_inputs,
            protect=r.protect,
            secret_paths=frozenset(r.secret_paths),
            refs={
                k: by_id[v] for k, v in r.raw_inputs.items() if k.endswith("Id") and isinstance(v, str) and v in by_id
            },
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
