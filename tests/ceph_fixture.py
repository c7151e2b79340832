"""The session's real Ceph, as a pytest fixture. Test modules that need it import it:

    from tests.ceph_fixture import ceph  # noqa: F401

A test function taking a parameter named `ceph` redefines that import, which ruff reports
(F811): mark such a def `# noqa: F811`, or ask for the fixture by name in one bridging fixture
(`request.getfixturevalue("ceph")`, as tests/test_rbd_ops.py does).

One cluster serves the whole session (it takes ~3 s to start): tests share it, so each uses
its own image names. Missing Ceph binaries fail the run in CI (.ci/run installs them) and
skip the tests elsewhere. The cluster lives in a temporary directory, removed at the end
unless AKIBA_KEEP_CEPH=1 (to read its logs); its daemons are stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.real_ceph import INSTALL_HINT, Ceph, missing_tools, start_ceph

IN_CI = os.environ.get("CI") == "true"
START_TIMEOUT = 90.0  # ~3 s measured; CI machines can be slower and busier


class _Shared:
    """The one cluster of the session. pytest makes a separate session fixture for every module
    that imports `ceph` (fixtures belong to the module they are found in), so without this each
    importing module would start its own cluster. The last of them to finish stops it; session
    fixtures are all finalized at the very end, so no module loses it early."""

    cluster: Ceph | None = None
    stop: Callable[[], None] | None = None
    root: Path | None = None
    users = 0
    failed = ""


def _start() -> Ceph:
    # A short path under the system temp dir, not tmp_path_factory's: admin socket paths are
    # limited to 107 bytes, and pytest would keep the OSD's files after the session.
    root = Path(tempfile.mkdtemp(prefix="akiba-ceph-"))
    started = time.monotonic()
    try:
        cluster, stop = start_ceph(root, timeout=START_TIMEOUT)  # its error carries the daemons' log tails
    except Exception as e:
        _Shared.failed = f"{type(e).__name__}: {e}"
        _remove(root)
        raise
    print(f"\nceph: ready {time.monotonic() - started:.1f} s after start ({cluster.mon_host}, {root})")
    _Shared.cluster, _Shared.stop, _Shared.root = cluster, stop, root
    return cluster


def _remove(root: Path) -> None:
    if os.environ.get("AKIBA_KEEP_CEPH") != "1":
        shutil.rmtree(root, ignore_errors=True)


def _release() -> None:
    _Shared.users -= 1
    if _Shared.users or _Shared.stop is None or _Shared.root is None:
        return
    _Shared.stop()
    _remove(_Shared.root)
    _Shared.cluster = _Shared.stop = _Shared.root = None


@pytest.fixture(scope="session")
def ceph() -> Iterator[Ceph]:
    missing = missing_tools()
    if missing:
        message = f"Ceph is not installed (missing {', '.join(missing)}; {INSTALL_HINT})"
        if IN_CI:
            pytest.fail(f"{message}: CI must install it (.ci/run)")
        pytest.skip(message)
    if _Shared.failed:
        pytest.fail(f"ceph did not start earlier in this session: {_Shared.failed}")
    cluster = _Shared.cluster or _start()
    _Shared.users += 1
    try:
        yield cluster
    finally:
        _release()
