"""A real single-node Ceph (16.2, Debian packages) for tests and benchmarks, started by hand.

One monitor (`mon.a`), one manager (`mgr.x`), one BlueStore OSD (`osd.0`) and one metadata
server (`mds.a`, standby until `Ceph.create_filesystem`) run as child processes of the caller, with everything under one directory: ceph.conf (found through
CEPH_CONF), keyrings, monitor/manager/OSD data, the run dir with admin sockets and pid files,
logs. Nothing is installed system-wide and no systemd is needed.

What makes it fast and healthy on one node (measured on Debian 12):
- the OSD's block device is a sparse file BlueStore creates itself (`bluestore block create`),
  so no loop device or root-only setup is needed and disk use is only what is written;
- pools of size 1 are allowed and not warned about (`mon allow pool size one`,
  `mon warn on pool no redundancy = false`), CRUSH places replicas across OSDs rather than
  hosts (`osd crush chooseleaf type = 0`), and a nearly full build disk does not turn the
  monitor unhealthy (`mon data avail warn/crit`);
- `paxos propose interval = 0.1`: the default 1 s makes every `rbd snap create` wait ~0.9 s
  for the next osdmap epoch; 0.1 s brings snapshot + protect + clone to ~0.2 s;
- every key is generated here and imported by `ceph-mon --mkfs`, so no daemon waits for a
  bootstrap key, and the OSD's `--mkfs` runs offline while the monitor starts.

The monitor listens on 127.0.0.1 only, on two free ports: msgr2 and legacy v1.
`Ceph.mon_host` is the msgr2 (v2) address, "127.0.0.1:<v2 port>", with no `v2:` prefix: that
is the form libvirt's `<host name=... port=...>` hands to qemu, and a client (librados 16.2)
given a bare `ip:port` tries msgr2 first, then v1, so it connects at once (given the v1 port it
also connects, after logging that the peer speaks v1). Clients reading ceph.conf get both.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CEPH_TOOLS = ("ceph", "rbd", "ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "monmaptool")
INSTALL_HINT = "apt-get install -y --no-install-recommends ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common"
# Sparse: BlueStore only allocates what is written. Big enough for the 10 GiB benchmark image,
# its data and full copies of it.
OSD_BLOCK_SIZE = 48 << 30
# Unix socket paths are limited to 107 bytes; admin sockets live in <root>/run.
MAX_ROOT_LEN = 60
DAEMONS = ("mon.a", "mgr.x", "osd.0", "mds.a")
CLI_TIMEOUT = 300.0


class CephCommandError(subprocess.CalledProcessError):
    """A failed `ceph`/`rbd` command whose message carries its stderr (CalledProcessError's does not)."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


@dataclass(frozen=True)
class Ceph:
    root: Path
    conf: Path
    admin_keyring: Path
    mon_host: str  # msgr2 (v2) address of the only monitor, "127.0.0.1:<port>", no "v2:" prefix
    fsid: str

    def env(self) -> dict[str, str]:
        """os.environ plus CEPH_CONF, so any ceph tool a test runs finds this cluster."""
        env = dict(os.environ)
        env["CEPH_CONF"] = str(self.conf)
        env.pop("CEPH_ARGS", None)  # a developer's own CEPH_ARGS would redirect every command
        return env

    def keyring_for(self, user: str) -> Path:
        return self.admin_keyring if user == "admin" else self.root / "keyrings" / f"ceph.client.{user}.keyring"

    def run(
        self, *args: str, user: str = "admin", keyring: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a Ceph CLI, `args[0]` being the tool (`ceph`, `rbd`, `rados`), as client.<user>."""
        if not args:
            raise ValueError("run() needs the tool to run, e.g. run('ceph', 'health')")
        tool, *rest = args
        auth = ["--id", user, "--keyring", str(keyring or self.keyring_for(user))]
        proc = subprocess.run(
            [tool, *auth, *rest], env=self.env(), capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
        )
        if check and proc.returncode != 0:
            raise CephCommandError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def create_pool(self, name: str) -> None:
        """A replicated pool of size 1 (the only OSD) with the rbd application enabled; a no-op
        for a pool that exists (test modules sharing the cluster may each ask for it)."""
        self.run("ceph", "osd", "pool", "create", name, "8", "8", "replicated", "--size", "1")
        # `rbd pool init` enables the rbd application and writes the pool's rbd_directory; it
        # returns once the pool's PGs are active, so the next rbd command does not stall.
        self.run("rbd", "pool", "init", name)

    def create_filesystem(self, name: str, timeout: float = 60.0) -> None:
        """A CephFS `name` (pools <name>-metadata and <name>-data0, size 1) served by mds.a, the
        standby every cluster starts with; returns once the MDS is active. A no-op for one that
        exists. One MDS serves one filesystem: a second name fails (`ceph fs new` refuses none,
        but it would never become active)."""
        if name in {fs["name"] for fs in json.loads(self.run("ceph", "fs", "ls", "--format", "json").stdout)}:
            return
        for pool in (f"{name}-metadata", f"{name}-data0"):
            self.run("ceph", "osd", "pool", "create", pool, "8", "8", "replicated", "--size", "1")
        self.run("ceph", "fs", "new", name, f"{name}-metadata", f"{name}-data0")
        deadline = time.monotonic() + timeout
        states: list[str] = []
        while time.monotonic() < deadline:
            fs = json.loads(self.run("ceph", "fs", "get", name, "--format", "json").stdout)
            states = [info["state"] for info in fs["mdsmap"]["info"].values()]
            if "up:active" in states:
                return
            time.sleep(0.2)
        raise TimeoutError(f"filesystem {name}: no active MDS in {timeout:.0f} s (states {states})")

    def create_client(self, name: str, caps: dict[str, str]) -> tuple[str, Path]:
        """A cephx user client.<name> with these caps ({"mon": "profile rbd", ...}); its key and keyring."""
        cap_args = [word for service, cap in caps.items() for word in (service, cap)]
        keyring = self.keyring_for(name)
        keyring.parent.mkdir(mode=0o700, exist_ok=True)
        self.run("ceph", "auth", "get-or-create", f"client.{name}", *cap_args, "-o", str(keyring))
        keyring.chmod(0o600)
        key = self.run("ceph", "auth", "print-key", f"client.{name}").stdout.strip()
        return key, keyring


def cephx_key() -> str:
    """A new cephx secret as `ceph-authtool --gen-key` writes it, without a process per key.

    The encoding is CryptoKey's: u16 type (1 = AES), u32 seconds + u32 nanoseconds of creation,
    u16 length, then 16 random bytes; base64.
    """
    now = time.time_ns()
    header = struct.pack("<HIIH", 1, now // 1_000_000_000, now % 1_000_000_000, 16)
    return base64.b64encode(header + os.urandom(16)).decode()


def keyring_text(entities: Mapping[str, tuple[str, Mapping[str, str]]]) -> str:
    """Keyring file text for {entity: (key, {service: cap})}."""
    out: list[str] = []
    for entity, (key, caps) in entities.items():
        out += [f"[{entity}]", f"\tkey = {key}"]
        out += [f'\tcaps {service} = "{cap}"' for service, cap in caps.items()]
    return "\n".join(out) + "\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mon_addrs(v2_port: int, v1_port: int) -> str:
    return f"[v2:127.0.0.1:{v2_port},v1:127.0.0.1:{v1_port}]"


def conf_text(root: Path, fsid: str, v2_port: int, v1_port: int) -> str:
    return f"""\
[global]
fsid = {fsid}
mon host = {mon_addrs(v2_port, v1_port)}
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
# A fresh 16.2 cluster otherwise warns (AUTH_INSECURE_GLOBAL_ID_RECLAIM_ALLOWED).
auth allow insecure global id reclaim = false
keyring = {root}/ceph.client.admin.keyring
run dir = {root}/run
crash dir = {root}/crash
admin socket = $run_dir/$cluster-$name.asok
pid file = $run_dir/$cluster-$name.pid
log file = {root}/log/$cluster-$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1

[mon]
mon data = {root}/mon/$cluster-$id
keyring = {root}/daemons.keyring

[mgr]
mgr data = {root}/mgr/$cluster-$id
keyring = {root}/daemons.keyring
# Only the always-on modules (rbd_support, devicehealth, ...): no dashboard or restful API.
mgr initial modules = iostat

[mds]
mds data = {root}/mds/$cluster-$id
keyring = {root}/daemons.keyring

[osd]
osd data = {root}/osd/$cluster-$id
keyring = {root}/daemons.keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {OSD_BLOCK_SIZE}
bluestore fsck on mkfs = false
# The smallest target BlueStore's cache autotuner accepts: the machine runs tests beside it.
osd memory target = 939524096
osd crush update on start = true

[client]
# Concurrent rbd/ceph commands would otherwise fight over one admin socket path.
admin socket = $run_dir/$cluster-$name.$pid.asok
# Errors still go to stderr; a log file per CLI process would only fill the directory.
log to file = false
"""


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def _write_cluster_files(root: Path, fsid: str, v2_port: int, v1_port: int) -> Ceph:
    """ceph.conf, the admin keyring and the daemons' keyring (imported into the monitor by mkfs)."""
    for sub in ("run", "log", "crash", "keyrings", "mon/ceph-a", "mgr/ceph-x", "osd/ceph-0", "mds/ceph-a"):
        (root / sub).mkdir(mode=0o700, parents=True)
    conf = root / "ceph.conf"
    conf.write_text(conf_text(root, fsid, v2_port, v1_port))
    admin = ("client.admin", (cephx_key(), {"mon": "allow *", "osd": "allow *", "mds": "allow *", "mgr": "allow *"}))
    _write_private(root / "ceph.client.admin.keyring", keyring_text(dict([admin])))
    daemons = {
        "mon.": (cephx_key(), {"mon": "allow *"}),
        "mgr.x": (cephx_key(), {"mon": "allow profile mgr", "osd": "allow *", "mds": "allow *"}),
        "osd.0": (cephx_key(), {"mon": "allow profile osd", "mgr": "allow profile osd", "osd": "allow *"}),
        "mds.a": (
            cephx_key(),
            {"mon": "allow profile mds", "mgr": "allow profile mds", "osd": "allow *", "mds": "allow *"},
        ),
    }
    _write_private(root / "daemons.keyring", keyring_text(daemons))
    # The monitor's --mkfs keyring: every entity it should know from its first second.
    _write_private(root / "mkfs.keyring", keyring_text({**daemons, admin[0]: admin[1]}))
    return Ceph(root, conf, root / "ceph.client.admin.keyring", f"127.0.0.1:{v2_port}", fsid)


# prctl(PR_SET_PDEATHSIG, SIGKILL), looked up before any fork: the child must not dlopen.
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """Runs in each daemon between fork and exec: the kernel SIGKILLs the daemon when the
    process (strictly: the thread) that started it dies, so a test run killed with SIGKILL
    leaves no Ceph behind. stop() remains the normal way."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Daemons:
    """The cluster's child processes; stop() ends exactly these, by PID."""

    def __init__(self, ceph: Ceph) -> None:
        self.ceph = ceph
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        kind, ident = name.split(".")
        log = (self.ceph.root / "log" / f"{name}.stdout").open("ab")
        # -f: stay in the foreground, so the PID we hold is the daemon's own (no fork to track).
        self.procs[name] = subprocess.Popen(
            [f"ceph-{kind}", "-f", "-i", ident],
            env=self.ceph.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"ceph {name} exited with {proc.returncode}\n{log_tail(self.ceph, name)}")

    def stop(self, grace: float = 10.0) -> None:
        # One at a time, OSD first: an OSD asks the monitor to mark it down and waits up to 5 s
        # (osd_mon_shutdown_timeout) for the answer, so it must go while the monitor is still up.
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def log_tail(ceph: Ceph, name: str, lines: int = 30) -> str:
    out: list[str] = []
    for path in (ceph.root / "log" / f"{name}.stdout", ceph.root / "log" / f"ceph-{name}.log"):
        if path.exists():
            out += [f"--- {path}", *path.read_text(errors="replace").splitlines()[-lines:]]
    return "\n".join(out)


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")


def _mkfs_mon(ceph: Ceph, addrs: str) -> None:
    monmap = ceph.root / "monmap"
    tool = ["monmaptool", "--create", "--fsid", ceph.fsid, "--addv", "a", addrs, str(monmap)]
    _check(subprocess.run(tool, env=ceph.env(), capture_output=True, text=True, check=False), "monmaptool")
    mkfs = ["ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap), "--keyring", str(ceph.root / "mkfs.keyring")]
    _check(subprocess.run(mkfs, env=ceph.env(), capture_output=True, text=True, check=False), "ceph-mon --mkfs")


def _mkfs_osd(ceph: Ceph, osd_uuid: str) -> subprocess.Popen[str]:
    """BlueStore mkfs of osd.0, offline (`--no-mon-config`: fsid and settings come from ceph.conf)."""
    cmd = ["ceph-osd", "--no-mon-config", "--mkfs", "-i", "0", "--osd-uuid", osd_uuid]
    return subprocess.Popen(cmd, env=ceph.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def not_ready(status: dict[str, Any]) -> str:
    """Why `ceph status` does not show a usable cluster yet ("" when it does).

    HEALTH_OK alone is not enough: right after the monitor starts it reports HEALTH_OK with no
    OSD and no manager, because it only warns about a missing manager after a grace period.
    """
    health = status.get("health", {})
    if health.get("status") != "HEALTH_OK":
        return json.dumps(health.get("checks", health))
    osdmap = status.get("osdmap", {})
    if (osdmap.get("num_up_osds"), osdmap.get("num_in_osds")) != (1, 1):
        return f"osd.0 not up and in: {osdmap}"
    if not status.get("mgrmap", {}).get("available"):
        return "no active manager"
    # The manager's view, a second or so behind: fine, pools made later wait for their own PGs.
    pgmap = status.get("pgmap", {})
    clean = sum(s["count"] for s in pgmap.get("pgs_by_state", []) if s["state_name"] == "active+clean")
    if clean != pgmap.get("num_pgs", 0):
        return f"placement groups not all active+clean: {pgmap.get('pgs_by_state')}"
    return ""


def wait_ready(ceph: Ceph, daemons: _Daemons, deadline: float) -> None:
    why = "no answer yet"
    while time.monotonic() < deadline:
        daemons.check_alive()
        proc = ceph.run("ceph", "status", "--format", "json", check=False)
        why = not_ready(json.loads(proc.stdout)) if proc.returncode == 0 else proc.stderr
        if not why:
            return
        time.sleep(0.2)
    raise TimeoutError(f"ceph not ready in time: {why}\n{log_tail(ceph, 'osd.0')}\n{log_tail(ceph, 'mgr.x')}")


def start_ceph(root: Path, timeout: float = 60) -> tuple[Ceph, Callable[[], None]]:
    """Start mon.a, mgr.x and osd.0 under `root` (created; must be empty) and wait for HEALTH_OK.

    Returns the cluster and a stop() that ends the three daemons by PID (SIGTERM, then SIGKILL).
    Files stay under `root`; removing it is the caller's choice (logs help after a failure).
    """
    root = root.resolve()
    if len(str(root)) > MAX_ROOT_LEN:
        raise ValueError(f"{root}: longer than {MAX_ROOT_LEN} characters; admin socket paths would not fit")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    deadline = time.monotonic() + timeout
    v2_port, v1_port = free_port(), free_port()
    ceph = _write_cluster_files(root, str(uuid.uuid4()), v2_port, v1_port)
    daemons = _Daemons(ceph)
    try:
        _start(ceph, daemons, mon_addrs(v2_port, v1_port), deadline)
    except BaseException:
        daemons.stop()
        raise
    return ceph, daemons.stop


def _start(ceph: Ceph, daemons: _Daemons, addrs: str, deadline: float) -> None:
    osd_uuid = str(uuid.uuid4())
    osd_mkfs = _mkfs_osd(ceph, osd_uuid)  # runs while the monitor is made and starts
    try:
        _mkfs_mon(ceph, addrs)
        daemons.start("mon.a")
        daemons.start("mgr.x")
        # Registers osd.0 in the osdmap; its key is already known from the monitor's mkfs.
        ceph.run("ceph", "osd", "new", osd_uuid, "0")
        out, _ = osd_mkfs.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if osd_mkfs.poll() is None:  # a failure above: do not leave the mkfs running
            osd_mkfs.kill()
            osd_mkfs.wait()
    if osd_mkfs.returncode != 0:
        raise RuntimeError(f"ceph-osd --mkfs failed ({osd_mkfs.returncode}): {out}")
    daemons.start("osd.0")
    # A standby until a test asks for a filesystem (Ceph.create_filesystem): costs no start time.
    daemons.start("mds.a")
    wait_ready(ceph, daemons, deadline)


def daemon_pids(ceph: Ceph) -> dict[str, int]:
    """PIDs of the running daemons, from their pid files (for memory readings)."""
    pids: dict[str, int] = {}
    for name in DAEMONS:
        pidfile = ceph.root / "run" / f"ceph-{name}.pid"
        if pidfile.exists():
            pids[name] = int(pidfile.read_text().strip())
    return pids


def missing_tools() -> list[str]:
    return [tool for tool in CEPH_TOOLS if shutil.which(tool) is None]
