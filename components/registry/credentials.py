"""The private registry's accounts: `akiba-push` (`pulumi up` and other teams push images),
`akiba-pull` (every node's containerd pulls with it), and one per engineer, named by their login
(their `docker push` in their home pod, components.registry.engineer_login).

They are their own component because the nodes need the pull credential in their user-data, and
the nodes come before the cluster that runs the registry: the composition makes these first and
hands them to the nodes and to the Registry, which writes the htpasswd file from the hashes.

distribution's htpasswd auth cannot make a user read-only: it ignores the access a request asks
for and grants any valid user everything, pushes included (registry/auth/htpasswd/access.go).
So `akiba-pull` is as strong as `akiba-push`, and an engineer's account can push to, and
delete from, any repository (`akiba/*` included), not only their own: it is there so that each
push is attributed (the registry logs `auth.user.name`) and one person is revoked alone (removing
them from the stack file removes their htpasswd line; nobody else's password changes).

On a node, `akiba-pull` is a root-only file (0600); it gets there in the node's user-data, a
Pulumi secret as a whole but stored by MAAS and carried by the burst launch templates, like the
join token (see README, "Known limits"). A read-only pull account, or one confined to its own
repositories, would need token auth in front of the registry.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
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


def accounts_htpasswd(push_hash: str, pull_hash: str, engineers: Mapping[str, str]) -> str:
    """The registry's file: akiba-push, akiba-pull, then each engineer (login -> bcrypt hash) by
    name, so adding or removing one changes only their line."""
    clash = sorted(set(engineers) & {PUSH_USER, PULL_USER})
    if clash:
        raise ValueError(f"engineer login {', '.join(clash)}: the registry's own account has that name")
    return htpasswd([(PUSH_USER, push_hash), (PULL_USER, pull_hash), *sorted(engineers.items())])


@dataclass(frozen=True)
class RegistryCredentialsArgs:
    # The URN of the push password's parent before this component existed (it was a child of
    # the Registry component): the alias keeps the password, and what pushers hold stays valid.
    # None on a stack that never had it there.
    push_password_parent_urn: pulumi.Input[str] | None = None
    engineers: tuple[str, ...] = ()  # logins, e.g. ("tanaka", "sato"): one account each


class RegistryCredentials(pulumi.ComponentResource):
    push_password: pulumi.Output[str]  # secret; the stack output registryPushPassword
    htpasswd: pulumi.Output[str]  # secret: every account with its bcrypt hash
    engineer_passwords: dict[str, pulumi.Output[str]]  # login -> secret password (their Secret `registry`)
    pull_authorization: pulumi.Output[str]  # secret: `Basic <base64 akiba-pull:password>` for containerd

    def __init__(self, name: str, args: RegistryCredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:registry:RegistryCredentials", name, None, opts)
        accounts_htpasswd("", "", dict.fromkeys(args.engineers, ""))  # a name clash fails here, not in an apply
        moved = [pulumi.Alias(parent=args.push_password_parent_urn)] if args.push_password_parent_urn else []
        push = random.RandomPassword(
            "registry-push", length=32, special=False, opts=pulumi.ResourceOptions(parent=self, aliases=moved)
        )
        pull = random.RandomPassword(
            "registry-pull", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        # One password per engineer: replacing one (`pulumi up --replace` on its URN) or removing
        # the engineer revokes that person only.
        engineers = {
            login: random.RandomPassword(
                f"registry-engineer-{login}", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
            )
            for login in args.engineers
        }
        self.push_password = push.result
        self.engineer_passwords = {login: pulumi.Output.secret(p.result) for login, p in engineers.items()}
        logins = list(engineers)
        # bcrypt_hash is kept in state, so the file does not change on every run.
        self.htpasswd = pulumi.Output.secret(
            pulumi.Output.all(push.bcrypt_hash, pull.bcrypt_hash, *(p.bcrypt_hash for p in engineers.values())).apply(
                lambda h: accounts_htpasswd(h[0], h[1], dict(zip(logins, h[2:], strict=True)))
            )
        )
        self.pull_authorization = pulumi.Output.secret(
            pull.result.apply(lambda password: basic_authorization(PULL_USER, password))
        )
        self.register_outputs({"pullAuthorization": self.pull_authorization})
