"""End to end: a VM whose disk is an RBD image really starts and opens it through cephx.

Real Ceph (tests/real_ceph.py) and a real libvirtd (tests/real_libvirt.py); the domain XML is
the provider-shaped XML (terraform-provider-libvirt 0.8.1, see components/machines/vm_domain_xml.py)
through the platform's XSLT, as `pulumi up` would define it. Under TCG (`type='qemu'`, no
/dev/kvm needed), no kernel and no OS: qemu opening the image is what counts, and an open
image has a watcher in `rbd status`. GPUs cannot be passed through here, so this VM has none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from components.machines import libvirt_secret_ops as secret_ops
from components.machines.vm_domain_xml import VmDisk, VmSpec, final_domain_xml
from tests.ceph_fixture import ceph  # noqa: F401 - the session fixture
from tests.conftest import require_tool
from tests.libvirt_fixture import libvirt  # noqa: F401 - the session fixture
from tests.real_ceph import Ceph
from tests.real_libvirt import Libvirt

POOL = "akiba-vm-e2e"
IMAGE = "tcg-boot"
CLIENT = "libvirt-e2e"


def watchers(ceph: Ceph, image: str) -> list[dict[str, object]]:
    out = ceph.run("rbd", "status", "--format", "json", image).stdout
    found: list[dict[str, object]] = json.loads(out).get("watchers", [])
    return found


def wait_for(check: Callable[[], object], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def test_vm_starts_under_tcg_and_opens_its_rbd_disk_through_cephx(
    ceph: Ceph,
    libvirt: Libvirt,
    tmp_path: Path,
) -> None:
    xsltproc = require_tool("xsltproc", "apt-get install xsltproc")
    ceph.create_pool(POOL)
    # Least privilege, as the platform's libvirt client: rbd on the VM pool only.
    key, _ = ceph.create_client(CLIENT, {"mon": "profile rbd", "osd": f"profile rbd pool={POOL}"})
    image = f"{POOL}/{IMAGE}"
    ceph.run("rbd", "create", "--size", "64M", image)

    secret = secret_ops.secret_uuid(ceph.fsid, "e2e-hypervisor")
    secret_ops.ensure_ceph_secret(libvirt.uri, secret, f"client.{CLIENT} secret", key)
    vm = VmSpec(
        name="akiba-e2e-tcg",
        vcpus=1,
        memory_mib=128,
        disks=(VmDisk.from_ref(f"rbd:{image}", serial="boot"),),
        monitors=(ceph.mon_host,),
        ceph_user=f"client.{CLIENT}",
        secret_uuid=secret,
        boot=("hd",),
        domain_type="qemu",
        machine="pc",
    )
    xml = final_domain_xml(vm, canonical_machine=libvirt.canonical_machine("pc"), xsltproc=xsltproc)
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    libvirt.virsh("define", str(path))
    try:
        assert watchers(ceph, image) == []
        started = time.monotonic()
        libvirt.virsh("start", vm.name)
        print(f"\nvirsh start (TCG, RBD disk via cephx): {time.monotonic() - started:.1f} s")
        state = libvirt.virsh("domstate", vm.name).stdout.strip()
        assert state == "running", f"{state}\n{libvirt.qemu_log(vm.name)}"
        seen = wait_for(lambda: watchers(ceph, image), 30, f"a watcher on {image}")
        print(f"watcher on {image} {seen:.1f} s after start: {watchers(ceph, image)}")
        # The watcher is qemu's librbd session, authenticated by cephx as the restricted client:
        # a watcher's `client` is the session's global id, which the monitor maps to its entity.
        sessions = json.loads(ceph.run("ceph", "tell", "mon.a", "sessions", "--format", "json").stdout)
        ours = {s["global_id"] for s in sessions if s.get("entity_name") == f"client.{CLIENT}"}
        assert {w["client"] for w in watchers(ceph, image)} <= ours, (watchers(ceph, image), sessions)
        blk = libvirt.virsh("domblklist", vm.name).stdout
        assert image in blk
        libvirt.virsh("destroy", vm.name)
        gone = wait_for(lambda: not watchers(ceph, image), 60, f"the watcher on {image} to go after destroy")
        print(f"watcher gone {gone:.1f} s after destroy")
    finally:
        libvirt.virsh("destroy", vm.name, check=False)
        libvirt.virsh("undefine", vm.name, check=False)
        secret_ops.delete_ceph_secret(libvirt.uri, secret)
