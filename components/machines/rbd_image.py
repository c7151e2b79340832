"""An RBD image as a Pulumi resource (a dynamic provider over `components.machines.rbd_ops`, which
talks to Ceph with the `rbd` CLI as a cephx user of the VM pool).

Create empty with a size, or clone from a protected snapshot of a golden image; grow on a
larger size and refuse to shrink; delete only without clones; read the real state so a
preview shows drift. Clone chains stay within ceph-csi's limits (flatten past depth 4).

Identity: an image is its Ceph cluster, its pool and its name, nothing else. The monitors, the
cephx user and its key only say how to reach it: adding a Ceph node changes the monitor list and
rotating the key changes the key, and neither may touch the data. A replacement (another
cluster, pool or name) makes the new image before the old one is deleted, never the other way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from components.machines.identity import adopted, identity_changes, in_place_changes

GIB = 1024**3
KIND = "rbd-image"  # how the policy pack recognises this dynamic resource as stateful

# Another value is another image: a replacement.
IDENTITY = ("cluster", "pool", "image")
# Changed in place: the size grows (rbd resize; a shrink is refused), and the connection (monitors,
# user, key) is checked by opening the same image through it.
IN_PLACE = ("sizeBytes", "monHost", "user", "key")
# Read only when the image is made. A disk cloned from a golden snapshot is the VM's own from then
# on: pointing the resource at a newer golden image must neither recreate it (that would wipe the
# VM's data) nor block the change (new disks clone the newer one). So it is no change at all, and
# the state keeps the source the image was really made from.
CREATION_ONLY = ("cloneFrom",)


def _client(props: dict[str, Any]) -> Any:
    from components.machines.rbd_ops import RbdClient  # imported where the provider runs

    return RbdClient(props["monHost"], props["user"], props["key"])


def _where(props: dict[str, Any]) -> str:
    return f"RBD image {props['pool']}/{props['image']} of Ceph cluster {props.get('cluster', '(unrecorded)')}"


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
            info = client.info(pool, image)
        # rbd's image id (unique in the pool, random per creation): an update through new
        # monitors checks it finds this very image, not a namesake on another cluster.
        return CreateResult(id_=f"{pool}/{image}", outs={**props, "imageId": info.id if info else None})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        info = _client(props).info(props["pool"], props["image"])
        if info is None:
            return ReadResult(id_=None, outs={})  # gone: the engine plans to create it again
        return ReadResult(id_=id_, outs={**props, "sizeBytes": info.size, "imageId": info.id})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Pure (no Ceph): what the engine and `make plan-diff` classify. `olds` is the recorded
        state (inputs plus `imageId`), `news` the program's inputs."""
        replaces = identity_changes(olds, news, IDENTITY)
        updates = in_place_changes(olds, news, IN_PLACE) + adopted(olds, news, IDENTITY)
        # delete_before_replace=False: the engine then creates the replacement first (its default
        # unless a diff or the resource's options ask otherwise: pulumi/pulumi
        # pkg/resource/deploy/step_generator.go); another cluster, pool or name cannot clash.
        return DiffResult(
            changes=bool(replaces or updates),
            replaces=replaces,
            stables=[k for k in IDENTITY if k in olds and k not in replaces],
            delete_before_replace=False,
        )

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from components.machines.rbd_ops import RbdError

        client = _client(news)
        # Through the new connection (monitors, user, key): it must reach the same image.
        info = client.info(news["pool"], news["image"])
        if info is None:
            raise RbdError(
                f"{_where(news)} is not found through monitors {news['monHost']} as client.{news['user']}: "
                "new monitors, user or key must reach the same cluster (to move the disk, change its cluster, "
                "pool or image: a replacement that makes the new image first)"
            )
        recorded = olds.get("imageId")
        if recorded and info.id != recorded:
            raise RbdError(
                f"{_where(news)} through monitors {news['monHost']} has image id {info.id}, not {recorded} as "
                "recorded at creation: these monitors serve another cluster's image of the same name; "
                "nothing was changed"
            )
        if news["sizeBytes"] != olds.get("sizeBytes"):
            client.resize(news["pool"], news["image"], news["sizeBytes"])  # refuses to shrink
        outs = {**news, "imageId": info.id}
        if olds.get("cloneFrom") != news.get("cloneFrom"):
            outs["cloneFrom"] = olds.get("cloneFrom")  # what it was really made from (CREATION_ONLY)
        return UpdateResult(outs=outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        _client(props).delete(props["pool"], props["image"])  # refuses while clones exist


@dataclass(frozen=True)
class RbdImageArgs:
    cluster: pulumi.Input[str]  # the Ceph cluster's stable name (not its monitors): part of the identity
    pool: pulumi.Input[str]
    image: str
    size_gib: int
    mon_host: pulumi.Input[str]  # comma-separated monitor addresses
    user: pulumi.Input[str]  # cephx user without "client."
    key: pulumi.Input[str]  # secret
    clone_from: str | None = None  # pool/image@snap of a golden image; only read at creation


class RbdImage(Resource):
    """One image, `pool/image` on one Ceph cluster."""

    def __init__(self, name: str, args: RbdImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            RbdImageProvider(),
            name,
            {
                "kind": KIND,
                "cluster": args.cluster,
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
