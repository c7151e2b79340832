"""Cross-field rules of the stack config.

They run on the raw config next to the field validation, so one run reports every problem
at once even when some fields are also malformed (those are skipped here and reported by
the field validation). Every rule is linear in the number of nodes: one pass, dict lookups.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from components.burst.instance_types import INSTANCE_TYPES
from components.engineers.home_containers import DOCKER_GID
from components.engineers.home_sshd import key_problems
from components.storage.ceph_storage import CEPHFS_CLASS
from components.tenants.names import CONSUMER_USER
from components.tenants.quota import quantity
from stacks import addresses, names
from stacks.problems import Problem, key_path, shown
from stacks.raw import Raw, items_at, normal, section_at
from stacks.spec import SECRET_KEYS
from stacks.types import Cidr, MacAddress, PciAddress

# The platform's accounts and users: akiba-consumer, akiba-push, akiba-pull, akiba-converge.
PLATFORM_PREFIX = "akiba-"
_MAC = TypeAdapter(MacAddress)
_CIDR = TypeAdapter(Cidr)
_PCI = TypeAdapter(PciAddress)
# Key names that hold secrets when they appear inside a structured config value.
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|api_?key|private_?key)$", re.I)
# scheme://user:password@ anywhere in a value (a user alone, like ssh's, is no credential).
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]*@", re.I)
# by-id names that are not one physical disk's: device-mapper, md and LVM names repeat across
# hosts; a VM's virtio-<serial> is an RBD image, unique across the stack by stacks.names.
_NOT_ONE_DISK = ("dm-", "md-", "lvm-", "virtio-")
# What MAAS deploys, and the kernels of that release (ga-24.04, hwe-24.04, hwe-24.04-edge...).
# noble only: the spec refuses jammy (home pods need idmapped CephFS mounts, Linux >= 6.7).
_SERIES_VERSION = {"noble": "24.04"}
# The IAM user the cluster-autoscaler reads AWS with is <cluster>-cluster-autoscaler
# (components.burst.autoscaler); IAM user names are at most 64 characters (AWS IAM User Guide,
# "IAM and AWS STS quotas").
_CLUSTER_NAME_MAX_WITH_BURST = 64 - len("-cluster-autoscaler")


class _Unique:
    """Collects values that must be unique and reports the second use of each."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.seen: dict[str, str] = {}
        self.problems: list[Problem] = []

    def add(self, value: str | None, path: str, shown_as: Any = None) -> None:
        if value is None:
            return
        first = self.seen.setdefault(value, path)
        if first != path:
            self.problems.append(
                Problem(path, f"{self.what} not used elsewhere", f"{shown(shown_as or value)} (also at {first})")
            )


def unique_identities(raw: Raw) -> list[Problem]:
    """MACs and uids; names are stacks.names', addresses stacks.addresses'."""
    macs, uids = _Unique("a MAC address"), _Unique("a uid")
    for i, node in items_at(raw, "nodes"):
        for j, nic in enumerate(node.get("nics") or []):
            if isinstance(nic, dict):
                macs.add(normal(_MAC, nic.get("mac")), key_path("nodes", i, "nics", j, "mac"))
    for i, eng in items_at(raw, "engineers"):
        uid = eng.get("uid")
        uids.add(str(uid) if isinstance(uid, int) else None, key_path("engineers", i, "uid"))
    return macs.problems + uids.problems


def logins_not_platform_identities(raw: Raw) -> list[Problem]:
    """An engineer's Kubernetes user is their login (no groups): a login that names one of the
    platform's own identities would take its rights (akiba-consumer's cluster-wide read) or be
    taken for it (the deployer, <cluster>-admin, would count as that engineer in their namespace)."""
    cluster = section_at(raw, "cluster").get("name")
    taken = {CONSUMER_USER} | ({f"{cluster}-admin"} if isinstance(cluster, str) else set())
    out = []
    for i, eng in items_at(raw, "engineers"):
        login = eng.get("name")
        if isinstance(login, str) and (login in taken or login.startswith(PLATFORM_PREFIX)):
            out.append(
                Problem(
                    key_path("engineers", i, "name"),
                    f"a login that is none of the platform's identities ({', '.join(sorted(taken))}, "
                    f"{PLATFORM_PREFIX}*)",
                    shown(login),
                )
            )
    return out


