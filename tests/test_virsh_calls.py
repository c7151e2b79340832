"""The providers' virsh calls: a hypervisor that does not answer in time is the provider's own
error naming the hypervisor, not a Python traceback from subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.machines import libvirt_domain_ops, libvirt_secret_ops


@pytest.mark.parametrize(
    ("module", "error"),
    [(libvirt_domain_ops, libvirt_domain_ops.DomainError), (libvirt_secret_ops, libvirt_secret_ops.SecretError)],
)
def test_a_hung_virsh_is_a_clear_error(
    module: object, error: type[Exception], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    virsh = tmp_path / "virsh"
    virsh.write_text("#!/bin/sh\nexec sleep 30\n")
    virsh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(error, match=r"virsh dominfo on qemu\+ssh://virsh@desk01/system did not finish in 1 s"):
        module._virsh("qemu+ssh://virsh@desk01/system", "dominfo", "akiba-vm01", timeout=1)  # type: ignore[attr-defined]
    assert module.VIRSH_BACKSTOP_S >= 600, "a re-probing libvirtd takes minutes: no short default"  # type: ignore[attr-defined]
