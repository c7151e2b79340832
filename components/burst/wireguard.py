"""Pure helpers for the WireGuard site link: key derivation and the gateway's cloud-init.

WireGuard over AWS site-to-site VPN: the office router (behind NAT, a consumer line) dials
out, so no static office IP or IPsec appliance is needed, and a t3.micro costs a fraction of a
VPN connection's hourly fee. The gateway also NATs the private subnets to the internet,
which saves a NAT gateway.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from components import yamltext

NAT_SCRIPT = "/usr/local/sbin/akiba-nat"
# The tunnel's MTU: 1500 (what crosses the internet) - 80 (WireGuard over IPv6, the larger
# overhead). Set explicitly: wg-quick would take the route's MTU minus 80, and on an EC2 ENI
# (MTU 9001) that is 8921, which the internet path then fragments or drops. The office router
# sets the same. Everything that crosses the tunnel (flannel's VXLAN to burst nodes) must fit.
TUNNEL_MTU = 1420


def public_key(private_key_b64: str) -> str:
    """`wg pubkey`: the Curve25519 public key of a base64 private key."""
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private_key_b64))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class GatewayConfig:
    private_key: str  # secret
    address: str  # the gateway's tunnel address, e.g. 10.255.255.1/30
    listen_port: int
    office_public_key: str
    office_networks: tuple[str, ...]  # routed into the tunnel: the office LAN, the office tunnel end
    vpc_cidr: str  # NATed to the internet


def render_wg_conf(cfg: GatewayConfig) -> str:
    return (
        "[Interface]\n"
        f"Address = {cfg.address}\n"
        f"ListenPort = {cfg.listen_port}\n"
        f"MTU = {TUNNEL_MTU}\n"
        f"PrivateKey = {cfg.private_key}\n"
        f"PostUp = {NAT_SCRIPT} up\n"
        f"PostDown = {NAT_SCRIPT} down\n"
        "\n"
        "[Peer]\n"
        "# The office router; it dials in (it sits behind NAT) and keeps the tunnel alive.\n"
        f"PublicKey = {cfg.office_public_key}\n"
        f"AllowedIPs = {', '.join(cfg.office_networks)}\n"
    )


def render_gateway_user_data(cfg: GatewayConfig) -> str:
    nat = (
        "#!/bin/bash\n"
        "# NAT the burst subnets to the internet (not towards the office: those keep their addresses).\n"
        "set -euo pipefail\n"
        'action=$([ "$1" = up ] && echo -A || echo -D)\n'
        "uplink=$(ip -o route show default | awk '{print $5; exit}')\n"
        f'iptables -t nat "$action" POSTROUTING -s {cfg.vpc_cidr} -o "$uplink" -j MASQUERADE\n'
    )
    doc = {
        "package_update": True,
        "packages": ["wireguard", "iptables"],
        "write_files": [
            {"path": "/etc/wireguard/wg0.conf", "permissions": "0600", "content": render_wg_conf(cfg)},
            {"path": NAT_SCRIPT, "permissions": "0755", "content": nat},
            {"path": "/etc/sysctl.d/90-akiba-router.conf", "content": "net.ipv4.ip_forward = 1\n"},
        ],
        "runcmd": [["sysctl", "--system"], ["systemctl", "enable", "--now", "wg-quick@wg0"]],
    }
    return "#cloud-config\n" + yamltext.dump(doc)
