"""The platform's names on the office DNS: MAAS's bind, through `components.machines.maas`.

The registry, Grafana and every app are served by the ingress's NodePorts, which listen on every
node; each name is an A record with every office node's address (round robin: a client that
cannot reach one tries the next). The zone is authoritative in MAAS. Burst nodes resolve through
their VPC's resolver, which cannot see MAAS: they keep the registry's /etc/hosts line
(components.cluster.bootstrap).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi

from components.machines import maas

# RFC 1123 labels, lowercase (MAAS lowercases names; a record that differs only in case would
# read back as a change on every refresh).
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class AddressRecord:
    """One name and the addresses it resolves to."""

    fqdn: str  # e.g. "registry.akiba.lan"
    addresses: tuple[str, ...]  # IPv4, e.g. every office node's

    @property
    def domain(self) -> str:
        return self.fqdn.split(".", 1)[1]


@dataclass(frozen=True)
class OfficeDnsArgs:
    records: tuple[AddressRecord, ...]
    settings: maas.MaasSettings


def problems(records: tuple[AddressRecord, ...]) -> list[str]:
    """What MAAS would refuse or the resolver could not serve, one line per record."""
    out: list[str] = []
    seen: set[str] = set()
    for r in records:
        labels = r.fqdn.split(".")
        if len(labels) < 2 or len(r.fqdn) > 253 or not all(_LABEL.match(label) for label in labels):
            out.append(f"{r.fqdn!r}: not a lowercase DNS name inside a domain (like registry.akiba.lan)")
        if r.fqdn in seen:
            out.append(f"{r.fqdn!r}: declared twice")
        seen.add(r.fqdn)
        if not r.addresses:
            out.append(f"{r.fqdn!r}: no address")
        for a in r.addresses:
            try:
                ipaddress.IPv4Address(a)
            except ValueError:
                out.append(f"{r.fqdn!r}: {a!r} is not an IPv4 address")
    return out


class OfficeDns(pulumi.ComponentResource):
    """One authoritative MAAS domain per zone the names live in, and one A record per name."""

    records: dict[str, tuple[str, ...]]  # fqdn -> addresses

    def __init__(self, name: str, args: OfficeDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:dns:OfficeDns", name, None, opts)
        found = problems(args.records)
        if found:
            # A programming error: the spec's types and stacks.names already refuse these.
            raise ValueError("office DNS records: " + "; ".join(found))
        domains = {
            d: maas.dns_domain(f"{name}-{d}", d, args.settings, parent=self)
            for d in sorted({r.domain for r in args.records})
        }
        for r in args.records:
            maas.dns_address_record(
                f"{name}-{r.fqdn}", r.fqdn, r.addresses, domains[r.domain], args.settings, parent=self
            )
        self.records = {r.fqdn: r.addresses for r in args.records}
        self.register_outputs({})
