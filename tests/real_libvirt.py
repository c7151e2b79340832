"""A real libvirtd (Debian 12's 9.0, qemu driver) for tests, started by hand in a private mount
namespace.

`unshare --mount` gives the daemon its own view of /etc/libvirt, /run/libvirt, /var/lib/libvirt,
/var/cache/libvirt and /var/log/libvirt, each bind-mounted from a directory under `root`, so a
run starts from empty config, state and sockets and leaves nothing behind on the machine (apart
from those five empty mount points, created if missing). The daemon listens on its unix socket
only (no --listen: no TCP); clients reach it as
`qemu+unix:///system?socket=<root>/run/libvirt-sock`.

What it takes on a machine without systemd (measured on Debian 12):
- packages `libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-driver-storage-rbd
  libvirt-clients qemu-system-x86 qemu-block-extra`, with --no-install-recommends
  (libvirt-daemon-system would pull in systemd); qemu-block-extra has qemu's rbd driver;
- the system user `libvirt-qemu` in group kvm: Debian's qemu driver runs guests as that user and
  refuses to start without it (libvirt-daemon-system would have created it); `ensure_qemu_user`
  adds it as Debian does;
- no virtlogd: `stdio_handler = "file"` lets libvirtd write the qemu log itself;
- `security_driver = "none"` (no AppArmor profiles without libvirt-daemon-system) and
  `namespaces = []` (qemu's private /dev needs mount rights a CI container may lack);
- root: libvirtd's system instance and `unshare --mount` need it. Not root, the commands go
  through `sudo -n` (passwordless sudo, as on CI runners).

Timing. The first call that needs qemu's capabilities (`virsh version` does: libvirt 9.0
src/qemu/qemu_driver.c qemuConnectGetVersion, qemu_conf.c virQEMUDriverGetCapabilities) makes
the qemu driver probe every qemu-system-* binary it finds (qemu-system-x86_64 and -i386 here:
~4 s each idle, minutes each on a loaded 2-core machine); `Daemon.wait_ready` makes that call,
so the probe happens once, before any test defines anything. The driver keeps the result in <cacheDir>/capabilities/<sha256 of the binary path>.xml, cacheDir being
/var/cache/libvirt/qemu (libvirt 9.0 src/qemu/qemu_conf.c, virQEMUDriverConfigNew;
src/qemu/qemu_capabilities.c, virQEMUCapsCacheNew). The file stays valid while the qemu binary's
and libvirt's driver modules' ctimes, qemu's module directory, the kernel version, the host CPU
and microcode, and whether the guest user can open /dev/kvm are unchanged
(qemu_capabilities.c, virQEMUCapsIsValid): nothing here changes between test runs. So the
harness seeds each daemon's cache from a directory kept between runs (`caps_cache`) and saves
what the daemon probed back to it: a warm daemon answers in ~0.3 s instead of ~8 s, and a define
never probes. What each daemon did shows in `Libvirt.caps`.

Waiting. Nothing here races a fixed wall clock: the start waits until the daemon answers,
watching its process (a daemon that exits fails at once, naming its log), within START_LIMIT;
each virsh call waits as long as the daemon lives and answers. virsh's own keepalive (every 5 s,
6 missed: libvirt 9.0 tools/virsh.c, virshConnect) ends a call whose daemon stops answering; the
daemon answers keepalives from its event loop even while a worker probes qemu.

Stopping. libvirtd, its guests and its capability probes (qemu started with -daemonize, so no
longer libvirtd's children: qemu_process.c, qemuProcessQMPLaunch) all live in the daemon's
mount namespace, which nothing else on the machine shares; an anchor process (`sleep`) keeps
that namespace's identity from being reused until the end. `Daemon.stop` ends every process in
it by PID (SIGTERM, then SIGKILL), the anchor last, and returns any survivor.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

LIBVIRT_TOOLS = ("libvirtd", "virsh", "qemu-system-x86_64", "unshare", "mount")
INSTALL_HINT = (
    "apt-get install -y --no-install-recommends libvirt-daemon libvirt-daemon-driver-qemu "
    "libvirt-daemon-driver-storage-rbd libvirt-clients qemu-system-x86 qemu-block-extra xsltproc libxml2-utils"
)
QEMU_USER = "libvirt-qemu"
# host path inside the namespace -> directory under root
MOUNTS = {
    "/etc/libvirt": "etc",
    "/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/cache/libvirt": "cache",
    "/var/log/libvirt": "log",
}
CAPS_DIR = "cache/qemu/capabilities"  # under root: /var/cache/libvirt/qemu/capabilities inside
# Bounds, not expected durations: a cold start probes two binaries (up to ~200 s each measured
# on a loaded 2-core machine), and a define after an invalidation probes one.
START_LIMIT = 900.0
VIRSH_LIMIT = 900.0


class DaemonGoneError(RuntimeError):
    """libvirtd exited while the harness waited on it (the message names its log)."""


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def can_be_root() -> str:
    """Why this process cannot act as root (is not root, has no passwordless sudo); empty if it can."""
    if os.geteuid() == 0:
        return ""
    if shutil.which("sudo") is None:
        return "not root and no sudo: libvirtd's system instance and unshare --mount need root"
    proc = subprocess.run(["sudo", "-n", "true"], capture_output=True, text=True, check=False)
    return "" if proc.returncode == 0 else f"not root and sudo asks for a password ({proc.stderr.strip()})"


def missing_tools() -> list[str]:
    # libvirtd lives in /usr/sbin, outside a normal user's PATH.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [tool for tool in LIBVIRT_TOOLS if shutil.which(tool, path=path) is None]


def ensure_qemu_user() -> bool:
    """Add the system user the qemu driver runs guests as, if missing, the way Debian's
    libvirt-daemon-system does: primary group kvm, also in group libvirt-qemu. True when added.

    The kvm group matters even for TCG guests: qemu probed as that user opens /dev/kvm before it
    drops root, so libvirt records KVM as usable, then checks /dev/kvm's permissions for the
    user; if they disagree, every define re-probes the emulator (~30 s here instead of ~50 ms)."""
    try:
        pwd.getpwnam(QEMU_USER)
        return False
    except KeyError:
        pass
    for group in ("kvm", QEMU_USER):
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run([*_sudo(), "groupadd", "--system", group], check=True, capture_output=True, text=True)
    cmd = [*_sudo(), "useradd", "--system", "--gid", "kvm", "--groups", QEMU_USER, "--no-create-home"]
    cmd += ["--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", QEMU_USER]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return True


def kvm_mismatch(device: str = "/dev/kvm") -> str:
    """Why libvirt would re-probe qemu on every define (see ensure_qemu_user); empty if it won't:
    /dev/kvm exists, libvirt-qemu cannot open it by its permissions, yet qemu opens it as root."""
    try:
        st = os.stat(device)
        user = pwd.getpwnam(QEMU_USER)
    except (FileNotFoundError, KeyError):
        return ""
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if QEMU_USER in g.gr_mem}
    if st.st_mode & 0o006 == 0o006 or (st.st_gid in groups and st.st_mode & 0o060 == 0o060):
        return ""
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    fix = (
        f"give {device} to group kvm (chgrp kvm {device}; chmod g+rw {device})"
        if group != "kvm"
        else f"add {QEMU_USER} to group kvm (usermod -aG kvm {QEMU_USER})"
    )
    return (
        f"{QEMU_USER} cannot open {device} (group {group}, mode {st.st_mode & 0o777:o}): libvirt will "
        f"re-probe qemu on every define (30-200 s each); {fix}"
    )


# --- processes, by PID -------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Running, not a zombie: qemu daemonizes, so once it exits it waits as a zombie until PID 1
    reaps it, which some container inits do slowly."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


_OWN_NS = os.readlink("/proc/self/ns/mnt")


def _namespace(pid: int) -> str:
    """The mount namespace of `pid` ("mnt:[inode]"); empty if gone. Another user's process
    (a root daemon started through sudo) is read through sudo."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except PermissionError:
        proc = subprocess.run([*_sudo(), "readlink", f"/proc/{pid}/ns/mnt"], capture_output=True, text=True)
        return proc.stdout.strip()
    except OSError:
        return ""


