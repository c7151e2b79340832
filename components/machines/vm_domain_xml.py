"""A VM's libvirt domain XML: what pulumi-libvirt 0.5.4 generates, and the one XSLT that turns it
into a VM whose disks are Ceph RBD images (cephx) and which owns its GPUs (VT-d).

pulumi-libvirt 0.5.4 wraps terraform-provider-libvirt 0.8.1, whose Domain knows only
volume_id/file/block_device/url disks (no RBD network disk, no <auth>) and no <hostdev>. The
upstream-endorsed escape hatch is the Domain's `xml.xslt`: the provider renders its XML, pipes it
through `xsltproc` with our stylesheet and defines the result. Everything that knows about that
detour lives in this file: the provider's XML shape (`provider_domain_xml`, for tests and the
offline plan), the Domain arguments that produce it (`domain_args`) and the stylesheet
(`render_xslt`). terraform-provider-libvirt 0.9.x models RBD disks and hostdevs natively; moving
to it replaces this one file.

Known limit of that detour (see `provider_read_disks`): 0.8.1's Read rebuilds a network disk as
a URL, protocol://host:port + name, which for an RBD `pool/image` does not parse, so the Read
ending the provider's create fails after it has defined and started the domain.

Pure functions, no Pulumi: the component, the offline plan and the tests share them.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

# Ceph pool and image names as this platform writes them. Ceph itself allows more, but '/', '@'
# and ':' carry meaning in `pool/image@snap` and librbd's colon-separated option strings.
_RBD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_PCI = re.compile(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_SERIAL = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_BOOT_DEVS = ("network", "hd", "cdrom", "fd")

# Where the provider's placeholder disks point. The XSLT replaces every one of them, so no such
# file is ever opened; the path only has to be absolute and not end in .iso/.qcow2 (the
# provider would then make a cdrom / a qcow2 driver of it).
PLACEHOLDER_DIR = "/var/lib/libvirt/images/akiba-rbd-placeholder"


class RbdRefError(ValueError):
    """A disk reference that is not `rbd:pool/image`."""


def parse_rbd_ref(ref: str) -> tuple[str, str]:
    """`rbd:pool/image` (the article's notation: its patched virt-install took `--disk
    rbd:pool/image` and added the pool's cephx auth) -> (pool, image)."""
    if not isinstance(ref, str):
        raise RbdRefError(f"a disk reference must be a string like 'rbd:vm-disks/gpu01-boot', got {ref!r}")
    if not ref.startswith("rbd:"):
        raise RbdRefError(f"{ref!r}: expected 'rbd:<pool>/<image>', like 'rbd:vm-disks/gpu01-boot'")
    body = ref[len("rbd:") :]
    if "@" in body:
        raise RbdRefError(f"{ref!r}: a snapshot is read-only and cannot be a VM's disk; clone it to an image first")
    parts = body.split("/")
    if len(parts) != 2:
        raise RbdRefError(f"{ref!r}: expected exactly one '/' between pool and image ('rbd:<pool>/<image>')")
    pool, image = parts
    for what, value in (("pool", pool), ("image", image)):
        if not value:
            raise RbdRefError(f"{ref!r}: the {what} name is empty ('rbd:<pool>/<image>')")
        if not _RBD_NAME.match(value):
            raise RbdRefError(
                f"{ref!r}: {what} name {value!r} may use only letters, digits, '_', '.', '-' "
                "(starting with a letter or digit, at most 100)"
            )
    return pool, image


def normal_pci(address: str) -> str:
    """`01:00.0` or `0000:01:00.0` -> `0000:01:00.0` (what <hostdev> needs split up)."""
    match = _PCI.match(address.lower())
    if not match:
        raise ValueError(f"{address!r}: a PCI address like 0000:01:00.0")
    domain, bus, slot, function = match.groups()
    return f"{domain or '0000'}:{bus}:{slot}.{function}"


def ceph_id(user: str) -> str:
    """libvirt's <auth username> is the cephx id without the `client.` the keyring names carry."""
    return user.removeprefix("client.")


def _monitor(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[addr]:port`) -> (host, port); librbd needs each monitor's port."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.-]+):(\d{1,5})", value)
    if not match:
        raise ValueError(f"{value!r}: a Ceph monitor as host:port, like 10.0.0.11:6789 ([v6addr]:port for IPv6)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if match.group(1):
        ipaddress.IPv6Address(host)
    if not 0 < port < 65536:
        raise ValueError(f"{value!r}: port {port} is out of range")
    return host, port


@dataclass(frozen=True)
class VmDisk:
    """One RBD image as a virtio disk. `serial` makes the guest path /dev/disk/by-id/virtio-<serial>,
    which the node spec names its disks by (a VM's vdX order is not a contract)."""

    pool: str
    image: str
    serial: str | None = None

    def __post_init__(self) -> None:
        parse_rbd_ref(f"rbd:{self.pool}/{self.image}")
        if self.serial is not None and not _SERIAL.match(self.serial):
            raise ValueError(f"disk serial {self.serial!r}: lowercase letters, digits and '-', at most 20")

    @classmethod
    def from_ref(cls, ref: str, serial: str | None = None) -> VmDisk:
        pool, image = parse_rbd_ref(ref)
        return cls(pool, image, serial)

    @property
    def name(self) -> str:
        return f"{self.pool}/{self.image}"


@dataclass(frozen=True)
class VmNic:
    """A NIC on a libvirt network or a host bridge (exactly one). MAAS enlists PXE-booting VMs by
    these MACs, so they are declared, never left to the provider's random ones."""

    mac: str
    network: str | None = None
    bridge: str | None = None

    def __post_init__(self) -> None:
        if not _MAC.match(self.mac.lower()):
            raise ValueError(f"{self.mac!r}: a MAC address like 52:54:00:12:34:56")
        if (self.network is None) == (self.bridge is None):
            raise ValueError(f"NIC {self.mac}: give exactly one of network or bridge")
        if self.bridge is not None and not _IFNAME.match(self.bridge):
            raise ValueError(f"NIC {self.mac}: bridge {self.bridge!r} is not a Linux interface name")


@dataclass(frozen=True)
class VmSpec:
    """A VM as the platform declares it. `gpus` are the host PCI addresses handed over by VT-d
    (every function of each GPU card: `libvirt_vm.PassthroughGpu`);
    `boot` is libvirt's boot order (network first: dev machines PXE-boot into MAAS)."""

    name: str
    vcpus: int
    memory_mib: int
    disks: tuple[VmDisk, ...]
    monitors: tuple[str, ...]
    ceph_user: str
    secret_uuid: str
    gpus: tuple[str, ...] = ()
    nics: tuple[VmNic, ...] = ()
    boot: tuple[str, ...] = ("network", "hd")
    # kvm on the hypervisors; the tests start domains under TCG ('qemu'): /dev/kvm is not a given.
    domain_type: str = "kvm"
    # q35: GPUs are PCIe devices and get a PCIe root port there; i440fx ('pc') has only PCI.
    machine: str = "q35"
    # host-passthrough lets CUDA see the real CPU; None keeps libvirt's default (TCG needs that).
    cpu_mode: str | None = None
    # The id of a libvirt CloudInitDisk ("<volume key>;<uuid>"; the key is the ISO's path in a
    # dir pool), for VMs that boot a cloned image rather than PXE.
    cloudinit: str | None = None
    arch: str = "x86_64"
    _monitor_hosts: tuple[tuple[str, int], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not _DOMAIN_NAME.match(self.name):
            problems.append(f"name {self.name!r}: letters, digits, '_', '.', '-', at most 63")
        if not 1 <= self.vcpus <= 255:
            problems.append(f"vcpus {self.vcpus}: between 1 and 255")
        if self.memory_mib < 32:
            problems.append(f"memory_mib {self.memory_mib}: at least 32")
        if not self.disks:
            problems.append("at least one disk")
        if len({d.name for d in self.disks}) != len(self.disks):
            problems.append("an RBD image can back only one of the VM's disks")
        if not self.monitors:
            problems.append("at least one Ceph monitor")
        hosts = []
        for mon in self.monitors:
            try:
                hosts.append(_monitor(mon))
            except ValueError as err:
                problems.append(str(err))
        if not ceph_id(self.ceph_user) or not re.fullmatch(r"[A-Za-z0-9_.-]+", ceph_id(self.ceph_user)):
            problems.append(f"ceph_user {self.ceph_user!r}: a cephx id like libvirt or client.libvirt")
        try:
            uuid.UUID(self.secret_uuid)
        except ValueError:
            problems.append(f"secret_uuid {self.secret_uuid!r}: a UUID")
        gpus = []
        for gpu in self.gpus:
            try:
                gpus.append(normal_pci(gpu))
            except ValueError as err:
                problems.append(str(err))
        if len(set(gpus)) != len(gpus):
            problems.append("a GPU can be passed to a VM only once")
        if not self.boot or any(b not in _BOOT_DEVS for b in self.boot):
            problems.append(f"boot {self.boot!r}: a non-empty order of {', '.join(_BOOT_DEVS)}")
        if self.domain_type not in ("kvm", "qemu"):
            problems.append(f"domain_type {self.domain_type!r}: kvm, or qemu (TCG, tests only)")
        if self.gpus and self.domain_type != "kvm":
            problems.append("VT-d passthrough needs domain_type 'kvm'")
        if problems:
            raise ValueError(f"VM {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "gpus", tuple(gpus))
        object.__setattr__(self, "_monitor_hosts", tuple(hosts))

    @property
    def monitor_hosts(self) -> tuple[tuple[str, int], ...]:
        return self._monitor_hosts

    @property
    def q35(self) -> bool:
        return "q35" in self.machine


# ---------------------------------------------------------------------------------------------
# The Domain arguments the platform passes, and the XML terraform-provider-libvirt 0.8.1 makes
# of them.


@dataclass(frozen=True)
class ProviderDisk:
    file: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ProviderNic:
    mac: str
    network_name: str | None = None
    bridge: str | None = None


@dataclass(frozen=True)
class ProviderDomainArgs:
    """The subset of pulumi_libvirt.Domain's arguments the platform sets (others at defaults)."""

    name: str
    type: str
    vcpu: int
    memory: int
    arch: str
    machine: str
    disks: tuple[ProviderDisk, ...]
    network_interfaces: tuple[ProviderNic, ...]
    boot_devices: tuple[str, ...]
    cpu_mode: str | None = None
    cloudinit: str | None = None

    def pulumi_kwargs(self) -> dict[str, object]:
        """Keyword arguments for pulumi_libvirt.Domain (plain dicts: the *ArgsDict forms)."""
        kwargs: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "vcpu": self.vcpu,
            "memory": self.memory,
            "arch": self.arch,
            "machine": self.machine,
            "disks": [{k: v for k, v in (("file", d.file), ("url", d.url)) if v is not None} for d in self.disks],
            "network_interfaces": [
                {k: v for k, v in (("mac", n.mac), ("network_name", n.network_name), ("bridge", n.bridge)) if v}
                for n in self.network_interfaces
            ],
            "boot_devices": [{"devs": list(self.boot_devices)}],
        }
        if self.cpu_mode:
            kwargs["cpu"] = {"mode": self.cpu_mode}
        if self.cloudinit:
            kwargs["cloudinit"] = self.cloudinit
        return kwargs


def placeholder_file(vm: VmSpec, index: int) -> str:
    return f"{PLACEHOLDER_DIR}/{vm.name}-{index}.raw"


def domain_args(vm: VmSpec) -> ProviderDomainArgs:
    """What the VM component hands pulumi_libvirt.Domain (plus xml.xslt = render_xslt(vm)):
    each RBD disk as a `file` placeholder, in order, so the provider names them vda, vdb, ..."""
    return ProviderDomainArgs(
        name=vm.name,
        type=vm.domain_type,
        vcpu=vm.vcpus,
        memory=vm.memory_mib,
        arch=vm.arch,
        machine=vm.machine,
        disks=tuple(ProviderDisk(file=placeholder_file(vm, i)) for i in range(len(vm.disks))),
        network_interfaces=tuple(ProviderNic(n.mac, n.network, n.bridge) for n in vm.nics),
        boot_devices=vm.boot,
        cpu_mode=vm.cpu_mode,
        cloudinit=vm.cloudinit,
    )


def disk_letters(index: int) -> str:
    """diskLetterForIndex (libvirt/utils.go): 0 -> a, 25 -> z, 26 -> aa."""
    q, r = divmod(index, 26)
    letter = chr(ord("a") + r)
    return letter if q == 0 else disk_letters(q - 1) + letter


@dataclass
class _El:
    tag: str
    attrs: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None
    children: list[_El] = field(default_factory=list)

    def add(self, tag: str, *attrs: tuple[str, str], text: str | None = None) -> _El:
        child = _El(tag, list(attrs), text)
        self.children.append(child)
        return child


def _go_escape(value: str) -> str:
    """encoding/xml's EscapeText, which Go uses for attribute values and character data."""
    table = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\t": "&#x9;", "\n": "&#xA;"}
    table["\r"] = "&#xD;"
    return "".join(table.get(ch, ch) for ch in value)


def _go_marshal(el: _El, out: list[str], depth: int, prefix: str = "  ", indent: str = "    ") -> None:
    """encoding/xml's Encoder with Indent(prefix, indent), as xmlMarshallIndented (libvirt/utils.go)
    sets it: every line starts with the prefix, childless elements close on their own line as
    <x></x> (Go never writes <x/>), no XML declaration, no trailing newline."""
    attrs = "".join(f' {k}="{_go_escape(v)}"' for k, v in el.attrs)
    lead = ("\n" if out else "") + prefix + indent * depth
    out.append(f"{lead}<{el.tag}{attrs}>")
    if el.children:
        for child in el.children:
            _go_marshal(child, out, depth + 1, prefix, indent)
        out.append(f"\n{prefix}{indent * depth}</{el.tag}>")
    else:
        out.append(f"{_go_escape(el.text or '')}</{el.tag}>")


def provider_domain_xml(args: ProviderDomainArgs, *, canonical_machine: str | None = None) -> str:
    """The XML terraform-provider-libvirt 0.8.1 passes to xsltproc for these Domain arguments.

    Shape from v0.8.1: newDomainDef / newDomainDefForConnection (libvirt/domain_def.go: the
    features, the empty <cpu>, the guest-agent channel, spice graphics, the virtio RNG),
    resourceLibvirtDomainCreate (libvirt/resource_libvirt_domain.go: name, memory in MiB, a bare
    vcpu, type, arch and emulator taken from the arguments, so an unset emulator is left out),
    setBootDevices / setDisks / setNetworkInterfaces / setCloudinit (libvirt/domain.go),
    newDefDisk (libvirt/disk_def.go: vdX on virtio, raw qemu driver), newDiskForCloudInit;
    serialised by libvirtxml v1.10007.0's field order and custom MarshalXML methods (type
    attributes first) through xmlMarshallIndented (libvirt/utils.go).

    The provider resolves `machine` against the hypervisor's capabilities (getCanonicalMachineName,
    e.g. pc -> pc-i440fx-7.2); offline that name is unknown, so pass `canonical_machine` when a
    hypervisor is at hand (tests read it from `virsh capabilities`).
    """
    dom = _El("domain", [("type", args.type)])
    dom.add("name", text=args.name)
    dom.add("memory", ("unit", "MiB"), text=str(args.memory))
    dom.add("vcpu", text=str(args.vcpu))
    os_el = dom.add("os")
    type_attrs = [("arch", args.arch)] if args.arch else []
    type_attrs.append(("machine", canonical_machine or args.machine))
    os_el.add("type", *type_attrs, text="hvm")
    for dev in args.boot_devices:
        os_el.add("boot", ("dev", dev))
    features = dom.add("features")
    for feature in ("pae", "acpi", "apic"):
        features.add(feature)
    dom.add("cpu", *([("mode", args.cpu_mode)] if args.cpu_mode else []))
    devices = dom.add("devices")
    for i, disk in enumerate(args.disks):
        source = disk.file or disk.url or ""
        if source.endswith(".iso"):
            raise ValueError(f"disk {i}: an .iso placeholder would become a cdrom on an IDE bus")
        if disk.file:
            el = devices.add("disk", ("type", "file"), ("device", "disk"))
            el.add("driver", ("name", "qemu"), ("type", "qcow2" if disk.file.endswith(".qcow2") else "raw"))
            el.add("source", ("file", disk.file))
        elif disk.url:
            # setDisks parses the URL and keeps its scheme, path (leading '/' included) and host.
            scheme, rest = disk.url.split("://", 1)
            authority, _, path = rest.partition("/")
            host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
            el = devices.add("disk", ("type", "network"), ("device", "disk"))
            el.add("driver", ("name", "qemu"), ("type", "raw"))
            src = el.add("source", ("protocol", scheme), ("name", "/" + path))
            src.add("host", ("name", host), *([("port", port)] if port else []))
        else:
            raise ValueError(f"disk {i}: the platform passes a file or url placeholder")
        el.add("target", ("dev", f"vd{disk_letters(i)}"), ("bus", "virtio"))
    if args.cloudinit:
        # setCloudinit -> newDiskForCloudInit: the volume found by the id's key, by its path.
        key, sep, _ = args.cloudinit.partition(";")
        if not sep:
            raise ValueError(f"cloudinit {args.cloudinit!r}: a CloudInitDisk id, '<volume key>;<uuid>'")
        cd = devices.add("disk", ("type", "file"), ("device", "cdrom"))
        cd.add("driver", ("name", "qemu"), ("type", "raw"))
        cd.add("source", ("file", key))
        cd.add("target", ("dev", "hdd"), ("bus", "ide"))
        cd.add("serial", text="cloudinit")
    for nic in args.network_interfaces:
        kind = "network" if nic.network_name else "bridge"
        iface = devices.add("interface", ("type", kind))
        iface.add("mac", ("address", nic.mac.upper()))
        if nic.network_name:
            iface.add("source", ("network", nic.network_name))
        elif nic.bridge:
            iface.add("source", ("bridge", nic.bridge))
        iface.add("model", ("type", "virtio"))
    channel = devices.add("channel", ("type", "unix"))
    channel.add("target", ("type", "virtio"), ("name", "org.qemu.guest_agent.0"))
    devices.add("graphics", ("type", "spice"), ("autoport", "yes"))
    rng = devices.add("rng", ("model", "virtio"))
    rng.add("backend", ("model", "random"), text="/dev/urandom")
    out: list[str] = []
    _go_marshal(dom, out, 0)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The stylesheet.


def _avt(value: str) -> str:
    """A literal attribute value inside the stylesheet: XML-quoted, and with { } doubled because
    XSLT reads attributes of literal result elements as attribute value templates."""
    return quoteattr(value.replace("{", "{{").replace("}", "}}"))


def _rbd_disk(vm: VmSpec, disk: VmDisk, dev: str) -> str:
    hosts = "".join(f"\n        <host name={_avt(h)} port={_avt(str(p))}/>" for h, p in vm.monitor_hosts)
    serial = f"\n      <serial>{escape(disk.serial)}</serial>" if disk.serial else ""
    # cache=writeback: librbd's cache turns the guest's small writes into fewer OSD round trips
    # and honours flushes, so it is safe. discard=unmap: the guest's fstrim frees RBD objects
    # (images are thin; a clone of a golden image should stay small).
    return f"""
  <xsl:template match="/domain/devices/disk[@device='disk'][target/@dev='{dev}']">
    <disk type="network" device="disk">
      <driver name="qemu" type="raw" cache="writeback" discard="unmap"/>
      <source protocol="rbd" name={_avt(disk.name)}>{hosts}
      </source>
      <auth username={_avt(ceph_id(vm.ceph_user))}>
        <secret type="ceph" uuid={_avt(vm.secret_uuid)}/>
      </auth>
      <target dev="{dev}" bus="virtio"/>{serial}
    </disk>
  </xsl:template>"""


def _hostdev(pci: str) -> str:
    domain, bus, rest = pci.split(":")
    slot, function = rest.split(".")
    # managed='yes': libvirt unbinds the GPU from its host driver and binds vfio-pci at start,
    # and gives it back at stop, so the hypervisor needs no per-GPU vfio setup beyond IOMMU on.
    return (
        '\n      <hostdev mode="subsystem" type="pci" managed="yes">'
        f'\n        <source><address domain="0x{domain}" bus="0x{bus}" slot="0x{slot}" function="0x{function}"/>'
        "</source>\n      </hostdev>"
    )


def render_xslt(vm: VmSpec) -> str:
    """One XSLT 1.0 stylesheet: identity copy of the provider's XML, each placeholder disk vdX
    replaced by the RBD network disk with cephx <auth>, one <hostdev> per PCI device in `gpus`
    appended, and a host-passthrough CPU completed.

    xsltproc stops (non-zero exit, so the provider fails the create) when a placeholder is missing
    or doubled: a VM defined without its disk would PXE-boot and be wiped by MAAS."""
    devs = [f"vd{disk_letters(i)}" for i in range(len(vm.disks))]
    guards = "".join(
        f"""
    <xsl:if test="count(domain/devices/disk[@device='disk'][target/@dev='{dev}']) != 1">
      <xsl:message terminate="yes">akiba: expected exactly one placeholder disk {dev} """
        f"""for rbd:{escape(d.name)} in the provider's XML of {escape(vm.name)}</xsl:message>
    </xsl:if>"""
        for dev, d in zip(devs, vm.disks, strict=True)
    )
    disks = "".join(_rbd_disk(vm, d, dev) for d, dev in zip(vm.disks, devs, strict=True))
    hostdevs = "".join(_hostdev(pci) for pci in vm.gpus)
    devices = ""
    if hostdevs:
        devices = f"""
  <xsl:template match="/domain/devices">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>{hostdevs}
    </xsl:copy>
  </xsl:template>"""
    cpu = ""
    if vm.cpu_mode == "host-passthrough":
        # The provider's cpu block knows only `mode`. check='none': libvirt compares nothing, the
        # guest sees the host CPU as it is; migratable='on' (QEMU's default for -cpu host, libvirt
        # >= 6.5) drops only features that cannot migrate, such as invtsc. Written as libvirt
        # itself stores a host-passthrough CPU.
        cpu = """
  <xsl:template match="/domain/cpu">
    <cpu mode="host-passthrough" check="none" migratable="on"/>
  </xsl:template>"""
    cdrom = ""
    if vm.q35:
        # q35 has no IDE bus; the provider puts the cloud-init ISO on ide (i440fx's only cdrom bus).
        cdrom = """
  <xsl:template match="/domain/devices/disk[@device='cdrom']/target[@bus='ide']">
    <target dev="{concat('sd', substring(@dev, 3))}" bus="sata"/>
  </xsl:template>"""
    return f"""<?xml version="1.0"?>
<!-- Generated by components/vm_domain_xml.py for VM {escape(vm.name).replace("--", "- -")}; do not edit. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" indent="yes" omit-xml-declaration="yes"/>
  <xsl:strip-space elements="*"/>

  <xsl:template match="@*|node()">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
    </xsl:copy>
  </xsl:template>

  <xsl:template match="/">{guards}
    <xsl:apply-templates/>
  </xsl:template>
{disks}{devices}{cpu}{cdrom}
</xsl:stylesheet>
"""


class XsltError(RuntimeError):
    """xsltproc refused the stylesheet or stopped on one of its guards."""


def apply_xslt(domain_xml: str, xslt: str, *, xsltproc: str = "xsltproc") -> str:
    """The final domain XML, made the way the provider makes it (transformXML in
    libvirt/utils_xslt.go: both to temp files, `xsltproc --nomkdir --nonet --nowrite`)."""
    with tempfile.TemporaryDirectory(prefix="akiba-xslt-") as tmp:
        style, doc = Path(tmp, "domain.xslt"), Path(tmp, "domain.xml")
        style.write_text(xslt.strip(), encoding="utf-8")
        doc.write_text(domain_xml, encoding="utf-8")
        proc = subprocess.run(
            [xsltproc, "--nomkdir", "--nonet", "--nowrite", str(style), str(doc)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    if proc.returncode != 0:
        raise XsltError(f"xsltproc exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def final_domain_xml(vm: VmSpec, *, canonical_machine: str | None = None, xsltproc: str = "xsltproc") -> str:
    """What libvirt is asked to define for `vm`: the provider's XML through the stylesheet."""
    return apply_xslt(
        provider_domain_xml(domain_args(vm), canonical_machine=canonical_machine), render_xslt(vm), xsltproc=xsltproc
    )


# ---------------------------------------------------------------------------------------------
# How the provider reads the domain back.


class ProviderReadError(RuntimeError):
    """The error terraform-provider-libvirt 0.8.1's Read returns for this domain XML."""


def _go_url_check(raw: str) -> None:
    """The part of Go's net/url.Parse that rejects what resourceLibvirtDomainRead builds: the
    authority's port must be digits only (parseHost / validOptionalPort)."""
    authority = raw.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):
        port = authority[authority.find("]") + 1 :]
    elif ":" in authority:
        port = authority[authority.rfind(":") :]
    else:
        return
    if port and not re.fullmatch(r":\d*", port):
        raise ProviderReadError(f'parse "{raw}": invalid port "{port}" after host')


def provider_read_disks(domain_xml: str) -> list[dict[str, str]]:
    """The `disk` list resourceLibvirtDomainRead (v0.8.1, libvirt/resource_libvirt_domain.go)
    makes of a defined domain; the provider compares it with the arguments, and `disk` forces a
    replacement. A network disk comes back as url = protocol://host0:port0 + name: for RBD the
    name is `pool/image` (libvirt 9.0 refuses a leading '/': "can't split path"), the URL does not
    parse, and the Read fails (upstream issue #894, seen there with iSCSI).

    In resourceLibvirtDomainCreate that Read (line 618 of v0.8.1) comes after DomainCreate (600)
    and before the `running = false` destroy (657): a create defines and starts the VM, then
    returns the error with the VM left running; every later refresh fails the same way."""
    root = ElementTree.fromstring(domain_xml)  # noqa: S314 - our own or libvirt's XML, not untrusted input
    disks: list[dict[str, str]] = []
    for disk in root.findall("./devices/disk"):
        source = disk.find("source")
        if disk.get("type") == "network" and source is not None:
            hosts = source.findall("host")
            if not hosts:
                raise ProviderReadError("network disk does not contain any hosts")
            raw = f"{source.get('protocol', '')}://{hosts[0].get('name', '')}:{hosts[0].get('port', '')}"
            raw += source.get("name", "")
            _go_url_check(raw)
            disks.append({"url": raw})
        elif disk.get("device") == "cdrom":
            if disk.findtext("serial") == "cloudinit":
                continue
            disks.append({"file": source.get("file", "") if source is not None else ""})
        elif disk.get("type") == "block" and source is not None:
            disks.append({"block_device": source.get("dev", "")})
        elif source is not None and source.get("file"):
            # The provider looks the file up as a storage volume and records its key.
            disks.append({"volume_id": source.get("file", "")})
        else:
            disks.append({"volume_id": f"{source.get('pool', '') if source is not None else ''}/..."})
    return disks


def gpu_addresses(domain_xml: str) -> list[str]:
    """The PCI addresses of a domain's <hostdev>s, as 0000:01:00.0 (to check a final XML)."""
    root = ElementTree.fromstring(domain_xml)  # noqa: S314
    out = []
    for addr in root.findall("./devices/hostdev[@type='pci']/source/address"):
        parts = [addr.get(k, "0x0")[2:] for k in ("domain", "bus", "slot", "function")]
        out.append(f"{int(parts[0], 16):04x}:{int(parts[1], 16):02x}:{int(parts[2], 16):02x}.{int(parts[3], 16):x}")
    return out
