"""A VM on a libvirt hypervisor whose disks are Ceph RBD images: the images (dynamic
resources), and the domain (`components.machines.libvirt_domain`, see there why not pulumi-libvirt's
Domain), whose XML the XSLT from `components.machines.vm_domain_xml` rewrites into RBD network disks
with cephx auth plus `<hostdev>` for each GPU (VT-d).

Used for the nodes whose power type is `virsh`: the VM has the node's MACs, GPUs and disks
(by serial, so /dev/disk/by-id/virtio-<serial> is the path the node spec names), PXE-boots,
and MAAS enlists and deploys it exactly like a bare-metal PC.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.machines.libvirt_domain import LibvirtDomain, LibvirtDomainArgs
from components.machines.rbd_image import RbdImage, RbdImageArgs
from components.machines.types import Nic
from components.machines.vm_domain_xml import (
    VmDisk,
    VmNic,
    VmSpec,
    domain_args,
    normal_pci,
    provider_domain_xml,
    render_xslt,
)

SERIAL_PREFIX = "/dev/disk/by-id/virtio-"
# Start orders after a power cut: a controller (etcd, the API) before the workers that join it.
START_CONTROLLER, START_WORKER = 0, 1


@dataclass(frozen=True)
class VmCephAccess:
    """The Ceph the VM disks live on, as the hypervisors and the RBD resources reach it."""

    cluster: pulumi.Input[str]  # a name that outlives the monitors: the disks' identity
    monitors: pulumi.Output[list[str]]  # host:port
    pool: pulumi.Input[str]
    user: pulumi.Input[str]  # cephx id, e.g. "libvirt"
    key: pulumi.Output[str]  # secret


@dataclass(frozen=True)
class PassthroughGpu:
    """A GPU the VM owns by VT-d: its slot and every PCI function the card has there."""

    pci: str  # the slot's function 0, e.g. "0000:01:00.0"
    functions: int  # e.g. 2: VGA and HDMI audio, which share the card's IOMMU group

    def addresses(self) -> tuple[str, ...]:
        """Every function of the slot, function 0 first. QEMU starts the VM only when every
        device of an IOMMU group is assigned to it ("group N is not viable"), and libvirt's
        managed hostdevs detach only what is listed."""
        pci = normal_pci(self.pci)
        if not pci.endswith(".0") or not 1 <= self.functions <= 8:
            raise ValueError(f"GPU {self.pci!r} x{self.functions}: its slot's function 0 and 1..8 functions")
        slot = pci[: -len(".0")]
        return tuple(f"{slot}.{f}" for f in range(self.functions))


@dataclass(frozen=True)
class VmHardware:
    """The VM a node is: its domain on a hypervisor, CPUs, memory, NICs, GPUs and disks."""

    domain: str  # libvirt domain name, e.g. "akiba-dev01"
    hypervisor: str  # the hypervisor's name, e.g. "desk01" (reported in the outputs)
    vcpus: int  # e.g. 8
    memory_mib: int  # e.g. 32768
    bridge: str  # host bridge every NIC joins, e.g. "br0"
    nics: tuple[Nic, ...]  # the node's NICs (their MACs), the PXE one first
    gpus: tuple[PassthroughGpu, ...]  # passed through by VT-d
    boot_disk: str  # /dev/disk/by-id/virtio-<serial>: the serial names the RBD image
    ceph_disks: tuple[str, ...]  # the OSD disks, the same kind of path
    boot_disk_gib: int  # e.g. 40
    osd_disk_gib: int  # each of ceph_disks
    # After a power cut: the hypervisor starts lower orders first (START_CONTROLLER, then
    # START_WORKER), each VM once its RBD disks answer (components/machines/vm_start.py).
    start_order: int = 1


def disk_serials(vm: VmHardware) -> list[tuple[str, int]]:
    """(serial, size GiB) of the VM's disks, boot first; the serial is also the image name."""
    disks = [(vm.boot_disk, vm.boot_disk_gib)] + [(d, vm.osd_disk_gib) for d in vm.ceph_disks]
    return [(path.removeprefix(SERIAL_PREFIX), size) for path, size in disks]


def vm_spec(vm: VmHardware, pool: str, monitors: tuple[str, ...], user: str, secret_uuid: str) -> VmSpec:
    """The VM as libvirt will define it: one <hostdev> per PCI function of each GPU, and the
    host's CPU as it is (CUDA and the ML libraries pick their code paths from its features)."""
    return VmSpec(
        name=vm.domain,
        vcpus=vm.vcpus,
        memory_mib=vm.memory_mib,
        disks=tuple(VmDisk(pool, serial, serial) for serial, _ in disk_serials(vm)),
        monitors=monitors,
        ceph_user=user,
        secret_uuid=secret_uuid,
        gpus=tuple(address for gpu in vm.gpus for address in gpu.addresses()),
        nics=tuple(VmNic(mac=n.mac, bridge=vm.bridge) for n in vm.nics),
        boot=("network", "hd"),  # PXE first: MAAS installs it; then the disk
        cpu_mode="host-passthrough",
    )


@dataclass(frozen=True)
class LibvirtVmArgs:
    vm: VmHardware  # the node's VM: domain, CPUs, memory, NICs, GPUs, disks
    pool: pulumi.Input[str]  # the VM pool (dev reads it from prod's outputs)
    ceph: VmCephAccess
    secret_uuid: str  # the hypervisor's libvirt ceph secret
    uri: str  # the hypervisor's libvirt URI
    protect: bool  # prod: the disks hold a node's data
    after: tuple[pulumi.Resource, ...] = ()


class LibvirtVm(pulumi.ComponentResource):
    domain: LibvirtDomain
    domain_name: str
    hypervisor: str
    disks: pulumi.Output[list[str]]  # pool/image
    gpus: list[str]  # one PCI slot (function 0) per GPU

    def __init__(self, name: str, args: LibvirtVmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:vm:LibvirtVm", name, None, opts)
        vm, ceph = args.vm, args.ceph
        images = [
            RbdImage(
                f"{name}-{serial}",
                RbdImageArgs(
                    cluster=ceph.cluster,
                    pool=args.pool,
                    image=serial,
                    size_gib=size,
                    mon_host=ceph.monitors.apply(",".join),
                    user=ceph.user,
                    key=ceph.key,
                ),
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect),
            )
            for serial, size in disk_serials(vm)
        ]
        # The provider-shaped XML does not depend on the Ceph side, so it is a plain value; the
        # XSLT carries the monitors and the user, which may come from another stack.
        shape = vm_spec(vm, "placeholder", ("127.0.0.1:6789",), "libvirt", args.secret_uuid)
        xslt = pulumi.Output.all(args.pool, ceph.monitors, ceph.user).apply(
            lambda v: render_xslt(vm_spec(vm, str(v[0]), tuple(v[1]), str(v[2]), args.secret_uuid))
        )
        self.domain = LibvirtDomain(
            name,
            LibvirtDomainArgs(
                hypervisor=vm.hypervisor,
                uri=args.uri,
                name=vm.domain,
                provider_xml=provider_domain_xml(domain_args(shape)),
                xslt=xslt,
                start_order=vm.start_order,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*images, *args.after]),
        )
        self.domain_name, self.hypervisor = vm.domain, vm.hypervisor
        self.disks = pulumi.Output.from_input(args.pool).apply(
            lambda pool: [f"{pool}/{serial}" for serial, _ in disk_serials(vm)]
        )
        self.gpus = [gpu.pci for gpu in vm.gpus]
        self.register_outputs({"domain": self.domain.name})
