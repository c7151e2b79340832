"""The real-libvirt harness itself (tests/real_libvirt.py): a daemon loads qemu's capabilities
from the kept cache instead of probing, a daemon's failure names its log, and a stop leaves no
libvirtd or qemu behind: guests, and a capability probe caught mid-way (qemu daemonizes, so it
is no longer libvirtd's child)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import DEVNULL

import pytest

from tests import real_libvirt
from tests.libvirt_fixture import CAPS_CACHE, libvirt, private_root, require_libvirt  # noqa: F401 - the session fixture
from tests.real_libvirt import START_LIMIT, Daemon, DaemonGoneError, Libvirt, alive, caps_events, cmdline, launch

GUEST = """<domain type='qemu'>
  <name>akiba-harness-guest</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
</domain>
"""


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test launches, stopped (and their directories removed) if the test did not."""
    started: list[Daemon] = []
    require_libvirt()
    yield started
    for daemon in started:
        daemon.stop()
        if os.environ.get("AKIBA_KEEP_LIBVIRT") != "1":
            shutil.rmtree(daemon.root, ignore_errors=True)


def start(daemons: list[Daemon], caps_cache: Path | None = CAPS_CACHE) -> Daemon:
    daemons.append(launch(private_root(), caps_cache))
    return daemons[-1]


def processes(pids: list[int]) -> dict[int, str]:
    return {p: cmdline(p) for p in pids}


def survivors(before: dict[int, str]) -> list[str]:
    """Those still running the same command (a PID may be reused)."""
    return [f"{p} {cmd}" for p, cmd in before.items() if alive(p) and cmdline(p) == cmd]


def test_a_second_daemon_loads_qemu_capabilities_instead_of_probing(libvirt: Libvirt, daemons: list[Daemon]) -> None:
    """The session's daemon left its probe in the cache: another start on this machine must not
    probe (minutes on a loaded machine) but load it, and a lookup after start must not probe."""
    assert sorted(CAPS_CACHE.glob("*.xml")), f"the session's daemon saved nothing to {CAPS_CACHE}"
    daemon = start(daemons)
    started = time.monotonic()
    lv = daemon.wait_ready(START_LIMIT)
    print(f"\nsecond libvirtd: answering {time.monotonic() - started:.1f} s after start; {lv.caps}")
    loaded, probed, reasons = caps_events(daemon.log_text())
    assert probed == [], f"probed although cached: {reasons}; see {daemon.log}"
    assert "/usr/bin/qemu-system-x86_64" in loaded
    assert lv.caps.startswith("loaded from") and lv.reprobe == ""
    assert daemon.stop() == []


def test_stop_ends_the_daemon_and_its_running_guest(daemons: list[Daemon], tmp_path: Path) -> None:
    daemon = start(daemons)
    lv = daemon.wait_ready(START_LIMIT)
    path = tmp_path / "guest.xml"
    path.write_text(GUEST)
    lv.virsh("define", str(path))
    lv.virsh("start", "akiba-harness-guest")
    assert lv.virsh("domstate", "akiba-harness-guest").stdout.strip() == "running"
    before = processes(daemon.members())
    commands = list(before.values())
    assert any("libvirtd" in c for c in commands) and any("qemu-system" in c for c in commands), before
    assert daemon.stop() == []
    assert survivors(before) == []


def test_stop_during_the_capability_probe_leaves_no_qemu(daemons: list[Daemon]) -> None:
    """A cold cache: the first `virsh version` makes libvirtd probe qemu. The probe is frozen
    (as one that takes minutes on a loaded machine, past the stop's grace): stopped then, the
    probe's qemu (a daemon of its own, not libvirtd's child) must go with it."""
    daemon = start(daemons, caps_cache=None)
    deadline = time.monotonic() + START_LIMIT
    while not daemon.run_socket().exists():
        assert daemon.proc.poll() is None and time.monotonic() < deadline, f"no socket; see {daemon.log}"
        time.sleep(0.05)
    with subprocess.Popen(["virsh", "-c", daemon.uri, "version"], stdout=DEVNULL, stderr=DEVNULL) as client:
        probe: dict[int, str] = {}
        while not probe:
            assert client.poll() is None, f"virsh version ended before a probe was seen; see {daemon.log}"
            assert time.monotonic() < deadline, f"no qemu probe seen in {START_LIMIT:.0f} s; see {daemon.log}"
            probe = {p: c for p, c in processes(daemon.members()).items() if "qemu-system" in c}
            time.sleep(0.05)
        for pid in probe:
            real_libvirt._signal(pid, signal.SIGSTOP)
        before = processes(daemon.members())
        assert daemon.stop(grace=2.0) == []
    assert survivors(before) == [], f"the probe was {probe}"


