"""Spec -> component args: the one place each part of the stack spec becomes the plain, typed
values a component takes. Components never see the spec; pure functions, tested directly."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from components.burst.network import ExistingVpc, SiteLink
from components.burst.wireguard import TUNNEL_MTU
from components.cluster.bootstrap import RegistryMirror
from components.engineers.home_containers import HomeLimits
from components.engineers.home_sshd import Engineer
from components.machines.baremetal_node import NodeGpus, OfficeLan
from components.machines.dns import AddressRecord
from components.machines.libvirt_vm import START_CONTROLLER, START_WORKER, PassthroughGpu, VmHardware
from components.machines.maas import MaasTarget
from components.machines.types import AmtPower, Hardware, IpmiPower, Machine, ManualPower, Nic, Power, VirshPower
from components.storage.ceph_storage import CephPools
from components.storage.home_snapshots import HomeSnapshots
from components.storage.personal_databases import GoldenDatabase
from components.storage.rook_ceph import CephHost
from components.storage.shared_homes import Home
from components.tenants.quota import ContainerDefaults, TenantQuota
from components.tenants.tenants import Tenant
from stacks import spec
from stacks.gpus import GPU_MODELS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Args = TypeVar("Args", bound="DataclassInstance")


def same_named(cls: type[Args], section: BaseModel, **other: Any) -> Args:
    """`cls` from the spec section's fields of the same names, and `other` for the rest."""
    own = {f.name: getattr(section, f.name) for f in dataclasses.fields(cls) if f.name not in other}
    return cls(**own, **other)


def registry_mirror(registry: spec.RegistrySpec) -> RegistryMirror:
    return RegistryMirror(mirror=registry.mirror, upstreams=tuple(registry.upstreams))


# --- machines --------------------------------------------------------------------------------


def nics(node: spec.NodeSpec) -> tuple[Nic, ...]:
    return tuple(Nic(name=n.name, mac=n.mac) for n in node.nics)


def maas_power(node: spec.NodeSpec, hypervisor_uris: dict[str, str]) -> Power:
    """How MAAS powers the node on; a VM's hypervisor is resolved to its libvirt URI."""
    p = node.power
    if isinstance(p, spec.IpmiPower):
        return IpmiPower(address=p.address, user=p.user)
    if isinstance(p, spec.AmtPower):
        return AmtPower(address=p.address)
    if isinstance(p, spec.VirshPower):
        return VirshPower(uri=hypervisor_uris[p.hypervisor], domain=p.domain)
    return ManualPower()


def hardware(node: spec.NodeSpec) -> Hardware:
    """The floor MAAS allocates the node by: a PC's declared hardware, a VM's own size."""
    if isinstance(node.power, spec.VirshPower):
        return Hardware(cpus=node.power.vcpus, memory_mib=node.power.memory_mib)
    assert node.hardware is not None  # stacks.rules: every PC declares it
    return Hardware(cpus=node.hardware.cpus, memory_mib=node.hardware.memory_gib * 1024)


def machine(node: spec.NodeSpec, hypervisor_uris: dict[str, str]) -> Machine:
    return Machine(
        hostname=node.hostname, nics=nics(node), power=maas_power(node, hypervisor_uris), hardware=hardware(node)
    )


def node_gpus(node: spec.NodeSpec) -> NodeGpus | None:
    model, branch = node.gpu_model, node.driver_branch  # one model per node (stacks.rules)
    if model is None or branch is None:
        return None
    return NodeGpus(model=model, count=len(node.gpus), driver_branch=branch)


def pod_network_mtu(s: spec.StackSpec) -> int:
    """The underlay MTU flannel's VXLAN packets must fit: the bond's, and with burst nodes also the
    WireGuard tunnel's, which the packets to and from them cross."""
    mtu = s.network.bond.mtu
    return min(mtu, TUNNEL_MTU) if s.burst.enabled else mtu


def office_lan(network: spec.NetworkSpec) -> OfficeLan:
    return OfficeLan(
        cidr=network.office_lan,
        gateway=network.gateway,
        dns=tuple(network.dns_servers),
        bond_mode=network.bond.mode,
        mtu=network.bond.mtu,
    )


def maas_target(maas: spec.MaasSpec) -> MaasTarget:
    return same_named(MaasTarget, maas)


