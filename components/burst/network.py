"""The burst VPC and its WireGuard link to the office LAN.

Private subnets (one per zone) for the spot nodes; one public subnet for the gateway. The
gateway routes the office LAN through the tunnel and NATs the rest to the internet. Nothing
is open to 0.0.0.0/0: the gateway accepts WireGuard from the office's public address only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.burst.aws_launch import launch_template
from components.burst.iam import instance_profile, publish_parameter_policy
from components.burst.wireguard import GatewayConfig, render_gateway_user_data
from components.context import PlatformContext


@dataclass(frozen=True)
class ExistingVpc:
    """A VPC made elsewhere; its CIDR must be the burst VPC CIDR (the subnets are carved from it)."""

    vpc_id: str  # e.g. "vpc-0123456789abcdef0"
    internet_gateway_id: str  # attached to that VPC, e.g. "igw-0123456789abcdef0"


@dataclass(frozen=True)
class SiteLink:
    """WireGuard between an EC2 gateway and the office router."""

    office_public_ip: str  # the office's public address: the only peer allowed in
    office_public_key: str  # the office router's WireGuard public key
    listen_port: int  # the gateway's WireGuard UDP port, e.g. 51820
    tunnel_cidr: str  # point-to-point tunnel addresses, e.g. "10.255.255.0/30"
    gateway_instance_type: str  # e.g. "t3.micro"


@dataclass(frozen=True)
class BurstNetworkArgs:
    ctx: PlatformContext
    vpc_cidr: str  # the burst VPC, e.g. "10.20.0.0/16"
    zones: tuple[str, ...]  # availability zones, one private subnet each; the gateway in the first
    existing_vpc: ExistingVpc | None  # None: make a VPC
    site_link: SiteLink
    office_lan: str  # the office LAN CIDR, routed through the tunnel
    provider: aws.Provider


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], str]:
    """Private subnets (one per zone) and the public one, carved from the VPC in sixteenths."""
    parts = list(ipaddress.IPv4Network(vpc_cidr).subnets(prefixlen_diff=4))
    return [str(p) for p in parts[:zones]], str(parts[-1])


def tunnel_addresses(tunnel_cidr: str) -> tuple[str, str]:
    """(gateway address with prefix, office address /32) of the point-to-point tunnel."""
    net = ipaddress.IPv4Network(tunnel_cidr)
    hosts = list(net.hosts())
    return f"{hosts[0]}/{net.prefixlen}", f"{hosts[1]}/32"


class BurstNetwork(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    node_security_group_id: pulumi.Output[str]
    gateway_public_ip: pulumi.Output[str]
    wireguard_public_key_parameter: str  # SSM parameter name: the gateway writes its public key there

    def __init__(self, name: str, args: BurstNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:burst:BurstNetwork", name, None, opts)
        ctx, link = args.ctx, args.site_link
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        tags = {**ctx.tags, "Name": f"{ctx.cluster_name}-burst"}

        vpc_id: pulumi.Input[str]
        igw_id: pulumi.Input[str]
        if args.existing_vpc is not None:
            # Its CIDR must be vpc_cidr: the subnets below are carved from it.
            vpc_id, igw_id = args.existing_vpc.vpc_id, args.existing_vpc.internet_gateway_id
        else:
            vpc = aws.ec2.Vpc(
                "burst",
                cidr_block=args.vpc_cidr,
                enable_dns_hostnames=True,
                enable_dns_support=True,
                tags=tags,
                opts=child,
            )
            vpc_id = vpc.id
            igw_id = aws.ec2.InternetGateway("burst", vpc_id=vpc.id, tags=tags, opts=child).id
        private_cidrs, public_cidr = subnet_cidrs(args.vpc_cidr, len(args.zones))
        public = aws.ec2.Subnet(
            "burst-public",
            vpc_id=vpc_id,
            cidr_block=public_cidr,
            availability_zone=args.zones[0],
            tags=tags,
            opts=child,
        )
        public_routes = aws.ec2.RouteTable(
            "burst-public",
            vpc_id=vpc_id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw_id}],
            tags=tags,
            opts=child,
        )
        aws.ec2.RouteTableAssociation("burst-public", subnet_id=public.id, route_table_id=public_routes.id, opts=child)

        gateway_sg = aws.ec2.SecurityGroup(
            "burst-gateway",
            vpc_id=vpc_id,
            description="WireGuard from the office; forwarding for the burst subnets",
            ingress=[
                {
                    "protocol": "udp",
                    "from_port": link.listen_port,
                    "to_port": link.listen_port,
                    "cidr_blocks": [f"{link.office_public_ip}/32"],
                    "description": "WireGuard from the office",
                },
                {
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "cidr_blocks": [args.vpc_cidr],
                    "description": "traffic from the burst nodes to route",
                },
            ],
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            tags=tags,
            opts=child,
        )
        # The gateway makes its key at first boot; only the public half comes out, here. The
        # program makes the parameter (so it alone is writable, and goes with the stack) and
        # leaves its value to the gateway.
        self.wireguard_public_key_parameter = f"/{ctx.cluster_name}/burst/wireguard-public-key"
        key_parameter = aws.ssm.Parameter(
            "wireguard-public-key",
            name=self.wireguard_public_key_parameter,
            type="String",
            value="none yet: the gateway publishes its key at first boot",
            description="The WireGuard gateway's public key, for the office router's peer",
            tags=tags,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["value"])),
        )
        profile = instance_profile(
            "burst-gateway",
            key_parameter.arn.apply(publish_parameter_policy),
            tags=tags,
            opts=child,
        )
        gateway_address, office_address = tunnel_addresses(link.tunnel_cidr)
        user_data = pulumi.Output.from_input(
            render_gateway_user_data(
                GatewayConfig(
                    public_key_parameter=self.wireguard_public_key_parameter,
                    address=gateway_address,
                    listen_port=link.listen_port,
                    office_public_key=link.office_public_key,
                    office_networks=(args.office_lan, office_address),
                    vpc_cidr=args.vpc_cidr,
                )
            )
        )
        template = launch_template(
            "burst-gateway",
            ctx=ctx,
            ubuntu="noble",
            user_data=user_data,
            security_group_ids=[gateway_sg.id],
            root_volume_gib=8,
            instance_type=link.gateway_instance_type,
            instance_profile_arn=profile.arn,
            parent=self,
            provider=args.provider,
        )
        gateway = aws.ec2.Instance(
            "burst-gateway",
            launch_template={"id": template.id, "version": "$Latest"},
            subnet_id=public.id,
            source_dest_check=False,  # it forwards traffic that is neither from nor to itself
            tags={**ctx.tags, "Name": f"{ctx.cluster_name}-burst-gateway"},
            opts=child,
        )
        eip = aws.ec2.Eip("burst-gateway", domain="vpc", instance=gateway.id, tags=tags, opts=child)

        private_routes = aws.ec2.RouteTable(
            "burst-private",
            vpc_id=vpc_id,
            routes=[
                {"cidr_block": "0.0.0.0/0", "network_interface_id": gateway.primary_network_interface_id},
                {"cidr_block": args.office_lan, "network_interface_id": gateway.primary_network_interface_id},
            ],
            tags=tags,
            opts=child,
        )
        self.private_subnet_ids = []
        for zone, cidr in zip(args.zones, private_cidrs, strict=True):
            subnet = aws.ec2.Subnet(
                f"burst-{zone}", vpc_id=vpc_id, cidr_block=cidr, availability_zone=zone, tags=tags, opts=child
            )
            aws.ec2.RouteTableAssociation(
                f"burst-{zone}", subnet_id=subnet.id, route_table_id=private_routes.id, opts=child
            )
            self.private_subnet_ids.append(subnet.id)

        node_sg = aws.ec2.SecurityGroup(
            "burst-nodes",
            vpc_id=vpc_id,
            description="Burst nodes: reachable from the office LAN and each other only",
            ingress=[
                {
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "cidr_blocks": [args.office_lan, args.vpc_cidr],
                    "description": "kubelet, flannel VXLAN and pods from the office and the VPC",
                },
            ],
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            tags=tags,
            opts=child,
        )
        self.vpc_id = pulumi.Output.from_input(vpc_id)
        self.node_security_group_id = node_sg.id
        self.gateway_public_ip = eip.public_ip
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "gatewayPublicIp": self.gateway_public_ip,
                "wireguardPublicKeyParameter": self.wireguard_public_key_parameter,
            }
        )
