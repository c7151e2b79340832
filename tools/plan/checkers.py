"""The real checkers every rendered artifact must pass.

cloud-init schema (cloud-init), kubernetes-validate --strict (Kubernetes' own OpenAPI
schemas, built-in kinds), the CRDs' schemas for custom resources (tools/plan/crds.py), and
netplan generate (netplan.io). A checker that is not installed (or a CRD directory that is
missing) is an error, unless the caller allows skipping (a laptop); CI never does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools.plan import crd_sources, crds

# API groups whose kinds kubernetes-validate knows (its definitions, 1.25 to 1.37; a test keeps
# this in step). Any other group with a dot (ceph.rook.io, snapshot.storage.k8s.io, ...) is a
# custom resource, checked against its CRD.
BUILTIN_GROUPS = frozenset(
    {
        *("", "apps", "autoscaling", "batch", "extensions", "policy"),
        *("admission.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io"),
        *("authentication.k8s.io", "authorization.k8s.io", "certificates.k8s.io", "coordination.k8s.io"),
        *("discovery.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io", "imagepolicy.k8s.io"),
        *("internal.apiserver.k8s.io", "lifecycle.k8s.io", "networking.k8s.io", "node.k8s.io"),
        *("rbac.authorization.k8s.io", "resource.k8s.io", "scheduling.k8s.io", "storage.k8s.io"),
        "storagemigration.k8s.io",
    }
)


@dataclass(frozen=True)
class Finding:
    artifact: Path
    checker: str
    message: str

    def __str__(self) -> str:
        return f"{self.artifact}: {self.checker}: {self.message.strip()}"


class MissingCheckerError(Exception):
    def __init__(self, tool: str, install: str, problem: str = "is not installed") -> None:
        super().__init__(f"{tool} {problem} ({install})")
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


def is_builtin(api_version: str) -> bool:
    """Whether kubernetes-validate checks this apiVersion (else it is a custom resource)."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group in BUILTIN_GROUPS


def _api_version(path: Path) -> str:
    doc = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    return str(doc.get("apiVersion", "")) if isinstance(doc, dict) else ""


def split_manifests(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(built-in kinds, custom resources), each manifest file holding one object."""
    builtin: list[Path] = []
    custom: list[Path] = []
    for path in paths:
        (builtin if is_builtin(_api_version(path)) else custom).append(path)
    return builtin, custom


def kubernetes(paths: list[Path], kubernetes_version: str) -> list[Finding]:
    """kubernetes-validate --strict on the built-in kinds among these manifests."""
    paths = split_manifests(paths)[0]
    if not paths:
        return []
    exe = _tool("kubernetes-validate", "pip install kubernetes-validate (in requirements-dev.txt)")
    minor = ".".join(kubernetes_version.split(".")[:2]) + ".0"
    findings = []
    for path in paths:  # one call each, so a failure names its file
        res = _run([exe, "--strict", "--quiet", "-k", minor, str(path)])
        # An apiVersion/kind it has no schema for is only a warning there: not here.
        if res.returncode != 0 or "Couldn't find schema" in res.stdout + res.stderr:
            findings.append(Finding(path, f"kubernetes-validate --strict -k {minor}", res.stdout + res.stderr))
    return findings


def custom_resources(paths: list[Path], crd_dir: Path | None) -> list[Finding]:
    """The custom resources among these manifests against their CRDs' schemas, strictly."""
    if crd_dir is None or not crd_dir.is_dir():
        fix = f"set {crds.ENV} to a directory from `python -m tools.plan.crds fetch --dest DIR`"
        raise MissingCheckerError(f"CRD directory {crd_dir or '../shared/crds'}", fix, "is missing")
    mismatched = crd_sources.verify(crd_dir)
    if mismatched:
        return [Finding(crd_dir, "CRD files", "\n".join(mismatched))]
    paths = split_manifests(paths)[1]
    if not paths:
        return []
    index = crds.load_dir(crd_dir)
    findings = []
    for path, problems in crds.validate_files(paths, index).items():
        findings.append(Finding(path, "CRD schema", "\n  ".join(str(p) for p in problems)))
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


def libvirt_domains(domains: list[tuple[Path, Path, Path]]) -> list[Finding]:
    """The provider's XML through the VM's XSLT (as the provider does, with xsltproc), written
    next to it, then checked with libvirt's own schema (virt-xml-validate)."""
    if not domains:
        return []
    from components.machines.vm_domain_xml import XsltError, apply_xslt

    xsltproc = _tool("xsltproc", "apt-get install xsltproc")
    validate = _tool("virt-xml-validate", "apt-get install libvirt-clients libxml2-utils")
    findings = []
    for provider, xslt, final in domains:
        try:
            final.write_text(apply_xslt(provider.read_text(), xslt.read_text(), xsltproc=xsltproc))
        except XsltError as err:
            findings.append(Finding(xslt, "xsltproc", str(err)))
            continue
        res = _run([validate, str(final), "domain"])
        if res.returncode != 0:
            findings.append(Finding(final, "virt-xml-validate", res.stdout + res.stderr))
    return findings
