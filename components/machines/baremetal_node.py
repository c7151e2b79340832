"""A GPU node installed by MAAS: enlisted by PXE MAC, deployed with the shared user-data.

In prod these are the self-built PCs; in dev the same code enlists libvirt VMs (virsh power).
Adding 48 machines is 48 entries in `akiba:nodes`, nothing else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

import pulumi

from components.cluster.bootstrap import (
    BondNetwork,
    ClusterJoin,
    NodeBootstrap,
    NodeKind,
    RegistryMirror,
    Role,
    node_labels,
    node_taints,
    render_user_data,
)
from components.cluster.identity import ClusterIdentity
from components.machines import maas as maas_backend
from components.machines.types import Machine, VirshPower


@dataclass(frozen=True)
class OfficeLan:
    """The office LAN every node's bond joins."""

    cidr: str  # e.g. "192.168.10.0/24": node addresses take its prefix length
    gateway: str  # the default gateway, e.g. "192.168.10.1"
    dns: tuple[str, ...]  # resolvers for the nodes
    bond_mode: Literal["balance-alb", "active-backup", "802.3ad"]  # balance-alb needs no switch support
    mtu: int  # e.g. 1500


@dataclass(frozen=True)
class NodeGpus:
    """A node's GPUs: all of one model."""

    model: str  # label value, e.g. "gtx-1080"
    count: int  # e.g. 2
    driver_branch: str  # NVIDIA driver branch the model needs, e.g. "580"


@dataclass(frozen=True)
class BareMetalNodeArgs:
    machine: Machine  # what MAAS enlists: hostname, NICs, power
    ip: str  # static address on the office LAN (on the bond), e.g. "192.168.10.11"
    gpus: NodeGpus | None  # None: a node without GPUs
    role: Role
    join: pulumi.Output[ClusterJoin]  # shared by all nodes; the token inside is secret
    identity: ClusterIdentity
    lan: OfficeLan  # the bond's address, gateway and resolvers come from it
    registry: RegistryMirror  # what the node's containerd pulls through
    registry_auth: pulumi.Output[str]  # secret: the registry pull account's `Basic ...` header
    maas: maas_backend.MaasSettings
    power_password: pulumi.Output[str] | None  # secret; None: power types that need none
    after: tuple[pulumi.Resource, ...] = ()  # joining nodes: the first controller's deployment
    boots_from_cluster_ceph: bool = False  # a VM whose disks are in this cluster's own Ceph


def bootstrap_for(
    args: BareMetalNodeArgs, join: ClusterJoin, registry_auth: str, pki: dict[str, str] | None
) -> NodeBootstrap:
    """The bootstrap description of one MAAS node (pure: tests call it directly)."""
    machine, lan, gpus = args.machine, args.lan, args.gpus
    prefix = ipaddress.IPv4Network(lan.cidr).prefixlen
    kind: NodeKind = "vm" if isinstance(machine.power, VirshPower) else "baremetal"
    return NodeBootstrap(
        hostname=machine.hostname,
        ip=args.ip,
        role=args.role,
        kind=kind,
        cluster=join,
        registry_mirror=args.registry.mirror,
        registry_upstreams=args.registry.upstreams,
        registry_authorization=registry_auth,
        labels=node_labels(gpus.model if gpus else None, gpus.count if gpus else 0, kind, args.boots_from_cluster_ceph),
        taints=node_taints(kind),
        gpu_driver_branch=gpus.driver_branch if gpus else None,
        network=BondNetwork(
            nics=tuple((n.name, n.mac) for n in machine.nics),
            address=f"{args.ip}/{prefix}",
            gateway=lan.gateway,
            dns=lan.dns,
            mode=lan.bond_mode,
            mtu=lan.mtu,
        ),
        pki=pki,
    )


class BareMetalNode(pulumi.ComponentResource):
    """One MAAS machine and its deployment."""

    user_data: pulumi.Output[str]

    def __init__(self, name: str, args: BareMetalNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:node:BareMetalNode", name, None, opts)
        if args.role == "worker":
            self.user_data = pulumi.Output.all(args.join, args.registry_auth).apply(
                lambda v: render_user_data(bootstrap_for(args, v[0], v[1], None))
            )
        else:
            self.user_data = pulumi.Output.all(args.join, args.registry_auth, args.identity.controller_pki.files).apply(
                lambda v: render_user_data(bootstrap_for(args, v[0], v[1], v[2]))
            )
        # Secret without saying so: it is derived from the join token and the registry's pull
        # credential (and, on controllers, the CA keys), which are secrets; tests/test_secrets.py
        # holds that.
        params = maas_backend.power_parameters(args.machine.power, args.power_password)
        self.machine = maas_backend.enlist(name, args.machine, params, args.maas, parent=self)
        hostname = args.machine.hostname
        self.instance = maas_backend.deploy(
            name,
            hostname,
            args.machine.hardware,
            self.machine,
            self.user_data,
            args.maas,
            parent=self,
            after=args.after,
        )
        # userData stays an attribute: registering it again would copy ~12 KB per node.
        self.register_outputs({"hostname": hostname, "systemId": self.machine.id})
