"""The workflows validate against GitHub's workflow schema and keep their promises: no
credentials for the offline review, a pull request's code never near prod's credentials,
deploys in the stacks' dependency order (prod before dev, which reads prod's outputs) on
runners inside the office network, prod after approval, and no image built on a preview."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, STACKS, require_tool, stack_file
from tools.plan.references import referenced_stacks
from tools.plan.runner import Plan

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


OFFICE_RUNNER = ["self-hosted", "linux", "x64", "akiba-office"]


def _pulumi_step(job: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")), None)


def _secrets(value: Any) -> set[str]:
    return set(re.findall(r"secrets\.([A-Za-z_]+)", json.dumps(value)))


def test_offline_review_needs_no_credentials() -> None:
    pr = _load("pull-request.yml")
    offline = pr["jobs"]["offline-plan"]
    assert _secrets(offline) == set() and "environment" not in offline
    assert offline["runs-on"] == "ubuntu-24.04", "untrusted code, no office network needed"
    text = json.dumps(offline)
    assert "make plan-diff" in text and "bash .ci/run" in text
    assert offline["env"]["AKIBA_CRD_DIR"] and "make crds" in text, "the pinned CRDs, fetched once into a cache"


def test_pull_requests_never_get_prods_credentials() -> None:
    pr = _load("pull-request.yml")
    assert set(pr["on"]) == {"pull_request"}, "never pull_request_target (it hands secrets to PR code)"
    text = json.dumps(pr)
    assert "production" not in text and "/akiba/prod" not in text
    for name, job in pr["jobs"].items():
        used = _secrets(job) - {"GITHUB_TOKEN"}
        assert not used or job.get("environment") == "preview", f"{name}: secrets only from the preview environment"
    preview = pr["jobs"]["preview"]
    assert "strategy" not in preview and preview["environment"] == "preview"
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    action = _pulumi_step(preview)
    assert action is not None and action["with"]["command"] == "preview" and action["with"]["policyPacks"] == "policy"
    assert action["with"]["stack-name"].endswith("/akiba/dev")


def test_deploy_follows_the_stacks_dependencies() -> None:
    jobs = _load("deploy.yml")["jobs"]
    assert set(jobs) == set(STACKS)
    for stack in STACKS:
        needs = jobs[stack].get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        wanted = [ref.rsplit("/", 1)[-1] for ref in referenced_stacks(stack_file(stack))]
        assert needs == wanted, f"{stack} deploys after the stacks it reads through a StackReference"
    assert jobs["dev"]["needs"] == "prod" and "needs" not in jobs["prod"], "dev reads prod's outputs"


def test_merge_deploys_prod_after_approval_then_dev() -> None:
    deploy = _load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert jobs["prod"]["environment"] == "production" and jobs["dev"]["environment"] == "dev"
    for name in ("dev", "prod"):
        up = _pulumi_step(jobs[name])
        assert up is not None and up["with"]["command"] == "up" and up["with"]["stack-name"].endswith(f"/akiba/{name}")
        assert _secrets(jobs[name]) == {"PULUMI_ACCESS_TOKEN"}, "the token of the job's own environment"


def test_jobs_that_reach_the_stacks_run_inside_the_office_network() -> None:
    jobs = [job for name in ("deploy.yml", "pull-request.yml") for job in _load(name)["jobs"].values()]
    real = [job for job in jobs if _pulumi_step(job)]
    assert len(real) == 3
    assert all(job["runs-on"] == OFFICE_RUNNER for job in real)


@pytest.mark.parametrize("stack", STACKS)
def test_no_image_is_built_on_a_preview(plans: dict[str, Plan], stack: str) -> None:
    images = plans[stack].by_type("docker-build:index:Image")
    assert images, "the plan builds images"
    assert all(image.raw_inputs.get("buildOnPreview") is False for image in images), "the SDK defaults it to true"
