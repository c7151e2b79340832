"""Domain types shared by every section of the stack spec.

Each type validates and normalises one kind of value once, so the rest of the program can
trust a `MacAddress` or a `Cidr` without checking it again.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

from components.engineers.home_sshd import _RESERVED as RESERVED_LOGINS  # the home containers' own check

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
_PCI = re.compile(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$")
_IFNAME = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
_LOGIN = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")
_SSH_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) "
    r"[A-Za-z0-9+/]+={0,3}( .*)?$"
)
_STABLE_DISK = ("/dev/disk/by-id/", "/dev/disk/by-path/")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CRON_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_WEEKDAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# minute, hour, day of month, month, day of week: (lowest, highest, names)
_CRON_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (0, 7, _WEEKDAYS),
)

# The Kubernetes minors the platform is built for. From 1.31: the nodes get kubeadm's
# kubeadm.k8s.io/v1beta4 configuration (components/cluster/bootstrap.py KUBEADM_API), which
# older kubeadm cannot read. Up to 1.37: the newest minor kubernetes-validate has schemas for
# (tools/plan/checkers.py; tests/test_config_uniqueness.py keeps the two in step), so every
# manifest the plan renders is checked against the version it will run on.
KUBERNETES_MINORS = range(31, 38)


def _hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError("a lowercase RFC 1123 hostname (letters, digits, '-', at most 63)")
    return value


def _mac(value: str) -> str:
    low = value.lower()
    if not _MAC.match(low):
        raise ValueError("a MAC address like 52:54:00:12:34:56")
    if int(low[:2], 16) & 1 or low.replace("-", ":") == "00:00:00:00:00:00":
        # A NIC's own address is unicast: libvirt refuses a multicast one ("expected unicast
        # mac address", src/conf/domain_conf.c) and MAAS could never PXE-boot it.
        raise ValueError("a unicast MAC address (the first octet even), like 52:54:00:12:34:56")
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


def _login_name(value: str) -> str:
    # The name is a login on every node (home_sshd's rules) and part of Kubernetes names
    # (home-<name>, db-<name>: RFC 1123 labels, so no '_' and no '-' at the end).
    if not _LOGIN.match(value):
        raise ValueError(
            "a login name that is also a Kubernetes name: lowercase letters, digits and '-', starting with a "
            "letter and ending with a letter or digit, at most 32 (it names home-<name> and db-<name>)"
        )
    if value in RESERVED_LOGINS:
        raise ValueError(f"a login name the system does not own (not one of {', '.join(sorted(RESERVED_LOGINS))})")
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


def _dns_name(value: str) -> str:
    # kubeadm checks the cluster's dnsDomain as an RFC 1123 subdomain (ValidateNetworking);
    # a later check is a failed install.
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("a lowercase DNS name like cluster.local or akiba.lan (labels of letters, digits and '-')")
    return value


def _dns_label(value: str) -> str:
    # A Service's name is an RFC 1035 label: it must start with a letter.
    if not re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", value):
        raise ValueError(
            "a lowercase name that starts with a letter (letters, digits, '-', at most 63): it names a Service"
        )
    return value


def _registry_host(value: str) -> str:
    # The cache is https://<host> (components.registry.config.upstream_url), served under
    # /<host>/ and named cache-<host with '-' for '.'>, a Service name of at most 63.
    labels = value.split(".")
    if len(value) > 57 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            "a registry host as image references name it, like docker.io or nvcr.io: no scheme, user, port or "
            "path, at most 57 characters"
        )
    return value


def _kubernetes_version(value: str) -> str:
    match = re.fullmatch(r"1\.(\d{2})\.(\d{1,2})", value)
    if not match or int(match.group(1)) not in KUBERNETES_MINORS:
        raise ValueError(
            f"a Kubernetes release 1.{KUBERNETES_MINORS[0]}.x to 1.{KUBERNETES_MINORS[-1]}.x, like 1.36.4 "
            "(the minors this platform is built and checked for)"
        )
    return value


def _cron(value: str) -> str:
    # The CronJob's schedule, as Kubernetes parses it (robfig/cron's standard parser): five
    # fields or a @descriptor. The API server refuses anything else, long after the plan.
    if value.strip() in _CRON_DESCRIPTORS:
        return value
    fields = value.split()
    if len(fields) != 5 or not all(_cron_field(f, *spec) for f, spec in zip(fields, _CRON_FIELDS, strict=True)):
        raise ValueError("a cron schedule of five fields (minute hour day month weekday), like '0 2 * * *'")
    return value


def _cron_field(text: str, lo: int, hi: int, names: dict[str, int]) -> bool:
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if base in ("*", "?"):
            continue
        ends = [names.get(end.lower(), int(end) if end.isdigit() else None) for end in base.split("-")]
        if not 1 <= len(ends) <= 2 or any(e is None or not lo <= e <= hi for e in ends):
            return False
    return True


Hostname = Annotated[str, AfterValidator(_hostname)]
MacAddress = Annotated[str, AfterValidator(_mac)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
Cidr = Annotated[str, AfterValidator(_cidr)]
PciAddress = Annotated[str, AfterValidator(_pci)]
StableDiskPath = Annotated[str, AfterValidator(_disk)]
InterfaceName = Annotated[str, AfterValidator(_ifname)]
LoginName = Annotated[str, AfterValidator(_login_name)]
SshPublicKey = Annotated[str, AfterValidator(_ssh_key)]
HttpUrl = Annotated[str, AfterValidator(_url)]
WireguardKey = Annotated[str, AfterValidator(_wireguard_key)]
KubernetesVersion = Annotated[str, AfterValidator(_kubernetes_version)]
DnsName = Annotated[str, AfterValidator(_dns_name)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
RegistryHost = Annotated[str, AfterValidator(_registry_host)]
CronSchedule = Annotated[str, AfterValidator(_cron)]
