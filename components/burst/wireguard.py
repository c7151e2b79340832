"""Pure helpers for the WireGuard site link: the gateway's cloud-init.

WireGuard over AWS site-to-site VPN: the office router (behind NAT, a consumer line) dials
out, so no static office IP or IPsec appliance is needed, and a t3.micro costs a fraction of a
VPN connection's hourly fee. The gateway also NATs the private subnets to the internet,
which saves a NAT gateway.

The gateway makes its own key at first boot (`wg genkey`): the private half never leaves it
(not in the program, its state or the launch template), and the public half goes to one SSM
parameter that only the gateway's instance profile may write. A new gateway instance (a
replaced one) has a new key: the office router must take the new public key.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from components import yamltext

NAT_SCRIPT = "/usr/local/sbin/akiba-nat"
KEY_SCRIPT = "/usr/local/sbin/akiba-wg-key"
PRIVATE_KEY = "/etc/wireguard/private.key"
# The tunnel's MTU: 1500 (what crosses the internet) - 80 (WireGuard over IPv6, the larger
# overhead). Set explicitly: wg-quick would take the route's MTU minus 80, and on an EC2 ENI
# (MTU 9001) that is 8921, which the internet path then fragments or drops. The office router
# sets the same. Everything that crosses the tunnel (flannel's VXLAN to burst nodes) must fit.
TUNNEL_MTU = 1420


@dataclass(frozen=True)
class GatewayConfig:
    public_key_parameter: str  # the SSM parameter the gateway publishes its public key to
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
        # No PrivateKey here: the key stays in its own root-only file (wg-quick(8)'s example).
        f"PostUp = wg set %i private-key {PRIVATE_KEY}; {NAT_SCRIPT} up\n"
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
            {"path": KEY_SCRIPT, "permissions": "0755", "content": render_key_script(cfg.public_key_parameter)},
            {"path": "/etc/sysctl.d/90-akiba-router.conf", "content": "net.ipv4.ip_forward = 1\n"},
        ],
        "runcmd": [["sysctl", "--system"], [KEY_SCRIPT], ["systemctl", "enable", "--now", "wg-quick@wg0"]],
    }
    return "#cloud-config\n" + yamltext.dump(doc)


def render_key_script(parameter: str) -> str:
    """The gateway's key: made once (kept across reboots), the public half published. The aws
    CLI takes the instance profile's credentials from IMDSv2 by itself; it is a snap (Ubuntu's
    AMIs ship snapd, and noble has no awscli deb)."""
    imds = "http://169.254.169.254/latest"
    return (
        "#!/bin/bash\n"
        "set -euo pipefail\n"
        f"if [ ! -s {PRIVATE_KEY} ]; then\n"
        f"  (umask 077; wg genkey > {PRIVATE_KEY}.new)\n"
        f"  mv {PRIVATE_KEY}.new {PRIVATE_KEY}\n"
        "fi\n"
        f"public=$(wg pubkey < {PRIVATE_KEY})\n"
        f"token=$(curl -fsS --retry 5 -X PUT {imds}/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')\n"
        f'region=$(curl -fsS --retry 5 -H "X-aws-ec2-metadata-token: $token" {imds}/meta-data/placement/region)\n'
        # At first boot snapd may still be seeding: a snap install then fails ("too early").
        "command -v aws >/dev/null || { snap wait system seed.loaded && snap install aws-cli --classic; }\n"
        f'aws ssm put-parameter --region "$region" --name {shlex.quote(parameter)} --type String --overwrite'
        ' --value "$public" >/dev/null\n'
    )