def accounts_usable(raw: Raw) -> list[Problem]:
    """What the home containers would refuse (components.engineers.home_sshd), with key paths:
    a key sshd cannot read, and one group id for two engineers or for the docker group."""
    out = []
    groups: dict[int, tuple[str, bool]] = {}  # gid -> (key path, given as gid)
    for i, eng in items_at(raw, "engineers"):
        for j, key in enumerate(eng.get("sshKeys") or []):
            if isinstance(key, str):
                out += [
                    Problem(key_path("engineers", i, "sshKeys", j), "a key sshd can use", p) for p in key_problems(key)
                ]
        explicit = isinstance(eng.get("gid"), int)
        gid = eng.get("gid") if explicit else eng.get("uid")
        if not isinstance(gid, int) or isinstance(gid, bool):
            continue
        path = key_path("engineers", i, "gid" if explicit else "uid")
        if gid == DOCKER_GID:
            out.append(
                Problem(path, f"a group id other than {DOCKER_GID}, the home containers' docker group", str(gid))
            )
        first = groups.setdefault(gid, (path, explicit))
        if first[0] != path and (explicit or first[1]):  # two equal uids: the uid rule's problem
            out.append(Problem(path, "a group id not used elsewhere", f"{gid} (also at {first[0]})"))
    return out


def nics_named_once(raw: Raw) -> list[Problem]:
    """Bond members are keyed by name in netplan: one name cannot be two NICs."""
    out = []
    for i, node in items_at(raw, "nodes"):
        seen = _Unique("a NIC name not used by another NIC of this node")
        for j, nic in enumerate(node.get("nics") or []):
            if isinstance(nic, dict) and isinstance(nic.get("name"), str):
                seen.add(nic["name"], key_path("nodes", i, "nics", j, "name"))
        out += seen.problems
    return out


def roles_and_references(raw: Raw) -> list[Problem]:
    out = []
    nodes = list(items_at(raw, "nodes"))
    if nodes and not any(n.get("role") == "controller" for _, n in nodes):
        out.append(Problem(key_path("nodes"), "at least one node with role 'controller'", "none"))
    declared = {hv.get("name") for _, hv in items_at(raw, "hypervisors")}
    names = ", ".join(sorted(map(str, declared))) or "none declared"
    for i, node in nodes:
        power = node.get("power")
        if (
            isinstance(power, dict)
            and power.get("type") == "virsh"
            and "hypervisor" in power
            and power["hypervisor"] not in declared
        ):
            out.append(
                Problem(
                    key_path("nodes", i, "power", "hypervisor"),
                    f"the name of a hypervisor declared in akiba:hypervisors ({names})",
                    shown(power["hypervisor"]),
                )
            )
    return out


def control_plane_survives(raw: Raw) -> list[Problem]:
    """Stacked etcd runs on every controller and works while a majority of them is up: 3 survive
    the loss of one, 2 of none (and fail twice as often as 1), 4 of one (no better than 3). More
    than one controller needs a virtual IP in front of their API servers (kube-vip)."""
    count = sum(1 for _, n in items_at(raw, "nodes") if n.get("role") == "controller")
    out = []
    if count and count % 2 == 0:
        out.append(
            Problem(
                key_path("nodes"),
                "an odd number of controllers (1, 3 or 5): etcd needs a majority of them up, so "
                f"{count} survive no more lost controllers than {count - 1}",
                f"{count} controllers",
            )
        )
    if count > 1 and section_at(raw, "cluster").get("apiVip") is None:
        out.append(
            Problem(
                key_path("cluster", "apiVip"),
                f"a virtual IP on the office LAN for the API servers of the {count} controllers "
                "(kube-vip moves it to a live one)",
                "unset",
            )
        )
    return out


def gpus_make_sense(raw: Raw) -> list[Problem]:
    out = []
    for i, node in items_at(raw, "nodes"):
        gpus = [g for g in node.get("gpus") or [] if isinstance(g, dict)]
        models = {g.get("model") for g in gpus}
        if len(models) > 1:
            # The device plugin exposes one nvidia.com/gpu resource per node: a pod asking
            # for a GTX 1080 could get the 750 Ti next to it.
            out.append(
                Problem(key_path("nodes", i, "gpus"), "GPUs of one model per node", shown(sorted(map(str, models))))
            )
        pcis = _Unique("a PCI address not used by another GPU of this node")
        for j, gpu in enumerate(gpus):
            pci = normal(_PCI, gpu.get("pci"))
            pcis.add(pci, key_path("nodes", i, "gpus", j, "pci"))
            if pci is not None and not pci.endswith(".0"):
                # The slot's other functions (the HDMI audio) share its IOMMU group and are
                # passed along with function 0: naming another function passes the wrong set.
                out.append(
                    Problem(
                        key_path("nodes", i, "gpus", j, "pci"),
                        f"the GPU's function 0 ({pci[:-1]}0): its other functions go with it",
                        shown(gpu.get("pci")),
                    )
                )
        out += pcis.problems
    return out


