"""Domain types shared by every section of the stack spec.

Each type validates and normalises one kind of value once, so the rest of the program can
trust a `MacAddress` or a `Cidr` without checking it again.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
_PCI = re.compile(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$")
_IFNAME = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
_POSIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_SSH_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) "
    r"[A-Za-z0-9+/]+={0,3}( .*)?$"
)
_STABLE_DISK = ("/dev/disk/by-id/", "/dev/disk/by-path/")


def _hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError("a lowercase RFC 1123 hostname (letters, digits, '-', at most 63)")
    return value


def _mac(value: str) -> str:
    low = value.lower()
    if not _MAC.match(low):
        raise ValueError("a MAC address like 52:54:00:12:34:56")
    return low.replace("-", ":")


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError("an IPv4 address like 192.168.10.11") from None


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError:
        raise ValueError("an IPv4 network in CIDR form with no host bits, like 10.244.0.0/16") from None


def _pci(value: str) -> str:
    match = _PCI.match(value.lower())
    if not match:
        raise ValueError("a PCI address like 0000:01:00.0")
    domain, bus, slot, function = match.groups()
    return f"{domain or '0000'}:{bus}:{slot}.{function}"


def _disk(value: str) -> str:
    if not value.startswith(_STABLE_DISK):
        # /dev/sdX names move between boots (the USB boot disk makes that likely), and an
        # OSD on the wrong disk destroys data.
        raise ValueError("a stable device path under /dev/disk/by-id/ or /dev/disk/by-path/")
    return value


def _ifname(value: str) -> str:
    if not _IFNAME.match(value):
        raise ValueError("a Linux interface name (at most 15 characters)")
    return value


def _posix_user(value: str) -> str:
    if not _POSIX_USER.match(value):
        raise ValueError("a POSIX user name (lowercase, starts with a letter or '_')")
    return value


def _ssh_key(value: str) -> str:
    if not _SSH_KEY.match(value.strip()):
        raise ValueError("an OpenSSH public key line like 'ssh-ed25519 AAAA... user@host'")
    return value.strip()


def _wireguard_key(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=", value):
        raise ValueError("a WireGuard public key (44 base64 characters, as `wg pubkey` prints)")
    return value


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        raise ValueError("an http(s) URL")
    return value


Hostname = Annotated[str, AfterValidator(_hostname)]
MacAddress = Annotated[str, AfterValidator(_mac)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
Cidr = Annotated[str, AfterValidator(_cidr)]
PciAddress = Annotated[str, AfterValidator(_pci)]
StableDiskPath = Annotated[str, AfterValidator(_disk)]
InterfaceName = Annotated[str, AfterValidator(_ifname)]
PosixUser = Annotated[str, AfterValidator(_posix_user)]
SshPublicKey = Annotated[str, AfterValidator(_ssh_key)]
HttpUrl = Annotated[str, AfterValidator(_url)]
WireguardKey = Annotated[str, AfterValidator(_wireguard_key)]
KubernetesVersion = Annotated[str, Field(pattern=r"^1\.\d{2}\.\d{1,2}$")]
