"""The batched checkers stay the real checkers: in a batch of good files each one still fails the
broken file, names that file, and says what its CLI says (tools/plan/checkers.py and its
workers). Nothing here is timed: `make bench` measures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tools.plan import artifacts, checkers, netplan_worker
from tools.plan import crds as crd_module
from tools.plan.__main__ import check_artifacts
from tools.plan.runner import Plan

pytestmark = pytest.mark.checker

GOOD_USER_DATA = "#cloud-config\nhostname: {name}\npackage_update: true\nruncmd:\n- [echo, {name}]\n"
BROKEN_USER_DATA = "#cloud-config\nwrite_files:\n- path: /x\n  permissions: 644\n  bogus: 1\nruncmd: 5\n"
DEPRECATED_USER_DATA = "#cloud-config\napt_update: true\n"  # deprecated key: the CLI still says Valid
GOOD_NETPLAN = """network:
  version: 2
  ethernets:
    eno1: {{match: {{macaddress: "02:ab:00:00:00:{i:02x}"}}, set-name: eno1}}
    eno2: {{match: {{macaddress: "02:ab:01:00:00:{i:02x}"}}, set-name: eno2}}
  bonds:
    bond0:
      interfaces: [eno1, eno2]
      addresses: [10.0.0.{i}/24]
      parameters: {{mode: active-backup}}
"""
NETPLAN_CASES = {
    "undefined-member": "network:\n  version: 2\n  bonds:\n    bond0:\n      interfaces: [nosuchnic]\n",
    "bad-address": "network:\n  version: 2\n  ethernets:\n    eno1:\n      addresses: [10.0.0.300/24]\n",
    "unknown-key": "network:\n  version: 2\n  ethernets:\n    eno1:\n      bogus: 1\n",
    "bad-bond-mode": (
        "network:\n  version: 2\n  ethernets:\n    eno1: {}\n  bonds:\n    bond0:\n      interfaces: [eno1]\n"
        "      parameters:\n        mode: nonsense\n"
    ),
    "bad-yaml": "network:\n  version: 2\n  ethernets: [\n",
    "version-3": "network:\n  version: 3\n",
    "empty": "network:\n  version: 2\n",
    "deprecated-gateway": "network:\n  version: 2\n  ethernets:\n    eno1:\n      gateway4: 10.0.0.1\n",
    "vlan-wifi-nm": (
        "network:\n  version: 2\n  renderer: NetworkManager\n  ethernets:\n    eno1: {dhcp4: true}\n"
        "  vlans:\n    v10: {id: 10, link: eno1}\n  wifis:\n    wl0:\n      access-points:\n"
        '        x: {password: "12345678"}\n'
    ),
}
GOOD_MANIFEST = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-{i}"}}
BROKEN_MANIFEST = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labelz": {}}}


def _write(directory: Path, texts: dict[str, str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths


# --- cloud-init ----------------------------------------------------------------------------------


def _cloud_init_cli(path: Path) -> tuple[bool, str]:
    """What `cloud-init schema --config-file` says, as the checker used to read it."""
    proc = subprocess.run(
        [require_tool("cloud-init", "apt-get install cloud-init"), "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode == 0 and "Valid" in proc.stdout, proc.stdout + proc.stderr


def test_cloud_init_batch_names_the_broken_files_as_the_cli_does(tmp_path: Path) -> None:
    require_tool("cloud-init", "apt-get install cloud-init")
    texts = {f"node{i:02d}.yaml": GOOD_USER_DATA.format(name=f"node{i:02d}") for i in range(12)}
    texts |= {
        "broken.yaml": BROKEN_USER_DATA,
        "broken-twin.yaml": BROKEN_USER_DATA,  # the same text: each finding still names its own file
        "good-twin.yaml": GOOD_USER_DATA.format(name="node00"),
        "deprecated.yaml": DEPRECATED_USER_DATA,
        "no-header.yaml": "hostname: x\n",
        "not-yaml.yaml": "#cloud-config\na: [\n",
        "not-a-dict.yaml": "#cloud-config\n- 1\n",
    }
    paths = _write(tmp_path, texts)
    findings = {f.artifact.name: f for f in checkers.cloud_init(paths)}
    assert set(findings) == {"broken.yaml", "broken-twin.yaml", "no-header.yaml", "not-yaml.yaml", "not-a-dict.yaml"}
    assert "runcmd: 5 is not of type 'array'" in findings["broken.yaml"].message
    assert all(f.checker == "cloud-init schema" for f in findings.values())
    for path in paths:  # verdict and words are the CLI's, file by file
        valid, output = _cloud_init_cli(path)
        assert valid == (path.name not in findings), path.name
        if not valid:
            assert findings[path.name].message == output, path.name


def test_cloud_init_needs_cloud_inits_own_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The worker runs under the cloud-init script's interpreter; one without the library is a
    missing checker (CI fails, a laptop may skip), not a pass."""
    require_tool("cloud-init", "apt-get install cloud-init")
    monkeypatch.setattr(checkers, "_interpreter", lambda script: sys.executable)  # the venv: no cloudinit
    with pytest.raises(checkers.MissingCheckerError, match="cloud-init"):
        checkers.cloud_init(_write(tmp_path, {"a.yaml": GOOD_USER_DATA.format(name="a")}))


