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
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from components.storage.home_snapshots import HomeSnapshots, reconcile_script
from components.tenants.names import HOME_CLAIM, NAMESPACE_PREFIX
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
try:
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
finally:
    # A client that leaves without unmounting keeps its capabilities until the MDS times its
    # session out (~60 s): the next call would wait that long.
    fs.unmount()
    fs.shutdown()
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
    # First: the manager's restart would otherwise leave its old CephFS session (the volumes
    # module's) holding capabilities until the MDS times it out, and the next `ceph fs
    # subvolume` command would wait a minute for them.
    _enable_snap_schedule(session_ceph)
    session_ceph.create_filesystem(FS)
    session_ceph.run("ceph", "fs", "subvolumegroup", "create", FS, "csi")
    return session_ceph


def _enable_snap_schedule(cluster: Ceph, timeout: float = 60.0) -> None:
    """Enabling a module restarts the manager: wait for the new one (a new gid, available)."""

    def mgr() -> dict[str, Any]:
        dump: dict[str, Any] = json.loads(cluster.run("ceph", "mgr", "dump", "--format", "json").stdout)
        return dump

    before = mgr()
    if "snap_schedule" in before["modules"]:
        return
    cluster.run("ceph", "mgr", "module", "enable", "snap_schedule")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = mgr()
        if now["available"] and now["active_gid"] != before["active_gid"]:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the manager did not come back in {timeout:.0f} s after enabling snap_schedule")


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
    claims = [r.raw_inputs["metadata"] for r in plan.resources if r.type.endswith(":PersistentVolumeClaim")]
    # Every engineer's home: claim `home` in their own namespace.
    homes = sorted((m["namespace"], m["name"]) for m in claims if m["namespace"].startswith(NAMESPACE_PREFIX))
    assert homes
    assert {name for _, name in homes} == {HOME_CLAIM}
    # The kubectl step resolves every home claim to its subvolume, and the ceph step schedules them all.
    paths_step = cron["initContainers"][0]["command"][-1]
    assert all(f"-n {ns} {claim} " in paths_step for ns, claim in homes)
    assert all(f"/work/{ns}.{claim}" in cron["containers"][0]["command"][-1] for ns, claim in homes)
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


# --- golden database snapshots ------------------------------------------------------------------


def test_golden_snapshots_are_deleted_on_rotation_and_the_refresh_gates_them(plans: dict[str, Plan]) -> None:
    for stack in ("prod", "dev"):
        plan = plans[stack]
        golden = _named(plan, "VolumeSnapshotClass", "akiba-rbd-golden")
        assert golden["deletionPolicy"] == "Delete" and golden["driver"] == "rook-ceph.rbd.csi.ceph.com"
        pod = _named(plan, "CronJob", "golden-refresh")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        snapshot_step = pod["containers"][0]["command"][-1]
        assert "volumeSnapshotClassName: akiba-rbd-golden" in snapshot_step
        # The snapshot step is the pod's container, the refresh its init container: with
        # restartPolicy Never a failed refresh fails the pod (and the Job) before any snapshot.
        assert [c["name"] for c in pod["initContainers"]] == ["refresh"] and pod["restartPolicy"] == "Never"
        assert "set -euo pipefail" in pod["initContainers"][0]["command"][-1]
    # Other snapshots (engineers' own) keep prod's Retain.
    assert _named(plans["prod"], "VolumeSnapshotClass", "akiba-rbd")["deletionPolicy"] == "Retain"


def _images(cluster: Ceph, pool: str) -> list[str]:
    names: list[str] = json.loads(cluster.run("rbd", "ls", pool, "--format", "json").stdout)
    return sorted(names)