_MEMBERS = r'for d in /proc/[0-9]*; do [ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$1" ] && echo "${d#/proc/}"; done'


def namespace_members(ns: str) -> list[int]:
    """Live processes (zombies excluded) in mount namespace `ns`. Never the harness's own
    namespace: that would be every process on the machine."""
    if not ns or ns == _OWN_NS:
        raise ValueError(f"refusing to list mount namespace {ns!r}: not a private one")
    if os.geteuid() == 0:
        pids = []
        for link in Path("/proc").glob("[0-9]*/ns/mnt"):
            with contextlib.suppress(OSError):
                if os.readlink(link) == ns:
                    pids.append(int(link.parent.parent.name))
    else:
        out = subprocess.run([*_sudo(), "sh", "-c", _MEMBERS, "sh", ns], capture_output=True, text=True).stdout
        pids = [int(p) for p in out.split()]
    return sorted(p for p in pids if p != os.getpid() and alive(p))


def _signal(pid: int, sig: signal.Signals) -> None:
    if os.geteuid() == 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    else:
        subprocess.run([*_sudo(), "kill", f"-{sig.name.removeprefix('SIG')}", str(pid)], check=False)


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _end(pids: list[int], grace: float, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM, then SIGKILL after `grace`. A child of ours is also waited for (an exited child
    stays a zombie until it is reaped)."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    for pid in _wait_gone(pids, grace):
        _signal(pid, signal.SIGKILL)
    _wait_gone(pids, grace)
    if child is not None and child.pid in pids:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=grace)


