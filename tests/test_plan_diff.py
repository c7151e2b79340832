"""plan-diff: what a reviewer sees for a change, without cloud credentials."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import IN_CI, ROOT, edited
from tools.plan import runner
from tools.plan.artifacts import plan_document, scrub
from tools.plan.diff import compare, render


def _doc(sf: Any) -> dict[str, Any]:
    plan = runner.run(sf)
    assert plan.resources
    return scrub(plan_document(plan), plan.secret_values)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return _doc(edited("prod", lambda cfg: None))


def test_adding_a_node_adds_its_machine_and_deployment(base: dict[str, Any]) -> None:
    def add(cfg: dict[str, Any]) -> None:
        node = copy.deepcopy(cfg["akiba:nodes"][1])
        node.update(hostname="akiba06", ip="192.168.10.16")
        for i, nic in enumerate(node["nics"]):
            nic["mac"] = f"d0:50:99:a1:06:0{i}"
        cfg["akiba:nodes"].append(node)

    result = compare(base, _doc(edited("prod", add)))
    added = {u.split("::")[-1] + " " + u.split("::")[-2].split("$")[-1] for u in result["added"]}
    assert added == {
        "akiba06 akiba:node:BareMetalNode",
        "akiba06 maas:index/machine:Machine",
        "akiba06 maas:index/instance:Instance",
    }
    assert result["removed"] == []
    # Its SSDs become OSDs; it is an NFS server and a Ceph monitor candidate, which the VM's
    # disk (its monitor list) and domain XML (its <host> list) follow.
    changed = {u.split("::")[-1]: keys for u, keys in result["changed"].items()}
    assert changed == {
        "rook-ceph": ["spec.storage.nodes"],
        "akiba-vm01": ["xslt"],
        "akiba-vm01-akiba-vm01-boot": ["monHost"],
    }
    assert result["outputs"] == ["ceph", "gpusByModel", "nfs", "nodes"]


def test_changing_an_address_names_the_changed_inputs(base: dict[str, Any]) -> None:
    def move(cfg: dict[str, Any]) -> None:
        cfg["akiba:nodes"][2]["nics"][0]["mac"] = "d0:50:99:a1:03:99"

    result = compare(base, _doc(edited("prod", move)))
    machine = next(u for u in result["changed"] if u.endswith("maas:index/machine:Machine::akiba03"))
    assert result["changed"][machine] == ["pxeMacAddress"]
    text = render("prod", "HEAD", result)
    # The netplan inside the (secret) user-data changes too: shown, value hidden.
    instance = machine.replace("machine:Machine", "instance:Instance")
    assert result["changed"][instance] == ["deployParams (secret)"]
    assert "0 to add, 2 to change, 0 to remove" in text


def test_cli_diff_against_a_git_revision() -> None:
    if not shutil.which("git") or not (ROOT / ".git").exists():
        if IN_CI:
            pytest.fail("plan-diff needs git and a clone")
        pytest.skip("not a git clone")
    res = subprocess.run(
        [sys.executable, "-m", "tools.plan", "diff", "--stack", "dev", "--base", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "Plan diff of stack 'dev' (HEAD -> working tree)" in res.stdout