# --- netplan -------------------------------------------------------------------------------------


def _generator() -> str:
    require_tool("netplan", "apt-get install netplan.io")
    return checkers._netplan_generator()


def _glib_neutral(text: str) -> str:
    # GLib's warning prefix carries the process name, pid and time: "** (generate:123): WARNING **: 15:06:17.631:"
    return re.sub(r"\*\* \([^)]*\): (\w+) \*\*: [\d:.]+:", r"** \1 **:", text).strip()


def test_netplan_batch_names_the_broken_file(tmp_path: Path) -> None:
    _generator()
    texts = {f"node{i:02d}.yaml": GOOD_NETPLAN.format(i=i) for i in range(1, 21)}
    texts["broken.yaml"] = NETPLAN_CASES["undefined-member"]
    paths = _write(tmp_path, texts)
    (finding,) = checkers.netplan(paths)
    assert finding.artifact == tmp_path / "broken.yaml" and finding.checker == "netplan generate"
    assert f"{tmp_path / 'broken.yaml'}:5:20: Error in network definition: bond0: interface 'nosuchnic'" in (
        finding.message
    )


def test_netplan_library_path_says_what_the_generator_says(tmp_path: Path) -> None:
    """netplan_worker.py makes the generator's library calls: same verdict, same message, file by
    file, as the generator binary itself (GLib's pid/time prefix aside)."""
    generator = _generator()
    paths = _write(tmp_path, {f"{name}.yaml": text for name, text in NETPLAN_CASES.items()})
    paths += _write(tmp_path, {"good.yaml": GOOD_NETPLAN.format(i=7)})
    worker = subprocess.run(
        [sys.executable, "-I", str(checkers.NETPLAN_WORKER)],
        input=json.dumps([str(p) for p in paths]),
        capture_output=True,
        text=True,
        check=False,
    )
    if worker.returncode == netplan_worker.API_MISSING:
        pytest.skip(f"this netplan keeps the generator's API private: {worker.stderr.strip()}")
    assert worker.returncode == 0, worker.stderr
    by_library = {r["path"]: r for r in json.loads(worker.stdout)}
    by_generator = {f.artifact: f.message for f in checkers.netplan_generate(paths, generator)}
    assert len(by_generator) == 6, "the broken cases fail the generator"
    for path in paths:
        result = by_library[str(path)]
        assert result["valid"] == (path not in by_generator), path.name
        if path in by_generator:
            assert _glib_neutral(result["output"]) == _glib_neutral(by_generator[path]), path.name
    assert "`gateway4` has been deprecated" in by_library[str(tmp_path / "deprecated-gateway.yaml")]["output"]


