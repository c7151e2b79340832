"""The two dynamic resources the VM component declares, through their provider classes,
against the real services: an RBD image on the real Ceph (create, read, grow, refuse to
shrink, clone, refuse to delete while cloned) and a domain on the real libvirtd."""

from __future__ import annotations

from typing import Any

import pytest

from components.machines.libvirt_domain import DomainProvider
from components.machines.libvirt_domain_ops import exists
from components.machines.rbd_image import GIB, RbdImageProvider
from components.machines.rbd_ops import HasChildren, ShrinkRefused
from components.machines.vm_domain_xml import VmDisk, VmNic, VmSpec, domain_args, provider_domain_xml, render_xslt
from tests.ceph_fixture import ceph  # noqa: F401 - the session fixture
from tests.libvirt_fixture import libvirt  # noqa: F401 - the session fixture
from tests.real_ceph import Ceph
from tests.real_libvirt import Libvirt

POOL = "vm-res"


@pytest.fixture(scope="module")
def rbd_props(ceph: Ceph) -> dict[str, Any]:
    ceph.create_pool(POOL)
    key, _ = ceph.create_client("vm-res", {"mon": "profile rbd", "osd": f"profile rbd pool={POOL}"})
    return {"kind": "rbd-image", "pool": POOL, "monHost": ceph.mon_host, "user": "vm-res", "key": key}


def test_rbd_image_resource_lifecycle(rbd_props: dict[str, Any]) -> None:
    provider = RbdImageProvider()
    golden = {**rbd_props, "image": "golden", "sizeBytes": 1 * GIB, "cloneFrom": None}
    created = provider.create(golden)
    assert created.id == f"{POOL}/golden"
    assert (provider.read(created.id, golden).outs or {})["sizeBytes"] == 1 * GIB

    grown = {**golden, "sizeBytes": 2 * GIB}
    assert provider.diff(created.id, golden, grown).changes
    provider.update(created.id, golden, grown)
    assert (provider.read(created.id, golden).outs or {})["sizeBytes"] == 2 * GIB  # drift shows in a refresh
    with pytest.raises(ShrinkRefused):
        provider.update(created.id, grown, golden)

    clone = {**rbd_props, "image": "personal", "sizeBytes": 2 * GIB, "cloneFrom": f"{POOL}/golden@base"}
    # The golden source is read at creation only: a newer one never recreates (wipes) the disk.
    assert provider.diff("x", clone, {**clone, "cloneFrom": f"{POOL}/golden@other"}).changes is False
    provider.create(clone)
    with pytest.raises(HasChildren):
        provider.delete(created.id, grown)
    provider.delete(f"{POOL}/personal", clone)
    assert provider.read(f"{POOL}/personal", clone).id is None
    provider.delete(created.id, grown)
    assert provider.read(created.id, grown).id is None


def _domain_props(libvirt: Libvirt, name: str) -> dict[str, Any]:
    vm = VmSpec(
        name=name,
        vcpus=1,
        memory_mib=256,
        disks=(VmDisk("vm-disks", f"{name}-boot", "boot"),),
        monitors=("127.0.0.1:6789",),
        ceph_user="libvirt",
        secret_uuid="066a0749-4092-5c32-becf-baf9204c04f1",
        nics=(VmNic(mac="52:54:00:aa:00:01", network="default"),),
        domain_type="qemu",
    )
    return {
        "kind": "libvirt-domain",
        "uri": libvirt.uri,
        "name": name,
        "providerXml": provider_domain_xml(domain_args(vm)),
        "xslt": render_xslt(vm),
    }


def test_domain_resource_lifecycle(libvirt: Libvirt) -> None:
    provider = DomainProvider()
    props = _domain_props(libvirt, "akiba-res-vm")
    assert provider.create(props).id == "akiba-res-vm"
    assert exists(libvirt.uri, "akiba-res-vm")
    assert provider.read("akiba-res-vm", props).id == "akiba-res-vm"
    changed = {**props, "xslt": props["xslt"].replace("writeback", "none")}
    assert changed != props and provider.diff("akiba-res-vm", props, changed).changes
    provider.update("akiba-res-vm", props, changed)
    provider.delete("akiba-res-vm", changed)
    assert provider.read("akiba-res-vm", props).id is None
