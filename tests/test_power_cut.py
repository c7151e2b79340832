"""After a power cut the VMs start with their hypervisor, controllers first, each once the Ceph its
disks live on answers: libvirt's autostart stays off (it would start them before Ceph), the start
order is in each domain's definition, and the hypervisor's akiba-start-vms unit
(components/machines/vm_start.py) starts them. Real libvirtd and real Ceph for the start itself."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.machines import libvirt_domain_ops as ops
from components.machines import libvirt_secret_ops as secret_ops
from components.machines import vm_start
from components.machines.libvirt_domain import DomainProvider
from components.machines.vm_domain_xml import VmDisk, VmSpec, domain_args, provider_domain_xml, render_xslt
from tests.ceph_fixture import ceph  # noqa: F401 - the session fixture
from tests.conftest import STACKS, config_values, require_tool
from tests.libvirt_fixture import libvirt  # noqa: F401 - the session fixture
from tests.real_ceph import Ceph
from tests.real_libvirt import Libvirt
from tools.plan.runner import Plan

POOL = "akiba-power-cut"
CLIENT = "libvirt-power-cut"
DYNAMIC = "pulumi-python:dynamic:Resource"


def test_the_start_script_names_the_programs_metadata_namespace() -> None:
    # vm_start.py is installed alone on the hypervisor and cannot import the provider's constant.
    assert vm_start.START_NS == ops.START_NS


def test_the_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "apt-get install systemd")
    script = tmp_path / "akiba-start-vms"
    shutil.copy(vm_start.__file__, script)
    script.chmod(0o755)
    unit = tmp_path / "akiba-start-vms.service"
    unit.write_text(vm_start.UNIT.replace(str(vm_start.SCRIPT_PATH), str(script)))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "akiba-start-vms.service" not in proc.stderr, proc.stderr  # no warning about the unit itself


@pytest.mark.parametrize("stack", STACKS)
def test_every_vm_has_a_start_order_controllers_first(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources, "the recorded plan is empty"
    domains = {r.inputs["name"]: r.inputs for r in plan.by_type(DYNAMIC) if r.inputs.get("kind") == "libvirt-domain"}
    roles = {
        n["power"]["domain"]: n["role"] for n in config_values(stack)["akiba:nodes"] if n["power"]["type"] == "virsh"
    }
    assert domains and set(domains) == set(roles)
    for name, inputs in domains.items():
        assert inputs["startOrder"] == (0 if roles[name] == "controller" else 1), name


def test_a_new_start_order_is_recorded_in_place() -> None:
    """The order is metadata on the same domain: never a replacement, also for a domain recorded
    before the property existed (the next `pulumi up` records it, `make plan-diff` says update)."""
    props: dict[str, Any] = {"kind": "libvirt-domain", "hypervisor": "desk01", "uri": "qemu:///system", "name": "vm01"}
    props |= {"providerXml": "<a/>", "xslt": "<x/>", "startOrder": 1}
    provider = DomainProvider()
    assert provider.diff("vm01", props, dict(props)).changes is False
    for old in ({**props, "startOrder": 0}, {k: v for k, v in props.items() if k != "startOrder"}):
        result = provider.diff("vm01", old, props)
        assert result.changes and result.replaces == []


def _domain(libvirt: Libvirt, name: str, image: str, monitors: str, order: int) -> dict[str, Any]:
    vm = VmSpec(
        name=name,
        vcpus=1,
        memory_mib=128,
        disks=(VmDisk.from_ref(f"rbd:{image}", serial="boot"),),
        monitors=(monitors,),
        ceph_user=f"client.{CLIENT}",
        secret_uuid=secret_ops.secret_uuid("power-cut", "hypervisor"),
        boot=("hd",),
        domain_type="qemu",
        machine="pc",
    )
    return {
        "kind": "libvirt-domain",
        "hypervisor": "hypervisor",
        "uri": libvirt.uri,
        "name": name,
        "providerXml": provider_domain_xml(domain_args(vm), canonical_machine=libvirt.canonical_machine("pc")),
        "xslt": render_xslt(vm),
        "startOrder": order,
    }


@pytest.fixture
def ceph_client(ceph: Ceph) -> tuple[str, Path]:
    """The platform's libvirt cephx user's caps (components/storage/ceph_storage.py): rbd on the
    VM pool only. Its keyring is what the hypervisor keeps in /etc/ceph."""
    ceph.create_pool(POOL)
    key, keyring = ceph.create_client(CLIENT, {"mon": "profile rbd", "osd": f"profile rbd pool={POOL}"})
    return key, keyring


def test_vms_start_in_order_once_ceph_answers_and_not_before(
    ceph: Ceph, libvirt: Libvirt, ceph_client: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("xsltproc", "apt-get install xsltproc")
    key, keyring = ceph_client
    secret = secret_ops.secret_uuid("power-cut", "hypervisor")
    secret_ops.ensure_ceph_secret(libvirt.uri, secret, f"client.{CLIENT} secret", key)
    for image in ("ctrl-boot", "work-boot", "lost-boot"):
        ceph.run("rbd", "create", "--size", "64M", f"{POOL}/{image}")
    provider = DomainProvider()
    # Listed worker first: the order comes from the metadata, not from libvirt's listing.
    worker = _domain(libvirt, "akiba-pc-worker", f"{POOL}/work-boot", ceph.mon_host, 1)
    controller = _domain(libvirt, "akiba-pc-ctrl", f"{POOL}/ctrl-boot", ceph.mon_host, 0)
    # A third domain whose monitors do not answer: a Ceph that is not up yet.
    closed = ceph.mon_host.rsplit(":", 1)[0] + ":1"
    lost = _domain(libvirt, "akiba-pc-lost", f"{POOL}/lost-boot", closed, 2)
    try:
        for props in (worker, controller, lost):
            provider.create(props)
            assert ops.autostart(libvirt.uri, props["name"]) is False, "libvirt must not start it before Ceph"
        # A redefinition (a changed XSLT) keeps the order: it is set again after each define.
        changed = {**worker, "xslt": worker["xslt"].replace("writeback", "none")}
        provider.update(worker["name"], worker, changed)
        assert ops.start_order(libvirt.uri, worker["name"]) == 1
        assert ops.start_order(libvirt.uri, controller["name"]) == 0

        status = vm_start.start(libvirt.uri, wait_s=5, poll_s=1, settle_s=0, keyring=keyring)
        out = capsys.readouterr()
        assert status == 1, "the domain whose Ceph never answered is reported"
        for name in ("akiba-pc-ctrl", "akiba-pc-worker"):
            assert libvirt.virsh("domstate", name).stdout.strip() == "running", libvirt.qemu_log(name)
        assert out.out.index("akiba-pc-ctrl: started") < out.out.index("akiba-pc-worker: started")
        assert libvirt.virsh("domstate", "akiba-pc-lost").stdout.strip() == "shut off"
        assert "akiba-pc-lost: not started" in out.err
        # Run again (the unit after a libvirtd restart): running domains are left alone.
        vm_start.start(libvirt.uri, wait_s=0, poll_s=1, settle_s=0, keyring=keyring)
        assert "akiba-pc-ctrl: already running" in capsys.readouterr().out
        watchers = json.loads(ceph.run("rbd", "status", "--format", "json", f"{POOL}/ctrl-boot").stdout)
        assert watchers.get("watchers"), "qemu opened the controller's disk"
    finally:
        for props in (worker, controller, lost):
            provider.delete(props["name"], props)
        secret_ops.delete_ceph_secret(libvirt.uri, secret)


def test_a_domain_without_the_platforms_metadata_is_left_alone(libvirt: Libvirt) -> None:
    assert all(d.name.startswith("akiba-") for d in vm_start.platform_domains(libvirt.uri))


def test_install_puts_the_script_and_unit_in_place_and_enables_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for tool in ("virsh", "ceph", "rbd", "systemctl"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(vm_start, "SCRIPT_PATH", tmp_path / "akiba-start-vms")
    monkeypatch.setattr(vm_start, "UNIT_PATH", tmp_path / "akiba-start-vms.service")
    assert vm_start.main(["install"]) == 0
    assert (tmp_path / "akiba-start-vms").read_text() == Path(vm_start.__file__).read_text()
    assert (tmp_path / "akiba-start-vms").stat().st_mode & 0o111
    assert (tmp_path / "akiba-start-vms.service").read_text() == vm_start.UNIT
    assert log.read_text().splitlines() == ["systemctl daemon-reload", "systemctl enable akiba-start-vms.service"]
    (bin_dir / "rbd").unlink()
    assert vm_start.main(["install"]) == 2
    assert "missing rbd (apt-get install ceph-common)" in capsys.readouterr().err
