"""Backups whose restores are tested: the homes' CephFS snapshots (schedule and retention set by
the program, restored from `.snap` on a real CephFS), and the golden database's rotated RBD
snapshots leaving Ceph once their personal clones are gone.

The real-Ceph tests use the session's single-node Ceph 16.2 (tests/real_ceph.py) with a CephFS
served by its MDS. Files are reached through libcephfs (python3-cephfs, the system Python's),
so no kernel or FUSE mount is needed: `mkdir <dir>/.snap/<name>` is the same MDS request a
kernel client or the snap_schedule module sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from components.storage.home_snapshots import HomeSnapshots, reconcile_script
from tests.ceph_fixture import ceph  # noqa: F401
from tests.conftest import IN_CI, edited, parse
from tests.real_ceph import Ceph
from tools.plan.runner import Plan

FS = "homes"
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-cephfs is built for Debian's Python, not the venv's
MiB = 1 << 20

# One libcephfs operation per call, as client.admin of the cluster in CEPH_CONF.
CEPHFS_OP = """\
import cephfs, os, sys
fs = cephfs.LibCephFS(conffile=os.environ["CEPH_CONF"])
fs.mount()
op, path = sys.argv[1], sys.argv[2].encode()
if op == "write":
    data = sys.stdin.buffer.read()
    fd = fs.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    fs.write(fd, data, 0)
    fs.close(fd)
elif op == "read":
    fd = fs.open(path, os.O_RDONLY)
    sys.stdout.buffer.write(fs.read(fd, 0, fs.stat(path).st_size))
    fs.close(fd)
elif op == "mkdir":
    fs.mkdir(path, 0o755)
elif op == "unlink":
    fs.unlink(path)
elif op == "ls":
    d = fs.opendir(path)
    names = []
    while (entry := fs.readdir(d)) is not None:
        names.append(entry.d_name.decode())
    fs.closedir(d)
    print("\\n".join(sorted(set(names) - {".", ".."})))
