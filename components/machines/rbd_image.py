"""An RBD image as a Pulumi resource (a dynamic provider over `components.machines.rbd_ops`, which
talks to Ceph with the `rbd` CLI as a cephx user of the VM pool).

Create empty with a size, or clone from a protected snapshot of a golden image; grow on a
larger size and refuse to shrink; delete only without clones; read the real state so a
preview shows drift. Clone chains stay within ceph-csi's limits (flatten past depth 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

GIB = 1024**3
KIND = "rbd-image"  # how the policy pack recognises this dynamic resource as stateful


def _client(props: dict[str, Any]) -> Any:
    from components.machines.rbd_ops import RbdClient  # imported where the provider runs

    return RbdClient(props["monHost"], props["user"], props["key"])


class RbdImageProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        from components.machines import rbd_ops

        client, pool, image = _client(props), props["pool"], props["image"]
        source = props.get("cloneFrom")
        if source:
            parent_pool, rest = source.split("/", 1)
            parent, snap = rest.split("@", 1)
            rbd_ops.clone_or_flatten(client, parent_pool, parent, snap, pool, image)
            info = client.info(pool, image)
            if info is not None and info.size < props["sizeBytes"]:
                client.resize(pool, image, props["sizeBytes"])
        else:
            client.create(pool, image, props["sizeBytes"])
        return CreateResult(id_=f"{pool}/{image}", outs=props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        info = _client(props).info(props["pool"], props["image"])
        if info is None:
            return ReadResult(id_=None, outs={})  # gone: the engine plans to create it again
        return ReadResult(id_=id_, outs={**props, "sizeBytes": info.size})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("pool", "image", "cloneFrom", "monHost") if olds.get(k) != news.get(k)]
        changed = replaces or olds.get("sizeBytes") != news.get("sizeBytes") or olds.get("key") != news.get("key")
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if news["sizeBytes"] != olds["sizeBytes"]:
            _client(news).resize(news["pool"], news["image"], news["sizeBytes"])  # refuses to shrink
        return UpdateResult(outs=news)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        _client(props).delete(props["pool"], props["image"])  # refuses while clones exist


@dataclass(frozen=True)
class RbdImageArgs:
    pool: pulumi.Input[str]
    image: str
    size_gib: int
    mon_host: pulumi.Input[str]  # comma-separated monitor addresses
    user: pulumi.Input[str]  # cephx user without "client."
    key: pulumi.Input[str]  # secret
    clone_from: str | None = None  # pool/image@snap of a golden image


class RbdImage(Resource):
    """One image, `pool/image`."""

    def __init__(self, name: str, args: RbdImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            RbdImageProvider(),
            name,
            {
                "kind": KIND,
                "pool": args.pool,
                "image": args.image,
                "sizeBytes": args.size_gib * GIB,
                "cloneFrom": args.clone_from,
                "monHost": args.mon_host,
                "user": args.user,
                "key": pulumi.Output.secret(args.key),
            },
            opts,
        )
