"""What a rule may need to know beyond the resource it judges: the plan's Namespaces (their
Pod Security level and whether they belong to an engineer) and the other resources that add
ingress to the same security group. Built once per plan; empty for a lone resource."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .k8s import get, kind
from .model import PlannedResource

ENFORCE = "pod-security.kubernetes.io/enforce"
# components/tenants/names.py's, copied: the pack runs from policy/ in its own virtualenv and
# cannot import the program (tests/test_policies.py checks they agree).
ENGINEER_LABEL = "akiba.io/engineer"
NAMESPACE_PREFIX = "eng-"
Trust = Literal["engineer", "privileged", "other"]


@dataclass(frozen=True)
class PlanContext:
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # name -> labels
    # security group key -> the resources that add ingress to it
    security_groups: Mapping[str, tuple[PlannedResource, ...]] = field(default_factory=dict)

    def trust(self, namespace: str) -> Trust:
        """engineer: an engineer's (label, or the eng- prefix even when undeclared); privileged:
        a platform namespace the plan declares with Pod Security enforce=privileged; other."""
        labels = self.namespaces.get(namespace, {})
        if namespace.startswith(NAMESPACE_PREFIX) or ENGINEER_LABEL in labels:
            return "engineer"
        return "privileged" if labels.get(ENFORCE) == "privileged" else "other"


SG_TYPES = {
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
}


def security_group_key(res: PlannedResource) -> str:
    """Which security group a resource adds ingress to: itself, the group its
    securityGroupId came from, or that id when the engine knows it."""
    if res.type == "aws:ec2/securityGroup:SecurityGroup":
        return res.urn
    sg = res.props.get("securityGroupId")
    return res.refs.get("securityGroupId") or (f"id:{sg}" if isinstance(sg, str) and sg else res.urn)


def build(resources: Iterable[PlannedResource]) -> PlanContext:
    namespaces: dict[str, Mapping[str, str]] = {}
    groups: dict[str, list[PlannedResource]] = {}
    for res in resources:
        if kind(res) == "Namespace":
            name = get(res.props, "metadata", "name")
            labels = get(res.props, "metadata", "labels")
            if isinstance(name, str):
                namespaces[name] = labels if isinstance(labels, Mapping) else {}
        elif res.type in SG_TYPES:
            groups.setdefault(security_group_key(res), []).append(res)
    return PlanContext(namespaces, {k: tuple(v) for k, v in groups.items()})