def test_a_rotated_golden_snapshot_leaves_ceph_once_its_clones_are_gone(cluster: Ceph, tmp_path: Path) -> None:
    """ceph-csi's own steps (ceph/ceph-csi docs/design/proposals/rbd-snap-clone.md), run by
    hand with the rbd CLI: a VolumeSnapshot, a personal volume cloned from it, then the
    snapshot's deletion as the Delete policy asks. Emulated: the CSI driver and Kubernetes; the
    mgr's `trash remove` task is run as the `rbd trash rm` it performs."""
    pool = "golden-rotation"
    cluster.create_pool(pool)
    # Clone v2 (what ceph-csi asks for) needs clients of Mimic or later; Squid's default.
    cluster.run("ceph", "osd", "set-require-min-compat-client", "mimic")
    data = os.urandom(4 * MiB)
    (tmp_path / "golden.img").write_bytes(data)
    cluster.run("rbd", "import", str(tmp_path / "golden.img"), f"{pool}/golden")
    clone = ("clone", "--rbd-default-clone-format", "2", "--image-feature", "layering,deep-flatten")
    # VolumeSnapshot golden-<date>: temporary snapshot, clone, drop it, snapshot the clone.
    cluster.run("rbd", "snap", "create", f"{pool}/golden@tmp")
    cluster.run("rbd", *clone, f"{pool}/golden@tmp", f"{pool}/csi-snap-1")
    cluster.run("rbd", "snap", "rm", f"{pool}/golden@tmp")
    cluster.run("rbd", "snap", "create", f"{pool}/csi-snap-1@csi-snap-1")
    # A personal database's volume, cloned from that snapshot.
    cluster.run("rbd", *clone, f"{pool}/csi-snap-1@csi-snap-1", f"{pool}/db-alice")

    # Rotation deletes the VolumeSnapshot; with Delete, ceph-csi removes the snapshot and trashes its image.
    cluster.run("rbd", "snap", "rm", f"{pool}/csi-snap-1@csi-snap-1")
    image_id = json.loads(cluster.run("rbd", "info", f"{pool}/csi-snap-1", "--format", "json").stdout)["id"]
    cluster.run("rbd", "trash", "mv", f"{pool}/csi-snap-1")
    # The personal database keeps working: its parent waits in the trash, still holding the data.
    assert _images(cluster, pool) == ["db-alice", "golden"]
    exported = tmp_path / "alice.img"
    cluster.run("rbd", "export", f"{pool}/db-alice", str(exported))
    assert exported.read_bytes() == data
    trashed = cluster.run("rbd", "snap", "ls", "--all", "--pool", pool, "--image-id", image_id, "--format", "json")
    assert [s["namespace"]["type"] for s in json.loads(trashed.stdout)] == ["trash"]
    assert cluster.run("rbd", "trash", "rm", f"{pool}/{image_id}", check=False).returncode != 0, "busy while cloned"

    # The engineer's database goes: the snapshot leaves with its last clone, then the image.
    cluster.run("rbd", "rm", f"{pool}/db-alice")
    trashed = cluster.run("rbd", "snap", "ls", "--all", "--pool", pool, "--image-id", image_id, "--format", "json")
    assert json.loads(trashed.stdout or "[]") == []
    cluster.run("rbd", "trash", "rm", f"{pool}/{image_id}")
    assert _images(cluster, pool) == ["golden"]
    assert json.loads(cluster.run("rbd", "trash", "ls", "--all", pool, "--format", "json").stdout) == []
    # And nothing of it is left on the golden image either.
    assert json.loads(cluster.run("rbd", "snap", "ls", "--all", f"{pool}/golden", "--format", "json").stdout) == []


# --- off-site copy ----------------------------------------------------------------------------


