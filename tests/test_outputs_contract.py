"""The outputs contract: other teams' StackReferences break if an output is renamed,
dropped or loses its secret flag, so this test holds contract v1 explicitly."""

from __future__ import annotations

import jsonschema
import pytest

from stacks import outputs
from tests.conftest import STACKS
from tools.plan.runner import Plan

# Contract v1 as published to other teams: output name -> is it a Pulumi secret.
# Changing this table is a breaking change: bump the contract version instead.
CONTRACT_V1 = {
    "contractVersion": False,
    "clusterName": False,
    "apiEndpoint": False,
    "kubeconfig": True,
    "caCertPem": False,
    "podCidr": False,
    "serviceCidr": False,
    "nodes": False,
    "gpusByModel": False,
    "maasUrl": False,
    "registryMirror": False,
    "burst": False,
    # Added in v1 (additive, nothing renamed): storage.
    "ceph": False,
    "nfs": False,
    "personalDatabases": False,
    "personalDatabasePasswords": True,
    # Added in v1: engineer services.
    "dashboardUrl": False,
    "apps": False,
    # Added in v1: VMs on RBD.
    "cephLibvirtKey": True,
    "vms": False,
    "registry": False,
    "registryPushPassword": True,
}


def test_schema_is_contract_v1() -> None:
    schema = outputs.contract()
    jsonschema.Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert {name: bool(p.get("x-secret")) for name, p in props.items()} == CONTRACT_V1
    assert set(schema["required"]) == set(CONTRACT_V1)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_exports_exactly_the_contract(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert set(plan.outputs) == set(CONTRACT_V1)
    assert plan.secret_outputs == {name for name, secret in CONTRACT_V1.items() if secret}
    assert plan.outputs["contractVersion"] == "1"
    jsonschema.validate(plan.raw_outputs, outputs.contract())  # the values, secrets included


@pytest.mark.parametrize("stack", STACKS)
def test_inventory_counts_gpus_by_model(plans: dict[str, Plan], stack: str) -> None:
    out = plans[stack].outputs
    counted: dict[str, int] = {}
    for node in out["nodes"]:
        if node.get("gpuModel"):
            counted[node["gpuModel"]] = counted.get(node["gpuModel"], 0) + node["gpuCount"]
    assert counted == out["gpusByModel"]
    assert sum(counted.values()) == (10 if stack == "prod" else 2)


def test_exporting_something_else_is_refused() -> None:
    with pytest.raises(ValueError, match="missing \\['kubeconfig'\\]"):
        outputs.export({k: "x" for k in CONTRACT_V1 if k != "kubeconfig"})