def vm_gpus_unique(raw: Raw) -> list[Problem]:
    """A VM gets a GPU by passing its hypervisor's slot through (VT-d), so it names the slot;
    a slot goes to one VM of a hypervisor, and not to a VM if the hypervisor is a node that
    drives that GPU itself: the VM would not start."""
    nodes = dict(items_at(raw, "nodes"))
    hosts = addresses.hypervisor_nodes(raw)
    slots: dict[str, _Unique] = {}
    out = []
    for i, node in nodes.items():
        power = node.get("power")
        if not (isinstance(power, dict) and power.get("type") == "virsh" and isinstance(power.get("hypervisor"), str)):
            continue
        hv = power["hypervisor"]
        unique = slots.get(hv)
        if unique is None:
            unique = slots[hv] = _Unique(f"a GPU slot of hypervisor {hv}")
            host = hosts.get(hv)  # the node that is this hypervisor drives its own GPUs
            host_gpus = nodes[host].get("gpus") or [] if host is not None else []
            for m, gpu in enumerate(host_gpus):
                pci = normal(_PCI, gpu.get("pci")) if isinstance(gpu, dict) else None
                unique.add(pci, key_path("nodes", host or 0, "gpus", m, "pci"))
        seen: set[str] = set()  # a slot twice in one node is gpus_make_sense's problem
        for j, gpu in enumerate(node.get("gpus") or []):
            if not isinstance(gpu, dict):
                continue
            if gpu.get("pci") is None:
                out.append(
                    Problem(
                        key_path("nodes", i, "gpus", j, "pci"),
                        f"the GPU's PCI slot on hypervisor {hv}, like 0000:01:00.0 (a VM gets a GPU by VT-d)",
                        "none",
                    )
                )
            pci = normal(_PCI, gpu.get("pci"))
            if pci is not None and pci not in seen:
                seen.add(pci)
                unique.add(pci, key_path("nodes", i, "gpus", j, "pci"))
    return out + [p for u in slots.values() for p in u.problems]


def hardware_declared(raw: Raw) -> list[Problem]:
    """MAAS allocates a PC by its declared hardware floor, a VM by its own size (power.vcpus,
    power.memoryMib): a PC needs one, a VM must not have a second, disagreeing one."""
    out = []
    for i, node in items_at(raw, "nodes"):
        power = node.get("power")
        kind = power.get("type") if isinstance(power, dict) else None
        if kind == "virsh" and "hardware" in node:
            out.append(
                Problem(
                    key_path("nodes", i, "hardware"),
                    "no hardware for a VM (it is power.vcpus and power.memoryMib)",
                    shown(node["hardware"]),
                )
            )
        elif kind in ("manual", "ipmi", "amt") and node.get("hardware") is None:
            out.append(
                Problem(
                    key_path("nodes", i, "hardware"),
                    "the PC's hardware floor, like {cpus: 8, memoryGib: 62} (MAAS deploys only a machine with "
                    "at least that much)",
                    "none",
                )
            )
    return out


def disks_make_sense(raw: Raw) -> list[Problem]:
    """A disk is in one place: not twice on a host, never both boot and Ceph disk, and a disk
    named by its serial (/dev/disk/by-id/) in one host only. A VM's disks are RBD images,
    unique across the stack by stacks.names."""
    out = []
    everywhere = _Unique("a disk of one host only (a by-id name is the disk's own serial)")
    for i, node in items_at(raw, "nodes"):
        disks = node.get("disks")
        if not isinstance(disks, dict):
            continue
        boot, ceph = disks.get("boot"), disks.get("ceph") or []
        seen = _Unique("a disk not listed twice")
        for j, disk in enumerate(ceph):
            path = key_path("nodes", i, "disks", "ceph", j)
            if disk == boot:
                out.append(Problem(path, "a data disk other than the boot disk", shown(disk)))
            seen.add(disk if isinstance(disk, str) else None, path)
        out += seen.problems
        here = {boot: key_path("nodes", i, "disks", "boot")}
        here.update({d: key_path("nodes", i, "disks", "ceph", j) for j, d in enumerate(ceph) if d not in here})
        for disk, path in here.items():
            by_id = disk.removeprefix("/dev/disk/by-id/") if isinstance(disk, str) else ""
            if isinstance(disk, str) and by_id != disk and not by_id.startswith(_NOT_ONE_DISK):
                everywhere.add(disk, path)
    return out + everywhere.problems


