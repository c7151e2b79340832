"""Run rules over a set of planned resources: the offline gate, and the pack's policies over
what the engine gives them. Both go through `judge`, so exemptions and the objects a
ConfigGroup declares inline are handled the same way."""

from __future__ import annotations

from collections.abc import Iterable

from . import context
from .exemptions import exempt
from .k8s import inline_objects
from .model import PlannedResource, PolicyConfig, Violation
from .rules import RULES, Rule


def judge(
    resources: Iterable[PlannedResource],
    config: PolicyConfig,
    rules: Iterable[Rule],
    plan: context.PlanContext | None = None,
) -> list[Violation]:
    """Every rule over every resource (and the objects inline in a group, reported on the
    group's URN); `plan` defaults to what these resources say about each other."""
    rule_list = list(rules)
    pairs = [(res, res) for res in resources]
    pairs += [(child, owner) for _, owner in list(pairs) for child in inline_objects(owner)]
    plan = plan or context.build(res for res, _ in pairs)
    found: list[Violation] = []
    for res, owner in pairs:
        prefix = "" if res is owner else f"{res.type.rsplit(':', 1)[-1]} {res.name}: "
        for rule in rule_list:
            for message in rule.check(res, config, plan):
                if not exempt(rule.name, res):
                    found.append(Violation(rule.name, rule.level, owner.urn, prefix + message))
    return found


def check(
    resources: Iterable[PlannedResource], config: PolicyConfig | None = None, rules: Iterable[Rule] = RULES
) -> list[Violation]:
    return judge(resources, config or PolicyConfig(), rules)
