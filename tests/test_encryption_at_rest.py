"""Secrets encrypted at rest: the same keys on every controller, the rewrite of existing Secrets
after every controller has them (and again when the encrypting key changes), and key rotation
through cluster.secretsEncryptionKeys."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.encryption import ENCRYPTION_CONFIG
from components.cluster.secrets_rewrite import REWRITE
from tests.conftest import ROOT, STACKS, edited, require_tool
from tools.plan import references
from tools.plan.runner import Plan

LOCAL = "command:local:Command"


def _configs(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each node configuration's EncryptionConfiguration (parsed), by converge command."""
    out = {}
    for r in plan.by_type("command:remote:Command"):
        if r.name.endswith("-converge"):
            for f in yaml.safe_load(r.raw_inputs["stdin"])["write_files"]:
                if f["path"] == ENCRYPTION_CONFIG:
                    out[r.name] = yaml.safe_load(f["content"])
    return out


def _keys(config: dict[str, Any]) -> list[str]:
    return [k["name"] for k in config["resources"][0]["providers"][0]["secretbox"]["keys"]]


@pytest.mark.parametrize("stack", STACKS)
def test_every_controller_and_no_worker_has_the_same_keys(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    controllers = {f"{n['hostname']}-converge" for n in plan.outputs["nodes"] if n["role"] == "controller"}
    configs = _configs(plan)
    assert set(configs) == controllers
    assert len({yaml.safe_dump(c) for c in configs.values()}) == 1, "one key set for every API server"
    assert _keys(next(iter(configs.values()))) == ["key-1"]
    (rewrite,) = [r for r in plan.by_type(LOCAL) if r.name == "secrets-rewrite"]
    assert rewrite.raw_inputs["triggers"] == ["key-1"]
    # After the chain's last configuration step so far: every controller (they roll first).
    uncordons = {r.urn for r in plan.by_type(LOCAL) if r.name.endswith("-uncordon")}
    assert set(rewrite.dependencies) & uncordons, "it waits for the configuration chain"


def test_a_key_rotation_is_three_ups_and_the_rewrite_runs_when_the_encrypting_key_changes() -> None:
    def keys(generations: list[int]) -> Plan:
        def edit(cfg: dict[str, Any]) -> None:
            cfg["akiba:cluster"]["secretsEncryptionKeys"] = generations

        plan = references.plan(edited("dev", edit), ROOT)
        assert plan.resources
        return plan

    for generations, names, trigger in (
        ([1, 2], ["key-1", "key-2"], "key-1"),  # key-2 readable everywhere, key-1 still writes
        ([2, 1], ["key-2", "key-1"], "key-2"),  # key-2 writes: every Secret is rewritten with it
        ([2], ["key-2"], "key-2"),  # key-1 gone
    ):
        plan = keys(generations)
        (config,) = {yaml.safe_dump(c): c for c in _configs(plan).values()}.values()
        assert _keys(config) == names
        (rewrite,) = [r for r in plan.by_type(LOCAL) if r.name == "secrets-rewrite"]
        assert rewrite.raw_inputs["triggers"] == [trigger]


def test_the_rewrite_reads_and_writes_every_secret_and_retries_a_conflict(tmp_path: Path) -> None:
    """REWRITE as pulumi-command runs it (bash), against a stand-in kubectl whose first replace
    fails (a Secret changed in between), and one whose API never answers."""
    bash = require_tool("bash", "apt-get install bash")
    log = tmp_path / "kubectl.log"
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(
        "#!/bin/sh\n"
        "shift 2  # --kubeconfig FILE\n"
        f'echo "$*" >> {log}\n'
        'case "$1" in get) echo \'{"kind": "List", "items": []}\' ;; '
        f'replace) cat >/dev/null; [ "$(grep -c ^replace {log})" -ge 2 ] || exit 1 ;; esac\n'
    )
    kubectl.chmod(0o755)
    env = {"PATH": f"{kubectl.parent}:/usr/bin:/bin", "AKIBA_KUBECONFIG": "apiVersion: v1"}
    script = REWRITE.replace("sleep 10", "sleep 0")
    subprocess.run([bash, "-c", script], env=env, check=True)
    # Two rounds of read | write (the two sides of a pipe log in either order).
    assert sorted(log.read_text().splitlines()) == ["get secrets --all-namespaces -o json"] * 2 + ["replace -f -"] * 2
    kubectl.write_text("#!/bin/sh\necho 'connection refused' >&2\nexit 1\n")
    assert subprocess.run([bash, "-c", script], env=env, check=False, capture_output=True).returncode != 0
