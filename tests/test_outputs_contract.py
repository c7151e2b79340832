"""The outputs contract: other teams' StackReferences break if an output is renamed,
dropped or loses its secret flag, so this test holds contract v2 explicitly (and v1 withdrawn)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from stacks import outputs
from tests.conftest import STACKS, config_values, require_tool
from tools.plan.runner import Plan

# Contract v2 as published to other teams: output name -> is it a Pulumi secret.
# Changing this table is a breaking change: bump the contract version instead.
CONTRACT_V2 = {
    "contractVersion": False,
    "clusterName": False,
    "apiEndpoint": False,
    "caCertPem": False,
    # v2: the read-only identity other teams act as, and the engineers (public facts only).
    "consumerKubeconfig": True,
    "engineers": False,
    "podCidr": False,
    "serviceCidr": False,
    "nodes": False,
    "gpusByModel": False,
    "maasUrl": False,
    "registryMirror": False,
    "burst": False,
    "ceph": False,
    "nfs": False,
    "personalDatabases": False,
    "dashboardUrl": False,
    "apps": False,
    "cephLibvirtKey": True,
    "vms": False,
    "registry": False,
    "registryPushPassword": True,
}
# Withdrawn with v2: what no consumer may read any more.
WITHDRAWN = {"kubeconfig", "personalDatabasePasswords"}


def _per_engineer(stack: str) -> set[str]:
    """One secret output per engineer: their own kubeconfig."""
    return {f"engineerKubeconfig-{e['name']}" for e in config_values(stack)["akiba:engineers"]}


def test_schema_is_contract_v2() -> None:
    schema = outputs.contract()
    jsonschema.Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert {name: bool(p.get("x-secret")) for name, p in props.items()} == CONTRACT_V2
    assert set(schema["required"]) == set(CONTRACT_V2)
    assert schema["additionalProperties"] is False
    (pattern,) = schema["patternProperties"].values()
    assert pattern["x-secret"] is True
    assert outputs.is_secret("engineerKubeconfig-tarui") and not outputs.is_secret("engineerKubeconfig")


def test_v1_is_kept_and_marked_withdrawn() -> None:
    v1 = json.loads(outputs.SCHEMA_PATH.with_name("outputs.v1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(v1)
    assert "admin kubeconfig" in v1["x-withdrawn"] and "password" in v1["x-withdrawn"]
    assert v1["description"].startswith("WITHDRAWN")
    assert set(v1["properties"]) >= WITHDRAWN and not WITHDRAWN & set(outputs.contract()["properties"])


@pytest.mark.parametrize("stack", STACKS)
def test_stack_exports_exactly_the_contract(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources
    assert set(plan.outputs) == set(CONTRACT_V2) | _per_engineer(stack)
    assert plan.secret_outputs == {name for name, secret in CONTRACT_V2.items() if secret} | _per_engineer(stack)
    assert plan.outputs["contractVersion"] == "2"
    assert not WITHDRAWN & set(plan.outputs)
    jsonschema.validate(plan.raw_outputs, outputs.contract())  # the values, secrets included
    # No output, public or secret, carries the admin's credentials (the program's provider has them).
    (provider,) = [r for r in plan.by_type("pulumi:providers:kubernetes") if r.name == "kubernetes"]
    (admin,) = yaml.safe_load(provider.raw_inputs["kubeconfig"])["users"]
    key = admin["user"]["client-key-data"]
    assert key and key not in json.dumps(plan.raw_outputs)


@pytest.mark.parametrize("stack", STACKS)
def test_engineers_output_names_their_places(plans: dict[str, Plan], stack: str) -> None:
    engineers = plans[stack].outputs["engineers"]
    for e in config_values(stack)["akiba:engineers"]:
        mine = engineers[e["name"]]
        assert mine["namespace"] == f"eng-{e['name']}" and mine["uid"] == e["uid"] and mine["homeClaim"] == "home"
        assert 30000 <= mine["sshPort"] <= 32767
    ports = [x["sshPort"] for x in engineers.values()]
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize("stack", STACKS)
def test_each_engineer_gets_their_homes_known_hosts_line(plans: dict[str, Plan], stack: str, tmp_path: Path) -> None:
    """`engineers.<login>.sshKnownHosts` is their home's own host key (the ED25519 key the plan
    makes for their home pod), filed under akiba-home-<login>: real ssh-keygen finds each
    engineer's line under their alias, and only theirs."""
    plan = plans[stack]
    assert plan.resources
    engineers = plan.outputs["engineers"]
    logins = [e["name"] for e in config_values(stack)["akiba:engineers"]]
    lines = {login: engineers[login]["sshKnownHosts"] for login in logins}
    for login, line in lines.items():
        (key,) = [r for r in plan.by_type("tls:index/privateKey:PrivateKey") if r.name == f"home-host-key-{login}"]
        assert key.inputs["algorithm"] == "ED25519"
        assert line.startswith(f"akiba-home-{login} ssh-ed25519 AAAA")
    assert len({line.split()[2] for line in lines.values()}) == len(lines), "a host key shared between homes"
    keygen = require_tool("ssh-keygen", "apt-get install openssh-client")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"{line}\n" for line in lines.values()))
    listed = subprocess.run([keygen, "-l", "-f", str(known_hosts)], capture_output=True, text=True, check=True)
    assert listed.stdout.count("(ED25519)") == len(lines), listed.stdout
    for login, line in lines.items():
        found = subprocess.run(
            [keygen, "-F", f"akiba-home-{login}", "-f", str(known_hosts)], capture_output=True, text=True, check=True
        )
        assert [x for x in found.stdout.splitlines() if not x.startswith("#")] == [line]


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
    with pytest.raises(ValueError, match="missing \\['consumerKubeconfig'\\]"):
        outputs.export({k: "x" for k in CONTRACT_V2 if k != "consumerKubeconfig"})
    with pytest.raises(ValueError, match="extra \\['kubeconfig'\\]"):
        outputs.export({**dict.fromkeys(CONTRACT_V2, "x"), "kubeconfig": "x"})
