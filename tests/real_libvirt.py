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
The daemon answers ~10 s after start: the qemu driver first probes the emulator's capabilities.
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
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Libvirt:
    root: Path
    uri: str
    pidfile: Path

    def virsh(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C"}
        proc = subprocess.run(
            ["virsh", "-c", self.uri, *args], capture_output=True, text=True, check=False, timeout=timeout, env=env
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

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
        for path in (self.root / "libvirtd.stdout", self.root / "log" / "libvirtd.log"):
            if path.exists():
                out += [f"--- {path}", *path.read_text(errors="replace").splitlines()[-lines:]]
        return "\n".join(out)


def _conf(root: Path) -> None:
    etc = root / "etc"
    # The socket sits in root/run, a directory only the test's user can enter, so it may be
    # world-writable: sudo-started libvirtd's socket must let the non-root test user in.
    (etc / "libvirtd.conf").write_text(
        'auth_unix_ro = "none"\n'
        'auth_unix_rw = "none"\n'
        'unix_sock_rw_perms = "0777"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
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
exec libvirtd -f /etc/libvirt/libvirtd.conf -p "$root/libvirtd.pid"
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie: qemu daemonizes, so once it exits it waits as a zombie until PID 1
    reaps it, which some container inits do slowly."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _is_qemu(pid: int) -> bool:
    """Still the qemu our libvirtd started (a pid file may outlive its process, and pids are reused)."""
    try:
        return b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _signal(pid: int, sig: signal.Signals) -> None:
    if os.geteuid() == 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    else:
        subprocess.run([*_sudo(), "kill", f"-{sig.name.removeprefix('SIG')}", str(pid)], check=False)


def _end(pid: int, grace: float, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM, then SIGKILL after `grace`. A child of ours is waited for (an exited child stays a
    zombie, which kill(pid, 0) still finds, until it is reaped)."""
    _signal(pid, signal.SIGTERM)
    if child is not None and child.pid == pid:
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal(pid, signal.SIGKILL)
            child.wait()
        return
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        _signal(pid, signal.SIGKILL)


def _pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if re.fullmatch(r"\d+", text) else None


def start_libvirtd(root: Path, timeout: float = 90) -> tuple[Libvirt, Callable[[], None]]:
    """Start libvirtd with the qemu driver under `root` (created; must be empty), wait until the
    qemu driver answers, and return it with a stop() that ends, by PID, the qemu processes it
    started (their pid files) and then the daemon."""
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
    uri = f"qemu+unix:///system?socket={root}/run/libvirt-sock"
    lv = Libvirt(root, uri, root / "libvirtd.pid")
    with (root / "libvirtd.stdout").open("ab") as log:
        proc = subprocess.Popen(
            [*_sudo(), "unshare", "--mount", "--propagation", "private", "sh", "-c", _START, "sh", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(grace: float = 10.0) -> None:
        # qemu outlives libvirtd by design (a daemon restart must not kill guests): end ours first.
        for pidfile in sorted((root / "run" / "qemu").glob("*.pid")):
            pid = _pid(pidfile)
            if pidfile.name != "driver.pid" and pid is not None and _is_qemu(pid):
                _end(pid, grace)
        daemon = _pid(lv.pidfile) or proc.pid
        _end(daemon, grace, proc)
        if proc.poll() is None:  # under sudo, proc is sudo, which ends with its child
            _end(proc.pid, grace, proc)

    deadline = time.monotonic() + timeout
    why = "no answer yet"
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"libvirtd exited with {proc.returncode}\n{lv.log_tail()}")
            answer = lv.virsh("version", check=False, timeout=30)
            if answer.returncode == 0 and "Running hypervisor: QEMU" in answer.stdout:
                return lv, stop
            why = answer.stderr.strip()
            time.sleep(0.2)
        raise TimeoutError(f"libvirtd's qemu driver did not answer in {timeout:.0f} s: {why}\n{lv.log_tail()}")
    except BaseException:
        stop()
        raise
