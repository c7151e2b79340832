"""The VM's domain XML: the provider's shape, the XSLT, and real checks of the result.

The provider-shaped XML comes from components/vm_domain_xml.provider_domain_xml, written from
terraform-provider-libvirt v0.8.1's source (newDomainDef/newDomainDefForConnection in
libvirt/domain_def.go, resourceLibvirtDomainCreate in libvirt/resource_libvirt_domain.go,
setBootDevices/setDisks/setNetworkInterfaces in libvirt/domain.go, newDefDisk in
libvirt/disk_def.go, serialised by libvirtxml v1.10007.0 via xmlMarshallIndented). The XSLT is
applied with the real xsltproc, the result validated with virt-xml-validate (libvirt's RelaxNG
schemas) and defined on a real libvirtd.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from components.machines.libvirt_vm import PassthroughGpu, VmHardware, vm_spec
from components.machines.types import Nic
from components.machines.vm_domain_xml import (
    PLACEHOLDER_DIR,
    ProviderReadError,
    RbdRefError,
    VmDisk,
    VmNic,
    VmSpec,
    XsltError,
    apply_xslt,
    domain_args,
    gpu_addresses,
    provider_domain_xml,
    provider_read_disks,
    render_xslt,
)
from tests.conftest import require_tool
from tests.libvirt_fixture import libvirt  # noqa: F401 - the session fixture
from tests.real_libvirt import Libvirt

SECRET = "5a1c3e0e-8f53-5d4e-9b51-7f2a0c6d9e31"
MONS = ("10.0.0.11:6789", "10.0.0.12:6789", "10.0.0.13:6789")


def gpu_vm(name: str = "akiba-gpu-vm") -> VmSpec:
    return VmSpec(
        name=name,
        vcpus=8,
        memory_mib=16384,
        disks=(VmDisk.from_ref("rbd:vm-disks/gpu01-boot", serial="boot"), VmDisk("vm-disks", "gpu01-osd0", "osd0")),
        monitors=MONS,
        ceph_user="client.libvirt",
        secret_uuid=SECRET,
        gpus=("01:00.0", "0000:02:00.0"),
        nics=(VmNic("52:54:00:a0:00:01", bridge="br0"), VmNic("52:54:00:a0:00:02", bridge="br0")),
        cpu_mode="host-passthrough",
    )


def node_vm(name: str = "akiba-node-vm") -> VmSpec:
    """A node's VM as the component makes it: two GPUs of two functions each (VGA and HDMI
    audio, one IOMMU group per card), the host's CPU."""
    hardware = VmHardware(
        domain=name,
        hypervisor="desk01",
        vcpus=8,
        memory_mib=32768,
        bridge="br-office",
        nics=(Nic("enp1s0", "52:54:00:d0:00:01"), Nic("enp2s0", "52:54:00:d0:00:02")),
        gpus=(PassthroughGpu("0000:01:00.0", 2), PassthroughGpu("02:00.0", 2)),
        boot_disk="/dev/disk/by-id/virtio-node-boot",
        ceph_disks=("/dev/disk/by-id/virtio-node-osd0",),
        boot_disk_gib=40,
        osd_disk_gib=50,
    )
    return vm_spec(hardware, "vm-disks", MONS, "client.libvirt", SECRET)


def plain_vm(name: str = "akiba-plain-vm") -> VmSpec:
    return VmSpec(
        name=name,
        vcpus=2,
        memory_mib=2048,
        disks=(VmDisk.from_ref("rbd:vm-disks/dev01-boot", serial="boot"),),
        monitors=MONS[:1],
        ceph_user="libvirt",
        secret_uuid=SECRET,
        nics=(VmNic("52:54:00:b0:00:01", network="default"),),
        machine="pc",
    )


