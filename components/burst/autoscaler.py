"""cluster-autoscaler for the burst group, with AWS credentials that can only scale that group.

The cluster is on-prem, so there is no IRSA: an IAM user's access key goes into a Kubernetes
Secret the chart loads as environment. Its policy may describe everything (those actions have no
resource-level permissions) but change only the group tagged as this cluster's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.burst.nodes import CA_PREFIX
from components.cluster.helm import pinned_chart
from components.cluster.placement import ON_OFFICE_NODES
from components.context import PlatformContext

CHART = "cluster-autoscaler"
CHART_VERSION = "9.59.0"  # appVersion 1.35.0
CHART_REPO = "https://kubernetes.github.io/autoscaler"
IMAGE_TAG = "v1.35.0"
NAMESPACE = "kube-system"
SECRET_NAME = "cluster-autoscaler-aws"  # noqa: S105 (the Secret's name, not a secret)


def autoscaler_policy(cluster: str, group_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Discover",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                "Resource": "*",
            },
            {
                "Sid": "ScaleOnlyThisClustersGroup",
                "Effect": "Allow",
                "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                "Resource": group_arn,
                "Condition": {"StringEquals": {f"aws:ResourceTag/{CA_PREFIX}/{cluster}": "owned"}},
            },
        ],
    }


def chart_values(cluster: str, region: str) -> dict[str, Any]:
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster},
        "envFromSecret": SECRET_NAME,
        "image": {"tag": IMAGE_TAG},
        "extraArgs": {
            "balance-similar-node-groups": True,
            "expander": "least-waste",
            "scale-down-unneeded-time": "10m",
            "skip-nodes-with-local-storage": False,
        },
        # Any office node (so it fails over), never a burst node it may remove.
        "affinity": ON_OFFICE_NODES,
        "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"cpu": "500m", "memory": "600Mi"}},
    }


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    ctx: PlatformContext
    region: str
    group_arn: pulumi.Output[str]
    aws_provider: aws.Provider
    k8s_provider: k8s.Provider


class ClusterAutoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:burst:ClusterAutoscaler", name, None, opts)
        cluster = args.ctx.cluster_name
        on_aws = pulumi.ResourceOptions(parent=self, provider=args.aws_provider)
        user = aws.iam.User(
            "cluster-autoscaler", name=f"{cluster}-cluster-autoscaler", path="/akiba/", tags=args.ctx.tags, opts=on_aws
        )
        aws.iam.UserPolicy(
            "cluster-autoscaler",
            user=user.name,
            policy=args.group_arn.apply(lambda arn: json.dumps(autoscaler_policy(cluster, arn))),
            opts=on_aws,
        )
        key = aws.iam.AccessKey("cluster-autoscaler", user=user.name, opts=on_aws)
        in_cluster = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)
        secret = k8s.core.v1.Secret(
            SECRET_NAME,
            metadata={"name": SECRET_NAME, "namespace": NAMESPACE, "labels": args.ctx.labels},
            # key.secret is a Pulumi secret, so the whole map is one.
            string_data=pulumi.Output.all(key.id, key.secret).apply(
                lambda v: {"AWS_ACCESS_KEY_ID": v[0], "AWS_SECRET_ACCESS_KEY": v[1], "AWS_REGION": args.region}
            ),
            opts=in_cluster,
        )
        pinned_chart(
            "cluster-autoscaler",
            chart=CHART,
            version=CHART_VERSION,
            repo=CHART_REPO,
            namespace=NAMESPACE,
            values=chart_values(cluster, args.region),
            opts=pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=[secret]),
        )
        self.register_outputs({})
