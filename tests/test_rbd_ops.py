"""components.machines.rbd_ops against a real single-node Ceph 16.2 (tests/real_ceph.py), plus its
error mapping offline. The cephx users here are made the way the platform's are: `profile rbd`,
one of them restricted to the VM pool."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from components.machines import rbd_ops
from components.machines.rbd_image import RbdImageProvider
from components.machines.rbd_ops import (
    AlreadyExists,
    Busy,
    CloneDepthExceeded,
    HasChildren,
    NotFound,
    PermissionDenied,
    RbdClient,
    ShrinkRefused,
    clone_or_flatten,
)
from tests.ceph_fixture import ceph  # noqa: F401
from tests.real_ceph import Ceph

GiB = 1 << 30
VM_POOL = "vm-disks"
OTHER_POOL = "rbd-ops-other"


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Ceph:
    """The session's `ceph` fixture, with its pools. Asked for by name: a parameter called `ceph`
    would shadow the import above (ruff F811)."""
    session_ceph: Ceph = request.getfixturevalue("ceph")
    for pool in (VM_POOL, OTHER_POOL):
        session_ceph.create_pool(pool)  # idempotent: other modules may have made vm-disks already
    return session_ceph


@pytest.fixture(scope="module")
def rbd(cluster: Ceph) -> RbdClient:
    """A user with `profile rbd` on every pool, reaching the monitor by address (as the provider does)."""
    key, _ = cluster.create_client("rbd-ops", {"mon": "profile rbd", "osd": "profile rbd"})
    return RbdClient(cluster.mon_host, "rbd-ops", key)


@pytest.fixture
def name() -> str:
    """A fresh image name: the session's cluster is shared with other test modules."""
    return f"t-{uuid.uuid4().hex[:10]}"


def test_create_read_grow_and_refuse_shrink(rbd: RbdClient, name: str) -> None:
    assert rbd.info(VM_POOL, name) is None
    rbd.create(VM_POOL, name, 1 * GiB)
    info = rbd.info(VM_POOL, name)
    assert info is not None
    assert (info.size, info.parent, info.watchers, info.snapshot_count) == (1 * GiB, None, 0, 0)
    assert "layering" in info.features

    assert rbd.resize(VM_POOL, name, 3 * GiB) == 3 * GiB
    assert _size(rbd, name) == 3 * GiB
    assert rbd.resize(VM_POOL, name, 3 * GiB) == 3 * GiB  # same size: nothing to do

    with pytest.raises(ShrinkRefused) as refused:
        rbd.resize(VM_POOL, name, 2 * GiB)
    assert (refused.value.current, refused.value.requested) == (3 * GiB, 2 * GiB)
    assert f"{VM_POOL}/{name} from {3 * GiB} to {2 * GiB} bytes" in str(refused.value)
    assert _size(rbd, name) == 3 * GiB  # rbd was never asked

    with pytest.raises(AlreadyExists, match="exists"):
        rbd.create(VM_POOL, name, 1 * GiB)
    with pytest.raises(NotFound):
        rbd.resize(VM_POOL, name + "-missing", 1 * GiB)
    assert rbd.delete(VM_POOL, name)
    assert rbd.info(VM_POOL, name) is None
    assert not rbd.delete(VM_POOL, name)  # already gone: a provider's delete must not fail


def test_clone_creates_and_protects_the_snapshot(rbd: RbdClient, name: str) -> None:
    golden, clone = f"{name}-golden", f"{name}-vm"
    rbd.create(VM_POOL, golden, 2 * GiB)
    rbd.clone(VM_POOL, golden, "base", VM_POOL, clone)  # the snapshot does not exist yet

    assert [(s.name, s.protected) for s in rbd.snapshots(VM_POOL, golden)] == [("base", True)]
    info = rbd.info(VM_POOL, clone)
    assert info is not None and info.parent is not None
    assert (info.parent.pool, info.parent.image, info.parent.snap) == (VM_POOL, golden, "base")
    assert (info.size, info.parent.overlap) == (2 * GiB, 2 * GiB)
    assert [str(c) for c in rbd.children(VM_POOL, golden, "base")] == [f"{VM_POOL}/{clone}"]

    rbd.clone(VM_POOL, golden, "base", VM_POOL, f"{clone}2")  # the snapshot exists and is protected
    assert len(rbd.children(VM_POOL, golden, "base")) == 2
    rbd.resize(VM_POOL, clone, 4 * GiB)  # a clone grows like any image
    assert _size(rbd, clone) == 4 * GiB


