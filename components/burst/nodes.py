"""The spot GPU burst group: one launch template per GPU generation, one auto-scaling group
from zero, tagged so the cluster-autoscaler finds it and can scale it up from nothing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_aws as aws

from components.burst.aws_launch import launch_template
from components.burst.instance_types import INSTANCE_TYPES, InstanceType
from components.cluster.bootstrap import (
    ClusterJoin,
    NodeBootstrap,
    RegistryMirror,
    SsmSecrets,
    node_labels,
    node_taints,
    render_user_data,
)
from components.context import PlatformContext

CA_PREFIX = "k8s.io/cluster-autoscaler"
BURST_TAINTS = node_taints("burst")  # the GPU taint: paid capacity only for pods that need a GPU


def burst_labels(itype: InstanceType) -> dict[str, str]:
    return node_labels(itype.gpu_model, itype.gpus, "burst") | {
        "k8s.amazonaws.com/accelerator": itype.accelerator,  # the autoscaler's GPU label on AWS
        "node.kubernetes.io/lifecycle": "spot",  # where the termination handler runs
    }


def autoscaler_tags(cluster: str, first_type: str) -> dict[str, str]:
    """Discovery and scale-from-zero node-template tags. The autoscaler models the group by
    its first instance type only, so the spec requires every type to bring as many GPUs. Labels
    and taints come from what the nodes register with (`bootstrap_for`): a template that
    disagrees makes the autoscaler add nodes the pending pod then cannot use."""
    itype = INSTANCE_TYPES[first_type]
    tags = {
        f"{CA_PREFIX}/enabled": "true",
        f"{CA_PREFIX}/{cluster}": "owned",
        f"{CA_PREFIX}/node-template/resources/nvidia.com/gpu": str(itype.gpus),
    }
    tags |= {f"{CA_PREFIX}/node-template/taint/{t['key']}": f"{t['value']}:{t['effect']}" for t in BURST_TAINTS}
    tags |= {f"{CA_PREFIX}/node-template/label/{k}": v for k, v in burst_labels(itype).items()}
    return tags


def generations(instance_types: tuple[str, ...]) -> dict[str, list[str]]:
    """Instance types grouped by GPU generation, in the order the config names them."""
    out: dict[str, list[str]] = {}
    for t in instance_types:
        out.setdefault(INSTANCE_TYPES[t].generation, []).append(t)
    return out


def _user_data(itype: InstanceType, registry: RegistryMirror, secrets: SsmSecrets, join: ClusterJoin) -> str:
    return render_user_data(bootstrap_for(itype, join, registry, secrets))


def bootstrap_for(
    itype: InstanceType, join: ClusterJoin, registry: RegistryMirror, secrets: SsmSecrets
) -> NodeBootstrap:
    """A burst node's bootstrap: no secret in it (the token and the pull credential are read
    from SSM at boot), so the office token in `join` is left out too."""
    return NodeBootstrap(
        role="worker",
        kind="burst",
        cluster=dataclasses.replace(join, token=""),
        registry_mirror=registry.mirror,
        registry_upstreams=registry.upstreams,
        registry_authorization="",
        secrets_from_ssm=secrets,
        labels=burst_labels(itype),
        taints=BURST_TAINTS,
        gpu_driver_branch=itype.driver_branch,
        instance_metadata="aws",
    )


@dataclass(frozen=True)
class BurstNodesArgs:
    ctx: PlatformContext
    instance_types: tuple[str, ...]  # keys of INSTANCE_TYPES; the first is the one the autoscaler models
    max_size: int  # the most spot nodes at once
    root_volume_gib: int  # encrypted gp3 root volume of each node
    registry: RegistryMirror  # what the nodes' containerd pulls through (over the site link)
    secrets: SsmSecrets  # where the nodes read their join token and pull credential at boot
    instance_profile_arn: pulumi.Output[str]  # the role that alone may read them
    join: pulumi.Output[ClusterJoin]  # the API's address and CA hash (its token is not used)
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]
    provider: aws.Provider


class BurstNodes(pulumi.ComponentResource):
    group_name: pulumi.Output[str]
    group_arn: pulumi.Output[str]

    def __init__(self, name: str, args: BurstNodesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:burst:BurstNodes", name, None, opts)
        ctx = args.ctx
        templates: dict[str, aws.ec2.LaunchTemplate] = {}
        for generation, types in generations(args.instance_types).items():
            itype = INSTANCE_TYPES[types[0]]  # same generation: same driver, GPU model and labels
            templates[generation] = launch_template(
                f"burst-{generation}",
                ctx=ctx,
                ubuntu=itype.ubuntu,
                # Not secret: it holds no secret (tests/test_burst.py renders it and looks).
                user_data=pulumi.Output.unsecret(
                    args.join.apply(partial(_user_data, itype, args.registry, args.secrets))
                ),
                security_group_ids=[args.security_group_id],
                root_volume_gib=args.root_volume_gib,
                instance_profile_arn=args.instance_profile_arn,
                parent=self,
                provider=args.provider,
            )
        first = templates[INSTANCE_TYPES[args.instance_types[0]].generation]
        tags = {
            **ctx.tags,
            "Name": f"{ctx.cluster_name}-burst",
            **autoscaler_tags(ctx.cluster_name, args.instance_types[0]),
        }
        group = aws.autoscaling.Group(
            "burst",
            name=f"{ctx.cluster_name}-burst",
            min_size=0,
            max_size=args.max_size,
            vpc_zone_identifiers=args.subnet_ids,
            capacity_rebalance=True,  # replace a spot node when AWS warns, before it is taken
            # A spot group that waits for capacity is orphaned by a failed update and keeps
            # bidding (Typhoon sets the same).
            wait_for_capacity_timeout="0",
            mixed_instances_policy={
                "instances_distribution": {
                    "on_demand_base_capacity": 0,
                    "on_demand_percentage_above_base_capacity": 0,
                    "spot_allocation_strategy": "price-capacity-optimized",
                },
                "launch_template": {
                    "launch_template_specification": {"launch_template_id": first.id, "version": "$Latest"},
                    "overrides": [
                        {
                            "instance_type": t,
                            "launch_template_specification": {
                                "launch_template_id": templates[INSTANCE_TYPES[t].generation].id,
                                "version": "$Latest",
                            },
                        }
                        for t in args.instance_types
                    ],
                },
            },
            tags=[
                {"key": k, "value": v, "propagate_at_launch": k == "Name" or k.startswith("akiba:")}
                for k, v in tags.items()
            ],
            # The cluster-autoscaler owns the desired size.
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, ignore_changes=["desiredCapacity"]),
        )
        self.group_name = group.name
        self.group_arn = group.arn
        self.register_outputs({"groupName": self.group_name, "groupArn": self.group_arn})
