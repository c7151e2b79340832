"""Drive the pack's policies with the objects the Pulumi engine gives them: a
ResourceValidationArgs per resource, or one StackValidationArgs with every resource (props in
the engine's camelCase, property dependencies for the inputs that came from other resources).
Props take the analyzer's own path: a protobuf Struct (numbers become floats), deserialized
and wrapped in the SDK's unknown-checking proxies (Mapping/Sequence, not dict/list)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2  # type: ignore[import-untyped]  # no stubs pinned
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from policy.akiba_policy.pack import POLICIES

BY_NAME = {p.name: p for p in POLICIES}


@dataclass
class Res:
    """One resource as the test declares it."""

    type: str
    props: Mapping[str, Any]
    name: str = "r"
    parents: Sequence[str] = ()  # types of its parents, outermost first
    protect: bool = False
    deps: Mapping[str, str] = field(default_factory=dict)  # input -> name of the resource it came from

    def urn(self, stack: str) -> str:
        chain = "$".join([*self.parents, self.type])
        return f"urn:pulumi:{stack}::akiba::{chain}::{self.name}"


def engine_props(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """Props as the analyzer server hands them to a policy."""
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def _opts(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], False, [], None, [], None)  # type: ignore[arg-type]


def run(
    rule: str, *resources: Res, stack: str = "prod", config: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """(urn, message) of every violation the named policy reports, through the engine's objects."""
    policy = BY_NAME[rule]
    found: list[tuple[str, str]] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append((urn or "", message))

    if isinstance(policy, ResourceValidationPolicy):
        for r in resources:
            props = engine_props(r.props)
            args = ResourceValidationArgs(r.type, props, r.urn(stack), r.name, _opts(r.protect), None, config)
            policy.validate(args, report)
        return found
    by_name: dict[str, PolicyResource] = {}
    for r in resources:
        deps = {key: [by_name[name]] for key, name in r.deps.items()}
        props = engine_props(r.props)
        by_name[r.name] = PolicyResource(r.type, props, r.urn(stack), r.name, _opts(r.protect), None, None, [], deps)
    assert isinstance(policy, StackValidationPolicy)
    policy.validate(StackValidationArgs(list(by_name.values()), config), report)
    return found


def messages(rule: str, *resources: Res, stack: str = "prod") -> list[str]:
    return [message for _, message in run(rule, *resources, stack=stack)]
