"""Addresses, networks and ports that must not clash anywhere in the stack.

Every address the stack names (gateway, resolvers, nodes, their BMCs, MAAS, the hypervisors)
is one machine: two roles may share one only where one machine really plays both (a router
that resolves, MAAS that serves DNS or hosts the VMs, a node that is a hypervisor). The
cluster's own networks (pods, services, the burst VPC and tunnel) are routed inside the
cluster, so no outside machine may sit in them. Node ports are shared by every node.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter

from components.engineers.home_containers import default_ssh_port
from stacks.problems import Problem, key_path, shown
from stacks.raw import Raw, items_at, normal, section_at
from stacks.spec import AppsSpec, StorageSpec
from stacks.types import Cidr, IPv4

_IP = TypeAdapter(IPv4)
_CIDR = TypeAdapter(Cidr)

# Roles one machine may play together; any other pair on one address is a mistake.
_SHARED = {
    frozenset({"resolver"}),  # listed twice: harmless
    frozenset({"resolver", "gateway"}),
    frozenset({"resolver", "maas"}),
    frozenset({"maas", "hypervisor"}),
    frozenset({"node", "hypervisor"}),
}


@dataclass(frozen=True)
class Address:
    role: str  # gateway, resolver, node, bmc, maas, hypervisor, vip, office
    ip: ipaddress.IPv4Address
    path: str


def url_host(url: Any) -> str | None:
    """The host of a URL or libvirt URI (qemu+ssh://user@host/system), None if it has none."""
    if not isinstance(url, str):
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def addresses(raw: Raw) -> list[Address]:
    """Every IPv4 address the config names as a machine, with its role and key path."""
    named: list[tuple[str, Any, str]] = [
        ("gateway", section_at(raw, "network").get("gateway"), key_path("network", "gateway"))
    ]
    for j, dns in enumerate(section_at(raw, "network").get("dnsServers") or []):
        named.append(("resolver", dns, key_path("network", "dnsServers", j)))
    # The office's own machines first: a node on one of their addresses is the node's mistake.
    named.append(("maas", url_host(section_at(raw, "maas").get("url")), key_path("maas", "url")))
    for i, hv in items_at(raw, "hypervisors"):
        named.append(("hypervisor", url_host(hv.get("uri")), key_path("hypervisors", i, "uri")))
    for i, node in items_at(raw, "nodes"):
        named.append(("node", node.get("ip"), key_path("nodes", i, "ip")))
        named.append(("bmc", section_at(node, "power").get("address"), key_path("nodes", i, "power", "address")))
    # The API's virtual IP: kube-vip answers ARP for it from one controller, so no machine may have it.
    named.append(("vip", section_at(raw, "cluster").get("apiVip"), key_path("cluster", "apiVip")))
    link = section_at(raw, "burst", "siteLink")
    named.append(("office", link.get("officePublicIp"), key_path("burst", "siteLink", "officePublicIp")))
    out = []
    for role, value, path in named:
        ip = normal(_IP, value)
        if ip is not None:
            out.append(Address(role, ipaddress.IPv4Address(ip), path))
    return out


def addresses_unique(raw: Raw) -> list[Problem]:
    """One address, one machine: a node on the gateway's or another node's address, a BMC on
    MAAS's, a second hypervisor on the first's... (the office's public address is outside)."""
    seen: dict[ipaddress.IPv4Address, list[Address]] = {}
    out = []
    for addr in addresses(raw):
        if addr.role == "office":
            continue
        others = seen.setdefault(addr.ip, [])
        clash = next((o for o in others if frozenset({o.role, addr.role}) not in _SHARED), None)
        if clash is not None:
            out.append(Problem(addr.path, "an IP address not used elsewhere", f"{addr.ip} (also at {clash.path})"))
        others.append(addr)
    return out


def _networks(raw: Raw) -> list[tuple[str, ipaddress.IPv4Network]]:
    cluster, burst = section_at(raw, "cluster"), section_at(raw, "burst")
    named = [
        (key_path("network", "officeLan"), section_at(raw, "network").get("officeLan")),
        (key_path("cluster", "podCidr"), cluster.get("podCidr")),
        (key_path("cluster", "serviceCidr"), cluster.get("serviceCidr")),
        (key_path("burst", "vpcCidr"), burst.get("vpcCidr")),
        (key_path("burst", "siteLink", "tunnelCidr"), section_at(burst, "siteLink").get("tunnelCidr")),
    ]
    return [(p, ipaddress.IPv4Network(c)) for p, v in named if (c := normal(_CIDR, v))]


def networks_disjoint(raw: Raw) -> list[Problem]:
    """Office LAN, pod, service and AWS VPC networks must not overlap: routes would clash."""
    nets = _networks(raw)
    out = []
    for a in range(len(nets)):
        for b in range(a + 1, len(nets)):
            (pa, na), (pb, nb) = nets[a], nets[b]
            if na.overlaps(nb):
                out.append(Problem(pb, f"a network that does not overlap {pa} ({na})", str(nb)))
    return out


def addresses_placed(raw: Raw) -> list[Problem]:
    """Nodes and the gateway on the office LAN; nothing on a LAN's network or broadcast address;
    no machine inside the cluster's own networks, which the nodes route into the cluster."""
    nets = _networks(raw)
    lan = next((n for p, n in nets if p == key_path("network", "officeLan")), None)
    # A cluster network that overlaps the LAN is networks_disjoint's problem, not each address's.
    inner = [(p, n) for p, n in nets if n != lan and not (lan is not None and n.overlaps(lan))]
    out = []
    for addr in addresses(raw):
        if lan is not None and addr.role in ("node", "gateway", "vip") and addr.ip not in lan:
            out.append(Problem(addr.path, f"an address inside the office LAN {lan}", str(addr.ip)))
            continue
        if lan is not None and addr.role == "office" and addr.ip in lan:
            out.append(Problem(addr.path, f"the office's public address, outside the office LAN {lan}", str(addr.ip)))
            continue
        if lan is not None and addr.ip in (lan.network_address, lan.broadcast_address):
            out.append(
                Problem(addr.path, f"a host address of the office LAN {lan}, not its first or last", str(addr.ip))
            )
            continue
        inside = next(((p, n) for p, n in inner if addr.ip in n), None)
        if inside is not None:
            out.append(Problem(addr.path, f"an address outside {inside[0]} ({inside[1]})", str(addr.ip)))
    return out


def engineer_ssh_ports(raw: Raw) -> list[tuple[str, Any]]:
    """Each engineer's ssh node port: `sshPort`, else 31000 + uid % 1000 (reported at the uid,
    where two engineers' defaults meet: setting one's sshPort is the fix)."""
    out: list[tuple[str, Any]] = []
    for i, eng in items_at(raw, "engineers"):
        if "sshPort" in eng:
            out.append((key_path("engineers", i, "sshPort"), eng["sshPort"]))
        elif isinstance(eng.get("uid"), int) and not isinstance(eng.get("uid"), bool):
            out.append((key_path("engineers", i, "uid"), default_ssh_port(eng["uid"])))
    return out


def node_ports_unique(raw: Raw) -> list[Problem]:
    """Every node listens on every node port: two services cannot share one. The registry is
    served by the ingress (its https node port), so the mirror must name that port."""
    apps, storage = section_at(raw, "apps"), section_at(raw, "storage")
    fields = {**AppsSpec.model_fields, **StorageSpec.model_fields}
    ports = [
        (key_path("apps", "ingressHttpPort"), apps.get("ingressHttpPort", fields["ingress_http_port"].default)),
        (key_path("apps", "ingressHttpsPort"), apps.get("ingressHttpsPort", fields["ingress_https_port"].default)),
        (key_path("storage", "nfsNodePort"), storage.get("nfsNodePort", fields["nfs_node_port"].default)),
        *engineer_ssh_ports(raw),
    ]
    seen: dict[int, str] = {}
    out = []
    for path, port in ports:
        if not isinstance(port, int) or isinstance(port, bool):
            continue
        first = seen.setdefault(port, path)
        if first != path:
            expected = (
                f"an engineer whose default ssh port ({default_ssh_port(0)} + uid % 1000) no other node port "
                "uses, or an sshPort of their own"
                if path.endswith(".uid")
                else "a node port not used elsewhere"
            )
            out.append(Problem(path, expected, f"{port} (also at {first})"))
    https = ports[1][1]
    mirror = section_at(raw, "registry").get("mirror")
    if isinstance(mirror, str) and isinstance(https, int):
        host, _, port_text = mirror.partition(":")
        if port_text != str(https):
            out.append(
                Problem(
                    key_path("registry", "mirror"),
                    f"{host}:{https}: the registry is served on the ingress's https node port "
                    f"({key_path('apps', 'ingressHttpsPort')})",
                    shown(mirror),
                )
            )
    return out


def hypervisor_nodes(raw: Raw) -> dict[str, int]:
    """Hypervisor name -> index of the node that is that hypervisor (its URI's host is the
    node's address or hostname, or the hypervisor is named after the node)."""
    nodes = list(items_at(raw, "nodes"))
    out = {}
    for _, hv in items_at(raw, "hypervisors"):
        name, host = hv.get("name"), url_host(hv.get("uri"))
        for i, node in nodes:
            if (host is not None and host in (node.get("ip"), node.get("hostname"))) or name == node.get("hostname"):
                out[str(name)] = i
                break
    return out
