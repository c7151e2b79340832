"""The rules as pulumi-policy objects. Importing this starts nothing; `policy/__main__.py`
hands them to `PolicyPack`, which starts the analyzer server.

A rule that reads only its resource is a ResourceValidationPolicy; a `stack` rule (it needs the
plan's Namespaces or a security group's other rules) is a StackValidationPolicy, which the
engine calls once with every resource."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .context import PlanContext
from .gate import judge
from .model import PlannedResource, PolicyConfig
from .rules import RULES, Rule

CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        "protectedStacks": {"type": "array", "items": {"type": "string"}},
        "maxBurstSize": {"type": "integer"},
        "maxPublicIngressV4": {"type": "integer", "minimum": 0, "maximum": 32},
        "maxPublicIngressV6": {"type": "integer", "minimum": 0, "maximum": 128},
    }
)


def config_from(raw: Any) -> PolicyConfig:
    default = PolicyConfig()

    def number(key: str, fallback: int) -> int:
        value = raw.get(key)
        return fallback if value is None else int(value)

    return PolicyConfig(
        protected_stacks=tuple(raw.get("protectedStacks") or default.protected_stacks),
        max_burst_size=number("maxBurstSize", default.max_burst_size),
        max_public_ingress_v4=number("maxPublicIngressV4", default.max_public_ingress_v4),
        max_public_ingress_v6=number("maxPublicIngressV6", default.max_public_ingress_v6),
    )


def from_stack(res: PolicyResource) -> PlannedResource:
    """A stack validation's resource; the inputs its values came from give `refs`."""
    refs = {key: deps[0].urn for key, deps in (res.property_dependencies or {}).items() if deps}
    opts = res.opts
    return PlannedResource(res.resource_type, res.name, res.urn, res.props, bool(opts and opts.protect), refs=refs)


def as_policy(rule: Rule) -> Policy:
    level = EnforcementLevel.MANDATORY if rule.level == "mandatory" else EnforcementLevel.ADVISORY

    def validate_resource(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        res = PlannedResource(args.resource_type, args.name, args.urn, args.props, bool(args.opts.protect))
        for v in judge([res], config_from(args.get_config()), [rule], PlanContext()):  # reads no other resource
            report_violation(v.message, v.urn)

    def validate_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [from_stack(r) for r in args.resources]
        for v in judge(resources, config_from(args.get_config()), [rule]):
            report_violation(v.message, v.urn)

    if rule.stack:
        return StackValidationPolicy(
            name=rule.name,
            description=rule.description,
            enforcement_level=level,
            validate=validate_stack,
            config_schema=CONFIG_SCHEMA,
        )
    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=level,
        validate=validate_resource,
        config_schema=CONFIG_SCHEMA,
    )


POLICIES = [as_policy(rule) for rule in RULES]
