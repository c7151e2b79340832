"""The rules as pulumi-policy objects. Importing this starts nothing; `policy/__main__.py`
hands them to `PolicyPack`, which starts the analyzer server."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .model import PlannedResource
from .rules import RULES, PolicyConfig, Rule

CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        "protectedStacks": {"type": "array", "items": {"type": "string"}},
        "maxBurstSize": {"type": "integer"},
    }
)


def config_from(raw: Any) -> PolicyConfig:
    default = PolicyConfig()
    return PolicyConfig(
        protected_stacks=tuple(raw.get("protectedStacks") or default.protected_stacks),
        max_burst_size=int(raw.get("maxBurstSize") or default.max_burst_size),
    )


def as_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        res = PlannedResource(
            type=args.resource_type,
            name=args.name,
            urn=args.urn,
            props=args.props,
            protect=bool(args.opts.protect),
        )
        for message in rule.check(res, config_from(args.get_config())):
            report_violation(message, args.urn)

    level = EnforcementLevel.MANDATORY if rule.level == "mandatory" else EnforcementLevel.ADVISORY
    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=level,
        validate=validate,
        config_schema=CONFIG_SCHEMA,
    )


POLICIES = [as_policy(rule) for rule in RULES]
