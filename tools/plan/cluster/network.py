"""Does the pod network fit every path it crosses? flannel's VXLAN adds 50 bytes to each packet
and takes the underlay MTU from `flannel.mtu` (net-conf.json Backend.MTU) or, unset, from each
node's own interface: 1500 on the office bond, 9001 on an EC2 interface. Burst nodes reach the
office through the WireGuard gateway, whose tunnel carries at most its MTU (wg-quick's default
is the route's MTU minus 80: 8921 on EC2, more than the internet path between the sites). A
VXLAN packet larger than a hop is fragmented or dropped: connections hang on big transfers
(image pulls, NFS reads) while small ones work.
"""

from __future__ import annotations

import base64
import re

from tools.plan.cluster.model import Node
from tools.plan.cluster.nodes import cloud_config, written_files
from tools.plan.runner import Plan

WG_CONF = "/etc/wireguard/wg0.conf"
_MTU = re.compile(r"^\s*MTU\s*=\s*(\d+)\s*$", re.MULTILINE)


def flannel_mtu(plan: Plan) -> tuple[bool, int | None]:
    """(flannel is installed, its Backend.MTU if set)."""
    for r in plan.by_type("kubernetes:helm.sh/v4:Chart"):
        if r.raw_inputs.get("chart") == "flannel":
            mtu = ((r.raw_inputs.get("values") or {}).get("flannel") or {}).get("mtu")
            return True, int(mtu) if mtu else None
    return False, None


def tunnel_mtus(plan: Plan) -> list[int | None]:
    """The MTU each WireGuard gateway's wg0.conf sets (None: wg-quick picks one)."""
    found: list[int | None] = []
    for r in plan.by_type("aws:ec2/launchTemplate:LaunchTemplate"):
        raw = r.raw_inputs.get("userData")
        if not raw:
            continue
        files = written_files(cloud_config(base64.b64decode(raw).decode()))
        for content in files.get(WG_CONF, ()):
            match = _MTU.search(content)
            found.append(int(match.group(1)) if match else None)
    return found


def problems(plan: Plan, nodes: list[Node]) -> list[tuple[str, str]]:
    """(subject, message) for each path the pod network does not fit."""
    installed, underlay = flannel_mtu(plan)
    if not installed:
        return []
    out = []
    burst = any(n.template for n in nodes)
    tunnels = tunnel_mtus(plan) if burst else []
    if underlay is None:
        sizes = sorted({n.mtu for n in nodes if n.mtu})
        if burst or len(sizes) > 1:
            out.append(
                (
                    "flannel",
                    f"flannel.mtu is unset, so each node takes its own interface's MTU ({', '.join(map(str, sizes))}): "
                    "pods on the larger ones send VXLAN packets the smaller paths cannot carry",
                )
            )
        return out
    for n in nodes:
        if n.mtu and not n.template and underlay > n.mtu:
            out.append(("flannel", f"flannel.mtu {underlay} is larger than {n.name}'s interface MTU {n.mtu}"))
    for mtu in tunnels:
        if mtu is None:
            out.append(("WireGuard gateway", "wg0.conf sets no MTU: wg-quick takes the EC2 route's (8921)"))
        elif underlay > mtu:
            out.append(
                (
                    "flannel",
                    f"flannel.mtu {underlay} is larger than the WireGuard tunnel's {mtu}: VXLAN packets to burst "
                    "nodes are fragmented or dropped",
                )
            )
    return out
