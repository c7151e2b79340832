"""stacks/args.py: the spec becomes each component's own args without losing or bending a value."""

from __future__ import annotations

from typing import Any

import pytest

from components.burst.wireguard import TUNNEL_MTU
from components.machines.types import Hardware, VirshPower
from components.storage.ceph_storage import CephPools
from stacks import args
from stacks import spec as spec_module
from stacks.gpus import GPU_MODELS
from tests.conftest import STACKS, edited, parse, stack_file


@pytest.mark.parametrize("stack", STACKS)
def test_machines_keep_what_maas_and_the_bootstrap_need(stack: str) -> None:
    spec = parse(stack_file(stack))
    for node in spec.nodes:
        machine = args.machine(node, spec.hypervisor_uris)
        assert machine.pxe_mac == node.nics[0].mac  # MAAS enlists by the first NIC
        assert machine.power.type == node.power.type  # the power type MAAS is told
        if isinstance(machine.power, VirshPower):
            assert machine.power.uri in spec.hypervisor_uris.values()
        gpus = args.node_gpus(node)
        assert (gpus is None) == (not node.gpus)
        if gpus is not None:
            assert gpus.driver_branch == GPU_MODELS[gpus.model].driver_branch


@pytest.mark.parametrize("stack", STACKS)
def test_vm_disks_are_the_disks_the_node_names(stack: str) -> None:
    spec = parse(stack_file(stack))
    for node in spec.nodes:
        if node.power.type == "virsh":
            vm = args.vm_hardware(node, node.power)
            assert (vm.boot_disk, *vm.ceph_disks) == (node.disks.boot, *node.disks.ceph)
            assert [n.mac for n in vm.nics] == [n.mac for n in node.nics]
            # Every GPU once, with all its card's PCI functions (VGA + HDMI audio).
            assert [(g.pci, g.functions) for g in vm.gpus] == [(g.pci, 2) for g in node.gpus]


def test_a_pc_is_allocated_by_its_hardware_and_a_vm_by_its_size() -> None:
    spec = parse(stack_file("prod"))
    pc = next(n for n in spec.nodes if n.power.type == "manual")
    vm = next(n for n in spec.nodes if isinstance(n.power, spec_module.VirshPower))
    assert args.hardware(pc) == Hardware(cpus=8, memory_mib=62 * 1024)
    assert isinstance(vm.power, spec_module.VirshPower)
    assert args.hardware(vm) == Hardware(cpus=vm.power.vcpus, memory_mib=vm.power.memory_mib)
    assert args.machine(pc, spec.hypervisor_uris).hardware == args.hardware(pc)


@pytest.mark.parametrize(
    ("burst", "bond_mtu", "expected"),
    [(True, 1500, TUNNEL_MTU), (False, 1500, 1500), (True, 1400, 1400), (False, 9000, 9000)],
)
def test_the_pod_network_fits_the_bond_and_the_tunnel(burst: bool, bond_mtu: int, expected: int) -> None:
    """flannel's MTU is the underlay's; packets to burst nodes cross the WireGuard tunnel."""

    def edit(values: dict[str, Any]) -> None:
        values["akiba:burst"]["enabled"] = burst
        values["akiba:network"]["bond"]["mtu"] = bond_mtu

    assert args.pod_network_mtu(parse(edited("prod", edit))) == expected


def test_an_existing_vpc_reaches_the_network() -> None:
    def existing(values: dict[str, Any]) -> None:
        values["akiba:burst"]["existingVpc"] = {"vpcId": "vpc-0123456789abcdef0", "internetGatewayId": "igw-01234567"}

    burst = parse(edited("prod", existing)).burst
    vpc = args.existing_vpc(burst)
    assert vpc is not None and (vpc.vpc_id, vpc.internet_gateway_id) == ("vpc-0123456789abcdef0", "igw-01234567")
    assert args.existing_vpc(parse(stack_file("prod")).burst) is None


def test_same_named_refuses_a_section_without_the_field() -> None:
    network = parse(stack_file("prod")).network  # has no replicas, pools or filesystem
    with pytest.raises(AttributeError):
        args.same_named(CephPools, network)