@pytest.mark.parametrize(
    "worker",
    [f"import sys\nsys.exit({netplan_worker.API_MISSING})\n", "import os\nos.abort()\n"],
    ids=["api-private", "worker-died"],
)
def test_netplan_falls_back_to_the_generator(worker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where libnetplan keeps the writers private (netplan >= 1.0), or the batch dies, the
    generator runs per file: still the broken file, named."""
    _generator()
    script = tmp_path / "worker.py"
    script.write_text(worker)
    monkeypatch.setattr(checkers, "NETPLAN_WORKER", script)
    texts = {"good.yaml": GOOD_NETPLAN.format(i=3), "broken.yaml": NETPLAN_CASES["bad-address"]}
    paths = _write(tmp_path / "np", texts)
    (finding,) = checkers.netplan(paths)
    assert finding.artifact == paths[1] and "10.0.0.300/24" in finding.message


def test_cloud_init_falls_back_to_the_cli_when_the_batch_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("cloud-init", "apt-get install cloud-init")
    script = tmp_path / "worker.py"
    script.write_text("import os\nos.abort()\n")
    monkeypatch.setattr(checkers, "CLOUD_INIT_WORKER", script)
    paths = _write(tmp_path / "ud", {"good.yaml": GOOD_USER_DATA.format(name="a"), "broken.yaml": BROKEN_USER_DATA})
    (finding,) = checkers.cloud_init(paths)
    assert finding.artifact == paths[1] and "runcmd: 5 is not of type 'array'" in finding.message


# --- kubernetes-validate -------------------------------------------------------------------------


def test_kubernetes_batch_names_the_broken_file_as_the_cli_does(tmp_path: Path) -> None:
    cli = require_tool("kubernetes-validate", "pip install kubernetes-validate")
    texts = {f"ns{i}.yaml": json.dumps(GOOD_MANIFEST).replace("{i}", str(i)) for i in range(10)}
    texts["broken.yaml"] = json.dumps(BROKEN_MANIFEST)
    paths = _write(tmp_path, texts)
    (finding,) = checkers.kubernetes(paths, "1.36.4")
    assert finding.artifact == tmp_path / "broken.yaml"
    assert finding.checker == "kubernetes-validate --strict -k 1.36.0"
    proc = subprocess.run(
        [cli, "--strict", "--quiet", "-k", "1.36.0", str(tmp_path / "broken.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and finding.message == proc.stdout.strip()


# --- libvirt domains ------------------------------------------------------------------------------


def test_libvirt_domains_name_the_broken_domain(plans: dict[str, Plan], tmp_path: Path) -> None:
    require_tool("xsltproc", "apt-get install xsltproc")
    require_tool("virt-xml-validate", "apt-get install libvirt-clients libxml2-utils")
    art = artifacts.write(plans["prod"], tmp_path / "prod")
    assert plans["prod"].resources and art.domains, "prod declares a VM"
    provider, xslt, _ = art.domains[0]
    bad_provider = provider.with_name("bad.provider.xml")
    bad_provider.write_text(provider.read_text().replace("<devices>", "<devices><bogus/>", 1))
    bad_xslt = xslt.with_name("worse.xslt")
    bad_xslt.write_text(xslt.read_text()[:-40])  # cut short: not XML
    domains = [
        *art.domains,
        (bad_provider, xslt, provider.with_name("bad.xml")),
        (provider, bad_xslt, provider.with_name("worse.xml")),
    ]
    findings = {(f.checker, f.artifact.name) for f in checkers.libvirt_domains(domains)}
    assert findings == {("virt-xml-validate", "bad.xml"), ("xsltproc", "worse.xslt")}


# --- all of them, as `make plan` runs them --------------------------------------------------------


def test_check_artifacts_reports_each_broken_file(
    plans: dict[str, Plan], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for tool in ("cloud-init", "netplan", "kubernetes-validate", "xsltproc", "virt-xml-validate"):
        require_tool(tool, "the checkers (.ci/run)")
    crd_dir = crd_module.default_dir()
    if crd_dir is None or not crd_dir.is_dir():
        pytest.skip(f"no CRD directory: set {crd_module.ENV}")
    monkeypatch.delenv("AKIBA_ALLOW_MISSING_CHECKERS", raising=False)
    art = artifacts.write(plans["prod"], tmp_path / "prod")
    assert plans["prod"].resources and art.user_data and art.netplan and art.manifests and art.domains
    assert check_artifacts(art, "1.36.4") == 0, capsys.readouterr().err
    # One broken file of each kind, among the plan's own.
    bad = {
        "user-data": art.user_data[0].with_name("zz-broken.yaml"),
        "netplan": art.netplan[0].with_name("zz-broken.yaml"),
        "manifest": art.manifests[0].with_name("zz-broken.yaml"),
    }
    bad["user-data"].write_text(BROKEN_USER_DATA)
    bad["netplan"].write_text(NETPLAN_CASES["undefined-member"])
    bad["manifest"].write_text(json.dumps(BROKEN_MANIFEST))
    art.user_data.append(bad["user-data"])
    art.netplan.append(bad["netplan"])
    art.manifests.append(bad["manifest"])
    capsys.readouterr()
    assert check_artifacts(art, "1.36.4") == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "checked cloud-init schema: 1 invalid",
        "checked netplan generate: 1 invalid",
        "checked kubernetes-validate --strict: 1 invalid",
        "checked CRD schemas: ok",
        "checked libvirt domains (xsltproc + virt-xml-validate): ok",
    ]
    assert f"{bad['user-data']}: cloud-init schema: " in err
    assert f"{bad['netplan']}: netplan generate: " in err
    assert f"{bad['manifest']}: kubernetes-validate --strict -k 1.36.0: " in err


@pytest.mark.parametrize("ci", [True, False])
def test_a_missing_checker_fails_ci_and_is_skipped_on_a_laptop(
    ci: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)  # nothing installed
    monkeypatch.setenv("AKIBA_ALLOW_MISSING_CHECKERS", "1")
    monkeypatch.setenv("CI", "true" if ci else "false")
    for name in ("kubernetes", "custom_resources", "libvirt_domains"):
        monkeypatch.setattr(checkers, name, lambda *args: [])
    art = artifacts.Artifacts(root=tmp_path, plan_json=tmp_path / "plan.json", user_data=[tmp_path / "u.yaml"])
    assert check_artifacts(art, "1.36.4") == (1 if ci else 0)
    out, err = capsys.readouterr()
    if ci:
        assert "error: cloud-init is not installed" in err
    else:
        assert "SKIPPED cloud-init schema: cloud-init is not installed" in out
        assert "SKIPPED netplan generate: netplan is not installed" in out


def test_the_benchmarks_synthetic_stacks_are_valid_configs() -> None:
    """`make bench` plans synthetic stacks of up to 500 nodes (benchmarks/plan_bench.py); a stack
    the program refuses would stop the bench, so its nodes must stay unique where the spec says."""
    from benchmarks.plan_bench import synthetic_stack
    from tests.conftest import parse

    spec = parse(synthetic_stack(50))
    assert len(spec.nodes) == 50
