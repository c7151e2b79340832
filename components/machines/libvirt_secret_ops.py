"""The libvirt `ceph` secret a hypervisor needs before a VM can open its RBD disks.

libvirt has no Pulumi resource for secrets (pulumi-libvirt 0.5.4 has none), so these are the
operations a dynamic provider calls. They drive `virsh -c <uri>`: the CLI is already on every
hypervisor (and on the machine running `pulumi up` for the libvirt provider's xsltproc anyway),
where libvirt-python would be a compiled dependency tied to the local libvirt's version.

The secret is `private` (libvirt never hands the key back, not even to root over the API) and
not `ephemeral` (it survives a libvirtd restart, or VMs would stop opening their disks). The
cephx key reaches virsh through a 0600 temp file, never argv: a command line is readable by every
user on the machine through /proc.
"""

from __future__ import annotations

import base64
import binascii
import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from components.machines import virsh
from components.machines.virsh import VIRSH_BACKSTOP_S

# uuid5 namespace of this platform's libvirt ceph secrets. Fixed forever: changing it would give
# every hypervisor new secret UUIDs, and every VM's <auth> would point at a missing secret.
SECRET_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:akiba:libvirt-ceph-secret")


class SecretError(RuntimeError):
    """virsh refused a secret operation (the message carries its stderr)."""


@dataclass(frozen=True)
class SecretState:
    uuid: str
    usage_type: str
    usage_name: str
    ephemeral: bool
    private: bool


def secret_uuid(cluster: str, hypervisor: str) -> str:
    """A stable UUID per (Ceph cluster, hypervisor): re-runs and re-creates find the same secret,
    and the domain XML (rendered offline, before any hypervisor is asked) can name it."""
    if not cluster or not hypervisor:
        raise ValueError("secret_uuid needs a cluster and a hypervisor name")
    return str(uuid.uuid5(SECRET_NAMESPACE, f"ceph:{cluster}\nhypervisor:{hypervisor}"))


def secret_usage(user: str, uuid_: str) -> str:
    """The secret's usage name, unique per secret. libvirt allows one ceph secret per usage name
    on a hypervisor (libvirt src/conf/virsecretobj.c virSecretObjListAdd: "a secret with UUID %s
    already defined for use with %s"): with the UUID in it, dev and prod (both reach prod's Ceph as
    client.libvirt, on the same desktop) each keep their own secret, and a replacement can be
    defined before the secret it replaces is deleted."""
    user = user.removeprefix("client.")
    if not user or not uuid_:
        raise ValueError("secret_usage needs a cephx user and a secret UUID")
    return f"client.{user} secret {uuid_}"


def secret_xml(uuid_: str, usage_name: str) -> str:
    return (
        "<secret ephemeral='no' private='yes'>\n"
        f"  <uuid>{escape(uuid_)}</uuid>\n"
        f"  <usage type='ceph'>\n    <name>{escape(usage_name)}</name>\n  </usage>\n"
        "</secret>\n"
    )


def _check_key(key_b64: str) -> str:
    """A cephx key as `ceph auth get-key` prints it (base64); libvirt wants exactly that text
    as the secret's base64 value. Checked here so a typo fails before virsh sees it."""
    key = key_b64.strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the cephx key is not base64 (as `ceph auth get-key client.<id>` prints it)") from None
    if len(raw) < 16:
        raise ValueError("the cephx key is too short to be a cephx key")
    return key


def _virsh(uri: str, *args: str, timeout: float = VIRSH_BACKSTOP_S) -> subprocess.CompletedProcess[str]:
    return virsh.run(uri, *args, error=SecretError, timeout=timeout)


def _fail(what: str, proc: subprocess.CompletedProcess[str]) -> SecretError:
    return SecretError(f"{what}: virsh exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")


def _not_found(proc: subprocess.CompletedProcess[str]) -> bool:
    return "secret not found" in proc.stderr.lower() or "no secret with matching uuid" in proc.stderr.lower()


def read_ceph_secret(uri: str, uuid_: str) -> SecretState | None:
    """The secret's definition, or None when the hypervisor has no secret with this UUID."""
    proc = _virsh(uri, "secret-dumpxml", uuid_)
    if proc.returncode != 0:
        if _not_found(proc):
            return None
        raise _fail(f"reading secret {uuid_} on {uri}", proc)
    root = ElementTree.fromstring(proc.stdout)  # noqa: S314 - libvirt's own reply
    usage = root.find("usage")
    return SecretState(
        uuid=root.findtext("uuid", "").strip(),
        usage_type=usage.get("type", "") if usage is not None else "",
        usage_name=(usage.findtext("name", "") if usage is not None else "").strip(),
        ephemeral=root.get("ephemeral") == "yes",
        private=root.get("private") == "yes",
    )


def _define(uri: str, uuid_: str, usage_name: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".xml", prefix="akiba-secret-") as f:
        f.write(secret_xml(uuid_, usage_name))
        f.flush()
        proc = _virsh(uri, "secret-define", f.name)
    if proc.returncode != 0:
        # libvirt allows one secret per usage: another UUID already holds this usage name.
        raise _fail(f"defining ceph secret {uuid_} ({usage_name!r}) on {uri}", proc)


def _set_value(uri: str, uuid_: str, key: str) -> None:
    fd, path = tempfile.mkstemp(prefix="akiba-cephx-")  # mkstemp: 0600, owner only
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key)
        # Without --plain, virsh reads the file as base64: the cephx key as Ceph prints it.
        proc = _virsh(uri, "secret-set-value", "--secret", uuid_, "--file", path)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise _fail(f"setting the value of ceph secret {uuid_} on {uri}", proc)


def ensure_ceph_secret(uri: str, uuid_: str, usage_name: str, key_b64: str) -> SecretState:
    """Define the ceph secret (if missing or differently defined) and set its value. Idempotent:
    the UUID never changes, and setting the same value again is harmless. The value is always
    set because a private secret cannot be read back to compare (a rotated key takes effect)."""
    key = _check_key(key_b64)
    uuid.UUID(uuid_)
    state = read_ceph_secret(uri, uuid_)
    wanted = SecretState(uuid_, "ceph", usage_name, ephemeral=False, private=True)
    if state is not None and state != wanted:
        # libvirt will not change a secret's usage in place; a changed definition is replaced
        # (domains reference the UUID, which stays).
        delete_ceph_secret(uri, uuid_)
        state = None
    if state is None:
        _define(uri, uuid_, usage_name)
    _set_value(uri, uuid_, key)
    after = read_ceph_secret(uri, uuid_)
    if after != wanted:
        raise SecretError(f"ceph secret {uuid_} on {uri} reads back as {after}, expected {wanted}")
    return after


def delete_ceph_secret(uri: str, uuid_: str) -> bool:
    """Undefine the secret; False when it was already gone (a delete must be re-runnable)."""
    proc = _virsh(uri, "secret-undefine", uuid_)
    if proc.returncode != 0:
        if _not_found(proc):
            return False
        raise _fail(f"deleting ceph secret {uuid_} on {uri}", proc)
    return True


def list_ceph_secrets(uri: str) -> dict[str, str]:
    """UUID -> usage name of the hypervisor's ceph secrets (to find one that holds a usage)."""
    proc = _virsh(uri, "secret-list")
    if proc.returncode != 0:
        raise _fail(f"listing secrets on {uri}", proc)
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith("ceph "):
            out[parts[0]] = parts[1][len("ceph ") :].strip()
    return out
