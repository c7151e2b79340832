"""The names the stack's values become, and the rule that no two entries become the same one.

A hostname names a MAAS machine and the node's resources; a VM's domain names its libvirt
resources and, with each disk's serial, its RBD images; an app's name is its resources' name and
its ingress host; an engineer's name makes home-<name> and db-<name>; a registry upstream makes
cache-<upstream>. Two entries that become one name make the Pulumi engine refuse the duplicate
URN (offline: tools/plan/mocks.py does the same), or make two objects fight over one Kubernetes
name, host, machine or RBD image. This finds them in the spec and names both entries.

A `space` is what a name must be unique in. Spaces written as a resource type are URN types as
the engine writes them ("<parent type>$<type>"); tests/test_config_uniqueness.py checks that
the real stacks' plans hold every such name, so a component that renames its resources cannot
leave this list behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from components.machines.libvirt_vm import SERIAL_PREFIX
from components.registry.registry import instance_name
from stacks.problems import Problem, key_path, shown
from stacks.raw import Raw, items_at, section_at
from stacks.spec import StorageSpec

NODE = "akiba:node:BareMetalNode"
VM = "akiba:vm:LibvirtVm"
VM_PART = "akiba:vm:LibvirtVm$pulumi-python:dynamic:Resource"  # the domain and its RBD images
APP = "akiba:apps:MlApp"
HOME = "akiba:storage:SharedHomes$kubernetes:core/v1:PersistentVolumeClaim"
HOME_OWNER = "akiba:storage:SharedHomes$kubernetes:batch/v1:Job"
DATABASE = "akiba:db:PersonalDatabases$kubernetes:core/v1:Service"
CACHE = "akiba:registry:Registry$kubernetes:apps/v1:Deployment"
BLOCK_POOL = "akiba:storage:CephStorage$kubernetes:ceph.rook.io/v1:CephBlockPool"
SUBNET = "akiba:burst:BurstNetwork$aws:ec2/subnet:Subnet"

_LABELS = {
    "machine": "the machine (MAAS hostname, libvirt domain)",
    "ingress host": "the ingress host",
    "rbd image": "the RBD image in the VM pool",
    "ceph pool": "the Ceph pool",
    "login": "the login",
    "hypervisor": "the hypervisor",
    "instance type": "the instance type",
}


@dataclass(frozen=True)
class Name:
    """One name an entry of the spec becomes."""

    space: str  # what it must be unique in: a URN type, or one of _LABELS
    name: str  # what the entry becomes there, e.g. "home-tarui"
    path: str  # the entry's key path
    value: Any  # the entry's value, for the message
    what: str  # the entry in words, e.g. "an engineer name"
    exact: bool = False  # compared as written (a login), not as Kubernetes and DNS compare it

    @property
    def key(self) -> str:
        # Kubernetes names, hostnames and MAAS compare without case, and a character they do
        # not allow would have to become '-': two entries that differ only so are one name.
        return self.name if self.exact else re.sub(r"[^a-z0-9.-]", "-", self.name.lower())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def machines(raw: Raw) -> Iterator[Name]:
    """Nodes (components.machines.baremetal_node: the component, its MAAS machine and instance
    are named by the hostname) and the VMs behind virsh nodes (components.machines.libvirt_vm:
    the domain names the component and its domain; each disk is the RBD image <serial>, whose
    resource is <domain>-<serial>)."""
    for i, node in items_at(raw, "nodes"):
        hostname = _text(node.get("hostname"))
        if hostname:
            path = key_path("nodes", i, "hostname")
            yield Name(NODE, hostname, path, hostname, "a hostname")
            yield Name("machine", hostname, path, hostname, "a hostname")
    for i, node in items_at(raw, "nodes"):
        power = section_at(node, "power")
        domain = _text(power.get("domain"))
        if power.get("type") != "virsh" or not domain:
            continue
        path = key_path("nodes", i, "power", "domain")
        yield Name(VM, domain, path, domain, "a libvirt domain name")
        yield Name(VM_PART, domain, path, domain, "a libvirt domain name")
        if domain != node.get("hostname"):  # a VM named after its own node is that node
            yield Name("machine", domain, path, domain, "a libvirt domain name")
        disks = section_at(node, "disks")
        paths = [("boot", disks.get("boot"))] + [(f"ceph[{j}]", d) for j, d in enumerate(disks.get("ceph") or [])]
        seen: set[str] = set()  # a disk twice in one VM is stacks.rules.disks_make_sense's problem
        for where, disk in paths:
            if not (isinstance(disk, str) and disk.startswith(SERIAL_PREFIX)) or disk in seen:
                continue
            seen.add(disk)
            serial = disk.removeprefix(SERIAL_PREFIX)
            disk_path = f"{key_path('nodes', i, 'disks')}.{where}"
            yield Name(VM_PART, f"{domain}-{serial}", disk_path, disk, "a VM disk")
            yield Name("rbd image", serial, disk_path, disk, "a VM disk")


def apps(raw: Raw) -> Iterator[Name]:
    """Each app is the component and the Deployment, Service and Ingress named after it
    (components.apps.ml_app), at <name>.<domain>; Grafana is at grafana.<domain> and the
    registry at the mirror's host (stacks.composition), on the same ingress; with a VIP the API
    is api.<domain>."""
    section = section_at(raw, "apps")
    domain = _text(section.get("domain"))
    if domain:
        yield Name("ingress host", f"grafana.{domain}", key_path("apps", "domain"), domain, "the apps domain")
        vip = _text(section_at(raw, "cluster").get("apiVip"))
        if vip:  # the API's name on the office DNS (stacks.args.office_dns_records)
            yield Name("ingress host", f"api.{domain}", key_path("cluster", "apiVip"), vip, "the API's name")
    mirror = _text(section_at(raw, "registry").get("mirror"))
    if mirror:
        host = mirror.split(":")[0]
        yield Name("ingress host", host, key_path("registry", "mirror"), mirror, "the registry mirror")
    for i, app in items_at(section, "apps"):
        name = _text(app.get("name"))
        if not name:
            continue
        path = key_path("apps", "apps", i, "name")
        yield Name(APP, name, path, name, "an app name")
        if domain:
            yield Name("ingress host", f"{name}.{domain}", path, name, "an app name")


def engineers(raw: Raw) -> Iterator[Name]:
    """home-<name> and its owner Job (components.storage.shared_homes), db-<name> for a personal
    database (components.storage.personal_databases)."""
    for i, eng in items_at(raw, "engineers"):
        name = _text(eng.get("name"))
        if not name:
            continue
        path = key_path("engineers", i, "name")
        yield Name("login", name, path, name, "an engineer name", exact=True)
        yield Name(HOME, f"home-{name}", path, name, "an engineer name")
        yield Name(HOME_OWNER, f"home-owner-{name}", path, name, "an engineer name")
        if eng.get("personalDatabase") is True:
            yield Name(DATABASE, f"db-{name}", path, name, "an engineer name")


def registry(raw: Raw) -> Iterator[Name]:
    """One pull-through cache per upstream, named by components.registry.registry.instance_name."""
    for j, upstream in enumerate(section_at(raw, "registry").get("upstreams") or []):
        if _text(upstream):
            yield Name(CACHE, instance_name(upstream), key_path("registry", "upstreams", j), upstream, "an upstream")


def storage(raw: Raw) -> Iterator[Name]:
    """Ceph pools: the two block pools (CephBlockPool cephblockpool-<pool>,
    components.storage.ceph_storage) and the filesystem's, which Rook names <fs>-metadata and
    <fs>-<data pool> (data0)."""
    section = section_at(raw, "storage")
    fields = StorageSpec.model_fields
    for key, field in (("blockPool", "block_pool"), ("vmPool", "vm_pool")):
        pool = _text(section.get(key, fields[field].default))
        if pool:
            path = key_path("storage", key)
            yield Name(BLOCK_POOL, f"cephblockpool-{pool}", path, pool, "a pool name")
            yield Name("ceph pool", pool, path, pool, "a pool name")
    fs = _text(section.get("filesystem", fields["filesystem"].default))
    if fs:
        for pool in (f"{fs}-metadata", f"{fs}-data0"):
            yield Name("ceph pool", pool, key_path("storage", "filesystem"), fs, "a filesystem name")


def burst(raw: Raw) -> Iterator[Name]:
    """A private subnet burst-<zone> per zone (components.burst.network), and each instance
    type once in the auto-scaling group's overrides."""
    section = section_at(raw, "burst")
    if section.get("enabled") is True:
        for j, zone in enumerate(section.get("zones") or []):
            if _text(zone):
                yield Name(SUBNET, f"burst-{zone}", key_path("burst", "zones", j), zone, "a zone")
    for j, itype in enumerate(section.get("instanceTypes") or []):
        if _text(itype):
            yield Name("instance type", itype, key_path("burst", "instanceTypes", j), itype, "an instance type")


