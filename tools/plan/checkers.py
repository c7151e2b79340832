"""The real checkers every rendered artifact must pass.

cloud-init schema (cloud-init), kubernetes-validate --strict (Kubernetes' own OpenAPI
schemas, built-in kinds), the CRDs' schemas for custom resources (tools/plan/crds.py),
netplan generate (netplan.io) and libvirt's domain schema (xsltproc + virt-xml-validate). A
checker that is not installed (or a CRD directory that is missing) is an error, unless the
caller allows skipping (a laptop); CI never does.

Each checker takes the whole batch at once and pays its start-up once, with the checker's own
code: cloud-init's library validates every user-data in one system-python3 worker
(tools/plan/cloudinit_worker.py), netplan's library makes its generator's calls in one worker
per core (tools/plan/netplan_worker.py), kubernetes-validate's library runs in this process with
each schema file parsed once, and the libvirt tools run in parallel. If a batch worker cannot
run, the CLI or generator itself checks each file. Every finding names its file.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tools.plan import crd_sources, crds, netplan_worker

T = TypeVar("T")
R = TypeVar("R")
CLOUD_INIT_WORKER = Path(__file__).with_name("cloudinit_worker.py")
NETPLAN_WORKER = Path(__file__).with_name("netplan_worker.py")
NETPLAN_FILE = "60-akiba-bond.yaml"  # its name on the node (tools/plan/artifacts.py NETPLAN_PATH)

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


def _parallel(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`work` on every item, one thread per core: each thread waits on a child process."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(work, items))


def _interpreter(script: str) -> str:
    """The Python a console script runs under: its shebang."""
    with open(script, "rb") as f:
        first = f.readline().decode(errors="replace")
    command = first[2:].split() if first.startswith("#!") else []
    if len(command) > 1 and Path(command[0]).name == "env":  # #!/usr/bin/env python3
        command = [shutil.which(command[1]) or command[1]]
    if not command or "python" not in Path(command[0]).name:
        raise MissingCheckerError(script, "apt-get install cloud-init", "is not a Python script")
    return command[0]


class _WorkerExitError(Exception):
    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(f"exited {code}: {stderr.strip()}")
        self.code = code


def _batch(command: list[str], paths: list[Path], processes: int = 1) -> list[dict[str, Any]]:
    """A worker's results for these files: the paths as a JSON list on its stdin, one result each,
    in order, as a JSON list on its stdout; split between `processes` workers run at once."""
    size = -(-len(paths) // max(1, min(processes, len(paths))))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]

    def run(chunk: list[Path]) -> list[dict[str, Any]]:
        proc = subprocess.run(
            command, input=json.dumps([str(p) for p in chunk]), capture_output=True, text=True, check=False, timeout=600
        )
        if proc.returncode != 0:
            raise _WorkerExitError(proc.returncode, proc.stderr)
        results: list[dict[str, Any]] = json.loads(proc.stdout)
        return results

    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return [result for results in pool.map(run, chunks) for result in results]


def _findings(checker: str, paths: list[Path], results: list[dict[str, Any]]) -> list[Finding]:
    return [Finding(path, checker, r["output"]) for path, r in zip(paths, results, strict=True) if not r["valid"]]


def cloud_init(paths: list[Path]) -> list[Finding]:
    """`cloud-init schema --config-file` on each file, all in one process of cloud-init's own
    Python (tools/plan/cloudinit_worker.py says how it stays the CLI)."""
    python = _interpreter(_tool("cloud-init", "apt-get install cloud-init"))
    if not paths:
        return []
    try:
        results = _batch([python, "-I", str(CLOUD_INIT_WORKER)], paths)
    except _WorkerExitError as err:
        if err.code == 3:  # the worker's "cannot import cloudinit"
            raise MissingCheckerError("cloud-init", "apt-get install cloud-init", str(err)) from err
        # The batch only saves time: if it dies, the CLI itself checks each file (and names it).
        print(f"warning: {CLOUD_INIT_WORKER.name} {err}; running `cloud-init schema` per file", file=sys.stderr)
        return cloud_init_cli(paths)
    return _findings("cloud-init schema", paths, results)


def cloud_init_cli(paths: list[Path]) -> list[Finding]:
    """`cloud-init schema --config-file` once per file, in parallel."""
    exe = _tool("cloud-init", "apt-get install cloud-init")

    def check(path: Path) -> Finding | None:
        res = _run([exe, "schema", "--config-file", str(path)])
        if res.returncode != 0 or "Valid" not in res.stdout:
            return Finding(path, "cloud-init schema", res.stdout + res.stderr)
        return None

    return [f for f in _parallel(check, paths) if f]


def is_builtin(api_version: str) -> bool:
    """Whether kubernetes-validate checks this apiVersion (else it is a custom resource)."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group in BUILTIN_GROUPS