fs.unmount()
"""


def _require_libcephfs() -> None:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import cephfs"], capture_output=True, check=False)
    if probe.returncode != 0:
        message = f"{SYSTEM_PYTHON} cannot import cephfs (apt-get install python3-cephfs)"
        if IN_CI:
            pytest.fail(f"{message}: CI must install it (.ci/run)")
        pytest.skip(message)


def cephfs(cluster: Ceph, op: str, path: str, data: bytes = b"") -> bytes:
    proc = subprocess.run(
        [SYSTEM_PYTHON, "-c", CEPHFS_OP, op, path], input=data, env=cluster.env(), capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"cephfs {op} {path}: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Ceph:
    """The session's Ceph with the homes' CephFS, its `csi` subvolume group (as ceph-csi makes
    it) and the snap_schedule module on (as the planned CephCluster's mgr modules turn it on)."""
    _require_libcephfs()
    session_ceph: Ceph = request.getfixturevalue("ceph")
    session_ceph.create_filesystem(FS)
    session_ceph.run("ceph", "fs", "subvolumegroup", "create", FS, "csi")
    session_ceph.run("ceph", "mgr", "module", "enable", "snap_schedule")
    return session_ceph


def new_home(cluster: Ceph) -> str:
    """A subvolume made the way ceph-csi makes a home's volume; its path (the PV's subvolumePath)."""
    name = f"csi-vol-{uuid.uuid4()}"
    cluster.run("ceph", "fs", "subvolume", "create", FS, name, "--group_name", "csi", "--size", str(64 * MiB))
    return cluster.run("ceph", "fs", "subvolume", "getpath", FS, name, "--group_name", "csi").stdout.strip()


def _named(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    return next(
        r.raw_inputs
        for r in plan.resources
        if r.type.rsplit(":", 1)[-1] == kind and r.raw_inputs["metadata"]["name"] == name
    )


# --- homes: the plan -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_every_home_gets_a_snapshot_schedule(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources
    cron = _named(plan, "CronJob", "home-snapshots")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claims = [r.raw_inputs["metadata"]["name"] for r in plan.resources if r.type.endswith(":PersistentVolumeClaim")]
    homes = sorted(c for c in claims if c.startswith("home-"))
    assert homes
    # The kubectl step resolves every home claim to its subvolume, and the ceph step schedules them all.
    paths_step = cron["initContainers"][0]["command"][-1]
    assert all(f"{claim} " in paths_step for claim in homes)
    assert all(f"/work/{claim}" in cron["containers"][0]["command"][-1] for claim in homes)
    env = {e["name"]: e for e in cron["containers"][0]["env"]}
    assert env["CEPH_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "rook-ceph-client-home-snapshots"
    # The defaults: hourly, 24 hourly + 7 daily + 4 weekly.
    assert 'EVERY = "1h"' in env["RECONCILE"]["value"].replace("'", '"')
    assert 'RETAIN = {"h": 24, "d": 7, "w": 4}' in env["RECONCILE"]["value"]
    modules = _named(plan, "CephCluster", "rook-ceph")["spec"]["mgr"]["modules"]
    assert {"name": "snap_schedule", "enabled": True} in modules


def test_the_scheduler_can_only_talk_to_snap_schedule(plans: dict[str, Plan]) -> None:
    caps = _named(plans["prod"], "CephClient", "home-snapshots")["spec"]["caps"]
    assert caps == {"mon": "allow r", "mgr": "allow module snap_schedule rw"}


@pytest.mark.parametrize(
    ("snapshots", "message"),
    [
        ({"every": "15m"}, r"akiba:storage\.homeSnapshots\.every: .*pattern"),
        ({"keep": {"hourly": 0}}, r"akiba:storage\.homeSnapshots\.keep: .*keeps no snapshot"),
        ({"keep": {"daily": -1}}, r"akiba:storage\.homeSnapshots\.keep\.daily: "),
        ({"keep": {"fortnightly": 2}}, r"akiba:storage\.homeSnapshots\.keep\.fortnightly: "),
    ],
)
def test_a_bad_snapshot_policy_names_its_key(snapshots: dict[str, Any], message: str) -> None:
    from stacks.problems import ConfigError

    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:storage"]["homeSnapshots"] = snapshots

    with pytest.raises(ConfigError, match=message):
        parse(edited("dev", edit))


def test_a_policy_from_the_stack_file_reaches_the_schedule() -> None:
    from stacks import args

    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:storage"]["homeSnapshots"] = {"every": "2h", "keep": {"hourly": 12, "monthly": 3}}

    policy = args.home_snapshots(parse(edited("dev", edit)).storage.home_snapshots)
    assert policy.every == "2h" and dict(policy.keep) == {
        "hourly": 12,
        "daily": 0,
        "weekly": 0,
        "monthly": 3,
        "yearly": 0,
    }
    assert 'RETAIN = {"h": 12, "M": 3}' in reconcile_script(FS, policy)


# --- homes: on a real CephFS -----------------------------------------------------------------


def test_a_deleted_file_comes_back_from_a_home_snapshot(cluster: Ceph) -> None:
    home = new_home(cluster)
    subvolume = home.rsplit("/", 1)[0]
    data = os.urandom(3 * MiB + 17)
    cephfs(cluster, "write", f"{home}/thesis.tex", data)
    # Inside a subvolume the MDS takes snapshots only at its root: which is why the schedule is
    # set there (components/storage/home_snapshots.py), not on the home directory itself.
    with pytest.raises(AssertionError, match="Operation not permitted"):
        cephfs(cluster, "mkdir", f"{home}/.snap/not-here")
    cephfs(cluster, "mkdir", f"{subvolume}/.snap/before-the-accident")  # what snap_schedule does
    cephfs(cluster, "unlink", f"{home}/thesis.tex")
    assert "thesis.tex" not in cephfs(cluster, "ls", home).decode().split()
    # The engineer's view: ~/.snap/_<snapshot>_<inode of the subvolume root>/.
    (seen,) = cephfs(cluster, "ls", f"{home}/.snap").decode().split()
    assert seen.startswith("_before-the-accident_")
    # The restore: copy it back out of the snapshot.
    saved = cephfs(cluster, "read", f"{home}/.snap/{seen}/thesis.tex")
    cephfs(cluster, "write", f"{home}/thesis.tex", saved)
    assert cephfs(cluster, "read", f"{home}/thesis.tex") == data


def _scheduled(cluster: Ceph, path: str) -> dict[str, Any]:
    got = json.loads(cluster.run("ceph", "fs", "snap-schedule", "list", path, "--fs", FS, "--format", "json").stdout)
    kept = got["retention"]
    retention = {k: v for entry in ([kept] if isinstance(kept, dict) else kept) for k, v in entry.items()}
    return {"schedule": got["schedule"], "retention": retention}


def test_the_planned_schedule_is_accepted_by_the_real_manager(
    cluster: Ceph, plans: dict[str, Plan], tmp_path: Path
) -> None:
    """The CronJob's own script, run as a user with the planned caps, against the real manager."""
    plan = plans["prod"]
    cron = _named(plan, "CronJob", "home-snapshots")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    script = next(e["value"] for e in cron["containers"][0]["env"] if e["name"] == "RECONCILE")
    caps = _named(plan, "CephClient", "home-snapshots")["spec"]["caps"]
    _, keyring = cluster.create_client("home-snapshots", caps)
    homes = [new_home(cluster), new_home(cluster)]
    listing = tmp_path / "home-alice"
    listing.write_text("\n".join(homes) + "\n")
    env = {**cluster.env(), "CEPH_ARGS": f"--id home-snapshots --keyring {keyring}"}

    def reconcile(code: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [SYSTEM_PYTHON, "-c", code, str(listing)], env=env, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    first = reconcile(script)
    assert len(first.stdout.splitlines()) == 2
    roots = [home.rsplit("/", 1)[0] for home in homes]  # each home's subvolume root
    for root in roots:
        assert _scheduled(cluster, root) == {"schedule": ["1h"], "retention": {"h": 24, "d": 7, "w": 4}}
    assert reconcile(script).stdout == "", "a second run changes nothing"
    # A new policy in the stack file replaces the old one on the next run.
    changed = HomeSnapshots(every="2h", keep=(("hourly", 12), ("monthly", 3)))
    reconcile(reconcile_script(FS, changed))
    assert _scheduled(cluster, roots[0]) == {"schedule": ["2h"], "retention": {"h": 12, "M": 3}}
    # Least privilege: the same user can neither list the volumes nor switch the module off.
    for denied in (("fs", "subvolume", "ls", FS, "--group_name", "csi"), ("mgr", "module", "disable", "snap_schedule")):
        proc = cluster.run("ceph", *denied, user="home-snapshots", check=False)
        assert proc.returncode == 13 and "access denied" in proc.stderr.lower(), proc.stderr
