"""The real checkers every rendered artifact must pass.

cloud-init schema (cloud-init), kubernetes-validate --strict (Kubernetes' own OpenAPI
schemas), and netplan generate (netplan.io). A checker that is not installed is an error,
unless the caller allows skipping (a laptop); CI never does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Finding:
    artifact: Path
    checker: str
    message: str

    def __str__(self) -> str:
        return f"{self.artifact}: {self.checker}: {self.message.strip()}"


class MissingCheckerError(Exception):
    def __init__(self, tool: str, install: str) -> None:
        super().__init__(f"{tool} is not installed ({install})")
        self.tool = tool


def _tool(name: str, install: str) -> str:
    # Look beside the running interpreter too (the venv's console scripts).
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise MissingCheckerError(name, install)
    return found


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=300)


def cloud_init(paths: list[Path]) -> list[Finding]:
    exe = _tool("cloud-init", "apt-get install cloud-init")
    findings = []
    batch = os.cpu_count() or 2
    for start in range(0, len(paths), batch):  # a few processes at once, no threads
        chunk = paths[start : start + batch]
        procs = [
            subprocess.Popen(
                [exe, "schema", "--config-file", str(p)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for p in chunk
        ]
        for path, proc in zip(chunk, procs, strict=True):
            out, _ = proc.communicate(timeout=300)
            if proc.returncode != 0 or "Valid" not in out:
                findings.append(Finding(path, "cloud-init schema", out))
    return findings


def kubernetes(paths: list[Path], kubernetes_version: str) -> list[Finding]:
    if not paths:
        return []
    exe = _tool("kubernetes-validate", "pip install kubernetes-validate (in requirements-dev.txt)")
    minor = ".".join(kubernetes_version.split(".")[:2]) + ".0"
    findings = []
    for path in paths:  # one call each, so a failure names its file
        res = _run([exe, "--strict", "--quiet", "-k", minor, str(path)])
        if res.returncode != 0:
            findings.append(Finding(path, f"kubernetes-validate --strict -k {minor}", res.stdout + res.stderr))
    return findings


def netplan(paths: list[Path]) -> list[Finding]:
    exe = _tool("netplan", "apt-get install netplan.io")
    findings = []
    for path in paths:
        with tempfile.TemporaryDirectory() as root:
            target = Path(root, "etc/netplan")
            target.mkdir(parents=True)
            shutil.copy(path, target / "60-akiba-bond.yaml")
            (target / "60-akiba-bond.yaml").chmod(0o600)
            res = _run([exe, "generate", "--root-dir", root])
            if res.returncode != 0 or "Error" in res.stderr:
                findings.append(Finding(path, "netplan generate", res.stderr + res.stdout))
    return findings
