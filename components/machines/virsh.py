"""The one way the libvirt dynamic providers run virsh (libvirt_domain_ops, libvirt_secret_ops)."""

from __future__ import annotations

import os
import subprocess

VIRSH_BACKSTOP_S = 1800.0


def run(
    uri: str, *args: str, error: type[Exception], timeout: float = VIRSH_BACKSTOP_S
) -> subprocess.CompletedProcess[str]:
    """virsh against `uri`. No short limit: libvirtd may re-probe qemu for minutes after an
    upgrade, and virsh's own keepalive (5 s x 5 unanswered) already ends the call when the
    daemon stops answering. The backstop only turns a hung call into the caller's `error`."""
    env = {**os.environ, "LC_ALL": "C"}  # callers' "not found" checks read virsh's English messages
    try:
        return subprocess.run(
            ["virsh", "-q", "-c", uri, *args], capture_output=True, text=True, check=False, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        raise error(
            f"virsh {args[0]} on {uri} did not finish in {timeout:.0f} s; libvirtd may still be working "
            "(see its log on the hypervisor), run `pulumi up` again once it answers"
        ) from None