def office_dns_records(s: spec.StackSpec) -> tuple[AddressRecord, ...]:
    """The registry, Grafana and every app, each at every office node: the ingress's NodePorts
    listen on all of them; and api.<domain> at the control plane's virtual address, if any. A
    registry named by an address or a bare host name gets no record
    (its /etc/hosts line on every node is what resolves it)."""
    ips = tuple(n.ip for n in s.nodes)
    domain = s.apps.domain
    names = [f"grafana.{domain}", *(f"{app.name}.{domain}" for app in s.apps.apps)]
    host = s.registry.host
    if "." in host and not host.replace(".", "").isdigit():
        names.insert(0, host)
    records = [AddressRecord(fqdn=name, addresses=ips) for name in names]
    if s.cluster.api_vip:  # the API on the controllers' virtual address (kube-vip)
        records.append(AddressRecord(fqdn=f"api.{domain}", addresses=(str(s.cluster.api_vip),)))
    return tuple(records)


def vm_hardware(node: spec.NodeSpec, virsh: spec.VirshPower) -> VmHardware:
    """The VM behind a node MAAS powers with virsh."""
    return same_named(
        VmHardware,
        virsh,  # domain, hypervisor, vcpus, memory_mib, bridge, boot_disk_gib, osd_disk_gib
        nics=nics(node),
        gpus=tuple(PassthroughGpu(g.pci, GPU_MODELS[g.model].pci_functions) for g in node.gpus if g.pci),
        boot_disk=node.disks.boot,
        ceph_disks=tuple(node.disks.ceph),
        start_order=START_CONTROLLER if node.role == "controller" else START_WORKER,
    )


# --- storage ---------------------------------------------------------------------------------


def ceph_hosts(nodes: list[spec.NodeSpec]) -> tuple[CephHost, ...]:
    return tuple(CephHost(hostname=n.hostname, devices=tuple(n.disks.ceph)) for n in nodes)


def ceph_pools(storage: spec.StorageSpec) -> CephPools:
    return same_named(CephPools, storage)


def homes(engineers: list[spec.EngineerSpec]) -> tuple[Home, ...]:
    return tuple(same_named(Home, e, gid=e.group_id, size=e.home_size, volume_name=e.home_volume) for e in engineers)


def home_snapshots(policy: spec.HomeSnapshotsSpec) -> HomeSnapshots:
    return HomeSnapshots(every=policy.every, keep=tuple(policy.keep.model_dump().items()))


def golden_database(db: spec.DatabasesSpec) -> GoldenDatabase:
    return same_named(GoldenDatabase, db, size=db.golden_size)


def database_owners(engineers: list[spec.EngineerSpec]) -> tuple[str, ...]:
    """The engineers who asked for a personal database, in config order."""
    return tuple(e.name for e in engineers if e.personal_database)


# --- engineers -------------------------------------------------------------------------------


def accounts(engineers: list[spec.EngineerSpec]) -> tuple[Engineer, ...]:
    return tuple(Engineer(e.name, e.uid, e.group_id, tuple(e.ssh_keys)) for e in engineers)


# --- tenants ---------------------------------------------------------------------------------


def tenants(s: spec.StackSpec) -> tuple[Tenant, ...]:
    """Each engineer with their quota (the stack's, with their own values where they set some)
    and their ssh keys (their kubeconfig output is sealed to them)."""
    return tuple(
        Tenant(login=e.name, quota=tenant_quota(s.tenancy.quota.overridden(e.quota)), ssh_keys=tuple(e.ssh_keys))
        for e in s.engineers
    )


def tenant_quota(q: spec.QuotaSpec) -> TenantQuota:
    return TenantQuota(gpus=q.gpus, cpu=q.cpu, memory=q.memory, storage=q.storage)


def container_defaults(tenancy: spec.TenancySpec) -> ContainerDefaults:
    return same_named(ContainerDefaults, tenancy.container_defaults)


def home_limits(tenancy: spec.TenancySpec) -> HomeLimits:
    return same_named(HomeLimits, tenancy.home_limits)


# --- burst -----------------------------------------------------------------------------------


def existing_vpc(burst: spec.BurstSpec) -> ExistingVpc | None:
    vpc = burst.existing_vpc
    return same_named(ExistingVpc, vpc) if vpc else None


def site_link(link: spec.SiteLinkSpec) -> SiteLink:
    return same_named(SiteLink, link)
