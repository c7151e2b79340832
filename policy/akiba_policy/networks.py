"""no-open-ingress: what address space an ingress admits, however it is written.

CIDRs are parsed with `ipaddress` (anything it cannot read fires: the rule must not guess),
IPv4-mapped and NAT64 IPv6 ranges count as the IPv4 space they reach, and the union is
measured, so 0.0.0.0/1 + 128.0.0.0/1, ::/1, 0.0.0.0/00 or a hundred /8s are the world too.

- A security group may admit at most max_public_ingress_v4/v6's worth of public space, summed
  over its inline ingress and every separate SecurityGroupRule/SecurityGroupIngressRule; a
  managed prefix list (ranges the plan cannot see) fires.
- Kubernetes ingress (NetworkPolicy ipBlock, LoadBalancer source ranges) admits private
  ranges only: the cluster sits on the office LAN and its remote nodes come over WireGuard
  from private addresses, so no public source is legitimate there. An ingress rule with no
  `from` admits every source. Egress is not judged (0.0.0.0/0 except the cluster's ranges is
  how pods reach the internet).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .context import PlanContext, security_group_key
from .k8s import get, kind
from .model import PlannedResource, PolicyConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)
# IPv6 prefixes that carry IPv4 addresses: IPv4-mapped and the NAT64 well-known prefix.
V4_IN_V6 = tuple(ipaddress.IPv6Network(n) for n in ("::ffff:0:0/96", "64:ff9b::/96"))
LB_SOURCE_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"


def parse(text: Any) -> Network | None:
    """A CIDR as written in an input; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def reach(net: Network) -> list[Network]:
    """The networks an admitted range reaches: itself, plus the IPv4 space of any IPv6 range
    that carries IPv4 addresses (or holds such a prefix, like ::/1)."""
    out: list[Network] = [net]
    if isinstance(net, ipaddress.IPv6Network):
        for carrier in V4_IN_V6:
            if net.subnet_of(carrier):
                base = int(net.network_address) & 0xFFFFFFFF
                out.append(ipaddress.IPv4Network((base, net.prefixlen - 96)))
            elif carrier.subnet_of(net):
                out.append(ipaddress.IPv4Network("0.0.0.0/0"))
    return out


def subtract(nets: Iterable[Network], holes: Iterable[Network]) -> list[Network]:
    left = list(nets)
    for hole in holes:
        next_left: list[Network] = []
        for net in left:
            if net.version != hole.version or not net.overlaps(hole):
                next_left.append(net)
            elif not net.subnet_of(hole):  # type: ignore[arg-type]
                next_left.extend(net.address_exclude(hole))  # type: ignore[arg-type]
        left = next_left
    return left


def public(nets: Iterable[Network]) -> tuple[list[Network], int, int]:
    """The public part of a set of ranges (merged) and its size in IPv4 and IPv6 addresses."""
    reached = [n for r in nets for n in reach(r)]
    v4_nets = [n for n in reached if isinstance(n, ipaddress.IPv4Network)]
    v6_nets = [n for n in reached if isinstance(n, ipaddress.IPv6Network)]
    merged: list[Network] = [*ipaddress.collapse_addresses(v4_nets), *ipaddress.collapse_addresses(v6_nets)]
    outside = subtract(merged, PRIVATE)
    v4 = sum(n.num_addresses for n in outside if n.version == 4)
    v6 = sum(n.num_addresses for n in outside if n.version == 6)
    return outside, v4, v6


def _show(nets: list[Network]) -> str:
    shown = ", ".join(str(n) for n in nets[:4])
    return shown + (f" and {len(nets) - 4} more" if len(nets) > 4 else "")


def _sg_cidrs(res: PlannedResource) -> list[Any]:
    """The CIDRs (as written) one AWS resource adds to its group's ingress."""
    p = res.props
    if res.type == "aws:ec2/securityGroup:SecurityGroup":
        rules = [r for r in p.get("ingress") or [] if isinstance(r, Mapping)]
        return [c for r in rules for c in [*(r.get("cidrBlocks") or []), *(r.get("ipv6CidrBlocks") or [])]]
    if res.type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if p.get("type") != "ingress":
            return []
        return [*(p.get("cidrBlocks") or []), *(p.get("ipv6CidrBlocks") or [])]
    return [c for c in (p.get("cidrIpv4"), p.get("cidrIpv6")) if c is not None]


