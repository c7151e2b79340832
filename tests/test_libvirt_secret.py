"""The libvirt ceph secret, against a real libvirtd: define, set, read, re-run, delete."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from components.machines import libvirt_secret_ops as ops
from tests.libvirt_fixture import libvirt  # noqa: F401 - the session fixture
from tests.real_libvirt import Libvirt

# The shape of a cephx key (`ceph auth get-key` output); made up, never a real cluster's.
KEY = "AQBkH0Nm0000AAAAZm9yIHRlc3RzIG9ubHkhIQ=="


def test_uuid_is_stable_per_cluster_and_hypervisor() -> None:
    first = ops.secret_uuid("prod-ceph", "desk01")
    assert first == ops.secret_uuid("prod-ceph", "desk01"), "a re-run must find the same secret"
    assert first != ops.secret_uuid("prod-ceph", "desk02")
    assert first != ops.secret_uuid("dev-ceph", "desk01")
    # Pinned: a change here would orphan every hypervisor's secret and break every VM's <auth>.
    assert first == "066a0749-4092-5c32-becf-baf9204c04f1"


def test_secret_xml_is_private_and_persistent() -> None:
    xml = ops.secret_xml("066a0749-4092-5c32-becf-baf9204c04f1", "client.libvirt secret")
    assert "ephemeral='no'" in xml and "private='yes'" in xml
    assert "<usage type='ceph'>" in xml and "<name>client.libvirt secret</name>" in xml


@pytest.mark.parametrize("bad", ["not base64!", "", "AAAA"])
def test_a_bad_key_fails_before_virsh(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_virsh(*_: Any, **__: Any) -> None:
        raise AssertionError("virsh must not run with a bad key")

    monkeypatch.setattr("subprocess.run", no_virsh)
    with pytest.raises(ValueError, match="cephx key"):
        ops.ensure_ceph_secret("qemu:///system", ops.secret_uuid("c", "h"), "client.libvirt secret", bad)


@pytest.fixture
def argv_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Every command line ops runs (they still run for real)."""
    seen: list[list[str]] = []
    real = subprocess.run

    def recording(cmd: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(list(cmd))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr("subprocess.run", recording)
    yield seen


def test_define_set_read_rerun_delete(libvirt: Libvirt, argv_log: list[list[str]]) -> None:
    uuid_ = ops.secret_uuid("test-cluster", "test-hypervisor-1")
    usage = "client.libvirt secret (test-cluster)"
    assert ops.read_ceph_secret(libvirt.uri, uuid_) is None
    started = time.monotonic()
    state = ops.ensure_ceph_secret(libvirt.uri, uuid_, usage, KEY)
    print(f"\nensure_ceph_secret (define + set + read): {1000 * (time.monotonic() - started):.0f} ms")
    try:
        assert state == ops.SecretState(uuid_, "ceph", usage, ephemeral=False, private=True)
        assert ops.read_ceph_secret(libvirt.uri, uuid_) == state
        # The value is set; being private, libvirt will not give it back.
        assert uuid_ in libvirt.virsh("secret-list").stdout
        refused = libvirt.virsh("secret-get-value", uuid_, check=False)
        assert refused.returncode != 0 and "private" in refused.stderr.lower()

        # A re-run (every `pulumi up`) keeps the UUID and makes no second secret.
        again = ops.ensure_ceph_secret(libvirt.uri, uuid_, usage, KEY)
        assert again == state
        assert ops.list_ceph_secrets(libvirt.uri) == {uuid_: usage}
    finally:
        assert ops.delete_ceph_secret(libvirt.uri, uuid_) is True
    assert ops.read_ceph_secret(libvirt.uri, uuid_) is None
    assert ops.delete_ceph_secret(libvirt.uri, uuid_) is False, "a second delete is a no-op"
    # The key never appears on a command line (/proc/<pid>/cmdline is world-readable).
    assert argv_log and not any(KEY in arg for cmd in argv_log for arg in cmd)


def test_changed_usage_is_redefined_under_the_same_uuid(libvirt: Libvirt) -> None:
    uuid_ = ops.secret_uuid("test-cluster", "test-hypervisor-2")
    try:
        ops.ensure_ceph_secret(libvirt.uri, uuid_, "client.old secret", KEY)
        state = ops.ensure_ceph_secret(libvirt.uri, uuid_, "client.new secret", KEY)
        assert (state.uuid, state.usage_name) == (uuid_, "client.new secret")
    finally:
        ops.delete_ceph_secret(libvirt.uri, uuid_)


def test_a_usage_held_by_another_uuid_is_a_clear_error(libvirt: Libvirt) -> None:
    first, second = ops.secret_uuid("c", "held-1"), ops.secret_uuid("c", "held-2")
    try:
        ops.ensure_ceph_secret(libvirt.uri, first, "client.shared secret", KEY)
        with pytest.raises(ops.SecretError, match=r"defining ceph secret .* on qemu"):
            ops.ensure_ceph_secret(libvirt.uri, second, "client.shared secret", KEY)
    finally:
        ops.delete_ceph_secret(libvirt.uri, first)
        ops.delete_ceph_secret(libvirt.uri, second)
