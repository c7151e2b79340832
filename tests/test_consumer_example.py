"""The example consumer reads every contract output of prod's offline plan through a
StackReference, under the mock engine: it acts on akiba's cluster as the read-only
akiba-consumer (the kubeconfig stays secret), never as an engineer or the admin."""

from __future__ import annotations

import importlib
import sys

import yaml

from components.tenants.names import CONSUMER_USER
from stacks import outputs
from tests.conftest import ROOT
from tools.plan import runner
from tools.plan.runner import Plan
from tools.plan.stackfile import StackFile

REF = "my-org/akiba/prod"


def _consumer_plan(prod: Plan) -> Plan:
    sys.path.insert(0, str(ROOT / "examples" / "consumer"))
    try:
        consumer = importlib.import_module("consumer")
        sf = StackFile("dev", ROOT / "examples/consumer/Pulumi.yaml", {"akiba-consumer:akibaStack": REF}, [])
        return runner.run(sf, consumer.main, project="akiba-consumer", stack_references={REF: prod.as_reference()})
    finally:
        sys.path.remove(str(ROOT / "examples" / "consumer"))


def test_consumer_reads_every_contract_output(plans: dict[str, Plan]) -> None:
    plan = _consumer_plan(plans["prod"])
    assert plan.resources
    source = (ROOT / "examples/consumer/consumer.py").read_text()
    read = {name for name in outputs.contract()["properties"] if f'require_output("{name}")' in source}
    assert read == set(outputs.contract()["properties"])
    assert plan.outputs["totalGpus"] == 10
    assert plan.outputs["gpuNodes"] == [f"akiba0{i}" for i in range(1, 6)]
    assert plan.outputs["burstTypes"] == ["g2.2xlarge", "g4dn.xlarge"]
    assert plan.outputs["contractVersion"] == "2"
    assert plan.outputs["sshPorts"] == {login: e["sshPort"] for login, e in plans["prod"].outputs["engineers"].items()}
    # No engineer's kubeconfig: those are for each engineer alone.
    assert "engineerKubeconfig" not in source


def test_the_consumer_reads_akiba_as_akiba_consumer_and_writes_only_its_own_cluster(plans: dict[str, Plan]) -> None:
    plan = _consumer_plan(plans["prod"])
    (provider,) = plan.by_type("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]"
    doc = yaml.safe_load(provider.raw_inputs["kubeconfig"])
    assert doc == yaml.safe_load(plans["prod"].raw_outputs["consumerKubeconfig"])
    assert [u["name"] for u in doc["users"]] == [CONSUMER_USER]
    (config_map,) = plan.by_type("kubernetes:core/v1:ConfigMap")
    # Written to the team's own cluster: akiba-consumer may not write in akiba's.
    assert config_map.provider == ""  # the default provider: the team's own kubeconfig
    # prod's API is the three controllers' virtual address (akiba:cluster.apiVip), not one controller.
    assert config_map.raw_inputs["data"]["apiEndpoint"] == "https://192.168.10.10:6443"