def vm_disks_named(raw: Raw) -> list[Problem]:
    """A VM's disks are RBD images whose serial makes the path: /dev/disk/by-id/virtio-<serial>."""
    out = []
    for i, node in items_at(raw, "nodes"):
        power, disks = node.get("power"), node.get("disks")
        if not (isinstance(power, dict) and power.get("type") == "virsh" and isinstance(disks, dict)):
            continue
        paths = [("boot", disks.get("boot"))] + [(f"ceph[{j}]", d) for j, d in enumerate(disks.get("ceph") or [])]
        for where, path in paths:
            if isinstance(path, str) and not re.fullmatch(r"/dev/disk/by-id/virtio-[a-z0-9][a-z0-9-]{0,19}", path):
                out.append(
                    Problem(
                        f"{key_path('nodes', i, 'disks')}.{where}",
                        "/dev/disk/by-id/virtio-<serial> (a VM's disk; the serial, at most 20 characters, names it)",
                        shown(path),
                    )
                )
    return out


def vms_fit_their_ceph(raw: Raw) -> list[Problem]:
    """On this stack's own Ceph, a VM cannot be the controller or hold OSDs: Ceph runs on the
    nodes the controller brings up, and an OSD on an RBD image of its own cluster is a loop."""
    if section_at(raw, "libvirt").get("cephStack"):
        return []
    out = []
    for i, node in items_at(raw, "nodes"):
        power, disks = node.get("power"), node.get("disks")
        if not (isinstance(power, dict) and power.get("type") == "virsh"):
            continue
        if node.get("role") == "controller":
            out.append(
                Problem(key_path("nodes", i, "role"), "'worker' for a VM on this stack's own Ceph", "'controller'")
            )
        if isinstance(disks, dict) and disks.get("ceph"):
            out.append(
                Problem(
                    key_path("nodes", i, "disks", "ceph"), "no Ceph disks on a VM of this stack's own Ceph", "a list"
                )
            )
    return out


def storage_fits(raw: Raw) -> list[Problem]:
    """With failure domain `host`, every copy needs its own node with OSDs, every mon its node."""
    storage = section_at(raw, "storage")
    hosts = sum(1 for _, n in items_at(raw, "nodes") if isinstance(n.get("disks"), dict) and n["disks"].get("ceph"))
    nodes = len(list(items_at(raw, "nodes")))
    out = []
    replicas, mons = storage.get("replicas"), storage.get("mons")
    if isinstance(replicas, int) and replicas > hosts:
        out.append(Problem(key_path("storage", "replicas"), f"at most {hosts} (nodes with Ceph disks)", str(replicas)))
    if isinstance(mons, int) and mons > nodes:
        out.append(Problem(key_path("storage", "mons"), f"at most {nodes} (one per node)", str(mons)))
    return out


