"""The `ceph` secret in a hypervisor's libvirt (libvirt has no Pulumi resource for it): a
dynamic provider over `components.machines.libvirt_secret_ops`, with a stable UUID per hypervisor so
every domain's `<auth><secret type='ceph' uuid=...>` keeps pointing at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from components.machines.libvirt_secret_ops import secret_uuid

__all__ = ["LibvirtCephSecret", "LibvirtCephSecretArgs", "secret_uuid"]


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
        replaces = [k for k in ("uri", "uuid") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces) or olds.get("key") != news.get("key"), replaces=replaces)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from components.machines.libvirt_secret_ops import ensure_ceph_secret

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
                "usage": pulumi.Output.concat("client.", args.user, " secret"),
                "key": pulumi.Output.secret(args.key),
            },
            opts,
        )