def _pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def _read(path: Path) -> bytes:
    """A file the daemon wrote (root's, maybe 0600)."""
    try:
        return path.read_bytes()
    except PermissionError:
        return subprocess.run([*_sudo(), "cat", str(path)], capture_output=True, check=True).stdout


# --- the daemon as a client sees it -------------------------------------------------------------


@dataclass(frozen=True)
class Libvirt:
    root: Path
    uri: str
    pidfile: Path
    pid: int  # libvirtd's
    caps: str = ""  # what the daemon did for qemu's capabilities: loaded from cache, or probed and why
    reprobe: str = ""  # why a lookup after start probed again (then every define does): empty if none

    @property
    def log(self) -> Path:
        return self.root / "log" / "libvirtd.log"

    def gone(self, what: str) -> DaemonGoneError:
        return DaemonGoneError(f"libvirtd (pid {self.pid}) exited {what}; its log: {self.log}\n{self.log_tail()}")

    def virsh(self, *args: str, check: bool = True, timeout: float = VIRSH_LIMIT) -> subprocess.CompletedProcess[str]:
        """`virsh -c <uri> args`, waiting as long as the daemon lives (see the module doc):
        DaemonGoneError if it exits meanwhile, TimeoutError only past `timeout`, a bound."""
        cmd = ["virsh", "-c", self.uri, *args]
        env = {**os.environ, "LC_ALL": "C"}
        deadline = time.monotonic() + timeout
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
            while True:
                try:
                    out, err = proc.communicate(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if not alive(self.pid) or time.monotonic() > deadline:
                    proc.kill()
                    proc.communicate()
                    if not alive(self.pid):
                        raise self.gone(f"while `virsh {' '.join(args)}` waited") from None
                    raise TimeoutError(
                        f"virsh {' '.join(args)}: no reply in {timeout:.0f} s although libvirtd (pid {self.pid}) "
                        f"is alive; its log: {self.log}\n{self.log_tail()}"
                    )
        answer = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        if answer.returncode != 0 and not alive(self.pid):
            raise self.gone(f"during `virsh {' '.join(args)}` ({err.strip()})")
        if check and answer.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)} failed ({answer.returncode}): {err.strip()}")
        return answer

    def canonical_machine(self, machine: str, arch: str = "x86_64") -> str:
        """What the hypervisor calls `machine` (pc -> pc-i440fx-7.2), as the provider looks it up."""
        caps = ElementTree.fromstring(self.virsh("capabilities").stdout)  # noqa: S314 - libvirtd's own reply
        for guest in caps.findall("guest"):
            if guest.findtext("os_type") != "hvm" or guest.find(f"arch[@name='{arch}']") is None:
                continue
            for m in guest.findall(f"arch[@name='{arch}']/machine"):
                if m.text == machine:
                    return m.get("canonical") or machine
        raise LookupError(f"the hypervisor has no {arch} machine type {machine!r}")

    def qemu_log(self, domain: str) -> str:
        path = self.root / "log" / "qemu" / f"{domain}.log"
        return path.read_text(errors="replace") if path.exists() else f"(no {path})"

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in (self.root / "libvirtd.stdout", self.log):
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                out += [f"--- {path}", *_read(path).decode(errors="replace").splitlines()[-lines:]]
        return "\n".join(out)