def burst_consistent(raw: Raw) -> list[Problem]:
    burst = section_at(raw, "burst")
    region = burst.get("region")
    out = []
    if isinstance(region, str):
        for j, zone in enumerate(burst.get("zones") or []):
            if not (isinstance(zone, str) and re.fullmatch(re.escape(region) + r"[a-z]", zone)):
                out.append(Problem(key_path("burst", "zones", j), f"a zone of {region}, like {region}a", shown(zone)))
    for j, itype in enumerate(burst.get("instanceTypes") or []):
        if not (isinstance(itype, str) and re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", itype)):
            out.append(
                Problem(key_path("burst", "instanceTypes", j), "an EC2 instance type like g4dn.xlarge", shown(itype))
            )
    types = [t for t in burst.get("instanceTypes") or [] if isinstance(t, str)]
    known = [t for t in types if t in INSTANCE_TYPES]
    gpus = {INSTANCE_TYPES[t].gpus for t in known}
    if len(gpus) > 1:
        # The autoscaler models a scale-from-zero group by its first type: every type must
        # bring the same number of GPUs, or pods are promised GPUs that never arrive.
        counts = ", ".join(f"{t}: {INSTANCE_TYPES[t].gpus}" for t in known)
        out.append(Problem(key_path("burst", "instanceTypes"), "types with the same GPU count", counts))
    prices = burst.get("spotPriceUsd")
    if isinstance(prices, dict):
        for t in types:
            if t not in prices:
                out.append(
                    Problem(
                        key_path("burst", "spotPriceUsd", t), "an expected hourly price for each instance type", "none"
                    )
                )
    if burst.get("enabled") is True and burst.get("maxSize") == 0:
        out.append(Problem(key_path("burst", "maxSize"), "at least 1 when burst is enabled", "0"))
    return out + burst_networks_fit(raw)


def burst_networks_fit(raw: Raw) -> list[Problem]:
    """components.burst.network carves the VPC into sixteenths (a private subnet per zone, the
    last one public), and the tunnel needs two host addresses: say so before ipaddress does."""
    burst = section_at(raw, "burst")
    out = []
    vpc = normal(_CIDR, burst.get("vpcCidr"))
    # AWS subnets are /16 to /28 (VPC User Guide, "Subnet CIDR blocks"): a sixteenth of the VPC
    # is at most a /28 when the VPC is at most a /24.
    if vpc is not None and not 16 <= ipaddress.IPv4Network(vpc).prefixlen <= 24:
        out.append(Problem(key_path("burst", "vpcCidr"), "a network of /16 to /24 (subnets are sixteenths of it)", vpc))
    zones = burst.get("zones")
    if isinstance(zones, list) and len(zones) > 15:
        out.append(
            Problem(
                key_path("burst", "zones"),
                "at most 15 zones (a sixteenth of the VPC each, and one public)",
                str(len(zones)),
            )
        )
    tunnel = normal(_CIDR, section_at(burst, "siteLink").get("tunnelCidr"))
    if tunnel is not None and ipaddress.IPv4Network(tunnel).prefixlen > 30:
        out.append(
            Problem(key_path("burst", "siteLink", "tunnelCidr"), "a network of /30 or larger (two tunnel ends)", tunnel)
        )
    return out


def versions_fit(raw: Raw) -> list[Problem]:
    """Values whose mistake only MAAS, AWS or a checker would find later, without a key path."""
    out = []
    maas = section_at(raw, "maas")
    series, kernel = maas.get("distroSeries"), maas.get("hweKernel")
    if isinstance(series, str) and series in _SERIES_VERSION and isinstance(kernel, str):
        version = _SERIES_VERSION[series]
        match = re.fullmatch(r"(ga|hwe)-(\d\d\.\d\d)(-[a-z]+)*", kernel)
        if not match or match.group(2) != version:
            # MAAS offers each release its own kernels only (ga-/hwe-<release>[-edge]); another
            # release's kernel fails the deployment, long after the plan.
            out.append(
                Problem(
                    key_path("maas", "hweKernel"),
                    f"a kernel of {series} ({version}), like hwe-{version} or ga-{version}",
                    shown(kernel),
                )
            )
    storage_class = section_at(raw, "gpuBenchmark").get("storageClass")
    if isinstance(storage_class, str) and storage_class != CEPHFS_CLASS:
        out.append(
            Problem(
                key_path("gpuBenchmark", "storageClass"),
                f"{CEPHFS_CLASS!r}, the platform's ReadWriteMany class (every model's Job writes to the one "
                "results volume)",
                shown(storage_class),
            )
        )
    name = section_at(raw, "cluster").get("name")
    enabled = section_at(raw, "burst").get("enabled") is True
    if enabled and isinstance(name, str) and len(name) > _CLUSTER_NAME_MAX_WITH_BURST:
        out.append(
            Problem(
                key_path("cluster", "name"),
                f"at most {_CLUSTER_NAME_MAX_WITH_BURST} characters with burst enabled (IAM user "
                f"<name>-cluster-autoscaler, at most 64)",
                shown(name),
            )
        )
    return out


def apps_fit_a_node(raw: Raw) -> list[Problem]:
    """A replica's GPUs come from one node: an app asking more than any node has (or than the
    burst group's modelled type brings) stays pending, which only the cluster check would say."""
    counts: dict[int, str] = {}  # GPU count -> the first node with it
    for i, node in items_at(raw, "nodes"):
        counts.setdefault(len(node.get("gpus") or []), key_path("nodes", i))
    burst = section_at(raw, "burst")
    types = burst.get("instanceTypes") or []
    if burst.get("enabled") is True and types and isinstance(types[0], str) and types[0] in INSTANCE_TYPES:
        counts.setdefault(INSTANCE_TYPES[types[0]].gpus, f"burst {types[0]}")
    if not counts:
        return []
    most = max(counts)
    out = []
    for i, app in items_at(section_at(raw, "apps"), "apps"):
        gpus = app.get("gpus")
        if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > most:
            out.append(
                Problem(
                    key_path("apps", "apps", i, "gpus"),
                    f"at most {most}, the most GPUs one node has ({counts[most]})",
                    str(gpus),
                )
            )
    return out


def _amount(value: Any) -> Decimal | None:
    try:
        return quantity(value) if isinstance(value, str) else None
    except ValueError:
        return None


def home_fits_each_quota(raw: Raw) -> list[Problem]:
    """An engineer's own quota is also their LimitRange's max, each container's most: one below
    the home shell's limits (tenancy.home, else the stack's quota) refuses their home pod."""
    tenancy = section_at(raw, "tenancy")
    home = section_at(tenancy, "home") or section_at(tenancy, "quota")
    where = "akiba:tenancy.home" if section_at(tenancy, "home") else "akiba:tenancy.quota"
    out = []
    for i, engineer in items_at(raw, "engineers"):
        own = engineer.get("quota")
        if not isinstance(own, dict):
            continue
        for key in ("cpu", "memory"):
            needed, allowed = _amount(home.get(key)), _amount(own.get(key))
            if needed is not None and allowed is not None and allowed < needed:
                out.append(
                    Problem(
                        key_path("engineers", i, "quota", key),
                        f"at least {home[key]}, the home shell's limit ({where}.{key}): the quota is each "
                        "container's most (the LimitRange's max), which would refuse their home pod",
                        shown(own[key]),
                    )
                )
    return out


def credentials_in_urls(raw: Raw) -> list[Problem]:
    """A password inside a URL in plain config ends up in outputs, MAAS power parameters and
    logs; it belongs in a secret (the secret keys themselves are exempt: they are secrets)."""
    out = []

    def walk(value: Any, key: str, parts: tuple[str | int, ...]) -> None:
        if isinstance(value, str) and _URL_PASSWORD.search(value):
            out.append(
                Problem(
                    key_path(key, *parts),
                    "a URL without a password in it (user:password@ is published wherever the value goes; "
                    "keep credentials in secrets set with `pulumi config set --secret`)",
                    "a URL with user:password@",
                )
            )
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, key, (*parts, str(k)))
        elif isinstance(value, list):
            for idx, item in enumerate(value):
                walk(item, key, (*parts, idx))

    for key, value in raw.items():
        if key not in SECRET_KEYS:
            walk(value, key, ())
    return out


