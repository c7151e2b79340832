"""AWS spot GPU burst: the plan-level invariants reviewers rely on, the IAM policy through
parliament, and the WireGuard key through `wg`."""

from __future__ import annotations

import base64
import configparser
import json
import re
import stat
import subprocess
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.burst.autoscaler import autoscaler_policy
from components.burst.iam import publish_parameter_policy, read_parameters_policy
from components.burst.nodes import autoscaler_tags
from components.burst.wireguard import KEY_SCRIPT, PRIVATE_KEY, TUNNEL_MTU, render_key_script
from components.cluster.bootstrap import GPU_TAINT, JOIN_TOKEN_PLACEHOLDER
from components.cluster.join_token import KUBEADM_NODE_GROUP
from stacks import outputs
from tests.conftest import ROOT, STACKS, edited, require_tool
from tools.plan import references
from tools.plan.mocks import Recorded
from tools.plan.runner import Plan

ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
SG = "aws:ec2/securityGroup:SecurityGroup"
GROUP_ARN = "arn:aws:autoscaling:ap-northeast-1:123456789012:autoScalingGroup:1:autoScalingGroupName/akiba-burst"


def _one(plan: Plan, typ: str) -> Recorded:
    (found,) = plan.by_type(typ)
    return found


def _tags(group: Recorded) -> dict[str, str]:
    return {t["key"]: t["value"] for t in group.raw_inputs["tags"]}


def test_group_tags_are_exact(plans: dict[str, Plan]) -> None:
    tags = _tags(_one(plans["prod"], ASG))
    expected = {
        "Name": "akiba-burst",
        "akiba:stack": "prod",
        "akiba:cluster": "akiba",
        "k8s.io/cluster-autoscaler/enabled": "true",
        "k8s.io/cluster-autoscaler/akiba": "owned",
        "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu": "1",
        "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu": "present:NoSchedule",
        "k8s.io/cluster-autoscaler/node-template/label/akiba.io/node-kind": "burst",
        "k8s.io/cluster-autoscaler/node-template/label/akiba.io/gpu-model": "grid-k520",
        "k8s.io/cluster-autoscaler/node-template/label/akiba.io/gpu-count": "1",
        "k8s.io/cluster-autoscaler/node-template/label/nvidia.com/gpu.present": "true",
        "k8s.io/cluster-autoscaler/node-template/label/k8s.amazonaws.com/accelerator": "nvidia-grid-k520",
        "k8s.io/cluster-autoscaler/node-template/label/node.kubernetes.io/lifecycle": "spot",
    }
    assert tags == expected
    assert autoscaler_tags("akiba", "g2.2xlarge").items() <= tags.items()


@pytest.mark.parametrize(("stack", "max_size"), [("prod", 8), ("dev", 1)])
def test_group_is_spot_only_from_zero(plans: dict[str, Plan], stack: str, max_size: int) -> None:
    group = _one(plans[stack], ASG).raw_inputs
    assert group["minSize"] == 0 and group["maxSize"] == max_size
    assert group["capacityRebalance"] is True
    assert group["waitForCapacityTimeout"] == "0"
    dist = group["mixedInstancesPolicy"]["instancesDistribution"]
    assert dist == {
        "onDemandBaseCapacity": 0,
        "onDemandPercentageAboveBaseCapacity": 0,
        "spotAllocationStrategy": "price-capacity-optimized",
    }