def test_delete_is_refused_while_snapshots_have_clones(rbd: RbdClient, name: str) -> None:
    golden, clone = f"{name}-golden", f"{name}-vm"
    rbd.create(VM_POOL, golden, 1 * GiB)
    rbd.clone(VM_POOL, golden, "base", VM_POOL, clone)

    with pytest.raises(HasChildren) as refused:
        rbd.delete(VM_POOL, golden)
    assert f"{VM_POOL}/{clone}" in str(refused.value) and "@base" in str(refused.value)
    assert rbd.info(VM_POOL, golden) is not None  # nothing was removed
    assert rbd.snapshots(VM_POOL, golden)[0].protected

    assert rbd.delete(VM_POOL, clone)
    assert rbd.delete(VM_POOL, golden)  # unprotects and purges its snapshot itself
    assert rbd.info(VM_POOL, golden) is None


def test_delete_is_refused_while_a_client_has_the_image_open(cluster: Ceph, rbd: RbdClient, name: str) -> None:
    rbd.create(VM_POOL, name, 1 * GiB)
    with Watching(cluster, f"{VM_POOL}/{name}"):
        info = rbd.info(VM_POOL, name)
        assert info is not None and info.watchers == 1
        with pytest.raises(Busy, match="watchers"):
            rbd.delete(VM_POOL, name)
    assert rbd.delete(VM_POOL, name)


def test_clone_depth_is_tracked_and_deep_clones_are_flattened(rbd: RbdClient, name: str) -> None:
    rbd.create(VM_POOL, f"{name}-0", 1 * GiB)
    depths = []
    for level in range(1, 6):
        parent, child = f"{name}-{level - 1}", f"{name}-{level}"
        result = clone_or_flatten(rbd, VM_POOL, parent, "s", VM_POOL, child)
        depths.append((result.depth, result.flattened, rbd.clone_depth(VM_POOL, child)))
    # Levels 1-4 are clones; the 5th would pass the soft limit (4) and is flattened at once.
    assert depths == [(1, False, 1), (2, False, 2), (3, False, 3), (4, False, 4), (0, True, 0)]
    flattened = rbd.info(VM_POOL, f"{name}-5")
    assert flattened is not None and flattened.parent is None
    assert rbd.children(VM_POOL, f"{name}-4", "s") == []  # flattening detached it

    rbd.flatten(VM_POOL, f"{name}-4")  # explicit flatten of a depth-4 clone
    assert rbd.clone_depth(VM_POOL, f"{name}-4") == 0
    assert rbd.clone_depth(VM_POOL, f"{name}-3") == 3


def test_no_clone_beyond_the_hard_limit(rbd: RbdClient, name: str) -> None:
    # A chain of 8 clones built without the policy (as another tool might), then the policy.
    rbd.create(VM_POOL, f"{name}-0", 1 * GiB)
    for level in range(1, 9):
        rbd.clone(VM_POOL, f"{name}-{level - 1}", "s", VM_POOL, f"{name}-{level}")
    assert rbd.clone_depth(VM_POOL, f"{name}-8") == 8
    with pytest.raises(CloneDepthExceeded, match="depth 9, above the hard limit 8"):
        clone_or_flatten(rbd, VM_POOL, f"{name}-8", "s", VM_POOL, f"{name}-9")
    assert rbd.info(VM_POOL, f"{name}-9") is None