def cloned_vm(name: str = "akiba-cloned-vm") -> VmSpec:
    """Boots a clone of a golden image with cloud-init on q35 (no IDE there: the XSLT moves the
    provider's IDE cdrom to SATA)."""
    return VmSpec(
        name=name,
        vcpus=2,
        memory_mib=4096,
        disks=(VmDisk.from_ref("rbd:vm-disks/dev02-boot", serial="boot"),),
        monitors=MONS,
        ceph_user="client.libvirt",
        secret_uuid=SECRET,
        nics=(VmNic("52:54:00:c0:00:01", bridge="br0"),),
        boot=("hd",),
        cloudinit="/var/lib/libvirt/images/akiba-cloned-vm-init.iso;6a4e1f0c-7d1b-4a55-9e0e-2f3d4c5b6a79",
    )


# --- rbd:pool/image -------------------------------------------------------------------------


def test_rbd_ref_parses_the_articles_notation() -> None:
    assert VmDisk.from_ref("rbd:vm-disks/gpu01-boot").name == "vm-disks/gpu01-boot"
    assert VmDisk.from_ref("rbd:rbd/img.v2_1", serial="boot").serial == "boot"


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("vm-disks/gpu01-boot", "expected 'rbd:<pool>/<image>'"),
        ("file:/var/lib/x.img", "expected 'rbd:<pool>/<image>'"),
        ("rbd:gpu01-boot", "exactly one '/'"),
        ("rbd:a/b/c", "exactly one '/'"),
        ("rbd:/gpu01-boot", "the pool name is empty"),
        ("rbd:vm-disks/", "the image name is empty"),
        ("rbd:vm-disks/golden@base", "snapshot is read-only"),
        ("rbd:vm disks/x", "pool name 'vm disks' may use only"),
        ("rbd:vm-disks/x{y}", "image name 'x{y}' may use only"),
    ],
)
def test_rbd_ref_errors_are_clear(ref: str, says: str) -> None:
    with pytest.raises(RbdRefError) as err:
        VmDisk.from_ref(ref)
    assert says in str(err.value)
    assert repr(ref) in str(err.value), "the message names the offending value"


def test_vm_spec_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError, match="VM 'x'") as err:
        VmSpec(
            name="x",
            vcpus=0,
            memory_mib=512,
            disks=(VmDisk("p", "a"), VmDisk("p", "a")),
            monitors=("10.0.0.1",),
            ceph_user="client.libvirt",
            secret_uuid="not-a-uuid",
            gpus=("1:0.0", "01:00.0", "0000:01:00.0"),
            domain_type="qemu",
        )
    text = str(err.value)
    for part in ("vcpus 0", "only one of the VM's disks", "'10.0.0.1': a Ceph monitor as host:port", "secret_uuid"):
        assert part in text
    assert "'1:0.0': a PCI address" in text
    assert "passed to a VM only once" in text
    assert "VT-d passthrough needs domain_type 'kvm'" in text


def test_gpu_addresses_are_normalised() -> None:
    assert gpu_vm().gpus == ("0000:01:00.0", "0000:02:00.0")


def test_a_gpu_is_passed_with_every_function_of_its_slot() -> None:
    """QEMU starts the VM only with the card's whole IOMMU group: VGA and HDMI audio."""
    assert PassthroughGpu("01:00.0", 2).addresses() == ("0000:01:00.0", "0000:01:00.1")
    assert node_vm().gpus == ("0000:01:00.0", "0000:01:00.1", "0000:02:00.0", "0000:02:00.1")
    for bad in (PassthroughGpu("0000:01:00.1", 2), PassthroughGpu("0000:01:00.0", 0)):
        with pytest.raises(ValueError, match="function 0"):
            bad.addresses()


# --- the provider's XML ----------------------------------------------------------------------


