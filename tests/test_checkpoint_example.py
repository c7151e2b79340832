"""examples/checkpoint: the Job is valid and preemptible the platform's way, and the script,
stopped with SIGTERM as Kubernetes stops a preempted pod, resumes where it left off and ends with
the numbers an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.priorities import BATCH
from components.tenants.names import HOME_CLAIM, engineer_namespace
from tests.conftest import ROOT, config_values, require_tool
from tools.plan import checkers

EXAMPLE = ROOT / "examples" / "checkpoint"
SCRIPT = EXAMPLE / "train.py"
STEPS, EVERY = 400, 10


def job() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLE / "job.yaml").read_text())
    return manifest


def start(home: Path, *extra: str, step_seconds: float = 0.0) -> subprocess.Popen[str]:
    argv = [sys.executable, str(SCRIPT), "--steps", str(STEPS), "--every", str(EVERY), "--name", "run", *extra]
    env = {**os.environ, "HOME": str(home)}
    return subprocess.Popen([*argv, "--step-seconds", str(step_seconds)], env=env, stdout=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, list[str]]:
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out.splitlines()


def state(home: Path) -> dict[str, Any]:
    saved: dict[str, Any] = json.loads((home / "checkpoints" / "run" / "state.json").read_text())
    return saved


@pytest.mark.checker
def test_the_job_is_valid_for_the_clusters_kubernetes() -> None:
    require_tool("kubernetes-validate", "pip install kubernetes-validate")
    version = config_values("prod")["akiba:cluster"]["kubernetesVersion"]
    assert checkers.kubernetes([EXAMPLE / "job.yaml"], version) == []


def test_the_job_is_batch_and_an_eviction_is_not_a_failure() -> None:
    spec = job()["spec"]
    pod = spec["template"]["spec"]
    assert pod["priorityClassName"] == BATCH
    assert pod["restartPolicy"] == "Never"  # the API refuses podFailurePolicy otherwise
    ignored = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "Ignore"]
    assert [c["type"] for r in ignored for c in r["onPodConditions"]] == ["DisruptionTarget"]
    assert pod["terminationGracePeriodSeconds"] >= 30


def test_the_job_runs_as_its_engineer_with_their_home_as_home() -> None:
    manifest = job()
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    home = env["HOME"]["value"]
    login = home.removeprefix("/home/")
    engineers = {e["name"]: e for e in config_values("prod")["akiba:engineers"]}
    assert pod["securityContext"]["runAsUser"] == engineers[login]["uid"]
    assert manifest["metadata"]["namespace"] == engineer_namespace(login)  # where their home claim is
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == home]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == HOME_CLAIM
    assert f"{home}/checkpoint/train.py" in container["command"]
    assert "batch.kubernetes.io/job-name" in env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]


def test_a_preempted_run_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    straight, preempted = tmp_path / "straight", tmp_path / "preempted"
    code, out = finish(start(straight))
    assert code == 0, out
    expected = out[-1]
    assert expected.startswith("done: ")

    proc = start(preempted, step_seconds=0.01)  # 4 s in all: stopped well before the end
    checkpoint = preempted / "checkpoints" / "run" / "state.json"
    deadline = time.monotonic() + 30
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint within 30 s"
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == 143, out  # not 0: a pod that exits 0 has succeeded and the Job would be complete
    stopped_at = state(preempted)["step"]
    assert EVERY <= stopped_at < STEPS
    assert out[-1] == f"preempted: checkpoint at step {stopped_at}"
    assert [p.name for p in checkpoint.parent.iterdir()] == ["state.json"]  # no temporary left behind

    code, out = finish(start(preempted))
    assert code == 0, out
    assert out[0] == f"resume: step {stopped_at} of {STEPS} from {checkpoint}"
    assert out[-1] == expected


def test_a_torn_temporary_file_is_never_read(tmp_path: Path) -> None:
    """A pod killed mid-write leaves a temporary file, never a half-written state.json."""
    code, out = finish(start(tmp_path))
    assert code == 0
    done = state(tmp_path)
    (tmp_path / "checkpoints" / "run" / ".state.json.1.tmp").write_text('{"step": ')
    code, again = finish(start(tmp_path))
    assert (
        code == 0 and again[0] == f"resume: step {done['step']} of {STEPS} from {tmp_path}/checkpoints/run/state.json"
    )
    assert again[-1] == out[-1]


def test_a_checkpoint_of_another_run_length_is_a_usage_error(tmp_path: Path) -> None:
    assert finish(start(tmp_path))[0] == 0
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", str(STEPS * 2), "--name", "run"],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2  # the Job's podFailurePolicy fails the Job on it: retrying cannot help
    assert f"is a run of {STEPS} steps, not {STEPS * 2}" in proc.stderr
