"""The session's real libvirtd, as a pytest fixture. Test modules that need it import it:

    from tests.libvirt_fixture import libvirt  # noqa: F401

One daemon serves the whole session: tests share it, so each uses its own domain names and
secret UUIDs and removes what it defined. Missing binaries (or no way to act as root) fail the
run in CI (.ci/run installs them and runs as root or with sudo) and skip the tests elsewhere.

qemu's capabilities are kept between runs in build/libvirt-qemu-caps (AKIBA_LIBVIRT_CACHE
overrides it; `make clean` empties it): the first run probes qemu once (~8 s idle, minutes on a
loaded machine) before any test starts, later runs load it (~0.3 s). The daemon's files live in
a temporary directory, removed at the end unless AKIBA_KEEP_LIBVIRT=1 (to read libvirtd.log and
the qemu logs), or kept when the daemon failed to start (the error names it). At the end the
daemon, its guests and any qemu it was probing are stopped by PID; one that survives fails the
session's teardown. If the system user libvirt-qemu is missing, starting the daemon adds it
(see tests/real_libvirt.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.real_libvirt import (
    INSTALL_HINT,
    START_LIMIT,
    Libvirt,
    can_be_root,
    kvm_mismatch,
    launch,
    missing_tools,
)

IN_CI = os.environ.get("CI") == "true"
CAPS_CACHE = Path(
    os.environ.get("AKIBA_LIBVIRT_CACHE") or Path(__file__).resolve().parents[1] / "build" / "libvirt-qemu-caps"
)


def require_libvirt() -> None:
    """Skip (fail in CI) when this machine cannot run the test daemon."""
    missing = missing_tools()
    why = f"libvirt is not installed (missing {', '.join(missing)}; {INSTALL_HINT})" if missing else can_be_root()
    if why:
        if IN_CI:
            pytest.fail(f"{why}: CI must provide it (.ci/run)")
        pytest.skip(why)


def private_root() -> Path:
    # A short path under the system temp dir: unix socket paths are limited to 107 bytes.
    return Path(tempfile.mkdtemp(prefix="akiba-libvirt-"))


# pytest makes one fixture definition per module that imports `libvirt`, so "session" scope alone
# would start one daemon per test module; the first one started serves them all.
_shared: list[Libvirt] = []


@pytest.fixture(scope="session")
def libvirt() -> Iterator[Libvirt]:
    if _shared:
        yield _shared[0]
        return
    require_libvirt()
    if mismatch := kvm_mismatch():
        # Every define would re-probe qemu: in CI that is a broken machine (.ci/run fixes
        # /dev/kvm), not a slow test.
        if IN_CI:
            pytest.fail(f"{mismatch}: .ci/run does that on a fresh machine")
        warnings.warn(mismatch, stacklevel=1)
    root = private_root()
    keep = os.environ.get("AKIBA_KEEP_LIBVIRT") == "1"
    started = time.monotonic()
    daemon = launch(root, CAPS_CACHE)
    try:
        lv = daemon.wait_ready(START_LIMIT)
    except BaseException:
        daemon.stop()
        raise  # root stays: the message names its log
    try:
        print(f"\nlibvirtd: answering {time.monotonic() - started:.1f} s after start; qemu capabilities {lv.caps}")
        if lv.reprobe:
            if IN_CI:
                pytest.fail(lv.reprobe)
            warnings.warn(lv.reprobe, stacklevel=1)
        _shared.append(lv)
        yield lv
    finally:
        # Set up first, so torn down last: every module's use of it has finished.
        _shared.clear()
        survivors = daemon.stop()
        if not keep and not survivors:
            shutil.rmtree(root, ignore_errors=True)
        if survivors:
            pytest.fail(f"processes of the test libvirtd survived its stop: {survivors}")