def test_provider_xml_has_terraform_provider_libvirt_0_8_1_shape() -> None:
    """What the provider writes to xsltproc's input for plain_vm (machine resolved by the hypervisor):
    Go's encoder indents with prefix "  " and indent "    " and writes <x></x> for empty elements;
    MACs upper-cased (setNetworkInterfaces); placeholder disk on vda/virtio/raw (newDefDisk)."""
    expected = f"""\
  <domain type="kvm">
      <name>akiba-plain-vm</name>
      <memory unit="MiB">2048</memory>
      <vcpu>2</vcpu>
      <os>
          <type arch="x86_64" machine="pc-i440fx-7.2">hvm</type>
          <boot dev="network"></boot>
          <boot dev="hd"></boot>
      </os>
      <features>
          <pae></pae>
          <acpi></acpi>
          <apic></apic>
      </features>
      <cpu></cpu>
      <devices>
          <disk type="file" device="disk">
              <driver name="qemu" type="raw"></driver>
              <source file="{PLACEHOLDER_DIR}/akiba-plain-vm-0.raw"></source>
              <target dev="vda" bus="virtio"></target>
          </disk>
          <interface type="network">
              <mac address="52:54:00:B0:00:01"></mac>
              <source network="default"></source>
              <model type="virtio"></model>
          </interface>
          <channel type="unix">
              <target type="virtio" name="org.qemu.guest_agent.0"></target>
          </channel>
          <graphics type="spice" autoport="yes"></graphics>
          <rng model="virtio">
              <backend model="random">/dev/urandom</backend>
          </rng>
      </devices>
  </domain>"""
    assert provider_domain_xml(domain_args(plain_vm()), canonical_machine="pc-i440fx-7.2") == expected


def test_domain_args_are_what_the_component_passes() -> None:
    kwargs = domain_args(gpu_vm()).pulumi_kwargs()
    assert kwargs["disks"] == [
        {"file": f"{PLACEHOLDER_DIR}/akiba-gpu-vm-0.raw"},
        {"file": f"{PLACEHOLDER_DIR}/akiba-gpu-vm-1.raw"},
    ]
    assert kwargs["boot_devices"] == [{"devs": ["network", "hd"]}]
    assert kwargs["network_interfaces"] == [
        {"mac": "52:54:00:a0:00:01", "bridge": "br0"},
        {"mac": "52:54:00:a0:00:02", "bridge": "br0"},
    ]
    assert kwargs["cpu"] == {"mode": "host-passthrough"}
    assert (kwargs["type"], kwargs["machine"], kwargs["vcpu"], kwargs["memory"]) == ("kvm", "q35", 8, 16384)


# --- the XSLT, through the real xsltproc -----------------------------------------------------


@pytest.fixture(scope="module")
def xsltproc() -> str:
    return require_tool("xsltproc", "apt-get install xsltproc")


def final(vm: VmSpec, xsltproc: str, machine: str | None = None) -> str:
    return apply_xslt(
        provider_domain_xml(domain_args(vm), canonical_machine=machine), render_xslt(vm), xsltproc=xsltproc
    )