def plaintext_secrets(raw: Raw) -> list[Problem]:
    """A password-like key inside a structured value is plaintext in the stack file."""
    out = []

    def walk(value: Any, key: str, parts: tuple[str | int, ...]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if _SECRET_NAME.search(str(k)) and isinstance(v, str):
                    out.append(
                        Problem(
                            key_path(key, *parts, str(k)),
                            "no secret inside a structured value (use a top-level key set with "
                            "`pulumi config set --secret`)",
                            "a plaintext value",
                        )
                    )
                else:
                    walk(v, key, (*parts, str(k)))
        elif isinstance(value, list):
            for idx, item in enumerate(value):
                walk(item, key, (*parts, idx))

    for key, value in raw.items():
        walk(value, key, ())
    return out


RULES: tuple[Callable[[Raw], list[Problem]], ...] = (
    unique_identities,
    names.names_unique,
    addresses.addresses_unique,
    addresses.networks_disjoint,
    addresses.addresses_placed,
    addresses.node_ports_unique,
    accounts_usable,
    logins_not_platform_identities,
    nics_named_once,
    roles_and_references,
    control_plane_survives,
    gpus_make_sense,
    vm_gpus_unique,
    hardware_declared,
    disks_make_sense,
    burst_consistent,
    storage_fits,
    vm_disks_named,
    vms_fit_their_ceph,
    versions_fit,
    apps_fit_a_node,
    home_fits_each_quota,
    plaintext_secrets,
    credentials_in_urls,
)


def check(raw: Raw) -> list[Problem]:
    """All cross-field problems of one raw config (sections keyed by their config key)."""
    return [p for rule in RULES for p in rule(raw)]
