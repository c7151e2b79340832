"""The review workflows validate against GitHub's workflow schema and keep their promises:
no credentials for the offline review, dev deploys on merge, prod waits for approval."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, require_tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _load(name: str) -> dict[str, Any]:
    # BaseLoader: every scalar a string, so the `on:` key stays "on" (YAML 1.1 reads it as true).
    text = (ROOT / ".github" / "workflows" / name).read_text()
    doc: dict[str, Any] = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader builds no objects)
    return doc


def test_workflows_pass_the_github_workflow_schema() -> None:
    exe = require_tool("check-jsonschema", "pip install check-jsonschema")
    assert len(WORKFLOWS) == 2
    res = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    exe = require_tool("check-jsonschema", "pip install check-jsonschema")
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps: nope\n")
    res = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(bad)], capture_output=True, text=True, check=False
    )
    assert res.returncode != 0


def test_offline_review_needs_no_credentials() -> None:
    pr = _load("pull-request.yml")
    offline = json.dumps(pr["jobs"]["offline-plan"])
    assert "secrets." not in offline
    assert "make plan-diff" in offline and "bash .ci/run" in offline
    preview = pr["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    action = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview" and action["with"]["policyPacks"] == "policy"


def test_merge_deploys_dev_and_prod_waits_for_approval() -> None:
    deploy = _load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert jobs["prod"]["needs"] == "dev" and jobs["prod"]["environment"] == "production"
    for name in ("dev", "prod"):
        up = next(s for s in jobs[name]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert up["with"]["command"] == "up" and up["with"]["stack-name"].endswith(f"/akiba/{name}")
