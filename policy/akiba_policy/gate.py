"""Run every rule over a set of planned resources (the offline gate)."""

from __future__ import annotations

from collections.abc import Iterable

from .model import PlannedResource, Violation
from .rules import RULES, PolicyConfig, Rule


def check(
    resources: Iterable[PlannedResource], config: PolicyConfig | None = None, rules: Iterable[Rule] = RULES
) -> list[Violation]:
    config = config or PolicyConfig()
    rule_list = list(rules)
    return [
        Violation(rule.name, rule.level, res.urn, message)
        for res in resources
        for rule in rule_list
        for message in rule.check(res, config)
    ]
