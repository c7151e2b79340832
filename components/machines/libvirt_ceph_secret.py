"""The `ceph` secret in a hypervisor's libvirt (libvirt has no Pulumi resource for it): a
dynamic provider over `components.machines.libvirt_secret_ops`, with a stable UUID per hypervisor so
every domain's `<auth><secret type='ceph' uuid=...>` keeps pointing at it.

Identity: the UUID, which is derived from (Ceph cluster, hypervisor) and so names the hypervisor
too. The URI only says how to reach the hypervisor, the usage name and the key are the secret's
contents: all updated in place (`ensure_ceph_secret` redefines under the same UUID). The secret
holds no data of its own (the key is the program's), and its usage name carries its UUID, so a
replacement can be defined next to the old one before that is deleted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from components.machines.identity import identity_changes, in_place_changes
from components.machines.libvirt_secret_ops import secret_usage, secret_uuid

__all__ = ["LibvirtCephSecret", "LibvirtCephSecretArgs", "secret_uuid"]

# Another value is another secret: a replacement.
IDENTITY = ("uuid",)
# Updated in place: a URI that reaches the same hypervisor (checked), the usage name, the key.
IN_PLACE = ("uri", "usage", "key")


class CephSecretProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        from components.machines.libvirt_secret_ops import ensure_ceph_secret

        ensure_ceph_secret(props["uri"], props["uuid"], props["usage"], props["key"])
        return CreateResult(id_=props["uuid"], outs=props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from components.machines.libvirt_secret_ops import read_ceph_secret

        found = read_ceph_secret(props["uri"], id_)
        return ReadResult(id_=id_ if found else None, outs=props if found else {})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Pure (no libvirt): what the engine and `make plan-diff` classify."""
        replaces = identity_changes(olds, news, IDENTITY)
        updates = in_place_changes(olds, news, IN_PLACE)
        # Create-before-delete (the engine's default): a new UUID comes with its own usage name,
        # and libvirt refuses only a second secret for the same usage (`secret_usage`).
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from components.machines.libvirt_secret_ops import SecretError, ensure_ceph_secret, read_ceph_secret

        if olds.get("uri") != news["uri"] and read_ceph_secret(news["uri"], news["uuid"]) is None:
            raise SecretError(
                f"ceph secret {news['uuid']} is not on {news['uri']} (was reached through {olds.get('uri')}): "
                "a new URI must reach the same hypervisor; a new hypervisor is a new secret (its UUID changes)"
            )
        ensure_ceph_secret(news["uri"], news["uuid"], news["usage"], news["key"])
        return UpdateResult(outs=news)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from components.machines.libvirt_secret_ops import delete_ceph_secret

        delete_ceph_secret(props["uri"], id_)


@dataclass(frozen=True)
class LibvirtCephSecretArgs:
    uri: str
    uuid: str
    user: pulumi.Input[str]  # the cephx user the secret belongs to
    key: pulumi.Input[str]  # secret


class LibvirtCephSecret(Resource):
    def __init__(self, name: str, args: LibvirtCephSecretArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            CephSecretProvider(),
            name,
            {
                "uri": args.uri,
                "uuid": args.uuid,
                "usage": pulumi.Output.from_input(args.user).apply(lambda user: secret_usage(user, args.uuid)),
                "key": pulumi.Output.secret(args.key),
            },
            opts,
        )