def test_the_offsite_copy_is_private_and_least_privileged(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    assert plan.resources
    by_type = {r.type: r for r in plan.resources if r.name == "offsite-backup"}
    block = by_type["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"].raw_inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert by_type["aws:s3/bucketVersioning:BucketVersioning"].raw_inputs["versioningConfiguration"]["status"] == (
        "Enabled"
    )
    policy = json.loads(by_type["aws:iam/userPolicy:UserPolicy"].raw_inputs["policy"])
    resources = {r for statement in policy["Statement"] for r in [statement["Resource"]]}
    bucket_arn = min(resources, key=len)
    assert resources == {bucket_arn, f"{bucket_arn}/*"}, "the user reaches this bucket only"
    assert by_type["aws:s3/bucket:Bucket"].protect, "prod keeps the bucket"
    pod = _named(plan, "CronJob", "offsite-backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (restic,) = pod["containers"]
    assert restic["image"] == "docker.io/restic/restic:0.18.0"
    assert all(m["readOnly"] for m in restic["volumeMounts"] if m["mountPath"].startswith("/backup/"))
    assert restic["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert claims == {"homes": "offsite-homes", "etcd": "etcd-snapshots"}
    volume = _named(plan, "PersistentVolume", "akiba-offsite-homes")["spec"]["csi"]
    assert volume["readOnly"] is True and volume["volumeAttributes"]["rootPath"] == "/volumes/csi"
    # ...mounted as the read-only cephx user.
    caps = _named(plan, "CephClient", "homes-backup")["spec"]["caps"]
    assert all(cap.startswith("allow r") for cap in caps.values())


def test_the_offsite_script_backs_up_and_restores_with_real_restic(tmp_path: Path) -> None:
    """The CronJob's restic steps against a local repository (S3 is the only thing emulated),
    twice (the second run finds the repository), then a restore compared byte for byte."""
    from components.storage.offsite import backup_script
    from tests.conftest import require_tool

    restic = require_tool("restic", "apt-get install restic")
    homes, etcd = tmp_path / "homes", tmp_path / "etcd"
    (homes / "alice").mkdir(parents=True)
    etcd.mkdir()
    files = {homes / "alice" / "thesis.tex": os.urandom(MiB), etcd / "etcd-202612010417.db": os.urandom(2 * MiB)}
    for path, data in files.items():
        path.write_bytes(data)
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": "a random secret in the cluster",
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
        "PATH": f"{Path(restic).parent}:{os.environ['PATH']}",
    }
    script = backup_script(7, 4, 12, trees=(str(homes), str(etcd)))
    for _ in range(2):
        run = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr
    snapshots = json.loads(subprocess.check_output([restic, "snapshots", "--json"], env=env))
    assert len(snapshots) == 1, "forget keeps one a day"
    target = tmp_path / "restored"
    subprocess.run([restic, "restore", "latest", "--target", str(target)], env=env, check=True, capture_output=True)
    for path, data in files.items():
        assert (target / path.relative_to("/")).read_bytes() == data
    # A wrong password fails the run visibly instead of making a second repository.
    wrong = subprocess.run(["sh", "-c", script], env={**env, "RESTIC_PASSWORD": "x"}, capture_output=True, check=False)
    assert wrong.returncode != 0


def test_a_failed_dump_fails_the_refresh_so_no_snapshot_follows(tmp_path: Path) -> None:
    """The refresh step with stand-in PostgreSQL tools: a dump that dies half-way fails the step
    (pipefail) even though pg_restore, reading a truncated stream, exits 0; the pod's snapshot
    container only starts after a successful init container, so no snapshot is taken."""
    from components.storage.personal_databases import refresh_script

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        "pg_isready": "exit 0",
        "psql": "echo 0",  # no other load running
        "pg_dump": "echo partial; exit 1",
        "pg_restore": "cat >/dev/null; exit 0",
    }
    for tool, body in tools.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "POSTGRES_PASSWORD": "pw", "SOURCE_URL": "x"}
    failed = subprocess.run(["bash", "-c", refresh_script()], env=env, capture_output=True, check=False)
    assert failed.returncode != 0
    (bin_dir / "pg_dump").write_text("#!/bin/sh\necho dump\n")
    assert subprocess.run(["bash", "-c", refresh_script()], env=env, capture_output=True, check=False).returncode == 0
