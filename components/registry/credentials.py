"""The private registry's two accounts: `akiba-push` (engineers and `pulumi up` push images) and
`akiba-pull` (every node's containerd pulls with it).

They are their own component because the nodes need the pull credential in their user-data, and
the nodes come before the cluster that runs the registry: the composition makes these first and
hands them to the nodes and to the Registry, which writes the htpasswd file from the hashes.

distribution's htpasswd auth cannot make a user read-only: it ignores the access a request asks
for and grants any valid user everything, pushes included (registry/auth/htpasswd/access.go).
So `akiba-pull` is as strong as `akiba-push`. On a node it is a root-only file (0600); it gets
there in the node's user-data, a Pulumi secret as a whole but stored by MAAS and carried by the
burst launch templates, like the join token (see README, "Known limits"). A read-only pull
account would need token auth in front of the registry.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_random as random

PUSH_USER = "akiba-push"
PULL_USER = "akiba-pull"


def basic_authorization(user: str, password: str) -> str:
    """The `Authorization` header value for HTTP Basic auth (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def htpasswd(entries: Sequence[tuple[str, str]]) -> str:
    """distribution's htpasswd file from (user, bcrypt hash) pairs, one line each."""
    return "".join(f"{user}:{hashed}\n" for user, hashed in entries)


@dataclass(frozen=True)
class RegistryCredentialsArgs:
    # The URN of the push password's parent before this component existed (it was a child of
    # the Registry component): the alias keeps the password, and what pushers hold stays valid.
    # None on a stack that never had it there.
    push_password_parent_urn: pulumi.Input[str] | None = None


class RegistryCredentials(pulumi.ComponentResource):
    push_password: pulumi.Output[str]  # secret; the stack output registryPushPassword
    htpasswd: pulumi.Output[str]  # secret: both users with their bcrypt hashes
    pull_authorization: pulumi.Output[str]  # secret: `Basic <base64 akiba-pull:password>` for containerd

    def __init__(self, name: str, args: RegistryCredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:registry:RegistryCredentials", name, None, opts)
        moved = [pulumi.Alias(parent=args.push_password_parent_urn)] if args.push_password_parent_urn else []
        push = random.RandomPassword(
            "registry-push", length=32, special=False, opts=pulumi.ResourceOptions(parent=self, aliases=moved)
        )
        pull = random.RandomPassword(
            "registry-pull", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.push_password = push.result
        # bcrypt_hash is kept in state, so the file does not change on every run.
        self.htpasswd = pulumi.Output.secret(
            pulumi.Output.all(push.bcrypt_hash, pull.bcrypt_hash).apply(
                lambda h: htpasswd([(PUSH_USER, h[0]), (PULL_USER, h[1])])
            )
        )
        self.pull_authorization = pulumi.Output.secret(
            pull.result.apply(lambda password: basic_authorization(PULL_USER, password))
        )
        self.register_outputs({"pullAuthorization": self.pull_authorization})