def test_xslt_rewrites_disks_and_adds_gpus(xsltproc: str) -> None:
    started = time.monotonic()
    xml = final(gpu_vm(), xsltproc, "pc-q35-7.2")
    print(f"\nxsltproc: {1000 * (time.monotonic() - started):.0f} ms")
    dom = ElementTree.fromstring(xml)  # noqa: S314
    disks = dom.findall("./devices/disk")
    assert [d.get("type") for d in disks] == ["network", "network"]
    assert PLACEHOLDER_DIR not in xml
    for disk, (image, dev, serial) in zip(
        disks, [("vm-disks/gpu01-boot", "vda", "boot"), ("vm-disks/gpu01-osd0", "vdb", "osd0")], strict=True
    ):
        source = disk.find("source")
        assert source is not None
        assert (source.get("protocol"), source.get("name")) == ("rbd", image)
        assert [f"{h.get('name')}:{h.get('port')}" for h in source.findall("host")] == list(MONS)
        assert disk.find("auth") is not None
        assert disk.find("auth").get("username") == "libvirt"  # type: ignore[union-attr]
        secret = disk.find("auth/secret")
        assert secret is not None
        assert (secret.get("type"), secret.get("uuid")) == ("ceph", SECRET)
        assert disk.find("target").attrib == {"dev": dev, "bus": "virtio"}  # type: ignore[union-attr]
        assert disk.findtext("serial") == serial
    assert gpu_addresses(xml) == ["0000:01:00.0", "0000:02:00.0"]
    assert all(h.get("managed") == "yes" for h in dom.findall("./devices/hostdev"))
    # Everything else is the provider's: boot order (PXE first), NICs and MACs, CPU mode.
    assert [b.get("dev") for b in dom.findall("./os/boot")] == ["network", "hd"]
    assert [m.get("address") for m in dom.findall("./devices/interface/mac")] == [
        "52:54:00:A0:00:01",
        "52:54:00:A0:00:02",
    ]
    # The provider's cpu block has only `mode`; the XSLT completes it as libvirt stores it.
    assert dom.find("cpu").attrib == {"mode": "host-passthrough", "check": "none", "migratable": "on"}  # type: ignore[union-attr]


def test_node_vm_gets_one_hostdev_per_function_and_the_host_cpu(xsltproc: str) -> None:
    xml = final(node_vm(), xsltproc, "pc-q35-7.2")
    assert gpu_addresses(xml) == ["0000:01:00.0", "0000:01:00.1", "0000:02:00.0", "0000:02:00.1"]
    cpu = ElementTree.fromstring(xml).find("cpu")  # noqa: S314
    assert cpu is not None and cpu.attrib == {"mode": "host-passthrough", "check": "none", "migratable": "on"}


def test_xslt_without_gpus_adds_no_hostdev(xsltproc: str) -> None:
    xml = final(plain_vm(), xsltproc, "pc-i440fx-7.2")
    assert gpu_addresses(xml) == []
    assert "<hostdev" not in xml


def test_xslt_stops_when_the_placeholder_is_missing(xsltproc: str) -> None:
    """A VM defined without its disk would PXE-boot into MAAS and be wiped: xsltproc must fail."""
    provider_xml = provider_domain_xml(domain_args(plain_vm()), canonical_machine="pc")
    broken = re.sub(r'<disk type="file".*?</disk>', "", provider_xml, flags=re.S)
    with pytest.raises(XsltError, match="expected exactly one placeholder disk vda for rbd:vm-disks/dev01-boot"):
        apply_xslt(broken, render_xslt(plain_vm()), xsltproc=xsltproc)


def test_provider_read_cannot_parse_the_rbd_disk(xsltproc: str) -> None:
    """pulumi-libvirt 0.5.4 (terraform-provider-libvirt 0.8.1) reads a network disk back as
    url = protocol://host0:port0 + name. An RBD name is `pool/image` (libvirt refuses a leading
    '/'), so the URL is rbd://10.0.0.11:6789vm-disks/... and Go's url.Parse fails: the Read that
    ends the provider's create, and every refresh, return this error (upstream issue #894)."""
    with pytest.raises(ProviderReadError, match=r'invalid port ":6789vm-disks" after host'):
        provider_read_disks(final(plain_vm(), xsltproc, "pc-i440fx-7.2"))
    # The provider's own placeholder XML reads back fine (a file disk becomes a volume lookup).
    provider_xml = provider_domain_xml(domain_args(plain_vm()), canonical_machine="pc")
    assert provider_read_disks(provider_xml) == [{"volume_id": f"{PLACEHOLDER_DIR}/akiba-plain-vm-0.raw"}]


def test_xslt_values_cannot_inject_markup() -> None:
    """Attribute value templates: a brace in a value would be evaluated; names are validated
    before they reach the stylesheet, and the uuid/user are quoted."""
    vm = plain_vm()
    xslt = render_xslt(vm)
    assert xslt.count("{") == xslt.count("{concat(")  # only the q35 cdrom template uses an AVT
    ElementTree.fromstring(xslt)  # noqa: S314 - well-formed


