"""A GPU node installed by MAAS: enlisted by PXE MAC, deployed with a small install user-data
(name, address, the configuration key), then configured over ssh (node_converge.py) so that
later changes update it in place.

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
    NodeInstall,
    NodeKind,
    RegistryMirror,
    Role,
    node_labels,
    node_taints,
    render_install_user_data,
    render_user_data,
)
from components.cluster.identity import ClusterIdentity
from components.machines import maas as maas_backend
from components.machines.node_converge import NodeConverge, NodeConvergeArgs
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
    kubernetes_version: str  # e.g. "1.36.4" (also inside `join`): a change drains and upgrades
    identity: ClusterIdentity
    lan: OfficeLan  # the bond's address, gateway and resolvers come from it
    registry: RegistryMirror  # what the node's containerd pulls through
    registry_auth: pulumi.Output[str]  # secret: the registry pull account's `Basic ...` header
    maas: maas_backend.MaasSettings
    power_password: pulumi.Output[str] | None  # secret; None: power types that need none
    converge_key: pulumi.Output[str]  # NodeAccess: the configuration key's private half (secret)
    converge_public_key: pulumi.Output[str]  # ...and its public half, installed on the node
    kubeconfig: pulumi.Output[str]  # secret: the admin kubeconfig the rollout drains with
    after: tuple[pulumi.Resource, ...] = ()  # the previous node's last configuration step
    deploy_after: tuple[pulumi.Resource, ...] = ()  # what MAAS must wait for (a VM's domain)
    boots_from_cluster_ceph: bool = False  # a VM whose disks are in this cluster's own Ceph


def bootstrap_for(
    args: BareMetalNodeArgs,
    join: ClusterJoin,
    registry_auth: str,
    pki: dict[str, str] | None,
    encryption_config: str | None = None,
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
        encryption_config=encryption_config,
    )


def install_for(args: BareMetalNodeArgs, converge_public_key: str) -> NodeInstall:
    """What MAAS installs this node with (pure: tests call it directly)."""
    prefix = ipaddress.IPv4Network(args.lan.cidr).prefixlen
    return NodeInstall(
        hostname=args.machine.hostname,
        nics=tuple((n.name, n.mac) for n in args.machine.nics),
        address=f"{args.ip}/{prefix}",
        converge_key=converge_public_key,
    )


class BareMetalNode(pulumi.ComponentResource):
    """One MAAS machine, its install and its configuration."""

    document: pulumi.Output[str]  # the node's configuration (#cloud-config), secret
    install_user_data: pulumi.Output[str]
    last: pulumi.Resource  # the node's last configuration step: the next node starts after it

    def __init__(self, name: str, args: BareMetalNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:node:BareMetalNode", name, None, opts)
        # Secret: derived from the join token and the registry's pull credential (and, on
        # controllers, the CA keys); tests/test_secrets.py holds that.
        if args.role == "worker":
            document = pulumi.Output.all(args.join, args.registry_auth).apply(
                lambda v: render_user_data(bootstrap_for(args, v[0], v[1], None))
            )
        else:
            pki = args.identity.controller_pki
            document = pulumi.Output.all(args.join, args.registry_auth, pki.files, pki.encryption_config).apply(
                lambda v: render_user_data(bootstrap_for(args, v[0], v[1], v[2], v[3]))
            )
        self.document = pulumi.Output.secret(document)
        self.install_user_data = args.converge_public_key.apply(
            lambda key: render_install_user_data(install_for(args, key))
        )
        params = maas_backend.power_parameters(args.machine.power, args.power_password)
        self.machine = maas_backend.enlist(name, args.machine, params, args.maas, parent=self)
        hostname = args.machine.hostname
        self.instance = maas_backend.deploy(
            name,
            hostname,
            args.machine.hardware,
            self.machine,
            self.install_user_data,
            args.maas,
            parent=self,
            after=args.deploy_after,
        )
        converge = NodeConverge(
            name,
            NodeConvergeArgs(
                hostname=hostname,
                address=args.ip,
                document=self.document,
                kubernetes_version=args.kubernetes_version,
                private_key=args.converge_key,
                kubeconfig=args.kubeconfig,
                after=(self.instance, *args.after),
                # Joining nodes get the token once, at creation (the first controller's document has it).
                join_token=None if args.role == "controller-init" else args.join.apply(lambda j: j.token),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.last = converge.last
        # The documents stay attributes: registering them again would copy ~12 KB per node.
        self.register_outputs({"hostname": hostname, "systemId": self.machine.id})
