"""A kubeadm bootstrap token that the program rotates and that expires on its own.

A `time.Rotating` resource is the clock: once its period has passed, the next
`pulumi up --refresh` (the refresh is where terraform-provider-time notices, see
hashicorp/terraform-provider-time#118) makes it anew, its new timestamp is the keeper of the
token's two random halves, and so the token changes. The token is valid on the cluster for
twice the period: a rotation missed by less than one period still leaves a working token.

Where the token is made valid is the caller's choice: the office nodes' token by the first
controller's configuration (`kubeadm token create --ttl`, components/cluster/bootstrap.py),
the burst nodes' token as a bootstrap-token Secret (`bootstrap_token_secret`), which the
Kubernetes provider writes with its `expiration` and the token cleaner deletes after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi
import pulumi_random as random
import pulumiverse_time as time

# kubeadm's group for joining nodes: its bootstrap RBAC (CSR creation and approval, reading
# kubeadm-config for a joining controller) is bound to it.
KUBEADM_NODE_GROUP = "system:bootstrappers:kubeadm:default-node-token"


@dataclass(frozen=True)
class JoinTokenArgs:
    rotation_hours: int  # e.g. 168 (a week): the token changes at the first refresh after that
    description: str  # what the token is for, e.g. "office nodes"


def expiration(created_rfc3339: str, rotation_hours: int) -> str:
    """When a token made at `created_rfc3339` stops working: two rotation periods later."""
    created = datetime.fromisoformat(created_rfc3339.replace("Z", "+00:00")).astimezone(UTC)
    return (created + timedelta(hours=2 * rotation_hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def bootstrap_token_secret(token: str, expires: str, description: str) -> dict[str, Any]:
    """The bootstrap-token Secret kubeadm itself writes for `kubeadm token create` (the
    bootstrap.kubernetes.io/token type; kubernetes.io "Authenticating with Bootstrap Tokens")."""
    token_id, token_secret = token.split(".")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "description": description,
            "token-id": token_id,
            "token-secret": token_secret,
            "expiration": expires,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",  # discovery: the cluster-info ConfigMap's signature
            "auth-extra-groups": KUBEADM_NODE_GROUP,
        },
    }


class JoinToken(pulumi.ComponentResource):
    """`[a-z0-9]{6}.[a-z0-9]{16}`: the id is public, the secret half is not."""

    token: pulumi.Output[str]  # secret
    token_id: pulumi.Output[str]
    expires: pulumi.Output[str]  # RFC 3339, UTC
    ttl_hours: int

    def __init__(self, name: str, args: JoinTokenArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:cluster:JoinToken", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        clock = time.Rotating(f"{name}-rotation", rotation_hours=args.rotation_hours, opts=child)
        keepers = {"rotation": clock.rfc3339}
        token_id = random.RandomString(f"{name}-id", length=6, special=False, upper=False, keepers=keepers, opts=child)
        token_secret = random.RandomPassword(
            f"{name}-secret", length=16, special=False, upper=False, keepers=keepers, opts=child
        )
        self.ttl_hours = 2 * args.rotation_hours
        self.token_id = token_id.result
        self.token = pulumi.Output.secret(pulumi.Output.concat(token_id.result, ".", token_secret.result))
        self.expires = clock.rfc3339.apply(lambda created: expiration(created, args.rotation_hours))
        self.register_outputs({"tokenId": self.token_id, "expires": self.expires})
