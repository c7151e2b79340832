"""A GPU node installed by MAAS: enlisted by PXE MAC, deployed with the shared user-data.

In prod these are the self-built PCs; in dev the same code enlists libvirt VMs (virsh power).
Adding 48 machines is 48 entries in `akiba:nodes`, nothing else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi

from components import maas as maas_backend
from components.cluster_identity import ClusterIdentity
from components.node_bootstrap import (
    BondNetwork,
    ClusterJoin,
    NodeBootstrap,
    Role,
    node_labels,
    node_taints,
    render_user_data,
)
from stacks.spec import NetworkSpec, NodeSpec, RegistrySpec


@dataclass(frozen=True)
class BareMetalNodeArgs:
    node: NodeSpec
    role: Role
    join: pulumi.Output[ClusterJoin]  # shared by all nodes; the token inside is secret
    identity: ClusterIdentity
    network: NetworkSpec
    registry: RegistrySpec
    maas: maas_backend.MaasSettings
    power_password: pulumi.Output[str] | None
    hypervisor_uris: dict[str, str]
    after: tuple[pulumi.Resource, ...] = ()  # joining nodes: the first controller's deployment


def bootstrap_for(args: BareMetalNodeArgs, join: ClusterJoin, pki: dict[str, str] | None) -> NodeBootstrap:
    """The bootstrap description of one MAAS node (pure: tests call it directly)."""
    node, net = args.node, args.network
    prefix = ipaddress.IPv4Network(net.office_lan).prefixlen
    return NodeBootstrap(
        hostname=node.hostname,
        ip=node.ip,
        role=args.role,
        kind="vm" if node.power.type == "virsh" else "baremetal",
        cluster=join,
        registry_mirror=args.registry.mirror,
        registry_upstreams=tuple(args.registry.upstreams),
        labels=node_labels(node.gpu_model, len(node.gpus), "vm" if node.power.type == "virsh" else "baremetal"),
        taints=node_taints(args.role, bool(node.gpus)),
        gpu_driver_branch=node.driver_branch,
        network=BondNetwork(
            nics=tuple((n.name, n.mac) for n in node.nics),
            address=f"{node.ip}/{prefix}",
            gateway=net.gateway,
            dns=tuple(net.dns_servers),
            mode=net.bond.mode,
            mtu=net.bond.mtu,
        ),
        pki=pki,
    )


class BareMetalNode(pulumi.ComponentResource):
    """One MAAS machine and its deployment."""

    user_data: pulumi.Output[str]

    def __init__(self, name: str, args: BareMetalNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:node:BareMetalNode", name, None, opts)
        if args.role == "worker":
            self.user_data = args.join.apply(lambda j: render_user_data(bootstrap_for(args, j, None)))
        else:
            self.user_data = pulumi.Output.all(args.join, args.identity.controller_pki.files).apply(
                lambda v: render_user_data(bootstrap_for(args, v[0], v[1]))
            )
        # Secret without saying so: it is derived from the join token (and, on controllers, the
        # CA keys), which are secrets; tests/test_secrets.py holds that.
        params = maas_backend.power_parameters(args.node, args.power_password, args.hypervisor_uris)
        self.machine = maas_backend.enlist(name, args.node, params, args.maas, parent=self)
        self.instance = maas_backend.deploy(
            name, args.node.hostname, self.machine, self.user_data, args.maas, parent=self, after=args.after
        )
        # userData stays an attribute: registering it again would copy ~12 KB per node.
        self.register_outputs({"hostname": args.node.hostname, "systemId": self.machine.id})