def test_user_restricted_to_one_pool(cluster: Ceph, name: str) -> None:
    key, _ = cluster.create_client("rbd-ops-vm", {"mon": "profile rbd", "osd": f"profile rbd pool={VM_POOL}"})
    vm = RbdClient(cluster.mon_host, "client.rbd-ops-vm", key)
    vm.create(VM_POOL, name, 1 * GiB)
    vm.clone(VM_POOL, name, "s", VM_POOL, f"{name}-vm")
    assert vm.resize(VM_POOL, f"{name}-vm", 2 * GiB) == 2 * GiB

    with pytest.raises(PermissionDenied, match=r"\(1\) Operation not permitted") as denied:
        vm.create(OTHER_POOL, name, 1 * GiB)
    assert denied.value.errno == 1 and denied.value.command[:2] == ("rbd", "create")
    cluster.run("rbd", "create", "--size", "1G", f"{OTHER_POOL}/{name}")  # exists, but not for this user
    with pytest.raises(PermissionDenied):
        vm.info(OTHER_POOL, name)
    with pytest.raises(PermissionDenied):
        vm.delete(OTHER_POOL, name)


def test_a_wrong_key_is_permission_denied(cluster: Ceph) -> None:
    cluster.create_client("rbd-ops-wrong", {"mon": "profile rbd", "osd": "profile rbd"})
    other_key, _ = cluster.create_client("rbd-ops-other", {"mon": "profile rbd", "osd": "profile rbd"})
    # The monitor refuses the key; rbd retries until the connect timeout, then says ETIMEDOUT.
    wrong = RbdClient(cluster.mon_host, "rbd-ops-wrong", other_key, connect_timeout=1)
    with pytest.raises(PermissionDenied, match="wrong user or key"):
        wrong.info(VM_POOL, "anything")


def test_works_from_a_ceph_conf_too(cluster: Ceph, name: str) -> None:
    key = cluster.run("ceph", "auth", "print-key", "client.admin").stdout.strip()
    admin = RbdClient(cluster.conf, "admin", key)
    admin.create(OTHER_POOL, name, 1 * GiB)
    assert _size(admin, name, OTHER_POOL) == 1 * GiB


