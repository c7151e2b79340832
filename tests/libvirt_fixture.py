"""The session's real libvirtd, as a pytest fixture. Test modules that need it import it:

    from tests.libvirt_fixture import libvirt  # noqa: F401

One daemon serves the whole session (it takes ~10 s to answer): tests share it, so each uses its
own domain names and secret UUIDs and removes what it defined. Missing binaries (or no way to
act as root) fail the run in CI (.ci/run installs them and runs as root or with sudo) and skip
the tests elsewhere. The daemon's files live in a temporary directory, removed at the end unless
AKIBA_KEEP_LIBVIRT=1 (to read libvirtd.log and the qemu logs); it and its guests are stopped by PID.
If the system user libvirt-qemu is missing, starting the daemon adds it (see tests/real_libvirt.py).
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

from tests.real_libvirt import INSTALL_HINT, Libvirt, can_be_root, kvm_mismatch, missing_tools, start_libvirtd

IN_CI = os.environ.get("CI") == "true"
START_TIMEOUT = 120.0  # ~10 s measured; CI machines can be slower and busier


# pytest makes one fixture definition per module that imports `libvirt`, so "session" scope alone
# would start one daemon per test module; the first one started serves them all.
_shared: list[Libvirt] = []


@pytest.fixture(scope="session")
def libvirt() -> Iterator[Libvirt]:
    if _shared:
        yield _shared[0]
        return
    missing = missing_tools()
    why = f"libvirt is not installed (missing {', '.join(missing)}; {INSTALL_HINT})" if missing else can_be_root()
    if why:
        if IN_CI:
            pytest.fail(f"{why}: CI must provide it (.ci/run)")
        pytest.skip(why)
    if mismatch := kvm_mismatch():
        # Every define would re-probe qemu and pass virsh's limit: in CI that is a broken
        # machine (.ci/run fixes /dev/kvm), not a slow test.
        if IN_CI:
            pytest.fail(f"{mismatch}: .ci/run does that on a fresh machine")
        warnings.warn(mismatch, stacklevel=1)
    # A short path under the system temp dir: unix socket paths are limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="akiba-libvirt-"))
    try:
        started = time.monotonic()
        daemon, stop = start_libvirtd(root, timeout=START_TIMEOUT)
        print(f"\nlibvirtd: answering {time.monotonic() - started:.1f} s after start ({daemon.uri})")
        _shared.append(daemon)
        try:
            yield daemon
        finally:
            # Set up first, so torn down last: every module's use of it has finished.
            _shared.clear()
            stop()
    finally:
        if os.environ.get("AKIBA_KEEP_LIBVIRT") != "1":
            shutil.rmtree(root, ignore_errors=True)
