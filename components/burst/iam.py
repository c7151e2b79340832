"""The burst instances' AWS identities: a role each for the burst nodes and the WireGuard
gateway, with exactly the parameters each may touch (pure policy documents: parliament checks
them in tests/test_burst.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

EC2_ASSUME = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def read_parameters_policy(region: str, parameter_arns: Sequence[str]) -> dict[str, Any]:
    """Read (and decrypt) these SecureString parameters and nothing else. They are encrypted with
    the account's aws/ssm key, whose ARN the program does not know: kms:Decrypt is limited to
    this region's keys, and to
    requests SSM makes in this region for exactly these parameters (Parameter Store puts the
    parameter's ARN in the encryption context)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"], "Resource": list(parameter_arns)},
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": f"arn:aws:kms:{region}:*:key/*",
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": f"ssm.{region}.amazonaws.com",
                        "kms:EncryptionContext:PARAMETER_ARN": list(parameter_arns),  # any one of them
                    }
                },
            },
        ],
    }


def publish_parameter_policy(parameter_arn: str) -> dict[str, Any]:
    """Overwrite this one (plain String) parameter: the gateway's public key."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ssm:PutParameter", "Resource": parameter_arn}],
    }


def instance_profile(
    name: str, policy: pulumi.Output[dict[str, Any]], *, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.iam.InstanceProfile:
    """A role EC2 instances assume, its one inline policy, and the instance profile naming it."""
    role = aws.iam.Role(name, assume_role_policy=json.dumps(EC2_ASSUME), tags=tags, opts=opts)
    aws.iam.RolePolicy(name, role=role.id, policy=policy.apply(json.dumps), opts=opts)
    return aws.iam.InstanceProfile(name, role=role.name, tags=tags, opts=opts)