def test_the_key_never_reaches_a_command_line(rbd: RbdClient, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    seen: list[tuple[list[str], int]] = []
    real_run = subprocess.run

    def spy(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        keyring = Path(command[command.index("--keyring") + 1])
        seen.append((command, keyring.stat().st_mode & 0o777))
        assert rbd._key not in " ".join(command) and rbd._key not in str(kwargs.get("env"))
        result: subprocess.CompletedProcess[str] = real_run(command, **kwargs)
        return result

    monkeypatch.setattr(subprocess, "run", spy)  # the one rbd_ops calls
    rbd.create(VM_POOL, name, 1 * GiB)
    assert seen and all(mode == 0o600 for _, mode in seen)
    keyring = Path(seen[0][0][seen[0][0].index("--keyring") + 1])
    assert not keyring.exists() and not keyring.parent.exists()  # removed after the call
    assert "RbdClient(" in repr(rbd) and rbd._key not in repr(rbd)


# -- the dynamic provider on day 2: new monitors, another user, the same image ---------------


def _mon_host_from_conf(cluster: Ceph) -> str:
    """The monitors as ceph.conf lists them ("[v2:...,v1:...]"): another spelling of the same
    monitor, as a Ceph node added or a move to msgr2 gives."""
    line = next(ln for ln in cluster.conf.read_text().splitlines() if ln.strip().startswith("mon host"))
    return line.split("=", 1)[1].strip()


def test_provider_follows_new_monitors_and_user_without_touching_the_image(cluster: Ceph, name: str) -> None:
    caps = {"mon": "profile rbd", "osd": f"profile rbd pool={VM_POOL}"}
    key, _ = cluster.create_client("rbd-ops-day2", caps)
    props = {
        "kind": "rbd-image",
        "cluster": "test/rook-ceph/rook-ceph",
        "pool": VM_POOL,
        "image": name,
        "sizeBytes": 1 * GiB,
        "monHost": cluster.mon_host,
        "user": "rbd-ops-day2",
        "key": key,
    }
    provider = RbdImageProvider()
    state = provider.create(props).outs or {}
    image_id = state["imageId"]
    assert image_id

    other_key, _ = cluster.create_client("rbd-ops-day2b", caps)
    news = {**props, "monHost": _mon_host_from_conf(cluster), "user": "rbd-ops-day2b", "key": other_key}
    result = provider.diff(f"{VM_POOL}/{name}", state, news)
    assert result.changes and result.replaces == [] and not result.delete_before_replace
    state = provider.update(f"{VM_POOL}/{name}", state, news).outs or {}
    assert state["imageId"] == image_id and state["monHost"] == news["monHost"]
    assert (provider.read(f"{VM_POOL}/{name}", state).outs or {})["imageId"] == image_id, "the same image"


def test_provider_refuses_monitors_that_serve_another_image_of_the_name(cluster: Ceph, name: str) -> None:
    key, _ = cluster.create_client("rbd-ops-day2", {"mon": "profile rbd", "osd": f"profile rbd pool={VM_POOL}"})
    props = {
        "kind": "rbd-image",
        "cluster": "test/rook-ceph/rook-ceph",
        "pool": VM_POOL,
        "image": name,
        "sizeBytes": 1 * GiB,
        "monHost": cluster.mon_host,
        "user": "rbd-ops-day2",
        "key": key,
    }
    provider = RbdImageProvider()
    state = provider.create(props).outs or {}
    # What another cluster's namesake looks like from here: same pool and name, another image.
    cluster.run("rbd", "rm", "--no-progress", f"{VM_POOL}/{name}")
    cluster.run("rbd", "create", "--size", "2G", f"{VM_POOL}/{name}")
    news = {**props, "monHost": _mon_host_from_conf(cluster), "sizeBytes": 3 * GiB}
    with pytest.raises(rbd_ops.RbdError, match=r"not \w+ as recorded at creation"):
        provider.update(f"{VM_POOL}/{name}", state, news)
    info = RbdClient(cluster.mon_host, "rbd-ops-day2", key).info(VM_POOL, name)
    assert info is not None and info.size == 2 * GiB, "nothing was changed"


# -- offline: no Ceph needed -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stderr", "code", "cls", "errno_"),
    [
        ("rbd: create error: (1) Operation not permitted\n", 1, PermissionDenied, 1),
        (
            "2026-11-26T18:22:18.235+0000 7f59 -1 monclient(hunting): handle_auth_bad_method\n"
            "rbd: couldn't connect to the cluster!\n",
            13,
            PermissionDenied,
            13,
        ),
        ("rbd: error opening image nope: (2) No such file or directory\n", 2, NotFound, 2),
        ("rbd: snap is already protected\n", 16, Busy, 16),
        ("rbd: create error: (17) File exists\n", 17, AlreadyExists, 17),
        ("rbd: clone error: (22) Invalid argument\n", 22, rbd_ops.RbdError, 22),
    ],
)
def test_errors_map_to_types(stderr: str, code: int, cls: type[rbd_ops.RbdError], errno_: int) -> None:
    error = rbd_ops.error_from(stderr, code, ["rbd", "x"])
    assert type(error) is cls and error.errno == errno_
    assert error.message.startswith("rbd: ")  # librbd's log lines are left out


@pytest.mark.parametrize("bad", ["-rf", "a/b", "a@b", "", "x y"])
def test_names_that_would_change_the_command_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid RBD image name"):
        rbd_ops.spec("pool", bad)


def test_key_and_user_are_checked() -> None:
    with pytest.raises(ValueError, match="base64"):
        RbdClient("127.0.0.1:3300", "u", "key\n[client.admin]")
    with pytest.raises(ValueError, match="cephx user"):
        RbdClient("127.0.0.1:3300", "-u", "QUJD")


# -- helpers ---------------------------------------------------------------------------------


def _size(rbd: RbdClient, image: str, pool: str = VM_POOL) -> int:
    info = rbd.info(pool, image)
    assert info is not None
    return info.size


class Watching:
    """`rbd watch` keeps the image open (one watcher) while stdin stays open, like a VM would."""

    def __init__(self, cluster: Ceph, image_spec: str) -> None:
        self.cluster, self.spec = cluster, image_spec
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> None:
        self.proc = subprocess.Popen(
            ["rbd", "--id", "admin", "watch", self.spec],
            env=self.cluster.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        assert "press enter to exit" in self.proc.stdout.readline()  # the watch is registered

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.communicate(input="\n", timeout=30)
