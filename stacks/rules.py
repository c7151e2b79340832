"""Cross-field rules of the stack config.

They run on the raw config next to the field validation, so one run reports every problem
at once even when some fields are also malformed (those are skipped here and reported by
the field validation). Every rule is linear in the number of nodes: one pass, dict lookups.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import TypeAdapter

from components.burst.instance_types import INSTANCE_TYPES
from stacks.problems import Problem, key_path, shown
from stacks.types import Cidr, IPv4, MacAddress, PciAddress

Raw = dict[str, Any]
_MAC = TypeAdapter(MacAddress)
_IP = TypeAdapter(IPv4)
_CIDR = TypeAdapter(Cidr)
_PCI = TypeAdapter(PciAddress)
# Key names that hold secrets when they appear inside a structured config value.
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|api_?key|private_?key)$", re.I)


def _normal(adapter: TypeAdapter[str], value: Any) -> str | None:
    try:
        return adapter.validate_python(value)
    except Exception:
        return None  # malformed: the field validation reports it


def _items(raw: Raw, key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    value = raw.get(key)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield i, item


def _section(raw: Raw, key: str) -> dict[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


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
    hostnames, macs, ips = _Unique("a hostname"), _Unique("a MAC address"), _Unique("an IP address")
    engineers, uids = _Unique("an engineer name"), _Unique("a uid")
    hypervisors, domains = _Unique("a hypervisor name"), _Unique("a libvirt domain name")
    gateway = _normal(_IP, _section(raw, "network").get("gateway"))
    ips.add(gateway, key_path("network", "gateway"))
    for i, node in _items(raw, "nodes"):
        hostname = node.get("hostname")
        hostnames.add(hostname if isinstance(hostname, str) else None, key_path("nodes", i, "hostname"))
        ips.add(_normal(_IP, node.get("ip")), key_path("nodes", i, "ip"))
        power: dict[str, Any] = node["power"] if isinstance(node.get("power"), dict) else {}
        ips.add(_normal(_IP, power.get("address")), key_path("nodes", i, "power", "address"))
        if power.get("type") == "virsh":
            domain = f"{power.get('hypervisor')}/{power.get('domain')}"
            domains.add(domain, key_path("nodes", i, "power", "domain"), power.get("domain"))
        for j, nic in enumerate(node.get("nics") or []):
            if isinstance(nic, dict):
                macs.add(_normal(_MAC, nic.get("mac")), key_path("nodes", i, "nics", j, "mac"))
    for i, eng in _items(raw, "engineers"):
        engineers.add(eng.get("name") if isinstance(eng.get("name"), str) else None, key_path("engineers", i, "name"))
        uid = eng.get("uid")
        uids.add(str(uid) if isinstance(uid, int) else None, key_path("engineers", i, "uid"))
    for i, hv in _items(raw, "hypervisors"):
        name = hv.get("name")
        hypervisors.add(name if isinstance(name, str) else None, key_path("hypervisors", i, "name"))
    out: list[Problem] = []
    for u in (hostnames, macs, ips, engineers, uids, hypervisors, domains):
        out += u.problems
    return out


def networks_disjoint(raw: Raw) -> list[Problem]:
    """Office LAN, pod, service and AWS VPC networks must not overlap: routes would clash."""
    named = [
        (key_path("network", "officeLan"), _section(raw, "network").get("officeLan")),
        (key_path("cluster", "podCidr"), _section(raw, "cluster").get("podCidr")),
        (key_path("cluster", "serviceCidr"), _section(raw, "cluster").get("serviceCidr")),
        (key_path("burst", "vpcCidr"), _section(raw, "burst").get("vpcCidr")),
        (key_path("burst", "siteLink", "tunnelCidr"), _section(_section(raw, "burst"), "siteLink").get("tunnelCidr")),
    ]
    nets = [(p, ipaddress.IPv4Network(c)) for p, v in named if (c := _normal(_CIDR, v))]
    out = []
    for a in range(len(nets)):
        for b in range(a + 1, len(nets)):
            (pa, na), (pb, nb) = nets[a], nets[b]
            if na.overlaps(nb):
                out.append(Problem(pb, f"a network that does not overlap {pa} ({na})", str(nb)))
    return out


def addresses_on_lan(raw: Raw) -> list[Problem]:
    lan = _normal(_CIDR, _section(raw, "network").get("officeLan"))
    if lan is None:
        return []
    net = ipaddress.IPv4Network(lan)
    usable = f"an address inside the office LAN {net}"
    targets = [(key_path("network", "gateway"), _section(raw, "network").get("gateway"))]
    targets += [(key_path("nodes", i, "ip"), n.get("ip")) for i, n in _items(raw, "nodes")]
    out = []
    for path, value in targets:
        ip = _normal(_IP, value)
        if ip is None:
            continue
        addr = ipaddress.IPv4Address(ip)
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            out.append(Problem(path, usable, ip))
    return out


def roles_and_references(raw: Raw) -> list[Problem]:
    out = []
    nodes = list(_items(raw, "nodes"))
    if nodes and not any(n.get("role") == "controller" for _, n in nodes):
        out.append(Problem(key_path("nodes"), "at least one node with role 'controller'", "none"))
    declared = {hv.get("name") for _, hv in _items(raw, "hypervisors")}
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


def gpus_make_sense(raw: Raw) -> list[Problem]:
    out = []
    for i, node in _items(raw, "nodes"):
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
            pci = _normal(_PCI, gpu.get("pci"))
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
    """A GPU slot is passed to one VM of a hypervisor: a second one would not start."""
    slots: dict[str, _Unique] = {}
    for i, node in _items(raw, "nodes"):
        power = node.get("power")
        if not (isinstance(power, dict) and power.get("type") == "virsh" and isinstance(power.get("hypervisor"), str)):
            continue
        unique = slots.setdefault(power["hypervisor"], _Unique(f"a GPU slot of hypervisor {power['hypervisor']}"))
        seen: set[str] = set()  # a slot twice in one node is gpus_make_sense's problem
        for j, gpu in enumerate(node.get("gpus") or []):
            pci = _normal(_PCI, gpu.get("pci")) if isinstance(gpu, dict) else None
            if pci is not None and pci not in seen:
                seen.add(pci)
                unique.add(pci, key_path("nodes", i, "gpus", j, "pci"))
    return [p for u in slots.values() for p in u.problems]


def hardware_declared(raw: Raw) -> list[Problem]:
    """MAAS allocates a PC by its declared hardware floor, a VM by its own size (power.vcpus,
    power.memoryMib): a PC needs one, a VM must not have a second, disagreeing one."""
    out = []
    for i, node in _items(raw, "nodes"):
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
    out = []
    for i, node in _items(raw, "nodes"):
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
    return out


def vm_disks_named(raw: Raw) -> list[Problem]:
    """A VM's disks are RBD images whose serial makes the path: /dev/disk/by-id/virtio-<serial>."""
    out = []
    for i, node in _items(raw, "nodes"):
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
    if _section(raw, "libvirt").get("cephStack"):
        return []
    out = []
    for i, node in _items(raw, "nodes"):
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
    storage = _section(raw, "storage")
    hosts = sum(1 for _, n in _items(raw, "nodes") if isinstance(n.get("disks"), dict) and n["disks"].get("ceph"))
    nodes = len(list(_items(raw, "nodes")))
    out = []
    replicas, mons = storage.get("replicas"), storage.get("mons")
    if isinstance(replicas, int) and replicas > hosts:
        out.append(Problem(key_path("storage", "replicas"), f"at most {hosts} (nodes with Ceph disks)", str(replicas)))
    if isinstance(mons, int) and mons > nodes:
        out.append(Problem(key_path("storage", "mons"), f"at most {nodes} (one per node)", str(mons)))
    return out


def burst_consistent(raw: Raw) -> list[Problem]:
    burst = _section(raw, "burst")
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
    networks_disjoint,
    addresses_on_lan,
    roles_and_references,
    gpus_make_sense,
    vm_gpus_unique,
    hardware_declared,
    disks_make_sense,
    burst_consistent,
    storage_fits,
    vm_disks_named,
    vms_fit_their_ceph,
    plaintext_secrets,
)


def check(raw: Raw) -> list[Problem]:
    """All cross-field problems of one raw config (sections keyed by their config key)."""
    return [p for rule in RULES for p in rule(raw)]
