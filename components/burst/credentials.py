"""What a burst node needs to join, kept out of its launch template.

Its own join token, rotated daily and valid for two days (a bootstrap-token Secret the
Kubernetes provider writes, with its `expiration`), and the registry's pull credential, both as
SSM Parameter Store SecureStrings that only the burst nodes' instance profile may read; the
nodes read them at boot (components/cluster/bootstrap.py, SsmSecrets). A launch template is
readable by anyone with ec2:DescribeLaunchTemplateVersions: it holds only parameter names.

A stack not updated (`pulumi up --refresh`) for longer than the token's TTL cannot burst: the
token has expired, new nodes fail to join (the BurstJoinTokenExpiring alert warns 12 h before).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.burst.iam import instance_profile, read_parameters_policy
from components.cluster.bootstrap import SsmSecrets
from components.cluster.join_token import JoinToken, JoinTokenArgs, bootstrap_token_secret
from components.context import PlatformContext

ROTATION_HOURS = 24  # valid for twice that: a day's missed rotation still bursts


@dataclass(frozen=True)
class BurstCredentialsArgs:
    ctx: PlatformContext
    region: str  # e.g. "ap-northeast-1"
    registry_auth: pulumi.Output[str]  # secret: the registry pull account's `Basic ...` header
    k8s_provider: k8s.Provider
    aws_provider: aws.Provider
    after: tuple[pulumi.Resource, ...]  # the API server is up (the first controller's configuration)


class BurstCredentials(pulumi.ComponentResource):
    parameters: SsmSecrets
    instance_profile_arn: pulumi.Output[str]
    token_expires: pulumi.Output[str]  # RFC 3339: when the current burst token stops working

    def __init__(self, name: str, args: BurstCredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:burst:BurstCredentials", name, None, opts)
        ctx = args.ctx
        token = JoinToken(
            "burst-join-token",
            JoinTokenArgs(rotation_hours=ROTATION_HOURS, description="burst nodes"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        secret = pulumi.Output.all(token.token, token.expires).apply(
            lambda v: bootstrap_token_secret(v[0], v[1], "akiba burst nodes (rotated by pulumi)")
        )
        valid = k8s.core.v1.Secret(
            "burst-join-token",
            # The name holds the token's id, which is public (kubeadm lists it); the secret half is not.
            metadata=pulumi.Output.unsecret(secret.apply(lambda s: {**s["metadata"], "labels": ctx.labels})),
            type="bootstrap.kubernetes.io/token",
            string_data=pulumi.Output.secret(secret.apply(lambda s: s["stringData"])),
            opts=pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=list(args.after)),
        )
        self.parameters = SsmSecrets(
            join_token=f"/{ctx.cluster_name}/burst/join-token",
            registry_authorization=f"/{ctx.cluster_name}/burst/registry-authorization",
        )
        on_aws = pulumi.ResourceOptions(parent=self, provider=args.aws_provider)
        tags = {**ctx.tags, "Name": f"{ctx.cluster_name}-burst"}
        stored = [
            aws.ssm.Parameter(
                resource,
                name=parameter,
                type="SecureString",  # the account's aws/ssm KMS key
                value=value,
                description=description,
                tags=tags,
                # A node reads the new token only once the cluster accepts it.
                opts=pulumi.ResourceOptions.merge(on_aws, pulumi.ResourceOptions(depends_on=after)),
            )
            for resource, parameter, value, description, after in (
                (
                    "burst-join-token",
                    self.parameters.join_token,
                    token.token,
                    "kubeadm join token of burst nodes",
                    [valid],
                ),
                (
                    "burst-registry-authorization",
                    self.parameters.registry_authorization,
                    args.registry_auth,
                    "the registry pull account's Authorization header",
                    [],
                ),
            )
        ]
        policy = pulumi.Output.all(*(p.arn for p in stored)).apply(
            lambda arns: read_parameters_policy(args.region, arns)
        )
        profile = instance_profile("burst-node", policy, tags=tags, opts=on_aws)
        self.instance_profile_arn = profile.arn
        self.token_expires = token.expires
        self.register_outputs({"instanceProfileArn": self.instance_profile_arn, "tokenExpires": self.token_expires})
