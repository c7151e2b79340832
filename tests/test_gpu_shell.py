"""akiba-gpu-shell (images/ml-runtime/akiba-gpu-shell): interactive GPUs through the scheduler.
Its pod passes Kubernetes' schema and Pod Security (restricted, so baseline too); the command
creates it, waits for the scheduler, opens the shell and always deletes the pod -- run here
against a stand-in kubectl that records what it was asked."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import stat
import subprocess
import sys
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from components.cluster.priorities import INTERACTIVE
from components.tenants.names import HOME_CLAIM, engineer_namespace
from stacks.gpus import GpuModel
from tests import pod_security
from tests.conftest import ROOT
from tools.plan import checkers

SCRIPT = ROOT / "images" / "ml-runtime" / "akiba-gpu-shell"
IMAGE = "registry.akiba.lan:30443/akiba/ml-runtime:2.13.0-cu126-1"


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("akiba_gpu_shell", str(SCRIPT))
    spec = importlib.util.spec_from_loader("akiba_gpu_shell", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


shell = _load()


def _pod(**over: Any) -> dict[str, Any]:
    args = {"name": "gpu-shell-tanaka-abc123", "login": "tanaka", "uid": 2001, "gid": 2001, "image": IMAGE, "gpus": 2}
    pod: dict[str, Any] = shell.pod_manifest(**(args | over))
    return pod


def test_pod_passes_the_kubernetes_schema_and_pod_security_restricted() -> None:
    pod = _pod(model="gtx-1080")
    utils = checkers._kubernetes_validate()
    assert checkers._validate_resource(utils, pod, "gpu-shell", "1.36.0") is None
    assert pod_security.restricted(pod) == []
    assert pod_security.baseline(pod) == []


def test_pod_asks_the_scheduler_for_the_gpus_and_gets_only_the_engineers_home() -> None:
    pod = _pod(model="gtx-1080")
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == engineer_namespace("tanaka")
    (c,) = spec["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "NVIDIA_VISIBLE_DEVICES" not in {e["name"] for e in c["env"]}
    assert spec["volumes"] == [{"name": "home", "persistentVolumeClaim": {"claimName": HOME_CLAIM}}]
    assert c["volumeMounts"] == [{"name": "home", "mountPath": "/home/tanaka"}]
    assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (2001, 2001)
    assert spec["nodeSelector"] == {"akiba.io/gpu-model": "gtx-1080"}
    assert spec["priorityClassName"] == INTERACTIVE
    assert spec["activeDeadlineSeconds"] == 12 * 3600  # a forgotten shell gives its GPUs back
    assert "tolerations" not in spec  # never on a paid burst node (GPU taint)
    assert "nodeSelector" not in _pod()["spec"]


def test_models_are_the_platforms() -> None:
    assert set(shell.MODELS) == set(typing.get_args(GpuModel))


def test_zero_gpus_and_no_image_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AKIBA_ML_IMAGE", raising=False)
    with pytest.raises(SystemExit):
        shell.parse(["0", "--image", IMAGE])
    with pytest.raises(SystemExit):
        shell.parse([])
    assert "AKIBA_ML_IMAGE" in capsys.readouterr().err
    args = shell.parse(["3", "--model", "rtx-3090", "--image", IMAGE, "--", "python", "train.py", "--epochs", "3"])
    assert (args.gpus, args.model, args.command) == (3, "rtx-3090", ["python", "train.py", "--epochs", "3"])


# A stand-in kubectl: records each call (and the manifest on stdin); `get pod` answers Pending
# (no free GPU) the first time, then what $FAKE_PHASE says; `exec` exits $FAKE_EXEC_RC.
FAKE_KUBECTL = """#!/usr/bin/env python3
import json, os, sys
log = os.environ["FAKE_LOG"]
calls = json.load(open(log)) if os.path.exists(log) else []
entry = {"argv": sys.argv[1:]}
if "create" in sys.argv:
    entry["stdin"] = json.loads(sys.stdin.read())
calls.append(entry)
json.dump(calls, open(log, "w"))
if "get" in sys.argv:
    first = sum("get" in c["argv"] for c in calls) == 1
    if first:
        status = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                  "reason": "Unschedulable", "message": "0/5 nodes are available: 5 Insufficient nvidia.com/gpu."}]}
    else:
        status = {"phase": os.environ["FAKE_PHASE"], "message": "OOMKilled"}
    print(json.dumps({"status": status}))
if "exec" in sys.argv:
    sys.exit(int(os.environ["FAKE_EXEC_RC"]))
"""


def _run(
    tmp_path: Path, *args: str, phase: str = "Running", exec_rc: int = 0
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    kubectl = bindir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.replace("#!/usr/bin/env python3", f"#!{sys.executable}"))
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.json"
    env = os.environ | {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_PHASE": phase,
        "FAKE_EXEC_RC": str(exec_rc),
        "AKIBA_ML_IMAGE": IMAGE,
    }
    env.pop("KUBECONFIG", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return result, json.loads(log.read_text()) if log.exists() else []


def test_command_creates_waits_execs_and_deletes(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, "2", "--model", "gtx-1070", "--", "nvidia-smi")
    assert result.returncode == 0, result.stderr
    verbs = [next(v for v in c["argv"] if v in ("create", "get", "exec", "delete")) for c in calls]
    assert verbs == ["create", "get", "get", "exec", "delete"]
    pod = calls[0]["stdin"]
    name = pod["metadata"]["name"]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["spec"]["securityContext"]["runAsUser"] == os.getuid()
    assert calls[3]["argv"][-2:] == ["--", "nvidia-smi"] and name in calls[3]["argv"]
    assert name in calls[4]["argv"] and "--namespace" in calls[4]["argv"]
    assert "Insufficient nvidia.com/gpu" in result.stderr  # the engineer sees why it waits


def test_pod_is_deleted_when_the_shell_fails_or_the_pod_dies(tmp_path: Path) -> None:
    failed = tmp_path / "a"
    failed.mkdir()
    result, calls = _run(failed, exec_rc=7)
    assert result.returncode == 7
    assert "delete" in calls[-1]["argv"]
    died = tmp_path / "b"
    died.mkdir()
    result, calls = _run(died, phase="Failed")
    assert result.returncode == 1 and "ended (Failed)" in result.stderr
    assert not any("exec" in c["argv"] for c in calls) and "delete" in calls[-1]["argv"]


def test_the_image_installs_the_command() -> None:
    dockerfile = (ROOT / "images" / "ml-runtime" / "Dockerfile").read_text()
    assert "COPY --chmod=0755 akiba-gpu-shell /usr/local/bin/akiba-gpu-shell" in dockerfile
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    assert SCRIPT.read_text().startswith("#!/usr/bin/python3\n")  # the image's system python3, stdlib only