# What the capability cache did, from the debug lines of util.filecache and qemu.qemu_capabilities
# (libvirt 9.0 src/util/virfilecache.c virFileCacheLoad; qemu_capabilities.c virQEMUCapsSaveFile,
# virQEMUCapsIsValid, virQEMUCapsLoadCache).
_LOADED = re.compile(r"Loaded cached data '[^']*' for '([^']*)'")
_SAVED = re.compile(r"Saved caps '[^']*' for '([^']*)'")
_WHY = re.compile(r"debug : \w+:\d+ : ((?:No cached data|Outdated capabilities|KVM was) .*)")


def caps_events(log: str) -> tuple[list[str], list[str], list[str]]:
    """(binaries loaded from the cache, binaries probed, reasons for probing) in a libvirtd log."""
    reasons = [re.sub(r"No cached data '[^']*'", "no cached data", why) for why in _WHY.findall(log)]
    return _LOADED.findall(log), _SAVED.findall(log), reasons


def _conf(root: Path) -> None:
    etc = root / "etc"
    # The socket sits in root/run, a directory only the test's user can enter, so it may be
    # world-writable: sudo-started libvirtd's socket must let the non-root test user in.
    # Warnings and up from everything, plus the capability cache's debug lines (~70 a start):
    # they say whether qemu was probed and why.
    (etc / "libvirtd.conf").write_text(
        'auth_unix_ro = "none"\n'
        'auth_unix_rw = "none"\n'
        'unix_sock_rw_perms = "0777"\n'
        'log_filters = "1:qemu.qemu_capabilities 1:util.filecache 3:*"\n'
        'log_outputs = "1:file:/var/log/libvirt/libvirtd.log"\n'
    )
    (etc / "qemu.conf").write_text(
        'stdio_handler = "file"\nsecurity_driver = "none"\nnamespaces = [ ]\n'
        # spice/vnc of test guests on loopback only (the default, made explicit).
        'spice_listen = "127.0.0.1"\nvnc_listen = "127.0.0.1"\n'
    )


_START = r"""
set -e
root="$1"
for target in /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
    mkdir -p "$target"
done
mount --bind "$root/etc" /etc/libvirt
mount --bind "$root/run" /run/libvirt
mount --bind "$root/lib" /var/lib/libvirt
mount --bind "$root/cache" /var/cache/libvirt
mount --bind "$root/log" /var/log/libvirt
# The anchor: keeps the namespace, and so its inode number, alive until the harness has ended
# everything else in it (a freed number is soon given to another namespace: another session's).
sleep infinity </dev/null >/dev/null 2>&1 &
echo $! > "$root/anchor.pid"
exec libvirtd -f /etc/libvirt/libvirtd.conf -p "$root/libvirtd.pid"
"""


