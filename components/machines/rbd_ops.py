"""RBD image operations for the platform's RBD dynamic provider, through the `rbd` CLI.

Pure Python and subprocess, no Pulumi: the provider (and the tests, against a real Ceph) call
these. Every call runs `rbd ... --format json` as one cephx user whose key is written to a
keyring file (mode 0600) in a private temporary directory that is removed after the call, so
the key never appears on a command line (`ps`) or in the environment.

Rules the provider relies on:
- images only grow: `resize` to a smaller size raises `ShrinkRefused` (a shrink discards data);
- an image whose snapshots have clones is never deleted: `delete` raises `HasChildren`;
- clones come from a protected snapshot (format-1 clones, the default on a cluster whose
  min_compat_client predates mimic, need it; protection also stops the parent snapshot being
  removed under its clones); `clone` creates and protects the snapshot when missing;
- clone chains stay within ceph-csi's limits (`clone_or_flatten`): a clone deeper than
  SOFT_MAX_CLONE_DEPTH (4) is flattened right away; one deeper than HARD_MAX_CLONE_DEPTH (8) is
  never made.
Failures of the CLI become typed exceptions carrying rbd's own message.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ceph-csi's defaults (rbdsoftmaxclonedepth / rbdhardmaxclonedepth).
SOFT_MAX_CLONE_DEPTH = 4
HARD_MAX_CLONE_DEPTH = 8
# Longer than any clone chain Ceph tooling would build; stops a walk on a corrupt parent loop.
_MAX_WALK = 64
# Pool, image and snapshot names: no '/' or '@' (they separate a spec's parts), no leading '-'
# (it would be read as an option).
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,253}")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_KEY = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# Lines of librbd's own log ("2026-11-26T18:23:14.755+0000 7fcb... -1 librbd::...") and progress.
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT|^\S+: \d+% complete|^[A-Z][a-z]+ing .*: \d+% complete")
_ERRNO_IN_MESSAGE = re.compile(r"\((\d+)\) [A-Z]")


class RbdError(Exception):
    """A failed rbd operation: rbd's message, its errno when known, the command without secrets."""

    def __init__(self, message: str, *, errno_: int | None = None, command: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno_
        self.command = tuple(command)


class NotFound(RbdError):  # noqa: N818 (the provider's names for these outcomes)
    """ENOENT: no such pool, image or snapshot."""


class PermissionDenied(RbdError):  # noqa: N818 (the provider's names for these outcomes)
    """EPERM/EACCES: the cephx user may not do this (or its key is wrong)."""


class AlreadyExists(RbdError):  # noqa: N818 (the provider's names for these outcomes)
    """EEXIST."""


class Busy(RbdError):  # noqa: N818 (the provider's names for these outcomes)
    """EBUSY: e.g. the image still has watchers (a VM has it open)."""


class ShrinkRefused(RbdError):  # noqa: N818 (the provider's names for these outcomes)
    """A resize to a smaller size: refused here, never passed to rbd."""

    def __init__(self, spec: str, current: int, requested: int) -> None:
        super().__init__(
            f"refusing to shrink RBD image {spec} from {current} to {requested} bytes: images only grow "
            "(a shrink discards the data past the new end); make a new image instead"
        )
        self.current = current
        self.requested = requested


class HasChildren(RbdError):  # noqa: N818 (the provider's names for these outcomes)
    """The image's snapshots have clones, so it (and they) must stay."""

    def __init__(self, spec: str, children: dict[str, list[ImageRef]]) -> None:
        listed = "; ".join(f"@{snap}: {', '.join(map(str, refs))}" for snap, refs in children.items())
        super().__init__(
            f"refusing to delete RBD image {spec}: its snapshots have clones ({listed}); "
            "delete or flatten the clones first"
        )
        self.children = children


class CloneDepthExceeded(RbdError):  # noqa: N818 (the provider's names for these outcomes)
    """A clone would be deeper than the hard limit: flatten the parent chain first."""


_ERRNO_CLASSES: dict[int, type[RbdError]] = {
    errno.ENOENT: NotFound,
    errno.EPERM: PermissionDenied,
    errno.EACCES: PermissionDenied,
    errno.EEXIST: AlreadyExists,
    errno.EBUSY: Busy,
}


@dataclass(frozen=True)
class ImageRef:
    pool: str
    image: str
    trash: bool = False

    def __str__(self) -> str:
        return f"{self.pool}/{self.image}" + (" (in trash)" if self.trash else "")


@dataclass(frozen=True)
class ParentRef:
    pool: str
    image: str
    image_id: str
    snap: str
    overlap: int


@dataclass(frozen=True)
class ImageInfo:
    pool: str
    name: str
    id: str
    size: int
    features: tuple[str, ...]
    parent: ParentRef | None
    watchers: int
    snapshot_count: int
    object_size: int


@dataclass(frozen=True)
class SnapInfo:
    name: str
    size: int
    protected: bool


@dataclass(frozen=True)
class CloneResult:
    depth: int  # of the new image after the call: 0 when it was flattened
    flattened: bool


def error_from(stderr: str, returncode: int, command: Sequence[str]) -> RbdError:
    """The typed exception for a failed rbd command.

    rbd exits with the errno, and its message says "(N) Text" for most errors; the message wins
    where both exist. A wrong key is not reported as such: the monitor refuses each attempt and
    the client retries until `client_mount_timeout`, then says ETIMEDOUT; only librbd's log line
    "handle_auth_bad_method" tells the two apart.
    """
    lines = [line for line in stderr.splitlines() if line.strip() and not _LOG_LINE.match(line)]
    message = "\n".join(lines) or stderr.strip() or f"rbd exited with {returncode}"
    if "handle_auth_bad_method" in stderr:
        refused = f"{message}\n(cephx authentication refused: wrong user or key)"
        return PermissionDenied(refused, errno_=errno.EACCES, command=command)
    found = _ERRNO_IN_MESSAGE.search(message)
    code = int(found.group(1)) if found else (returncode if returncode in errno.errorcode else None)
    cls = _ERRNO_CLASSES.get(code, RbdError) if code is not None else RbdError
    return cls(message, errno_=code, command=command)


def check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid RBD {kind} name {name!r}: letters, digits, '_', '.', '+', '-' (not first)")
    return name


def spec(pool: str, image: str, snap: str | None = None) -> str:
    """`pool/image[@snap]`, after checking each part."""
    out = f"{check_name('pool', pool)}/{check_name('image', image)}"
    return out if snap is None else f"{out}@{check_name('snapshot', snap)}"


def _write_private(path: Path, text: str) -> None:
    # O_EXCL + 0600 from the start: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class RbdClient:
    """Runs rbd as one cephx user against one cluster.

    `conf_or_mon_host` is a ceph.conf (a Path, or a str naming an existing file) or the
    monitors as `mon host` takes them ("10.0.0.1:3300,10.0.0.2" or "[v2:...,v1:...]").
    `connect_timeout` bounds how long rbd tries to authenticate (rbd's own default is 300 s,
    which is also how long a wrong key takes to fail); `timeout` bounds a whole command.
    """

    def __init__(
        self,
        conf_or_mon_host: str | Path,
        user: str,
        key: str,
        *,
        connect_timeout: float = 30.0,
        timeout: float = 600.0,
        rbd: str = "rbd",
    ) -> None:
        user = user.removeprefix("client.")
        if not _USER.fullmatch(user):
            raise ValueError(f"invalid cephx user {user!r}")
        if not _KEY.fullmatch(key):
            raise ValueError("the cephx key is not base64 (expected what `ceph auth print-key` prints)")
        self.conf: Path | None = None
        self.mon_host: str | None = None
        if isinstance(conf_or_mon_host, Path) or Path(conf_or_mon_host).is_file():
            self.conf = Path(conf_or_mon_host)
        elif conf_or_mon_host.isprintable() and conf_or_mon_host.strip():
            self.mon_host = conf_or_mon_host.strip()
        else:
            raise ValueError(f"neither a ceph.conf nor monitor addresses: {conf_or_mon_host!r}")
        self.user = user
        self._key = key
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.rbd = rbd

    def __repr__(self) -> str:  # never the key
        return f"RbdClient({self.conf or self.mon_host!r}, user={self.user!r})"

    # -- running rbd -------------------------------------------------------------------------

    def _conf_text(self, keyring: Path) -> str:
        # No admin socket (a provider runs many rbd processes at once; one path would collide)
        # and no log file. Errors must still reach stderr (so no `log to stderr = false`, which
        # silences them too): the cephx refusal of a wrong key is only visible there.
        return f"[global]\nmon host = {self.mon_host}\nkeyring = {keyring}\nadmin socket =\nlog to file = false\n"

    def run(self, *args: str) -> str:
        """Run `rbd <args>` as this user; its stdout, or the typed error."""
        with tempfile.TemporaryDirectory(prefix="rbd-ops-") as tmp:  # mode 0700
            keyring = Path(tmp) / "keyring"
            _write_private(keyring, f"[client.{self.user}]\n\tkey = {self._key}\n")
            conf = self.conf
            if conf is None:
                conf = Path(tmp) / "ceph.conf"
                _write_private(conf, self._conf_text(keyring))
            command = [
                self.rbd,
                *("--conf", str(conf), "--id", self.user, "--keyring", str(keyring)),
                *("--client_mount_timeout", str(self.connect_timeout)),
                *args,
            ]
            env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF")}
            try:
                proc = subprocess.run(
                    command, capture_output=True, text=True, env=env, timeout=self.timeout, check=False
                )
            except subprocess.TimeoutExpired as e:
                raise RbdError(f"rbd {' '.join(args)} timed out after {self.timeout} s", command=args) from e
        if proc.returncode != 0:
            raise error_from(proc.stderr, proc.returncode, ["rbd", *args])
        return proc.stdout

    def _json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--format", "json") or "null")

    # -- reading -----------------------------------------------------------------------------

    def info(self, pool: str, image: str) -> ImageInfo | None:
        """The image's real state, or None when it (or its pool) does not exist."""
        try:
            raw = self._json("info", spec(pool, image))
            status = self._json("status", spec(pool, image))
        except NotFound:
            return None
        return _image_info(pool, raw, len(status.get("watchers", [])))

    def snapshots(self, pool: str, image: str) -> list[SnapInfo]:
        raw = self._json("snap", "ls", spec(pool, image))
        # 16.2 writes "protected" as the string "true"/"false".
        return [SnapInfo(s["name"], int(s["size"]), str(s.get("protected")).lower() == "true") for s in raw]

    def children(self, pool: str, image: str, snap: str) -> list[ImageRef]:
        """Clones of pool/image@snap, including clones moved to the trash (they still pin it)."""
        raw = self._json("children", "--all", spec(pool, image, snap))
        return [ImageRef(c["pool"], c["image"], bool(c.get("trash", False))) for c in raw]

    def parent_chain(self, pool: str, image: str) -> list[ParentRef]:
        """The image's ancestors, nearest first (empty for an image that is not a clone).

        Parents are followed by id: a parent may have been moved to the trash, where its name
        no longer opens it.
        """
        chain: list[ParentRef] = []
        raw = self._json("info", spec(pool, image))
        while (parent := _parent(raw)) is not None:
            chain.append(parent)
            if len(chain) > _MAX_WALK:
                raise RbdError(f"{spec(pool, image)}: parent chain longer than {_MAX_WALK}; a loop?")
            raw = self._json("info", "--pool", check_name("pool", parent.pool), "--image-id", parent.image_id)
        return chain

    def clone_depth(self, pool: str, image: str) -> int:
        """How many ancestors the image has: 0 for a plain image, 1 for a clone of one, ..."""
        return len(self.parent_chain(pool, image))

    # -- changing ----------------------------------------------------------------------------

    def create(self, pool: str, image: str, size_bytes: int, features: Sequence[str] = ()) -> None:
        """An empty image; rbd's default features unless `features` names them."""
        if size_bytes <= 0:
            raise ValueError(f"image size must be positive, got {size_bytes}")
        feature_args = [arg for f in features for arg in ("--image-feature", check_name("feature", f))]
        # The "B" suffix: a bare number is read as MiB.
        self.run("create", "--size", f"{size_bytes}B", *feature_args, spec(pool, image))

    def resize(self, pool: str, image: str, new_size: int) -> int:
        """Grow the image to new_size bytes (no-op when equal); refuses to shrink. Returns the size."""
        current = self.info(pool, image)
        if current is None:
            raise NotFound(f"rbd: image {spec(pool, image)} does not exist", errno_=errno.ENOENT)
        if new_size < current.size:
            raise ShrinkRefused(spec(pool, image), current.size, new_size)
        if new_size > current.size:
            self.run("resize", "--no-progress", "--size", f"{new_size}B", spec(pool, image))
        return new_size

    def snapshot(self, pool: str, image: str, snap: str, protect: bool = True) -> None:
        """Create pool/image@snap unless it exists, and protect it unless it is (idempotent)."""
        # Try and accept "already" rather than list first: one rbd process fewer on the clone path.
        with contextlib.suppress(AlreadyExists):
            self.run("snap", "create", "--no-progress", spec(pool, image, snap))
        if protect:
            try:
                self.run("snap", "protect", spec(pool, image, snap))
            except Busy as e:  # "rbd: snap is already protected"
                if "already protected" not in e.message:
                    raise

    def remove_snapshot(self, pool: str, image: str, snap: str) -> None:
        """Unprotect (when protected) and remove a snapshot; Busy while it has clones."""
        protected = {s.name: s.protected for s in self.snapshots(pool, image)}
        if snap not in protected:
            return
        if protected[snap]:
            self.run("snap", "unprotect", spec(pool, image, snap))
        self.run("snap", "rm", "--no-progress", spec(pool, image, snap))

    def clone(self, parent_pool: str, parent_image: str, snap: str, pool: str, image: str) -> None:
        """Clone parent@snap to pool/image, creating and protecting the snapshot when needed."""
        self.snapshot(parent_pool, parent_image, snap, protect=True)
        self.run("clone", spec(parent_pool, parent_image, snap), spec(pool, image))

    def flatten(self, pool: str, image: str) -> None:
        """Copy the parent's data into the image and detach it from its parent."""
        self.run("flatten", "--no-progress", spec(pool, image))

    def delete(self, pool: str, image: str) -> bool:
        """Remove the image and its snapshots; False when it did not exist.

        Refuses with HasChildren when any snapshot has clones. A VM that still has the image
        open makes rbd refuse with Busy (watchers).
        """
        try:
            snaps = self.snapshots(pool, image)
        except NotFound:
            return False
        children = {s.name: kids for s in snaps if (kids := self.children(pool, image, s.name))}
        if children:
            raise HasChildren(spec(pool, image), children)
        for s in snaps:
            # A clone made since the check above makes this fail with Busy: nothing is lost.
            if s.protected:
                self.run("snap", "unprotect", spec(pool, image, s.name))
        if snaps:
            self.run("snap", "purge", "--no-progress", spec(pool, image))
        self.run("rm", "--no-progress", spec(pool, image))
        return True


def _parent(raw: dict[str, Any]) -> ParentRef | None:
    p = raw.get("parent")
    if not p:
        return None
    return ParentRef(p["pool"], p["image"], p["id"], p["snapshot"], int(p.get("overlap", 0)))


def _image_info(pool: str, raw: dict[str, Any], watchers: int) -> ImageInfo:
    return ImageInfo(
        pool=pool,
        name=raw["name"],
        id=raw["id"],
        size=int(raw["size"]),
        features=tuple(raw.get("features", [])),
        parent=_parent(raw),
        watchers=watchers,
        snapshot_count=int(raw.get("snapshot_count", 0)),
        object_size=int(raw.get("object_size", 0)),
    )


def clone_or_flatten(
    client: RbdClient,
    parent_pool: str,
    parent_image: str,
    snap: str,
    pool: str,
    image: str,
    *,
    soft_limit: int = SOFT_MAX_CLONE_DEPTH,
    hard_limit: int = HARD_MAX_CLONE_DEPTH,
) -> CloneResult:
    """Clone parent@snap to pool/image, keeping clone chains within ceph-csi's limits.

    The new image's depth is its parent's plus one. Above `soft_limit` the new image is
    flattened at once (it becomes independent: depth 0), so chains this module builds never
    pass the soft limit. Above `hard_limit` (a chain built by something else) no clone is made:
    ceph-csi refuses such images too, and a clone would first add a level to an already-too-deep
    chain. Flatten the parent (or an ancestor) first.
    """
    if not 0 < soft_limit <= hard_limit:
        raise ValueError(f"need 0 < soft_limit <= hard_limit, got {soft_limit}, {hard_limit}")
    depth = client.clone_depth(parent_pool, parent_image) + 1
    if depth > hard_limit:
        raise CloneDepthExceeded(
            f"a clone of {spec(parent_pool, parent_image, snap)} would be at depth {depth}, above the hard "
            f"limit {hard_limit}; flatten {spec(parent_pool, parent_image)} first"
        )
    client.clone(parent_pool, parent_image, snap, pool, image)
    if depth > soft_limit:
        client.flatten(pool, image)
        return CloneResult(depth=0, flattened=True)
    return CloneResult(depth=depth, flattened=False)
