"""dev mirrors prod: same config sections and shape, same component types in the plan."""

from __future__ import annotations

from typing import Any

from tests.conftest import config_values
from tools.plan.runner import Plan

# Maps whose keys are data (instance types), not field names.
DATA_KEYED = {"spotPriceUsd"}


def _shape(value: Any) -> Any:
    """The keys of a config value, recursively; lists by the union of their items' shapes."""
    if isinstance(value, dict):
        return {k: "map" if k in DATA_KEYED else _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            shape = _shape(item)
            if isinstance(shape, dict):
                # An empty list (a node without GPUs) says nothing about the items' shape.
                merged |= {k: v for k, v in shape.items() if v != [] or k not in merged}
        return [merged] if merged else []
    return "scalar"


def test_config_sections_match() -> None:
    prod, dev = config_values("prod"), config_values("dev")
    assert set(prod) == set(dev)
    for key in prod:
        if key == "akiba:nodes":
            # Power differs by design (prod: manual/AMT PCs, dev: virsh VMs), and with it the
            # hardware floor (a PC declares it, a VM's is its power.vcpus/memoryMib); the rest matches.
            by_design = ("power", "hardware")
            strip = (
                [{k: v for k, v in n.items() if k not in by_design} for n in prod[key]],
                [{k: v for k, v in n.items() if k not in by_design} for n in dev[key]],
            )
            assert _shape(strip[0]) == _shape(strip[1])
        else:
            assert _shape(prod[key]) == _shape(dev[key]), key


def test_component_types_match(plans: dict[str, Plan]) -> None:
    def types(plan: Plan) -> set[str]:
        return {r.type for r in plan.resources}

    assert types(plans["prod"]) == types(plans["dev"])
    assert {t for t in types(plans["prod"]) if t.startswith("akiba:")} >= {
        "akiba:cluster:ClusterIdentity",
        "akiba:node:BareMetalNode",
        "akiba:k8s:PlatformNamespaces",
    }
