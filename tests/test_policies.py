"""Each rule fires on a bad resource and stays quiet on the good one, through the
pulumi-policy objects `pulumi preview --policy-pack policy` uses, and the offline gate passes
both stacks with no mandatory violation."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any

import pytest

from policy.akiba_policy.context import PlanContext
from policy.akiba_policy.pack import POLICIES
from policy.akiba_policy.rules import RULES
from tests.conftest import STACKS
from tests.policy_engine import Res, messages
from tools.plan import policy_gate
from tools.plan.runner import Plan


def violations(
    rule: str, typ: str, props: Mapping[str, Any], *, stack: str = "prod", protect: bool = False
) -> list[str]:
    """Messages the named pack policy reports for one resource (alone in its stack)."""
    return messages(rule, Res(typ, props, protect=protect), stack=stack)


def _pod(kind: str = "Deployment", **container: Any) -> dict[str, Any]:
    c = {
        "name": "app",
        "image": "registry.akiba.lan:5000/app:1.2.3",
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
    } | container
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"containers": [c]}}},
    }


def test_every_rule_has_a_policy() -> None:
    assert [r.name for r in RULES] == [p.name for p in POLICIES]
    assert {r.level for r in RULES} == {"mandatory", "advisory"}


@pytest.mark.parametrize("stack", STACKS)
def test_offline_gate_passes_the_real_stacks(plans: dict[str, Plan], stack: str) -> None:
    assert plans[stack].resources
    found = policy_gate.check(plans[stack])
    lines, passed = policy_gate.report(found)
    assert passed, "\n".join(lines)
    assert [v for v in found if v.level == "mandatory"] == []


SG = "aws:ec2/securityGroup:SecurityGroup"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DEPLOY = "kubernetes:apps/v1:Deployment"

# (rule, type, good props, bad props)
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "no-open-ingress",
        SG,
        {"ingress": [{"cidrBlocks": ["192.168.10.0/24"]}]},
        {"ingress": [{"cidrBlocks": ["0.0.0.0/0"]}]},
    ),
    (
        "no-open-ingress",
        "kubernetes:core/v1:Service",
        {"spec": {"type": "ClusterIP"}},
        {"spec": {"type": "LoadBalancer"}},
    ),
    (
        "encrypted-volumes",
        LT,
        {"blockDeviceMappings": [{"ebs": {"encrypted": "true"}}]},
        {"blockDeviceMappings": [{"ebs": {"encrypted": "false"}}]},
    ),
    ("encrypted-volumes", "aws:ebs/volume:Volume", {"encrypted": True}, {"encrypted": False}),
    (
        "imdsv2-required",
        LT,
        {"metadataOptions": {"httpTokens": "required"}},
        {"metadataOptions": {"httpTokens": "optional"}},
    ),
    ("spot-group-max-size", ASG, {"maxSize": 8, "minSize": 0}, {"minSize": 0}),
    ("burst-size", ASG, {"maxSize": 8}, {"maxSize": 200}),
    (
        "no-privileged-containers",
        DEPLOY,
        _pod(name="dind", securityContext={"privileged": False}),
        _pod(name="dind", securityContext={"privileged": True}),  # no exemption by name
    ),
    ("pinned-versions", DEPLOY, _pod(), _pod(image="nvcr.io/nvidia/pytorch:latest")),
    (
        "pinned-versions",
        DEPLOY,
        _pod(image="nvcr.io/nvidia/pytorch@sha256:" + "a" * 64),
        _pod(image="nvcr.io/nvidia/pytorch"),
    ),
    (
        "pinned-versions",
        "kubernetes:helm.sh/v4:Chart",
        {"chart": "rook-ceph", "version": "v1.20.6"},
        {"chart": "rook-ceph", "version": "^1.20"},
    ),
    ("resource-limits", DEPLOY, _pod(), _pod(resources={"requests": {"cpu": "1"}})),
    (
        "resource-limits",
        "kubernetes:batch/v1:CronJob",
        {"spec": {"jobTemplate": {"spec": _pod()["spec"]}}},
        {"spec": {"jobTemplate": {"spec": _pod(resources={})["spec"]}}},
    ),
    (
        "namespace-pod-security",
        "kubernetes:core/v1:Namespace",
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}},
        {"metadata": {"labels": {}}},
    ),
    (
        "platform-labels",
        "kubernetes:core/v1:ConfigMap",
        {"metadata": {"labels": {"app.kubernetes.io/part-of": "akiba"}}},
        {"metadata": {}},
    ),
]


@pytest.mark.parametrize(
    ("rule", "typ", "good", "bad"), CASES, ids=[f"{c[0]}:{c[1].rsplit(':', 1)[-1]}" for c in CASES]
)
def test_rule_fires_on_bad_and_is_quiet_on_good(rule: str, typ: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    assert violations(rule, typ, good) == []
    assert violations(rule, typ, bad), f"{rule} missed {bad}"


def test_stateful_resources_must_be_protected_in_prod_only() -> None:
    props = {"spec": {"resources": {"requests": {"storage": "10Gi"}}}}
    assert violations("stateful-protected", PVC, props, stack="prod", protect=False)
    assert violations("stateful-protected", PVC, props, stack="prod", protect=True) == []
    assert violations("stateful-protected", PVC, props, stack="dev", protect=False) == []
    assert violations("stateful-protected", "kubernetes:ceph.rook.io/v1:CephCluster", {}, stack="prod")


def _instance(plan: Plan) -> Any:
    return next(r for r in plan.resources if r.type == "maas:index/instance:Instance")


def test_burst_node_without_gpu_taint_fires_on_the_real_user_data(plans: dict[str, Plan]) -> None:
    lt = "aws:ec2/launchTemplate:LaunchTemplate"
    templates = [r for r in plans["prod"].by_type(lt) if r.name != "burst-gateway"]
    assert templates
    for template in templates:
        real = template.raw_inputs
        assert violations("burst-gpu-taint", lt, real) == []
        user_data = base64.b64decode(real["userData"]).decode()
        bad = copy.deepcopy(real)
        bad["userData"] = base64.b64encode(
            user_data.replace("key: nvidia.com/gpu", "key: example.com/other").encode()
        ).decode()
        assert bad != real
        assert violations("burst-gpu-taint", lt, bad), template.name
    # Office nodes are untainted by design: the rule does not apply to them.
    assert violations("burst-gpu-taint", "maas:index/instance:Instance", _instance(plans["prod"]).raw_inputs) == []


def test_plaintext_secret_fires_offline_on_a_real_resource(plans: dict[str, Plan]) -> None:
    """The pack cannot see secretness (the SDK unwraps it); the offline gate can."""
    (provider,) = plans["prod"].by_type("pulumi:providers:maas")
    resource = next(p for p in policy_gate.planned(plans["prod"]) if p.urn == provider.urn)
    rule = next(r for r in RULES if r.name == "no-plaintext-secrets")
    from policy.akiba_policy.rules import PolicyConfig

    assert list(rule.check(resource, PolicyConfig(), PlanContext())) == []
    leaked = type(resource)(resource.type, resource.name, resource.urn, resource.props, resource.protect, frozenset())
    assert list(rule.check(leaked, PolicyConfig(), PlanContext())) == [
        "input apiKey looks like a secret but is not a Pulumi secret"
    ]
    k8s_secret = type(resource)(
        "kubernetes:core/v1:Secret", "s", resource.urn, {"stringData": {"password": "x"}}, False, frozenset()
    )
    assert len(list(rule.check(k8s_secret, PolicyConfig(), PlanContext()))) == 2


def test_a_mandatory_violation_fails_the_gate() -> None:
    from policy.akiba_policy.model import Violation

    lines, passed = policy_gate.report([Violation("imdsv2-required", "mandatory", "urn:x", "IMDSv1")])
    assert not passed and "imdsv2-required: urn:x: IMDSv1" in lines[1]
    assert policy_gate.report([Violation("burst-size", "advisory", "urn:x", "big")])[1]
