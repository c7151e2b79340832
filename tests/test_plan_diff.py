"""plan-diff: what a reviewer sees for a change, without cloud credentials. Each test plans the
real program twice, from the committed stack files and from edited copies in a temporary
directory, and reads what `pulumi up` would do between the two."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI, ROOT, STACKS
from tools.plan import references
from tools.plan.diff import Result, allowances, check_gate, compare, planner, render_gate, render_result, report
from tools.plan.runner import Plan
from tools.plan.stackfile import read_stack_file, read_yaml

Edit = Callable[[dict[str, Any]], None]


def stack_dir(tmp: Path, **edits: Edit) -> Path:
    """Both stack files (a stack reads the other's outputs) with `edits[stack]` applied to its
    config, written where the offline plan reads them."""
    for stack in STACKS:
        doc = read_yaml(ROOT / f"Pulumi.{stack}.yaml")
        if stack in edits:
            edits[stack](doc["config"])
        (tmp / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp


def diff_of(base: Plan, tmp: Path, stack: str, **edits: Edit) -> Result:
    replan = planner(read_stack_file(stack_dir(tmp, **edits), stack), tmp)
    head = replan(frozenset())
    assert head.resources, "the recorded plan is empty"
    return compare(base, head, replan)


@pytest.fixture(scope="module")
def committed() -> dict[str, Plan]:
    plans = {stack: references.plan(read_stack_file(ROOT, stack), ROOT) for stack in STACKS}
    assert all(p.resources for p in plans.values())
    return plans


def by_ident(result: Result) -> dict[str, Any]:
    return {s.resource.ident: s for s in result.steps.values()}


def add_node(cfg: dict[str, Any]) -> None:
    node = copy.deepcopy(cfg["akiba:nodes"][1])
    node.update(hostname="akiba06", ip="192.168.10.16", role="worker")
    for i, nic in enumerate(node["nics"]):
        nic["mac"] = f"d0:50:99:a1:06:0{i}"
    node["disks"] = {
        "boot": "/dev/disk/by-id/nvme-akiba06-boot",
        "ceph": [f"/dev/disk/by-id/ata-akiba06-ssd{i}" for i in range(len(node["disks"]["ceph"]))],
    }
    cfg["akiba:nodes"].append(node)


def kubernetes_patch(cfg: dict[str, Any]) -> None:
    major, minor, patch = cfg["akiba:cluster"]["kubernetesVersion"].split(".")
    cfg["akiba:cluster"]["kubernetesVersion"] = f"{major}.{minor}.{int(patch) + 1}"


def add_upstream(cfg: dict[str, Any]) -> None:
    cfg["akiba:registry"]["upstreams"].append("public.ecr.aws")


def test_day2_ceph_node_kubernetes_patch_and_upstream_update_in_place(
    committed: dict[str, Plan], tmp_path: Path
) -> None:
    """The issue's day-2 branch: one more Ceph node, the next Kubernetes patch, one more registry
    upstream. Nothing is replaced: the nodes' configuration rolls (drain, converge, uncordon
    updated in place), no MAAS deployment is touched."""

    def day2(cfg: dict[str, Any]) -> None:
        add_node(cfg)
        kubernetes_patch(cfg)
        add_upstream(cfg)

    result = diff_of(committed["prod"], tmp_path, "prod", prod=day2)
    steps = by_ident(result)
    assert result.by_action("update"), "a day-2 change must show its updates"
    assert not result.by_action("replace", "delete"), "\n".join(render_result(result, "base"))
    # The new node is created: its machine, its deployment, its configuration ...
    assert {"maas:Machine:akiba06", "maas:Instance:akiba06"} <= set(steps)
    # ... and the new upstream's cache (its volume, config, Deployment, Service, route).
    created = [s.resource.name for s in result.by_action("create")]
    assert all("akiba06" in name or "public-ecr-aws" in name for name in created), created
    # Its SSDs become OSDs; its address joins the monitors the VM disks reach Ceph through.
    assert steps["kubernetes:CephCluster:rook-ceph"].action == "update"
    assert steps["dynamic:rbd-image:akiba-vm01-akiba-vm01-boot"].action == "update"
    # Every existing node's configuration rolls in place; its install stays as it is.
    converges = [s for s in result.by_action("update") if s.resource.name.endswith("-converge")]
    assert len(converges) == len(committed["prod"].by_type("maas:index/instance:Instance"))
    assert all(s.resource.type == "command:remote:Command" for s in converges)
    assert not [
        s for s in result.steps.values() if s.resource.type == "maas:index/instance:Instance" and s.action != "create"
    ]
    assert check_gate(result, []).passed


def test_day2_registry_upstream_updates_in_place(committed: dict[str, Plan], tmp_path: Path) -> None:
    result = diff_of(committed["dev"], tmp_path, "dev", dev=add_upstream)
    assert result.by_action("update")
    assert not result.by_action("replace", "delete"), "\n".join(render_result(result, "base"))


def test_vm_pool_change_replaces_the_disks_and_the_gate_names_each(committed: dict[str, Plan], tmp_path: Path) -> None:
    """dev's VM disks live on prod's Ceph: moving prod's VM pool moves dev's images."""

    def move(cfg: dict[str, Any]) -> None:
        cfg["akiba:storage"]["vmPool"] = "vm-disks-ssd"

    result = diff_of(committed["dev"], tmp_path, "dev", prod=move)
    disks = [s for s in result.by_action("replace") if s.resource.category == "disk"]
    assert len(disks) >= 2, render_result(result, "base")
    assert all([str(k) for k in s.keys(s.forcing)] == ["pool"] for s in disks)
    idents = sorted(s.resource.ident for s in disks)

    refused = check_gate(result, [])
    assert not refused.passed and sorted(s.resource.ident for s in refused.refused) == idents
    text = "\n".join(render_gate(result, refused, "main"))
    assert f'make plan-diff STACK=dev BASE=main ALLOW_REPLACE="{" ".join(idents)}"' in text
    # Allowing one never allows another.
    one = check_gate(result, [idents[0]])
    assert [s.resource.ident for s in one.allowed] == [idents[0]] and not one.passed
    assert idents[1] in {s.resource.ident for s in one.refused}
    assert check_gate(result, idents).passed
    # A name that is no refused resource is an error, not a silent pass.
    assert not check_gate(result, [*idents, "dynamic:rbd-image:nothing"]).passed


def test_allowances_from_the_flag_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKIBA_ALLOW_REPLACE", "tls:PrivateKey:ca")
    assert allowances(["a b", ""]) == ["a", "b", "tls:PrivateKey:ca"]


def test_cluster_identity_change_cascades_to_every_kubernetes_object(
    committed: dict[str, Plan], tmp_path: Path
) -> None:
    """A new CA (its subject follows the cluster name) is a new certificate for everything it
    signed, hence a new kubeconfig, hence a new kubernetes provider: pulumi-kubernetes replaces
    every object it manages, volumes included. The diff shows the whole chain and refuses it."""

    def rename(cfg: dict[str, Any]) -> None:
        cfg["akiba:cluster"]["name"] = "akiba-dev2"

    result = diff_of(committed["dev"], tmp_path, "dev", dev=rename)
    steps = by_ident(result)
    ca = steps["tls:SelfSignedCert:ca"]
    assert ca.action == "replace" and ca.keys(ca.forcing) == ["subject.commonName"]
    admin = steps["tls:LocallySignedCert:admin"]
    assert admin.action == "replace" and "tls:SelfSignedCert:ca" in admin.caused_by
    provider = steps["provider:kubernetes:kubernetes"]
    # Another cluster name is another cluster: its identifier changes, and with it every object.
    assert provider.action == "replace" and provider.keys(provider.forcing) == ["clusterIdentifier"]
    volumes = [s for s in result.by_action("replace") if s.resource.type.endswith("PersistentVolumeClaim")]
    assert volumes and all(s.caused_by == ["provider:kubernetes:kubernetes"] for s in volumes)
    gate = check_gate(result, [])
    assert {"tls:SelfSignedCert:ca", volumes[0].resource.ident} <= {s.resource.ident for s in gate.refused}


def test_output_and_json_keep_secrets_masked(committed: dict[str, Plan], tmp_path: Path, capsys: Any) -> None:
    def rename(cfg: dict[str, Any]) -> None:
        cfg["akiba:cluster"]["name"] = "akiba-dev2"

    head = references.plan(read_stack_file(stack_dir(tmp_path, dev=rename), "dev"), tmp_path)
    result = compare(committed["dev"], head)
    rc = report(result, "main", [], tmp_path / "out")
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "dev.json").read_text())
    assert rc == 1 and doc["gate"]["passed"] is False and doc["gate"]["refused"]
    assert doc["summary"]["replace"] == len(result.by_action("replace")) > 0
    assert "-+" in printed and "+-" in printed and "(secret)" in printed
    text = printed + json.dumps(doc)
    leaked = [v for v in committed["dev"].secret_values | head.secret_values if v in text]
    assert not leaked


def test_an_unchanged_plan_is_quiet(committed: dict[str, Plan]) -> None:
    result = compare(committed["dev"], committed["dev"])
    assert result.steps == {} and result.outputs == []


def test_cli_diff_against_a_git_revision(tmp_path: Path) -> None:
    if not shutil.which("git") or not (ROOT / ".git").exists():
        if IN_CI:
            pytest.fail("plan-diff needs git and a clone")
        pytest.skip("not a git clone")
    res = subprocess.run(
        [sys.executable, "-m", "tools.plan", "diff", "--stack", "dev", "--base", "HEAD", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert "Plan diff of stack 'dev' (HEAD -> working tree)" in res.stdout, res.stderr
    doc = json.loads((tmp_path / "dev.json").read_text())
    # The working tree may hold uncommitted edits: whatever they are, the exit status is the gate's.
    assert res.returncode == (0 if doc["gate"]["passed"] else 1), res.stdout + res.stderr