@dataclass
class Daemon:
    """A libvirtd being started or running under `root`; `wait_ready` gives its client side."""

    root: Path
    proc: subprocess.Popen[bytes]
    caps_cache: Path | None
    seeded: dict[str, int] = field(default_factory=dict)  # cache file -> mtime_ns as seeded
    namespace: str = ""
    stopped: bool = False

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.root}/run/libvirt-sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "libvirtd.pid"

    @property
    def log(self) -> Path:
        return self.root / "log" / "libvirtd.log"

    def daemon_pid(self) -> int | None:
        return _pid(self.pidfile)

    def anchor_pid(self) -> int | None:
        return _pid(self.root / "anchor.pid")

    def find_namespace(self) -> str:
        """The daemon's private mount namespace, read from its anchor process; empty before
        `unshare` made it and once `stop` ended it."""
        if not self.namespace and not self.stopped and (anchor := self.anchor_pid()) is not None:
            ns = _namespace(anchor)
            if ns and ns != _OWN_NS:
                self.namespace = ns
        return "" if self.stopped else self.namespace

    def members(self) -> list[int]:
        """Every live process in the daemon's namespace: libvirtd, guests, capability probes,
        the anchor. None once the anchor is gone: the namespace's name may then be another's."""
        ns, anchor = self.find_namespace(), self.anchor_pid()
        if not ns or anchor is None or not alive(anchor) or _namespace(anchor) != ns:
            return []
        return namespace_members(ns)

    def wait_ready(self, timeout: float = START_LIMIT) -> Libvirt:
        """Wait until the qemu driver answers (it has probed or loaded qemu's capabilities by
        then), check a lookup does not probe again, save the capabilities to `caps_cache`."""
        started = time.monotonic()
        deadline = started + timeout
        why = "no answer yet"
        while True:
            self.find_namespace()
            if self.proc.poll() is not None:
                raise DaemonGoneError(
                    f"libvirtd exited with {self.proc.returncode} before answering; its log: {self.log}\n"
                    + Libvirt(self.root, self.uri, self.pidfile, 0).log_tail()
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"libvirtd's qemu driver did not answer in {timeout:.0f} s: {why}; its log: {self.log}\n"
                    + Libvirt(self.root, self.uri, self.pidfile, 0).log_tail()
                )
            pid = self.daemon_pid()
            if pid is None or not self.run_socket().exists():
                time.sleep(0.1)
                continue
            lv = Libvirt(self.root, self.uri, self.pidfile, pid)
            # While the driver initialises, the daemon has the socket but accepts no client:
            # this call waits for it (watching the daemon), it does not time out early.
            answer = lv.virsh("version", check=False, timeout=left)
            if answer.returncode == 0 and "Running hypervisor: QEMU" in answer.stdout:
                break
            why = answer.stderr.strip() or answer.stdout.strip()
            time.sleep(0.2)
        # The first call probed every binary: another lookup must find it cached. If it probes
        # again, every define would too (and take minutes under load): say why.
        _, probed_before, why_before = caps_events(self.log_text())
        lv.virsh(
            "domcapabilities", "--virttype", "qemu", "--arch", "x86_64", timeout=max(deadline - time.monotonic(), 1)
        )
        loaded, probed, reasons = caps_events(self.log_text())
        reprobe = ""
        if len(probed) > len(probed_before):
            again = "; ".join(dict.fromkeys(reasons[len(why_before) :]))
            reprobe = f"libvirtd probed qemu again on a lookup after start ({again}); see {self.log}"
        if probed_before:
            caps = f"probed {', '.join(sorted(set(probed_before)))} ({'; '.join(dict.fromkeys(why_before))})"
            unsaved = self.save_caps()
            caps += f", not saved: {unsaved}" if unsaved else f", saved to {self.caps_cache}"
        else:
            caps = f"loaded from {self.caps_cache} ({', '.join(sorted(set(loaded)))})"
        return Libvirt(self.root, self.uri, self.pidfile, pid, caps, reprobe)

    def log_text(self) -> str:
        try:
            return _read(self.log).decode(errors="replace")
        except (OSError, subprocess.CalledProcessError):
            return ""

    def run_socket(self) -> Path:
        return self.root / "run" / "libvirt-sock"

    def save_caps(self) -> str:
        """Copy what the daemon probed (a file new or rewritten since seeding) to `caps_cache`,
        each file replaced whole: concurrent test sessions may share the directory. Returns why
        it could not (the cache only saves time: a test goes on without it)."""
        if self.caps_cache is None:
            return "no cache directory given"
        try:
            self.caps_cache.mkdir(parents=True, exist_ok=True)
            for path in sorted((self.root / CAPS_DIR).glob("*.xml")):
                if self.seeded.get(path.name) == path.stat().st_mtime_ns:
                    continue
                tmp = self.caps_cache / f".{path.name}.{os.getpid()}"
                tmp.write_bytes(_read(path))
                tmp.replace(self.caps_cache / path.name)
        except (OSError, subprocess.CalledProcessError) as err:
            return str(err)
        return ""

    def stop(self, grace: float = 10.0) -> list[str]:
        """End every process in the daemon's namespace (libvirtd, guests, a capability probe
        caught mid-way, anything they started), each by PID: SIGTERM, SIGKILL after `grace`;
        the anchor last. Returns the survivors ("pid cmdline"); none is expected. Once only."""
        if self.stopped:
            return []
        deadline = time.monotonic() + grace
        while self.anchor_pid() is None and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # sh writes it right after unshare
        anchor = self.anchor_pid()
        # All at once: libvirtd's shutdown waits for a worker that is probing qemu, which takes
        # minutes on a loaded machine; with its probe gone too, it ends at once. qemu would
        # outlive libvirtd anyway (a daemon restart must not kill guests).
        for _ in range(3):  # a round may catch a process mid-spawn
            left = [p for p in self.members() if p != anchor]
            if not left:
                break
            _end(left, grace, self.proc)
        survivors = [f"{p} {cmdline(p)[:160]}" for p in self.members() if p != anchor]
        if anchor is not None and alive(anchor) and _namespace(anchor) == self.namespace:
            _end([anchor], grace)
        if self.proc.poll() is None:  # never got as far as the namespace, or sudo around it
            _end([self.proc.pid], grace, self.proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        self.stopped = True
        return survivors


def launch(root: Path, caps_cache: Path | None = None) -> Daemon:
    """Start libvirtd with the qemu driver under `root` (created; must be empty), its qemu
    capability cache seeded from `caps_cache` (None: a cold cache, kept nowhere). Returns at
    once: `Daemon.wait_ready` waits for it, `Daemon.stop` ends it."""
    root = root.resolve()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    for sub in MOUNTS.values():
        # 0755: guests run as libvirt-qemu and must reach their state under /var/lib/libvirt.
        (root / sub).mkdir()
        (root / sub).chmod(0o755)
    _conf(root)
    ensure_qemu_user()
    seeded: dict[str, int] = {}
    caps = root / CAPS_DIR
    caps.mkdir(parents=True)
    if caps_cache is not None and caps_cache.is_dir():
        for path in caps_cache.glob("*.xml"):
            shutil.copy2(path, caps / path.name)
            seeded[path.name] = (caps / path.name).stat().st_mtime_ns
    with (root / "libvirtd.stdout").open("ab") as log:
        # Its own session: a Ctrl-C at the terminal reaches pytest, whose teardown stops the
        # daemon, not the daemon mid-way.
        proc = subprocess.Popen(
            [*_sudo(), "unshare", "--mount", "--propagation", "private", "sh", "-c", _START, "sh", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Daemon(root, proc, caps_cache, seeded)


def start_libvirtd(root: Path, timeout: float = START_LIMIT, caps_cache: Path | None = None) -> tuple[Libvirt, Daemon]:
    """launch + wait_ready; the daemon is stopped again if it does not get ready."""
    daemon = launch(root, caps_cache)
    try:
        return daemon.wait_ready(timeout), daemon
    except BaseException:
        daemon.stop()
        raise
