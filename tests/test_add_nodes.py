"""`juju add-unit -n48 akiba` becomes: 48 more entries in `akiba:nodes`, then `pulumi up`."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import edited
from tools.plan import runner
from tools.plan.runner import Plan


def _add_48(cfg: dict[str, Any]) -> None:
    cfg["akiba:network"]["officeLan"] = "192.168.8.0/22"
    template = cfg["akiba:nodes"][1]
    for i in range(48):
        node = copy.deepcopy(template)
        node["hostname"] = f"akiba{i + 6:02d}"
        node["ip"] = f"192.168.9.{i + 1}"
        for j, nic in enumerate(node["nics"]):
            nic["mac"] = f"d0:50:99:b0:{i:02x}:{j:02x}"
        # A by-id name is the disk's own serial: a new PC has its own disks.
        node["disks"]["boot"] = node["disks"]["boot"].replace("-0:0", f"{i:02d}-0:0")
        node["disks"]["ceph"] = [f"{d}{i:02d}" for d in node["disks"]["ceph"]]
        cfg["akiba:nodes"].append(node)


def test_48_more_machines_is_only_a_config_change(plans: dict[str, Plan]) -> None:
    plan = runner.run(edited("prod", _add_48))
    assert plan.resources
    nodes = plan.by_type("akiba:node:BareMetalNode")
    assert len(nodes) == 54  # the five PCs, the platform VM, and 48 more
    assert len(plan.by_type("maas:index/instance:Instance")) == 54
    assert len(plan.outputs["nodes"]) == 54
    assert plan.outputs["gpusByModel"]["gtx-1070"] == 2 + 48 * 2
    # Per-node resources only: the shared ones (identity, providers, services) do not grow.
    base = plans["prod"]
    for shared in ("tls:index/privateKey:PrivateKey", "kubernetes:helm.sh/v4:Chart", "pulumi:providers:kubernetes"):
        assert len(plan.by_type(shared)) == len(base.by_type(shared)), shared
    # A component, a machine, a deployment, and its configuration: a component with the drain,
    # converge and uncordon commands.
    assert len(plan.resources) - len(base.resources) == 48 * 7


def test_a_fleet_deeper_than_pythons_recursion_limit_plans() -> None:
    """The nodes' configuration is one chain (one node after another); the SDK checks each new
    dependency for cycles recursively along it. 350 nodes is past Python's default limit: the
    program raises it for the stack it plans (stacks/program.py)."""
    from benchmarks.plan_bench import synthetic_stack

    plan = runner.run(synthetic_stack(350))
    assert len([r for r in plan.resources if r.name.endswith("-converge")]) > 350  # and the controller
