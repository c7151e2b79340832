"""AWS spot GPU burst capacity and what scales and drains it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.burst.autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.burst.budget import BurstBudget, BurstBudgetArgs
from components.burst.credentials import BurstCredentials, BurstCredentialsArgs
from components.burst.instance_types import INSTANCE_TYPES
from components.burst.network import BurstNetwork, BurstNetworkArgs
from components.burst.nodes import BurstNodes, BurstNodesArgs
from components.burst.termination_handler import NodeTerminationHandler, NodeTerminationHandlerArgs
from components.cluster.bootstrap import ClusterJoin
from components.cluster.identity import ClusterIdentity
from components.context import PlatformContext
from stacks import args
from stacks.spec import StackSpec


def benchmark_models(spec: StackSpec) -> tuple[str, ...]:
    """Every on-prem GPU model, and the burst group's modelled type: a Job pending on that
    type's label makes the cluster-autoscaler start a spot node for it. Kepler (g2) is left
    out: current PyTorch has no kernels for it, the Job could only fail."""
    models: list[str] = sorted({g.model for n in spec.nodes for g in n.gpus})
    if spec.burst.enabled:
        first = INSTANCE_TYPES[spec.burst.instance_types[0]]
        if first.generation != "kepler":
            models.append(first.gpu_model)
    return tuple(models)


@dataclass(frozen=True)
class Burst:
    network: BurstNetwork
    nodes: BurstNodes
    credentials: BurstCredentials


def public_key_command(region: str, parameter: str) -> str:
    """How the office router's admin reads the gateway's WireGuard public key."""
    return f"aws ssm get-parameter --region {region} --name {parameter} --query Parameter.Value --output text"


def declare_burst(
    spec: StackSpec,
    ctx: PlatformContext,
    join: pulumi.Output[ClusterJoin],
    identity: ClusterIdentity,
    registry_auth: pulumi.Output[str],
    after: tuple[pulumi.Resource, ...],
) -> Burst:
    """AWS spot GPU capacity that joins the office cluster, and what scales and drains it."""
    burst = spec.burst
    aws_provider = aws.Provider("aws", region=burst.region, default_tags={"tags": ctx.tags})
    network = BurstNetwork(
        "burst-network",
        BurstNetworkArgs(
            ctx=ctx,
            vpc_cidr=burst.vpc_cidr,
            zones=tuple(burst.zones),
            existing_vpc=args.existing_vpc(burst),
            site_link=args.site_link(burst.site_link),
            office_lan=spec.network.office_lan,
            provider=aws_provider,
        ),
    )
    # The burst nodes' token and pull credential, in SSM for their instance profile alone.
    credentials = BurstCredentials(
        "burst-credentials",
        BurstCredentialsArgs(
            ctx=ctx,
            region=burst.region,
            registry_auth=registry_auth,
            k8s_provider=identity.provider,
            aws_provider=aws_provider,
            after=after,
        ),
    )
    nodes = BurstNodes(
        "burst-nodes",
        BurstNodesArgs(
            ctx=ctx,
            instance_types=tuple(burst.instance_types),
            max_size=burst.max_size,
            root_volume_gib=burst.root_volume_gib,
            registry=args.registry_mirror(spec.registry),
            secrets=credentials.parameters,
            instance_profile_arn=credentials.instance_profile_arn,
            join=join,
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.node_security_group_id,
            provider=aws_provider,
        ),
    )
    ClusterAutoscaler(
        "cluster-autoscaler",
        ClusterAutoscalerArgs(
            ctx=ctx,
            region=burst.region,
            group_arn=nodes.group_arn,
            aws_provider=aws_provider,
            k8s_provider=identity.provider,
        ),
    )
    NodeTerminationHandler(
        "node-termination-handler", NodeTerminationHandlerArgs(ctx=ctx, k8s_provider=identity.provider)
    )
    BurstBudget(
        "burst-budget",
        BurstBudgetArgs(
            ctx=ctx, monthly_usd=burst.monthly_budget_usd, notify_email=burst.notify_email, provider=aws_provider
        ),
    )
    return Burst(network=network, nodes=nodes, credentials=credentials)