def hypervisors(raw: Raw) -> Iterator[Name]:
    for i, hv in items_at(raw, "hypervisors"):
        name = _text(hv.get("name"))
        if name:
            yield Name("hypervisor", name, key_path("hypervisors", i, "name"), name, "a hypervisor name")


def names(raw: Raw) -> list[Name]:
    """Every name the spec's entries become, in config order within each kind."""
    return [*machines(raw), *apps(raw), *engineers(raw), *registry(raw), *storage(raw), *burst(raw), *hypervisors(raw)]


def label(space: str) -> str:
    return _LABELS.get(space, f"the resource {space.rsplit('$', 1)[-1]}")


def names_unique(raw: Raw) -> list[Problem]:
    """The later of two entries that become one name, naming the first; one problem per pair."""
    first: dict[tuple[str, str], Name] = {}
    reported: set[tuple[str, str]] = set()
    out = []
    for name in names(raw):
        seen = first.setdefault((name.space, name.key), name)
        if seen.path == name.path or (name.path, seen.path) in reported:
            continue
        reported.add((name.path, seen.path))
        out.append(
            Problem(
                name.path,
                f"{name.what} not used elsewhere",
                f"{shown(name.value)} (also at {seen.path}: both become {label(name.space)} {name.key!r})",
            )
        )
    return out