def _api_version(path: Path) -> str:
    stat = path.stat()
    return _api_version_of(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _api_version_of(path: Path, mtime_ns: int, size: int) -> str:
    """Parsed once per version of the file: both manifest checkers split the same files."""
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
    """kubernetes-validate --strict on the built-in kinds among these manifests: the library the
    CLI wraps, in this process, with the CLI's reading and messages (kubernetes_validate/utils.py,
    validate_file and validate_resource)."""
    paths = split_manifests(paths)[0]
    if not paths:
        return []
    _tool("kubernetes-validate", "pip install kubernetes-validate (in requirements-dev.txt)")
    utils = _kubernetes_validate()
    minor = ".".join(kubernetes_version.split(".")[:2]) + ".0"
    checker = f"kubernetes-validate --strict -k {minor}"
    findings = []
    for path in paths:
        try:
            resources = _resources_from_file(utils, path)
        except SystemExit as err:  # how the library reports a file it cannot read or parse
            findings.append(Finding(path, checker, str(err)))
            continue
        messages = [m for resource in resources if (m := _validate_resource(utils, resource, str(path), minor))]
        if messages:
            findings.append(Finding(path, checker, "\n".join(messages)))
    return findings


def _resources_from_file(utils: Any, path: Path) -> list[dict[str, Any]]:
    """The CLI's reading (utils.resources_from_file: every non-empty document, its constructor for
    '=' values) on libyaml's parser instead of PyYAML's pure-Python one; a file libyaml rejects
    goes through the CLI's own reader, for its message."""
    try:
        return [doc for doc in yaml.load_all(path.read_text(), Loader=_kubernetes_loader(utils)) if doc]
    except yaml.YAMLError:
        resources: list[dict[str, Any]] = utils.resources_from_file(str(path))
        return resources


@functools.cache
def _kubernetes_loader(utils: Any) -> Any:
    class Loader(yaml.CSafeLoader):
        pass

    Loader.add_constructor("tag:yaml.org,2002:value", utils.construct_value)
    return Loader


def _validate_resource(utils: Any, resource: dict[str, Any], filename: str, version: str) -> str | None:
    """What `kubernetes-validate --strict --quiet` prints for one object; None when it passes.
    An apiVersion/kind it has no schema for is only a warning there: here it is a finding."""
    try:
        utils.validate(resource, version, True)
    except utils.ValidationError as e:
        where = ".".join(str(item) for item in e.path)
        return (
            f"ERROR {filename} did not validate for resource {utils.kn(resource)} "
            f"against version {e.version}: {where}: {e.message}"
        )
    except (utils.SchemaNotFoundError, utils.InvalidSchemaError) as e:
        return f"WARN {filename} {e.message}"
    except utils.VersionNotSupportedError:
        return f"FATAL kubernetes-validate {utils.__version__} does not support kubernetes version {version}"
    except Exception as e:
        return f"ERROR {filename} could not be validated: {e}"
    return None


@functools.cache
def _kubernetes_validate() -> Any:
    """kubernetes_validate.utils, its schema loader memoised: `validate()` reads and parses the
    schema of the kind and the 1.6 MB `_definitions.json` from disk on every call (utils.py,
    schema_contents), which was most of the time of validating a manifest. The loader is a pure
    function of (file, version) and the library never mutates what it returns."""
    try:
        from kubernetes_validate import utils
    except ImportError as err:
        raise MissingCheckerError(
            "kubernetes-validate", "pip install kubernetes-validate", "is not importable"
        ) from err
    utils.schema_contents = functools.cache(utils.schema_contents)
    return utils


def custom_resources(paths: list[Path], crd_dir: Path | None) -> list[Finding]:
    """The custom resources among these manifests against their CRDs' schemas, strictly."""
    if crd_dir is None or not crd_dir.is_dir():
        fix = f"`make crds` fills the cache, or set {crds.ENV} to a directory from `make crds CRD_DIR=DIR`"
        raise MissingCheckerError(f"CRD directory {crd_dir or '(none)'}", fix, "is missing")
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
    """`netplan generate` on each file alone (files in one root would merge: every node declares
    bond0): netplan's own library makes the generator's calls in worker processes
    (tools/plan/netplan_worker.py); where that API is private (netplan >= 1.0), the generator
    itself runs once per file, in parallel."""
    _tool("netplan", "apt-get install netplan.io")
    generator = _netplan_generator()
    if not paths:
        return []
    try:
        results = _batch([sys.executable, "-I", str(NETPLAN_WORKER)], paths, os.cpu_count() or 2)
    except _WorkerExitError as err:
        if err.code != netplan_worker.API_MISSING:  # the batch died: the generator names the file
            print(f"warning: {NETPLAN_WORKER.name} {err}; running netplan's generator per file", file=sys.stderr)
        return netplan_generate(paths, generator)
    return _findings("netplan generate", paths, results)


def _netplan_generator() -> str:
    """What `netplan generate` execs: the CLI is a Python wrapper that runs netplan's generator
    with --root-dir (netplan.io 0.106, netplan/cli/commands/generate.py and get_generator_path in
    netplan/cli/utils.py); its interpreter start costs more than the check, so run the generator."""
    generator = os.environ.get("NETPLAN_GENERATE_PATH", "/lib/netplan/generate")
    if not os.access(generator, os.X_OK):
        raise MissingCheckerError(f"netplan's generator {generator}", "apt-get install netplan.io", "is missing")
    return generator


def netplan_generate(paths: list[Path], generator: str) -> list[Finding]:
    """The generator once per file, each under a root of its own thread, in parallel."""
    with tempfile.TemporaryDirectory(prefix="akiba-netplan-", dir=netplan_worker.scratch()) as tmp:
        # One root per thread, reused: generate reads only <root>/{lib,etc,run}/netplan/*.yaml
        # and clears the files it generated last time itself.
        roots: queue.SimpleQueue[Path] = queue.SimpleQueue()
        for i in range(os.cpu_count() or 2):
            (Path(tmp, str(i)) / "etc/netplan").mkdir(parents=True)
            roots.put(Path(tmp, str(i)))

        def generate(path: Path) -> Finding | None:
            root = roots.get()
            try:
                return _generate(generator, path, root)
            finally:
                roots.put(root)

        return [f for f in _parallel(generate, paths) if f]


def _generate(generator: str, path: Path, root: Path) -> Finding | None:
    target = root / "etc/netplan" / NETPLAN_FILE
    target.unlink(missing_ok=True)
    # 0600 as on the node: netplan warns about configuration readable by others.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(path.read_bytes())
    res = _run([generator, "--root-dir", str(root)])
    if res.returncode != 0 or "Error" in res.stderr:
        return Finding(path, "netplan generate", (res.stderr + res.stdout).replace(str(target), str(path)))
    return None


def libvirt_domains(domains: list[tuple[Path, Path, Path]]) -> list[Finding]:
    """The provider's XML through the VM's XSLT (as the provider does, with xsltproc), written
    next to it, then checked with libvirt's own schema (virt-xml-validate); domains in parallel."""
    if not domains:
        return []
    from components.machines.vm_domain_xml import XsltError, apply_xslt

    xsltproc = _tool("xsltproc", "apt-get install xsltproc")
    validate = _tool("virt-xml-validate", "apt-get install libvirt-clients libxml2-utils")

    def check(domain: tuple[Path, Path, Path]) -> Finding | None:
        provider, xslt, final = domain
        try:
            final.write_text(apply_xslt(provider.read_text(), xslt.read_text(), xsltproc=xsltproc))
        except XsltError as err:
            return Finding(xslt, "xsltproc", str(err))
        res = _run([validate, str(final), "domain"])
        if res.returncode != 0:
            return Finding(final, "virt-xml-validate", res.stdout + res.stderr)
        return None

    return [f for f in _parallel(check, domains) if f]
