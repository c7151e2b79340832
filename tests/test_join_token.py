"""Join tokens that expire and rotate: what a rotation does to a running stack (plan-diff with
the rotation's clock made anew, as `pulumi up --refresh` does once the period has passed), and
the pure pieces (expiry, the bootstrap-token Secret)."""

from __future__ import annotations

import pytest

from components.cluster.join_token import KUBEADM_NODE_GROUP, bootstrap_token_secret, expiration
from tests.conftest import ROOT, STACKS, stack_file
from tools.plan import references
from tools.plan.diff import Result, check_gate, compare, planner
from tools.plan.runner import Plan

ROTATING = "time:index/rotating:Rotating"


def _rotated(stack: str, clock: str) -> tuple[Plan, Result]:
    """The stack as planned, and what `pulumi up` does after `clock` rotated."""
    sf = stack_file(stack)
    base = references.plan(sf, ROOT)
    assert base.resources, "the recorded plan is empty"
    replan = planner(sf, ROOT)

    def rotated(seen: frozenset[tuple[str, str]]) -> Plan:
        return replan(seen | {(ROTATING, clock)})

    head = rotated(frozenset())
    assert head.resources
    return base, compare(base, head, rotated)


def _steps(result: Result) -> dict[tuple[str, str], str]:
    return {(s.resource.type, s.resource.name): s.action for s in result.steps.values()}


@pytest.mark.parametrize("stack", STACKS)
def test_an_office_token_rotation_updates_the_first_controller_only(stack: str) -> None:
    """The new token is made valid by the first controller (one update of its configuration,
    which runs `kubeadm token create`); no other node's configuration changes, nothing is
    reinstalled or replaced but the token itself, and the gate has nothing to refuse."""
    base, result = _rotated(stack, "join-token-rotation")
    steps = _steps(result)
    (init,) = _first(base)
    assert steps == {
        ("command:remote:Command", f"{init}-converge"): "update",
        ("random:index/randomString:RandomString", "join-token-id"): "replace",
        ("random:index/randomPassword:RandomPassword", "join-token-secret"): "replace",
    }
    assert not check_gate(result, []).refused


@pytest.mark.parametrize("stack", STACKS)
def test_a_burst_token_rotation_touches_no_node_and_no_launch_template(stack: str) -> None:
    """The burst token lives in SSM and in a bootstrap-token Secret: both change, the launch
    templates (and so the group's instances) do not."""
    _, result = _rotated(stack, "burst-join-token-rotation")
    assert _steps(result) == {
        ("aws:ssm/parameter:Parameter", "burst-join-token"): "update",
        ("kubernetes:core/v1:Secret", "burst-join-token"): "replace",  # a new name: created, then the old deleted
        ("random:index/randomString:RandomString", "burst-join-token-id"): "replace",
        ("random:index/randomPassword:RandomPassword", "burst-join-token-secret"): "replace",
    }
    secret = next(
        s for s in result.steps.values() if s.resource.name == "burst-join-token" and "Secret" in s.resource.type
    )
    assert not secret.delete_before_replace


def _first(plan: Plan) -> set[str]:
    """The first controller's MAAS name: the node whose configuration inits the cluster."""
    return {
        r.name.removesuffix("-converge")
        for r in plan.by_type("command:remote:Command")
        if r.name.endswith("-converge") and "kubeadm init --config" in str(r.raw_inputs["stdin"])
    }


def test_a_token_expires_two_rotation_periods_after_it_is_made() -> None:
    assert expiration("2026-01-05T09:00:00Z", 24) == "2026-01-07T09:00:00Z"
    assert expiration("2026-01-05T09:00:00+00:00", 168) == "2026-01-19T09:00:00Z"


def test_the_bootstrap_token_secret_is_the_one_kubeadm_writes() -> None:
    """kubernetes.io "Authenticating with Bootstrap Tokens": name bootstrap-token-<id> in
    kube-system, both usages (discovery signs cluster-info with it), kubeadm's node group."""
    doc = bootstrap_token_secret("abcdef.0123456789abcdef", "2026-01-07T09:00:00Z", "burst nodes")
    assert doc["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert doc["type"] == "bootstrap.kubernetes.io/token"
    assert doc["stringData"] == {
        "description": "burst nodes",
        "token-id": "abcdef",
        "token-secret": "0123456789abcdef",
        "expiration": "2026-01-07T09:00:00Z",
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": KUBEADM_NODE_GROUP,
    }