def test_one_launch_template_per_gpu_generation(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    templates = {r.name: r for r in plan.by_type(LT)}
    assert set(templates) == {"burst-kepler", "burst-turing", "burst-gateway"}
    overrides = _one(plan, ASG).raw_inputs["mixedInstancesPolicy"]["launchTemplate"]["overrides"]
    by_type = {o["instanceType"]: o["launchTemplateSpecification"]["launchTemplateId"] for o in overrides}
    assert by_type == {"g2.2xlarge": "burst-kepler-id", "g4dn.xlarge": "burst-turing-id"}
    # Kepler needs the R470 driver on Ubuntu 22.04; Turing takes the current one on 24.04.
    kepler = base64.b64decode(templates["burst-kepler"].raw_inputs["userData"]).decode()
    turing = base64.b64decode(templates["burst-turing"].raw_inputs["userData"]).decode()
    assert "nvidia-headless-470" in kepler and "/22.04/" in templates["burst-kepler"].raw_inputs["imageId"]
    assert "nvidia-headless-580" in turing and "/24.04/" in templates["burst-turing"].raw_inputs["imageId"]


@pytest.mark.parametrize("stack", STACKS)
def test_launch_templates_require_imdsv2_and_encrypt(plans: dict[str, Plan], stack: str) -> None:
    for lt in plans[stack].by_type(LT):
        inputs = lt.raw_inputs
        assert inputs["metadataOptions"]["httpTokens"] == "required", lt.name
        assert [m["ebs"]["encrypted"] for m in inputs["blockDeviceMappings"]] == ["true"], lt.name
        assert lt.secret_paths == [], "no secret in a launch template (readable with DescribeLaunchTemplateVersions)"
        assert inputs["iamInstanceProfile"]["arn"].startswith("arn:"), "its secrets come from SSM with this role"


@pytest.mark.parametrize("stack", STACKS)
def test_no_ingress_is_open_to_the_internet(plans: dict[str, Plan], stack: str) -> None:
    groups = plans[stack].by_type(SG)
    assert len(groups) == 2
    for sg in groups:
        for rule in sg.raw_inputs["ingress"]:
            assert "0.0.0.0/0" not in rule["cidrBlocks"], (sg.name, rule)
    gateway = next(sg for sg in groups if sg.name == "burst-gateway")
    wireguard = next(r for r in gateway.raw_inputs["ingress"] if r["protocol"] == "udp")
    assert wireguard["cidrBlocks"] == ["203.0.113.10/32" if stack == "prod" else "198.51.100.10/32"]


def test_burst_nodes_join_with_their_aws_identity(plans: dict[str, Plan]) -> None:
    text = base64.b64decode(
        next(r for r in plans["prod"].by_type(LT) if r.name == "burst-turing").raw_inputs["userData"]
    ).decode()
    assert "value: aws:///__IMDS_ZONE__/__IMDS_INSTANCE_ID__" in text
    assert "k8s.amazonaws.com/accelerator=nvidia-tesla-t4" in text
    assert "X-aws-ec2-metadata-token" in text and "hostname:" not in text.split("write_files:")[0]


def _user_data(template: Recorded) -> dict[str, Any]:
    doc = yaml.safe_load(base64.b64decode(template.raw_inputs["userData"]).decode())
    assert isinstance(doc, dict)
    return doc


def _written(doc: dict[str, Any], path: str) -> str:
    return next(str(f["content"]) for f in doc["write_files"] if f["path"] == path)


@pytest.mark.parametrize("stack", STACKS)
def test_node_template_taints_are_what_burst_nodes_register(plans: dict[str, Plan], stack: str) -> None:
    """The autoscaler scales from zero by the group's tags: they must name the taints the nodes
    really register with, or it adds nodes the pending pod then refuses."""
    prefix = "k8s.io/cluster-autoscaler/node-template/taint/"
    tags = {k.removeprefix(prefix): v for k, v in _tags(_one(plans[stack], ASG)).items() if k.startswith(prefix)}
    for lt in plans[stack].by_type(LT):
        if lt.name == "burst-gateway":
            continue
        kubeadm = yaml.safe_load_all(_written(_user_data(lt), "/etc/kubernetes/kubeadm.yaml"))
        registration = next(d for d in kubeadm if d["kind"] == "JoinConfiguration")["nodeRegistration"]
        assert registration["taints"] == [GPU_TAINT], lt.name
        assert {t["key"]: f"{t['value']}:{t['effect']}" for t in registration["taints"]} == tags, lt.name


@pytest.mark.parametrize("stack", STACKS)
def test_wireguard_gateway_sets_the_tunnel_mtu(plans: dict[str, Plan], stack: str) -> None:
    """wg-quick would take the EC2 interface's 9001 - 80; the tunnel crosses the internet (1500)."""
    gateway = next(lt for lt in plans[stack].by_type(LT) if lt.name == "burst-gateway")
    conf = configparser.ConfigParser()
    conf.optionxform = str  # type: ignore[assignment,method-assign]  # WireGuard keys are case-sensitive
    conf.read_string(_written(_user_data(gateway), "/etc/wireguard/wg0.conf"))
    assert conf["Interface"]["MTU"] == str(TUNNEL_MTU) == "1420"


def test_expected_cost_at_max_size_is_an_output(plans: dict[str, Plan]) -> None:
    assert plans["prod"].outputs["burst"]["expectedHourlyCostUsdAtMax"] == 8 * 0.25
    assert plans["dev"].outputs["burst"]["expectedHourlyCostUsdAtMax"] == 1 * 0.25
    budget = _one(plans["prod"], "aws:budgets/budget:Budget").raw_inputs
    assert budget["limitAmount"] == "300.00" and budget["timeUnit"] == "MONTHLY"
    assert {n["notificationType"] for n in budget["notifications"]} == {"ACTUAL", "FORECASTED"}


def test_autoscaler_and_termination_handler_are_pinned_and_placed(plans: dict[str, Plan]) -> None:
    charts = {r.name: r.raw_inputs for r in plans["prod"].by_type("kubernetes:helm.sh/v4:Chart")}
    ca, nth = charts["cluster-autoscaler"], charts["aws-node-termination-handler"]
    assert ca["version"] == "9.59.0" and ca["values"]["autoDiscovery"] == {"clusterName": "akiba"}
    assert ca["values"]["envFromSecret"] == "cluster-autoscaler-aws"
    assert nth["version"] == "0.27.6" and nth["values"]["daemonsetNodeSelector"] == {
        "node.kubernetes.io/lifecycle": "spot"
    }
    secret = next(s for s in plans["prod"].by_type("kubernetes:core/v1:Secret") if s.name == "cluster-autoscaler-aws")
    assert secret.secret_paths == ["stringData"]


def test_nothing_of_burst_when_disabled() -> None:
    def disable(cfg: dict[str, Any]) -> None:
        cfg["akiba:burst"]["enabled"] = False

    plan = references.plan(edited("dev", disable), ROOT)
    assert plan.resources
    types = {r.type for r in plan.resources}
    assert not any(t.startswith(("aws:", "akiba:burst:", "pulumi:providers:aws")) for t in types)
    charts = {r.name for r in plan.by_type("kubernetes:helm.sh/v4:Chart")}
    assert charts.isdisjoint({"cluster-autoscaler", "aws-node-termination-handler"}) and "rook-ceph" in charts
    assert plan.outputs["burst"]["groupName"] == "" and "siteLink" not in plan.outputs["burst"]
    jsonschema.validate(plan.raw_outputs, outputs.contract())


def _parliament(policy: dict[str, Any]) -> list[tuple[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports pkg_resources
        from parliament import analyze_policy_string

    return [(f.issue, f.severity) for f in analyze_policy_string(json.dumps(policy)).findings]


def test_autoscaler_policy_passes_parliament() -> None:
    findings = _parliament(autoscaler_policy("akiba", GROUP_ARN))
    assert [f for f in findings if f[1] not in ("LOW", "INFO")] == []


def test_parliament_does_flag_a_bad_policy() -> None:
    bad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:ec2:::instance/*"}],
    }
    assert _parliament(bad), "parliament must catch an action/resource mismatch"


def test_autoscaler_can_only_change_this_clusters_group() -> None:
    scale = autoscaler_policy("akiba", GROUP_ARN)["Statement"][1]
    assert scale["Resource"] == GROUP_ARN
    assert scale["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/akiba": "owned"}}


def test_the_gateway_makes_its_key_once_and_publishes_only_the_public_half(tmp_path: Path) -> None:
    """The gateway's key script for real: `wg` makes the key, stand-ins answer for IMDS and the
    aws CLI (which logs what it is asked). The private key stays in its root-only file."""
    wg = require_tool("wg", "apt-get install wireguard-tools")
    key = tmp_path / "private.key"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(
        '#!/bin/sh\ncase "$*" in *region*) echo ap-northeast-1 ;; *) echo imds-token ;; esac\n'
    )
    (bin_dir / "aws").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {tmp_path}/aws.log\n')
    (bin_dir / "wg").symlink_to(wg)
    for tool in ("curl", "aws"):
        (bin_dir / tool).chmod(0o755)
    script = tmp_path / "key.sh"
    script.write_text(render_key_script("/akiba/burst/wireguard-public-key").replace(PRIVATE_KEY, str(key)))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    for _ in range(2):  # a reboot runs it again: the same key
        subprocess.run(["bash", str(script)], env=env, check=True)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = subprocess.run([wg, "pubkey"], input=key.read_text(), capture_output=True, text=True, check=True)
    calls = (tmp_path / "aws.log").read_text().splitlines()
    expected = (
        "ssm put-parameter --region ap-northeast-1 --name /akiba/burst/wireguard-public-key --type String"
        f" --overwrite --value {public.stdout.strip()}"
    )
    assert calls == [expected, expected]
    assert key.read_text().strip() not in "\n".join(calls)


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateway_config_has_no_private_key(plans: dict[str, Plan], stack: str) -> None:
    gateway = next(lt for lt in plans[stack].by_type(LT) if lt.name == "burst-gateway")
    doc = _user_data(gateway)
    conf = _written(doc, "/etc/wireguard/wg0.conf")
    assert "PrivateKey" not in conf and f"wg set %i private-key {PRIVATE_KEY}" in conf
    assert [KEY_SCRIPT] in doc["runcmd"] and doc["runcmd"].index([KEY_SCRIPT]) < doc["runcmd"].index(
        ["systemctl", "enable", "--now", "wg-quick@wg0"]
    ), "the key exists before the tunnel starts"
    assert not [
        r for r in plans[stack].resources if r.type == "random:index/randomBytes:RandomBytes" and "wireguard" in r.name
    ]


def test_site_link_output_for_the_office_router(plans: dict[str, Plan]) -> None:
    link = plans["prod"].outputs["burst"]["siteLink"]
    assert link["listenPort"] == 51820 and link["gatewayPublicIp"]
    assert "wireguardPublicKey" not in link, "the program never knows the gateway's key"
    assert link["wireguardPublicKeyParameter"] == "/akiba/burst/wireguard-public-key"
    assert link["wireguardPublicKeyCommand"] == (
        "aws ssm get-parameter --region ap-northeast-1 --name /akiba/burst/wireguard-public-key"
        " --query Parameter.Value --output text"
    )
    (param,) = [r for r in plans["prod"].by_type(SSM_PARAMETER) if r.name == "wireguard-public-key"]
    assert param.raw_inputs["type"] == "String" and param.ignore_changes == ["value"], "the gateway writes it"
    policy = json.loads(
        next(r for r in plans["prod"].by_type(ROLE_POLICY) if r.name == "burst-gateway").raw_inputs["policy"]
    )
    assert policy == publish_parameter_policy(f"arn:aws:mock:::parameter/{link['wireguardPublicKeyParameter']}")


SSM_PARAMETER = "aws:ssm/parameter:Parameter"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


@pytest.mark.parametrize("stack", STACKS)
def test_launch_templates_hold_no_secret_value(plans: dict[str, Plan], stack: str) -> None:
    """Rendered and searched: no secret of the plan (join tokens, the pull credential, keys), no
    `token:` but the placeholder, no Authorization header but the placeholder."""
    plan = plans[stack]
    templates = plan.by_type(LT)
    assert len(templates) >= 2
    for lt in templates:
        text = base64.b64decode(lt.raw_inputs["userData"]).decode()
        assert not [s[:8] for s in plan.secret_values if len(s) >= 8 and s in text], lt.name
        assert set(re.findall(r"^\s*token:\s*(\S+)", text, re.MULTILINE)) <= {JOIN_TOKEN_PLACEHOLDER}, lt.name
        assert "Basic " not in text and "PRIVATE KEY" not in text and "PrivateKey =" not in text, lt.name


@pytest.mark.parametrize("stack", STACKS)
def test_burst_secrets_are_secure_strings_only_the_burst_role_reads(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    params = {r.name: r for r in plan.by_type(SSM_PARAMETER)}
    token, auth = params["burst-join-token"], params["burst-registry-authorization"]
    for p in (token, auth):
        assert p.raw_inputs["type"] == "SecureString" and p.secret_paths == ["value"], p.name
    assert auth.raw_inputs["value"].startswith("Basic ")
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token.raw_inputs["value"])
    policy = json.loads(next(r for r in plan.by_type(ROLE_POLICY) if r.name == "burst-node").raw_inputs["policy"])
    arns = [f"arn:aws:mock:::parameter/{p.raw_inputs['name']}" for p in (token, auth)]
    assert policy == read_parameters_policy(plan.outputs["burst"]["region"], arns)  # parliament: below
    # The burst token is valid on the cluster (a bootstrap-token Secret) until its expiration.
    (secret,) = [r for r in plan.by_type("kubernetes:core/v1:Secret") if r.name == "burst-join-token"]
    data = secret.raw_inputs["stringData"]
    assert secret.raw_inputs["type"] == "bootstrap.kubernetes.io/token" and secret.secret_paths == ["stringData"]
    assert secret.raw_inputs["metadata"]["name"] == f"bootstrap-token-{data['token-id']}"
    assert f"{data['token-id']}.{data['token-secret']}" == token.raw_inputs["value"]
    assert data["auth-extra-groups"] == KUBEADM_NODE_GROUP and data["usage-bootstrap-authentication"] == "true"
    assert secret.urn in token.dependencies, "a node reads a new token only once the cluster accepts it"
    rotation = next(
        r for r in plan.resources if r.type == "time:index/rotating:Rotating" and r.name.startswith("burst")
    )
    assert rotation.raw_inputs["rotationHours"] == 24
    assert data["expiration"] == "2026-01-07T09:00:00Z", "two days after the mock clock's rotation"


def test_the_burst_read_policy_passes_parliament_and_a_star_would_not() -> None:
    arns = [f"arn:aws:ssm:ap-northeast-1:123456789012:parameter/akiba/burst/{n}" for n in ("a", "b")]
    policy = read_parameters_policy("ap-northeast-1", arns)
    decrypt = policy["Statement"][1]
    assert decrypt["Condition"]["StringEquals"] == {
        "kms:ViaService": "ssm.ap-northeast-1.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": arns,
    }
    assert _parliament(policy) == []
    decrypt["Resource"] = "*"
    assert ("RESOURCE_STAR", "") in _parliament(policy) or any(f[0] == "RESOURCE_STAR" for f in _parliament(policy))
    publish = publish_parameter_policy("arn:aws:ssm:ap-northeast-1:123456789012:parameter/akiba/burst/wg")
    assert _parliament(publish) == []
