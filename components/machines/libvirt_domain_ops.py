"""A libvirt domain defined from its final XML with `virsh` (what the VM component uses instead
of pulumi-libvirt's Domain).

Why not the 0.5.4 Domain: terraform-provider-libvirt v0.8.1 reads a network disk back as
`protocol://host:port` + name (resourceLibvirtDomainRead), which for RBD gives
`rbd://10.0.0.11:6789vm-disks/...`, an invalid URL: every create and refresh fails after the
domain was defined and started (upstream issue 894, unchanged in 0.8.3). The XML is still made
exactly as that provider would (`vm_domain_xml.provider_domain_xml`) and rewritten by the one
XSLT (`vm_domain_xml.render_xslt`), so a move to provider 0.9.x stays one file.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from components.machines import virsh
from components.machines.virsh import VIRSH_BACKSTOP_S


class DomainError(RuntimeError):
    pass


def _virsh(uri: str, *args: str, timeout: float = VIRSH_BACKSTOP_S) -> subprocess.CompletedProcess[str]:
    return virsh.run(uri, *args, error=DomainError, timeout=timeout)


def _missing(proc: subprocess.CompletedProcess[str]) -> bool:
    return "domain not found" in proc.stderr.lower() or "failed to get domain" in proc.stderr.lower()


def _name(xml: str) -> str:
    match = re.search(r"<name>([^<]+)</name>", xml)
    if not match:
        raise DomainError("domain XML without <name>")
    return match.group(1)


def define(uri: str, xml: str) -> None:
    """Define (or redefine: the new XML applies from the next boot) a persistent domain."""
    name = _name(xml)
    if "<uuid>" not in xml and exists(uri, name):
        # A redefinition must keep the domain's UUID, or libvirt sees a second domain.
        uuid = _virsh(uri, "domuuid", name).stdout.strip()
        xml = xml.replace(f"<name>{name}</name>", f"<name>{name}</name>\n  <uuid>{uuid}</uuid>", 1)
    with tempfile.TemporaryDirectory(prefix="akiba-domain-") as tmp:
        path = Path(tmp, "domain.xml")
        path.write_text(xml, encoding="utf-8")
        proc = _virsh(uri, "define", str(path))
    if proc.returncode != 0:
        raise DomainError(f"virsh define: {proc.stderr.strip() or proc.stdout.strip()}")


def exists(uri: str, name: str) -> bool:
    proc = _virsh(uri, "dominfo", name)
    if proc.returncode == 0:
        return True
    if _missing(proc):
        return False
    raise DomainError(f"virsh dominfo {name}: {proc.stderr.strip()}")


def undefine(uri: str, name: str) -> bool:
    """Stop and remove the domain; its RBD disks are separate resources and stay."""
    if not exists(uri, name):
        return False
    _virsh(uri, "destroy", name)  # not running is fine
    proc = _virsh(uri, "undefine", name, "--nvram")
    if proc.returncode != 0 and "nvram" in proc.stderr.lower():
        proc = _virsh(uri, "undefine", name)
    if proc.returncode != 0:
        raise DomainError(f"virsh undefine {name}: {proc.stderr.strip()}")
    return True


# The domain's place in the hypervisor's start order after a power cut, kept in the domain's own
# definition (libvirt <metadata>, namespaced: other tools' metadata is left alone) so that the
# start script on the hypervisor (components/machines/vm_start.py) needs nothing but libvirt.
START_NS = "https://akiba.example/libvirt/start"
START_KEY = "akiba"


def set_start_order(uri: str, name: str, order: int) -> None:
    """libvirt's own autostart off, the start order recorded.

    libvirt's autostart starts a domain when libvirtd starts, before the Ceph its disks are on
    answers; the hypervisor's akiba-start-vms unit starts it instead, once they do. `virsh
    define` replaces the whole definition, metadata included: call this after each define."""
    for args in (
        ("autostart", "--disable", name),
        ("metadata", name, "--config", "--uri", START_NS, "--key", START_KEY, "--set", f'<start order="{order}"/>'),
    ):
        proc = _virsh(uri, *args)
        if proc.returncode != 0:
            raise DomainError(f"virsh {args[0]} {name}: {proc.stderr.strip() or proc.stdout.strip()}")


def start_order(uri: str, name: str) -> int | None:
    """The recorded start order; None for a domain without one (not the platform's)."""
    proc = _virsh(uri, "metadata", name, "--config", "--uri", START_NS)
    match = re.search(r'order="(\d+)"', proc.stdout) if proc.returncode == 0 else None
    return int(match.group(1)) if match else None


def autostart(uri: str, name: str) -> bool:
    """Whether libvirt itself starts the domain with libvirtd (`virsh dominfo`'s Autostart)."""
    proc = _virsh(uri, "dominfo", name)
    if proc.returncode != 0:
        raise DomainError(f"virsh dominfo {name}: {proc.stderr.strip()}")
    return bool(re.search(r"^Autostart:\s+enable", proc.stdout, re.M))
