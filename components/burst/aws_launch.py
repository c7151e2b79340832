"""One way to make an EC2 launch template: IMDSv2 only, encrypted gp3 root, Ubuntu from
Canonical's public SSM parameter (resolved at each launch, so no AMI churn in previews).
The WireGuard gateway and every burst generation use it."""

from __future__ import annotations

import base64
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.context import PlatformContext

UBUNTU_AMI_PARAMETER = {
    "jammy": "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
    "noble": "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
}


def launch_template(
    name: str,
    *,
    ctx: PlatformContext,
    ubuntu: Literal["jammy", "noble"],
    user_data: pulumi.Output[str],
    security_group_ids: list[pulumi.Input[str]],
    root_volume_gib: int,
    parent: pulumi.Resource,
    provider: aws.Provider,
    instance_type: str | None = None,
    instance_profile_arn: pulumi.Input[str] | None = None,
) -> aws.ec2.LaunchTemplate:
    tags = {**ctx.tags, "Name": f"{ctx.cluster_name}-{name}"}
    return aws.ec2.LaunchTemplate(
        name,
        name_prefix=f"{ctx.cluster_name}-{name}-",
        image_id=f"resolve:ssm:{UBUNTU_AMI_PARAMETER[ubuntu]}",
        instance_type=instance_type,
        # IMDSv2 only; hop limit 1 keeps pods (other than host-network ones) away from it.
        metadata_options={"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1},
        block_device_mappings=[
            {
                "device_name": "/dev/sda1",
                "ebs": {
                    "volume_size": root_volume_gib,
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }
        ],
        vpc_security_group_ids=security_group_ids,
        # Where the instance's secrets come from (SSM, read with this role), never the user-data.
        iam_instance_profile={"arn": instance_profile_arn} if instance_profile_arn is not None else None,
        user_data=user_data.apply(lambda text: base64.b64encode(text.encode()).decode()),
        tag_specifications=[{"resource_type": kind, "tags": tags} for kind in ("instance", "volume")],
        update_default_version=True,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )
