#!/usr/bin/env python3
"""akiba-start-vms: after a power cut, start a hypervisor's platform VMs in their order, each once
the Ceph its disks live on answers.

Why not libvirt's autostart: it starts a domain as soon as libvirtd runs, while the Ceph its RBD
disks are on is still coming up (prod's own Ceph runs on the PCs, which boot at the same time;
dev's VMs are on prod's): qemu then fails to open the disks and the VM stays off. The program
keeps libvirt's autostart off and records each domain's start order in the domain's definition
(libvirt metadata, components/machines/libvirt_domain_ops.py START_NS: controllers 0, workers 1).
This script, run once at boot by the systemd unit below, reads them from libvirt and, order by
order, waits until every RBD disk of a domain can be opened by the domain's own cephx user
(`ceph health` not HEALTH_ERR, `rbd info` of each image) and starts it.

It runs on the hypervisor, which the program does not manage: Python's standard library, `virsh`
and Ceph's `ceph`/`rbd` (Ubuntu's ceph-common), nothing from this repository. Install it once, as
root: `python3 components/machines/vm_start.py install` (README, "After a power cut"). It reads the
cephx key from /etc/ceph/ceph.client.<user>.keyring (libvirt keeps its copy private, unreadable
even to root over its API).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

# Must equal components.machines.libvirt_domain_ops.START_NS (a test checks): this file is
# installed alone, so it cannot import it.
START_NS = "https://akiba.example/libvirt/start"
SCRIPT_PATH = Path("/usr/local/sbin/akiba-start-vms")
UNIT_PATH = Path("/etc/systemd/system/akiba-start-vms.service")
UNIT = f"""[Unit]
Description=Start the akiba platform VMs in order once their Ceph answers (after a power cut)
Documentation=https://akiba.example/README#after-a-power-cut
Wants=network-online.target
After=network-online.target libvirtd.service virtqemud.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={SCRIPT_PATH} start
# The script gives up on its own (--wait); systemd must not kill it while Ceph comes up.
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class RbdDisk:
    image: str  # pool/image
    monitors: str  # host:port,host:port
    user: str  # cephx id, without "client."


@dataclass(frozen=True)
class Domain:
    name: str
    order: int


def virsh(uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C"}
    return subprocess.run(["virsh", "-q", "-c", uri, *args], capture_output=True, text=True, env=env, check=False)


def platform_domains(uri: str) -> list[Domain]:
    """The domains with a start order, lowest first (then by name): the platform's VMs."""
    listed = virsh(uri, "list", "--all", "--name")
    if listed.returncode != 0:
        raise SystemExit(f"akiba-start-vms: virsh list on {uri}: {listed.stderr.strip()}")
    found = []
    for name in filter(None, (n.strip() for n in listed.stdout.splitlines())):
        meta = virsh(uri, "metadata", name, "--config", "--uri", START_NS)
        if meta.returncode != 0:
            continue  # no metadata in our namespace: not a platform VM
        order = ET.fromstring(meta.stdout).get("order")  # noqa: S314 - libvirt's own reply
        if order is not None and order.isdigit():
            found.append(Domain(name, int(order)))
    return sorted(found, key=lambda d: (d.order, d.name))


def rbd_disks(domain_xml: str) -> list[RbdDisk]:
    """The domain's RBD network disks, as its definition names them (<source> and <auth>)."""
    disks = []
    for disk in ET.fromstring(domain_xml).iterfind("./devices/disk"):  # noqa: S314 - libvirt's own reply
        source, auth = disk.find("source[@protocol='rbd']"), disk.find("auth")
        if source is None:
            continue
        hosts = ",".join(f"{h.get('name')}:{h.get('port', '6789')}" for h in source.iterfind("host"))
        user = auth.get("username", "admin") if auth is not None else "admin"
        disks.append(RbdDisk(image=str(source.get("name")), monitors=hosts, user=user.removeprefix("client.")))
    return disks


def ceph_not_ready(disk: RbdDisk, keyring: Path | None, timeout: float = 30) -> str | None:
    """Why qemu could not use the disk now, or None: the cluster answers, is not HEALTH_ERR, and
    the image opens for the domain's own user."""
    ring = keyring or Path(f"/etc/ceph/ceph.client.{disk.user}.keyring")
    common = ["--conf", "/dev/null", "--id", disk.user, "-m", disk.monitors, "--keyring", str(ring)]
    common += ["--client_mount_timeout", "10"]
    try:
        health = subprocess.run(
            ["ceph", *common, "health"], capture_output=True, text=True, timeout=timeout, check=False
        )
        if health.returncode != 0:
            return f"ceph health: {(health.stderr or health.stdout).strip().splitlines()[-1:]}"
        if health.stdout.startswith("HEALTH_ERR"):
            return health.stdout.strip()
        info = subprocess.run(
            ["rbd", *common, "info", disk.image], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        # Monitors that do not answer, or placement groups not active yet (a read blocks).
        return f"no answer in {timeout:.0f} s for {disk.image} (monitors {disk.monitors})"
    if info.returncode != 0:
        return f"rbd info {disk.image}: {info.stderr.strip().splitlines()[-1:]}"
    return None


def start(uri: str, wait_s: float, poll_s: float, settle_s: float, keyring: Path | None) -> int:
    """Start every platform domain that is off, lowest order first. Returns the exit status: 1
    when a domain could not be started (its disks never answered within `wait_s`)."""
    domains = platform_domains(uri)
    failed = []
    deadline = time.monotonic() + wait_s
    for i, dom in enumerate(domains):
        if i and dom.order != domains[i - 1].order and settle_s:
            # The previous order (the controllers: etcd, the API) gets a head start.
            time.sleep(settle_s)
        if virsh(uri, "domstate", dom.name).stdout.strip() == "running":
            print(f"{dom.name}: already running", flush=True)
            continue
        disks = rbd_disks(virsh(uri, "dumpxml", "--inactive", dom.name).stdout)
        while True:
            reasons = [r for r in (ceph_not_ready(d, keyring) for d in disks) if r]
            if not reasons:
                break
            if time.monotonic() > deadline:
                print(f"{dom.name}: not started, its disks did not answer: {reasons[0]}", file=sys.stderr, flush=True)
                failed.append(dom.name)
                break
            print(f"{dom.name}: waiting for Ceph: {reasons[0]}", flush=True)
            time.sleep(poll_s)
        if dom.name in failed:
            continue
        proc = virsh(uri, "start", dom.name)
        if proc.returncode != 0:
            print(f"{dom.name}: virsh start: {proc.stderr.strip()}", file=sys.stderr, flush=True)
            failed.append(dom.name)
        else:
            print(f"{dom.name}: started (order {dom.order})", flush=True)
    return 1 if failed else 0


def install() -> int:
    """Copy this script and its unit in place and enable the unit (as root, once per hypervisor)."""
    missing = [tool for tool in ("virsh", "ceph", "rbd", "systemctl") if shutil.which(tool) is None]
    if missing:
        print(f"akiba-start-vms: missing {', '.join(missing)} (apt-get install ceph-common)", file=sys.stderr)
        return 2
    SCRIPT_PATH.write_text(Path(__file__).read_text(encoding="utf-8"), encoding="utf-8")
    SCRIPT_PATH.chmod(0o755)
    UNIT_PATH.write_text(UNIT, encoding="utf-8")
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    subprocess.run(["systemctl", "enable", UNIT_PATH.name], check=True)
    print(f"installed {SCRIPT_PATH} and {UNIT_PATH}; `systemctl start {UNIT_PATH.name}` runs it now")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="akiba-start-vms", description=__doc__.splitlines()[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("start", help="start the platform VMs in order (what the unit runs at boot)")
    run.add_argument("--uri", default="qemu:///system")
    run.add_argument("--wait", type=float, default=3600, help="seconds to wait for Ceph in all (default 3600)")
    run.add_argument("--poll", type=float, default=15, help="seconds between Ceph checks (default 15)")
    run.add_argument("--settle", type=float, default=60, help="seconds between start orders (default 60)")
    run.add_argument("--keyring", type=Path, help="default /etc/ceph/ceph.client.<user>.keyring")
    sub.add_parser("install", help="install this script and its systemd unit, enable the unit")
    sub.add_parser("unit", help="print the systemd unit")
    args = parser.parse_args(argv)
    if args.command == "install":
        return install()
    if args.command == "unit":
        print(UNIT, end="")
        return 0
    return start(args.uri, args.wait, args.poll, args.settle, args.keyring)


if __name__ == "__main__":
    sys.exit(main())