def test_cloudinit_cdrom_moves_to_sata_on_q35(xsltproc: str) -> None:
    xml = final(cloned_vm(), xsltproc, "pc-q35-7.2")
    cdrom = ElementTree.fromstring(xml).find("./devices/disk[@device='cdrom']")  # noqa: S314
    assert cdrom is not None
    assert cdrom.find("target").attrib == {"dev": "sdd", "bus": "sata"}  # type: ignore[union-attr]
    assert cdrom.find("source").get("file") == "/var/lib/libvirt/images/akiba-cloned-vm-init.iso"  # type: ignore[union-attr]
    assert cdrom.findtext("serial") == "cloudinit", "the provider's Read skips the cdrom by this serial"


@pytest.mark.checker
@pytest.mark.parametrize(
    "vm", [gpu_vm(), plain_vm(), cloned_vm(), node_vm()], ids=["two-gpus", "no-gpu", "cloud-init", "node"]
)
def test_final_xml_passes_virt_xml_validate(vm: VmSpec, xsltproc: str, tmp_path: Path) -> None:
    validate = require_tool("virt-xml-validate", "apt-get install libvirt-clients libxml2-utils")
    require_tool("xmllint", "apt-get install libxml2-utils")
    path = tmp_path / f"{vm.name}.xml"
    path.write_text(final(vm, xsltproc, "pc-q35-7.2" if vm.q35 else "pc-i440fx-7.2"))
    proc = subprocess.run([validate, str(path), "domain"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- on the real libvirtd --------------------------------------------------------------------


def _kvm_available(lv: Libvirt) -> bool:
    return "type='kvm'" in lv.virsh("domcapabilities", "--virttype", "kvm", check=False).stdout


@pytest.mark.parametrize(
    "make", [gpu_vm, plain_vm, cloned_vm, node_vm], ids=["two-gpus", "no-gpu", "cloud-init", "node"]
)
def test_final_xml_defines_on_real_libvirtd(
    make: Callable[[str], VmSpec], xsltproc: str, libvirt: Libvirt, tmp_path: Path
) -> None:
    vm = make(f"akiba-define-{make.__name__.replace('_', '-')}")
    machine = libvirt.canonical_machine(vm.machine)
    xml = final(vm, xsltproc, machine)
    if vm.domain_type == "kvm" and not _kvm_available(libvirt):
        # No /dev/kvm on this machine: libvirt defines only domain types the host can run. The
        # rest of the XML (RBD disks, hostdevs) is what is under test, so define it under TCG.
        xml = xml.replace('<domain type="kvm">', '<domain type="qemu">', 1)
        if vm.cpu_mode == "host-passthrough":
            xml = re.sub(r'<cpu mode="host-passthrough"[^>]*/>', "<cpu/>", xml)
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    started = time.monotonic()
    libvirt.virsh("define", str(path))
    try:
        print(f"\nvirsh define {vm.name}: {1000 * (time.monotonic() - started):.0f} ms")
        defined = libvirt.virsh("dumpxml", vm.name).stdout
        assert gpu_addresses(defined) == list(vm.gpus)
        dom = ElementTree.fromstring(defined)  # noqa: S314
        names = [s.get("name") for s in dom.findall("./devices/disk[@type='network']/source")]
        assert names == [d.name for d in vm.disks]
        secrets = {s.get("uuid") for s in dom.iter("secret")}
        assert secrets == {SECRET}
        # pulumi-libvirt 0.5.4's Read turns this disk back into a URL Go cannot parse: with its
        # Domain, the Read that ends every create would fail (upstream #894). See the module doc.
        with pytest.raises(ProviderReadError, match="invalid port"):
            provider_read_disks(defined)
    finally:
        libvirt.virsh("undefine", vm.name)