def _prefix_lists(res: PlannedResource) -> list[Any]:
    """Managed prefix lists an ingress admits: their ranges live outside the plan."""
    p = res.props
    if res.type == "aws:ec2/securityGroup:SecurityGroup":
        rules = [r for r in p.get("ingress") or [] if isinstance(r, Mapping)]
        return [i for r in rules for i in r.get("prefixListIds") or []]
    if res.type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        return list(p.get("prefixListIds") or []) if p.get("type") == "ingress" else []
    return [p.get("prefixListId")] if p.get("prefixListId") else []


def _security_group(res: PlannedResource, config: PolicyConfig, plan: PlanContext) -> Iterator[str]:
    for prefix_list in _prefix_lists(res):
        yield f"ingress from prefix list {prefix_list}: the policy cannot see what it admits (write the CIDRs)"
    own = _sg_cidrs(res)
    for text in own:
        if parse(text) is None:
            yield f"ingress CIDR {text!r} is not a CIDR the policy can read"
    if not own:
        return
    members = plan.security_groups.get(security_group_key(res)) or (res,)
    nets = [n for m in members for n in map(parse, _sg_cidrs(m)) if n is not None]
    outside, v4, v6 = public(nets)
    limit4, limit6 = 2 ** (32 - config.max_public_ingress_v4), 2 ** (128 - config.max_public_ingress_v6)
    if v4 > limit4 or v6 > limit6:
        scope = "its security group's ingress" if len(members) > 1 else "its ingress"
        yield (
            f"{scope} admits {v4} public IPv4 / {v6} public IPv6 addresses (more than a "
            f"/{config.max_public_ingress_v4} / /{config.max_public_ingress_v6}): {_show(outside)}"
        )


def _private_only(where: str, cidrs: list[Any], holes: Sequence[Any] = ()) -> Iterator[str]:
    nets, cut = [parse(c) for c in cidrs], [parse(h) for h in holes]
    for text, net in zip([*cidrs, *holes], [*nets, *cut], strict=True):
        if net is None:
            yield f"{where}: {text!r} is not a CIDR the policy can read"
    outside, _, _ = public(subtract([n for n in nets if n], [h for h in cut if h]))
    if outside:
        yield f"{where} admits public addresses ({_show(outside)}): Kubernetes ingress is for private ranges only"


def _network_policy(res: PlannedResource) -> Iterator[str]:
    for i, rule in enumerate(get(res.props, "spec", "ingress") or []):
        if not isinstance(rule, Mapping):
            continue
        peers = rule.get("from")
        if not peers:
            yield f"ingress[{i}] has no `from`: it admits every source (name the pods or networks)"
            continue
        for j, peer in enumerate(peers):
            block = peer.get("ipBlock") if isinstance(peer, Mapping) else None
            if isinstance(block, Mapping):
                where = f"ingress[{i}].from[{j}].ipBlock"
                yield from _private_only(where, [block.get("cidr")], list(block.get("except") or []))


def _load_balancer(res: PlannedResource) -> Iterator[str]:
    ranges = list(get(res.props, "spec", "loadBalancerSourceRanges") or [])
    annotation = get(res.props, "metadata", "annotations", LB_SOURCE_ANNOTATION)
    if isinstance(annotation, str):
        ranges += [r.strip() for r in annotation.split(",") if r.strip()]
    if not ranges:
        yield "LoadBalancer Service without loadBalancerSourceRanges limited to known networks"
    else:
        yield from _private_only("loadBalancerSourceRanges", ranges)


def no_open_ingress(res: PlannedResource, config: PolicyConfig, plan: PlanContext) -> Iterator[str]:
    if res.type.startswith(("aws:ec2/securityGroup", "aws:vpc/securityGroupIngressRule")):
        yield from _security_group(res, config, plan)
    elif kind(res) == "NetworkPolicy":
        yield from _network_policy(res)
    elif kind(res) == "Service" and get(res.props, "spec", "type") == "LoadBalancer":
        yield from _load_balancer(res)
