"""The NFS export Job's script against a real Ceph manager (tests/real_ceph.py): per-engineer
exports with a client list and root squash are accepted by the real `ceph nfs export apply`,
a second run changes nothing, a changed client list is applied, and exports nobody wants any
more (the old one of the whole tree, a removed engineer's) are removed.

The NFS cluster `homes` exists as Rook leaves it for the manager: its configuration object
`conf-nfs.homes` in the `.nfs` pool (no orchestrator backend, no Ganesha: the manager finds
the cluster by that object, mgr/nfs export.py known_cluster_ids)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from components.storage.homes_nfs import HomeExport, export_script
from tests.ceph_fixture import ceph  # noqa: F401
from tests.real_ceph import Ceph
from tests.test_backups import FS, cluster  # noqa: F401

NFS_POOL = ".nfs"


def _nfs_cluster(c: Ceph) -> None:
    c.run("ceph", "osd", "pool", "create", NFS_POOL, "8", "8", "replicated", "--size", "1")
    c.run("ceph", "osd", "pool", "application", "enable", NFS_POOL, "nfs")
    c.run("rados", "-p", NFS_POOL, "-N", "homes", "put", "conf-nfs.homes", "/dev/null")


def _subvolume(c: Ceph) -> tuple[str, str]:
    name = f"csi-vol-{uuid.uuid4()}"
    c.run("ceph", "fs", "subvolume", "create", FS, name, "--group_name", "csi", "--size", str(64 << 20))
    return name, c.run("ceph", "fs", "subvolume", "getpath", FS, name, "--group_name", "csi").stdout.strip()


def _exports(c: Ceph) -> dict[str, dict[str, Any]]:
    pseudos = json.loads(c.run("ceph", "nfs", "export", "ls", "homes", "--format", "json").stdout)
    return {p: json.loads(c.run("ceph", "nfs", "export", "info", "homes", p).stdout) for p in pseudos}


def _apply(c: Ceph, doc: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "legacy.json").write_text(json.dumps(doc))
    c.run("ceph", "nfs", "export", "apply", "homes", "-i", str(tmp_path / "legacy.json"))


def _run_job(c: Ceph, exports: tuple[HomeExport, ...], resolved: dict[str, str], tmp_path: Path) -> str:
    """The export step as the Job runs it, its pod paths moved under tmp_path, with this
    cluster's monitor and admin key in place of Rook's."""
    etc, res = tmp_path / "etc", tmp_path / "resolved"
    for d in (etc / "rook", etc / "ceph", res):
        d.mkdir(parents=True, exist_ok=True)
    (etc / "rook" / "mon-endpoints").write_text(f"a={c.mon_host}")
    for login, subvolume in resolved.items():
        (res / login).write_text(subvolume)
    key = next(line.split("=", 1)[1].strip() for line in c.admin_keyring.read_text().splitlines() if "key" in line)
    script = export_script(FS, exports)
    for pod_path, token in (("/resolved", "@R@"), ("/etc/", "@E@"), ("/tmp/", "@T@")):
        script = script.replace(pod_path, token)
    script = script.replace("@R@", str(res)).replace("@E@", f"{etc}/").replace("@T@", f"{tmp_path}/")
    env = {
        **{k: v for k, v in os.environ.items() if k != "CEPH_ARGS"},
        "CEPH_CONF": str(etc / "ceph" / "ceph.conf"),
        "CEPH_ARGS": f"--keyring={etc / 'ceph' / 'keyring'}",
        "ROOK_CEPH_USERNAME": "client.admin",
        "ROOK_CEPH_SECRET": key,
    }
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_real_manager_takes_per_engineer_exports(cluster: Ceph, tmp_path: Path) -> None:
    _nfs_cluster(cluster)
    (tarui, tarui_path), (yuta, yuta_path), (_, gone_path) = (_subvolume(cluster) for _ in range(3))
    # What the old program made, and a removed engineer's export.
    fsal = {"name": "CEPH", "fs_name": FS}
    _apply(
        cluster,
        {"path": "/volumes/csi", "pseudo": "/homes", "access_type": "RW", "squash": "none", "fsal": fsal},
        tmp_path,
    )
    _apply(
        cluster,
        {"path": gone_path, "pseudo": "/homes/gone", "access_type": "RW", "squash": "none", "fsal": fsal},
        tmp_path,
    )
    wanted = (HomeExport("tarui", ("192.168.10.51",)), HomeExport("yuta", ("192.168.10.52", "192.168.10.64/28")))
    resolved = {"tarui": tarui, "yuta": yuta}

    out = _run_job(cluster, wanted, resolved, tmp_path)
    assert "removing /homes\n" in out and "removing /homes/gone\n" in out
    found = _exports(cluster)
    assert sorted(found) == ["/homes/tarui", "/homes/yuta"]
    mine = found["/homes/tarui"]
    assert (mine["path"], mine["access_type"], mine["squash"]) == (tarui_path, "NONE", "root_squash")
    assert mine["clients"] == [{"addresses": ["192.168.10.51"], "access_type": "RW", "squash": "root_squash"}]
    assert found["/homes/yuta"]["path"] == yuta_path
    assert found["/homes/yuta"]["clients"][0]["addresses"] == ["192.168.10.52", "192.168.10.64/28"]

    # Again, unchanged: nothing is touched (an update would need an orchestrator to restart Ganesha).
    ids = {p: e["export_id"] for p, e in found.items()}
    assert "removing" not in _run_job(cluster, wanted, resolved, tmp_path)
    assert {p: e["export_id"] for p, e in _exports(cluster).items()} == ids

    # tarui's desk moved; yuta left the stack file's NFS clients.
    _run_job(cluster, (HomeExport("tarui", ("192.168.10.61",)),), {"tarui": tarui}, tmp_path)
    found = _exports(cluster)
    assert sorted(found) == ["/homes/tarui"]
    assert found["/homes/tarui"]["clients"][0]["addresses"] == ["192.168.10.61"]