def test_a_daemon_that_dies_at_start_names_its_log(daemons: list[Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    real_conf = real_libvirt._conf

    def broken(root: Path) -> None:
        real_conf(root)
        with (root / "etc" / "libvirtd.conf").open("a") as conf:
            conf.write('max_clients = "many"\n')

    monkeypatch.setattr(real_libvirt, "_conf", broken)
    daemon = start(daemons)
    with pytest.raises(DaemonGoneError, match="libvirtd exited") as err:
        daemon.wait_ready(START_LIMIT)
    assert str(daemon.log) in str(err.value)
    assert "max_clients" in str(err.value), "the log's tail says why"


def test_a_virsh_call_on_a_dead_daemon_fails_naming_its_log(daemons: list[Daemon]) -> None:
    daemon = start(daemons)
    lv = daemon.wait_ready(START_LIMIT)
    real_libvirt._signal(lv.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while alive(lv.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(DaemonGoneError, match=f"libvirtd \\(pid {lv.pid}\\) exited") as err:
        lv.virsh("list")
    assert str(lv.log) in str(err.value)
    assert daemon.stop() == []


def test_a_cache_libvirt_keeps_invalidating_is_reported(
    daemons: list[Daemon], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """When every lookup re-probes (/dev/kvm usable by the guest user by its permissions but not
    by qemu, or the reverse: each define then takes minutes under load), the start says so.
    Made here in the daemon's own namespace only: /dev/null (0666) over /dev/kvm."""
    if not Path("/dev/kvm").exists():
        pytest.skip("no /dev/kvm to shadow on this machine")
    shadowed = real_libvirt._START.replace("exec libvirtd", "mount --bind /dev/null /dev/kvm\nexec libvirtd")
    monkeypatch.setattr(real_libvirt, "_START", shadowed)
    # x86_64 probed afresh (a probe with KVM would stay valid), the rest from the kept cache. A
    # cache file is named by the SHA-256 of the binary's path (libvirt 9.0 src/util/virfilecache.c,
    # virFileCacheGetFileName).
    x86_64 = hashlib.sha256(b"/usr/bin/qemu-system-x86_64").hexdigest() + ".xml"
    seed = tmp_path / "caps"
    seed.mkdir()
    for path in CAPS_CACHE.glob("*.xml"):
        if path.name != x86_64:
            shutil.copy2(path, seed / path.name)
    daemon = start(daemons, caps_cache=seed)
    lv = daemon.wait_ready(START_LIMIT)
    print(f"\n{lv.caps}\n{lv.reprobe}")
    assert "KVM was not enabled when probing" in lv.reprobe, lv.reprobe
    assert str(daemon.log) in lv.reprobe
    assert daemon.stop() == []


def test_a_stopped_daemon_never_touches_a_later_one(daemons: list[Daemon]) -> None:
    """A freed namespace's number is soon given to the next namespace (the next session's
    daemon, often): a stopped daemon must find no members and end nothing any more."""
    first = start(daemons)
    first.wait_ready(START_LIMIT)
    ns = first.namespace
    assert first.stop() == []
    second = start(daemons)
    lv = second.wait_ready(START_LIMIT)
    print(f"\nnamespaces: {ns}, then {second.namespace}")
    assert first.members() == []
    assert first.stop() == []
    assert alive(lv.pid) and lv.virsh("version").returncode == 0
    assert second.stop() == []
