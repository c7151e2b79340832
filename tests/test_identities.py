"""Stable identities: what each dynamic provider's `diff` replaces, and that a day-2 change
(one more Ceph node) replaces nothing.

The providers' diffs are pure, so they are called here exactly as the engine calls them
(pulumi sdk/python/lib/pulumi/dynamic/__main__.py Diff: the provider unpickled from `__provider`,
`olds` the recorded state, `news` the program's inputs). The day-2 test plans the committed stack
files and copies with a node added (in a stack directory of their own, as `--stack-dir` reads them),
then diffs every dynamic resource present in both plans.
"""

from __future__ import annotations

import base64
import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dill  # type: ignore[import-untyped]
import pytest
import yaml

from components.machines import libvirt_domain_ops, libvirt_secret_ops, rbd_image
from components.machines.libvirt_ceph_secret import CephSecretProvider
from components.machines.libvirt_domain import DomainProvider
from components.machines.libvirt_secret_ops import secret_usage, secret_uuid
from components.machines.rbd_image import GIB, RbdImageProvider
from components.machines.rbd_ops import ImageInfo, RbdError
from tests.conftest import ROOT
from tests.libvirt_fixture import libvirt  # noqa: F401 - the session fixture
from tests.real_libvirt import Libvirt
from tools.plan import runner
from tools.plan.runner import Plan
from tools.plan.stackfile import _Yaml12Loader, read_stack_file

DYNAMIC = "pulumi-python:dynamic:Resource"
PROVIDER_KEY = "__provider"
KEY = "AQBzKaJoAAAAABAAxXF1dLd2j1ckPuDE9RfTKQ=="
NEW_KEY = "AQCW10aVzK9aYCtgWqTZfl3awNJdAtY2egQgag=="

RBD = {
    "kind": "rbd-image",
    "cluster": "akiba/rook-ceph/rook-ceph",
    "pool": "vm-disks",
    "image": "akiba-vm01-boot",
    "sizeBytes": 40 * GIB,
    "monHost": "192.168.10.11:6789,192.168.10.12:6789",
    "user": "libvirt",
    "key": KEY,
}
# What the state holds after create: the inputs, rbd's image id and the pickled provider.
RBD_STATE = {**RBD, "imageId": "10a6b8b4567", PROVIDER_KEY: "pickled"}
DOMAIN = {
    "kind": "libvirt-domain",
    "hypervisor": "desk01",
    "uri": "qemu+ssh://virsh@192.168.10.5/system",
    "name": "akiba-vm01",
    "providerXml": "<domain type='kvm'><name>akiba-vm01</name></domain>",
    "xslt": "<xsl:stylesheet/>",
}
SECRET_UUID = secret_uuid("akiba", "desk01")
SECRET = {
    "uri": "qemu+ssh://virsh@192.168.10.5/system",
    "uuid": SECRET_UUID,
    "usage": secret_usage("libvirt", SECRET_UUID),
    "key": KEY,
}


# -- each provider's diff: what fires, what stays quiet ----------------------------------------


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"monHost": "192.168.10.11:6789,192.168.10.12:6789,192.168.10.16:6789"}, "a Ceph node added"),
        ({"key": NEW_KEY}, "a rotated cephx key"),
        ({"user": "libvirt2"}, "another cephx user"),
        ({"sizeBytes": 80 * GIB}, "a larger disk (grown in place)"),
    ],
)
def test_rbd_connection_and_size_update_in_place(change: dict[str, Any], why: str) -> None:
    result = RbdImageProvider().diff("vm-disks/akiba-vm01-boot", RBD_STATE, {**RBD, **change})
    assert result.changes, why
    assert result.replaces == [], f"{why} must not replace the disk"
    assert result.delete_before_replace is False


@pytest.mark.parametrize("key", ["cluster", "pool", "image"])
def test_rbd_identity_change_replaces_creating_first(key: str) -> None:
    result = RbdImageProvider().diff("vm-disks/akiba-vm01-boot", RBD_STATE, {**RBD, key: "other"})
    assert result.changes and result.replaces == [key]
    assert result.delete_before_replace is False, "the new image is made before the old one is deleted"


def test_rbd_quiet_when_nothing_changed_and_on_a_new_golden_source() -> None:
    provider = RbdImageProvider()
    assert provider.diff("id", RBD_STATE, dict(RBD)).changes is False
    # A newer golden snapshot is for disks made from now on: this disk keeps its data.
    cloned = {**RBD_STATE, "cloneFrom": "vm-disks/golden@2026-11-01"}
    assert provider.diff("id", cloned, {**RBD, "cloneFrom": "vm-disks/golden@2026-12-01"}).changes is False
    assert provider.diff("id", cloned, dict(RBD)).changes is False


def test_rbd_state_without_a_cluster_adopts_it_in_place() -> None:
    """State recorded before images had a cluster: recorded by an update, never a replacement."""
    old = {k: v for k, v in RBD_STATE.items() if k != "cluster"}
    result = RbdImageProvider().diff("id", old, dict(RBD))
    assert result.changes and result.replaces == []


def test_domain_diff() -> None:
    provider = DomainProvider()
    assert provider.diff("akiba-vm01", DOMAIN, dict(DOMAIN)).changes is False
    for key, value in [("xslt", "<xsl:stylesheet version='1.0'/>"), ("uri", "qemu+ssh://virsh@desk01.lan/system")]:
        result = provider.diff("akiba-vm01", DOMAIN, {**DOMAIN, key: value})
        assert result.changes and result.replaces == [], f"{key} is redefined in place"
    for key in ("hypervisor", "name"):
        result = provider.diff("akiba-vm01", DOMAIN, {**DOMAIN, key: "other"})
        assert result.replaces == [key] and result.delete_before_replace is False
    old = {k: v for k, v in DOMAIN.items() if k != "hypervisor"}
    assert provider.diff("akiba-vm01", old, dict(DOMAIN)).replaces == []


def test_secret_diff() -> None:
    provider = CephSecretProvider()
    assert provider.diff(SECRET_UUID, SECRET, dict(SECRET)).changes is False
    for key, value in [
        ("key", NEW_KEY),
        ("usage", secret_usage("other", SECRET_UUID)),
        ("uri", "qemu+ssh://virsh@desk01.lan/system"),
    ]:
        result = provider.diff(SECRET_UUID, SECRET, {**SECRET, key: value})
        assert result.changes and result.replaces == [], f"{key} is updated in place"
    other = secret_uuid("akiba", "desk02")
    result = provider.diff(SECRET_UUID, SECRET, {**SECRET, "uuid": other, "usage": secret_usage("libvirt", other)})
    assert result.replaces == ["uuid"] and result.delete_before_replace is False


def test_dev_and_prod_secrets_on_one_hypervisor_have_their_own_usage() -> None:
    """libvirt refuses a second ceph secret with the same usage name on one hypervisor."""
    prod, dev = secret_uuid("akiba", "desk01"), secret_uuid("akiba-dev", "desk01")
    assert secret_usage("libvirt", prod) != secret_usage("client.libvirt", dev)


def test_dev_and_prod_secrets_and_a_replacement_coexist_on_one_libvirtd(libvirt: Libvirt) -> None:
    """Against a real libvirtd: prod's and dev's secrets side by side, then prod's replaced by
    one with a new UUID the way the engine does it (the new one first, then the old one deleted)."""
    provider = CephSecretProvider()
    prod, dev, renamed = (secret_uuid(c, h) for c, h in [("akiba", "desk01"), ("akiba-dev", "desk01"), ("akiba", "d1")])
    props = {
        u: {**SECRET, "uri": libvirt.uri, "uuid": u, "usage": secret_usage("libvirt", u)} for u in (prod, dev, renamed)
    }
    try:
        provider.create(props[prod])
        provider.create(props[dev])
        result = provider.diff(prod, props[prod], props[renamed])
        assert result.replaces == ["uuid"] and not result.delete_before_replace
        provider.create(props[renamed])  # before the old one is deleted
        provider.delete(prod, props[prod])
        assert set(libvirt_secret_ops.list_ceph_secrets(libvirt.uri)) >= {dev, renamed}
        assert libvirt_secret_ops.read_ceph_secret(libvirt.uri, prod) is None
    finally:
        for u in (prod, dev, renamed):
            libvirt_secret_ops.delete_ceph_secret(libvirt.uri, u)


# -- the update guards: a new connection must reach the same thing -----------------------------


class _FakeRbd:
    def __init__(self, image_id: str | None) -> None:
        self.image_id = image_id
        self.resized: list[int] = []

    def info(self, pool: str, image: str) -> ImageInfo | None:
        if self.image_id is None:
            return None
        return ImageInfo(pool, image, self.image_id, 40 * GIB, (), None, 0, 0, 4 << 20)

    def resize(self, pool: str, image: str, size: int) -> int:
        self.resized.append(size)
        return size


def _with_rbd(monkeypatch: pytest.MonkeyPatch, fake: _FakeRbd) -> None:
    monkeypatch.setattr(rbd_image, "_client", lambda props: fake)


def test_rbd_update_through_new_monitors_keeps_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeRbd("10a6b8b4567")
    _with_rbd(monkeypatch, fake)
    news = {**RBD, "monHost": "192.168.10.16:6789", "cloneFrom": "vm-disks/golden@new"}
    old = {**RBD_STATE, "cloneFrom": "vm-disks/golden@old"}
    outs = RbdImageProvider().update("id", old, news).outs or {}
    assert outs["monHost"] == "192.168.10.16:6789" and outs["imageId"] == "10a6b8b4567"
    assert outs["cloneFrom"] == "vm-disks/golden@old", "the state keeps what the disk was made from"
    assert fake.resized == [], "a connection change resizes nothing"


@pytest.mark.parametrize(("image_id", "message"), [(None, "is not found through"), ("99ffee", "has image id 99ffee")])
def test_rbd_update_refuses_monitors_of_another_cluster(
    monkeypatch: pytest.MonkeyPatch, image_id: str | None, message: str
) -> None:
    _with_rbd(monkeypatch, _FakeRbd(image_id))
    with pytest.raises(RbdError, match=message):
        RbdImageProvider().update("id", RBD_STATE, {**RBD, "monHost": "10.9.9.9:6789", "sizeBytes": 80 * GIB})


def test_domain_update_refuses_a_uri_that_reaches_another_hypervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libvirt_domain_ops, "exists", lambda uri, name: False)
    monkeypatch.setattr(libvirt_domain_ops, "define", lambda uri, xml: pytest.fail("must not define"))
    with pytest.raises(libvirt_domain_ops.DomainError, match="must reach the same hypervisor"):
        DomainProvider().update("akiba-vm01", DOMAIN, {**DOMAIN, "uri": "qemu+ssh://virsh@192.168.10.6/system"})


def test_domain_create_refuses_to_define_over_an_existing_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libvirt_domain_ops, "exists", lambda uri, name: True)
    monkeypatch.setattr(libvirt_domain_ops, "define", lambda uri, xml: pytest.fail("must not define"))
    with pytest.raises(libvirt_domain_ops.DomainError, match="already exists"):
        DomainProvider().create(DOMAIN)


# -- day 2: one more Ceph node replaces nothing ------------------------------------------------


def _add_node(stack: str, template: int, hostname: str, ip: str, tag: str) -> Callable[[dict[str, Any]], None]:
    """An edit adding a node modelled on nodes[template], with its own name, address, MACs and disks."""

    def edit(doc: dict[str, Any]) -> None:
        nodes = doc["config"]["akiba:nodes"]
        node = copy.deepcopy(nodes[template])
        # A worker: one more controller would make an even control plane, which the spec refuses.
        node.update(hostname=hostname, ip=ip, role="worker")
        for i, nic in enumerate(node["nics"]):
            nic["mac"] = f"{nic['mac'][:-5]}{tag}:{i:02x}"
        power = node["power"]
        if power.get("type") == "virsh":
            power["domain"] = hostname
            node["gpus"] = []  # the hypervisor's GPUs all belong to the other VMs
            node["disks"] = {
                "boot": f"/dev/disk/by-id/virtio-{hostname}-boot",
                "ceph": [f"/dev/disk/by-id/virtio-{hostname}-osd{j}" for j in range(len(node["disks"]["ceph"]))],
            }
        else:
            node["disks"] = {
                "boot": node["disks"]["boot"].replace("-0:0", f"{tag}-0:0"),
                "ceph": [f"{d}{tag}" for d in node["disks"]["ceph"]],
            }
        assert node["disks"]["ceph"], f"{stack}: the template node must be a Ceph node"
        nodes.append(node)

    return edit


def _stack_dir(tmp: Path, edits: dict[str, Callable[[dict[str, Any]], None]]) -> Path:
    """Both stack files in a directory of their own (what `--stack-dir` reads), some edited."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp / "Pulumi.yaml")
    for stack in ("prod", "dev"):
        path = ROOT / f"Pulumi.{stack}.yaml"
        if stack not in edits:
            shutil.copy(path, tmp / path.name)
            continue
        doc = yaml.load(path.read_text(), Loader=_Yaml12Loader)  # noqa: S506 (a safe loader)
        edits[stack](doc)
        (tmp / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp


def _plan(root: Path, stack: str, prod: Plan | None = None) -> Plan:
    refs = {"my-org/akiba/prod": prod.as_reference()} if prod is not None else None
    plan = runner.run(read_stack_file(root, stack), stack_references=refs)
    assert plan.resources, f"{stack}: the recorded plan is empty"
    return plan


def _dynamic(plan: Plan) -> dict[str, dict[str, Any]]:
    return {r.urn: r.raw_inputs for r in plan.resources if r.type == DYNAMIC}


def _state(inputs: dict[str, Any]) -> dict[str, Any]:
    """What the state would hold for these inputs after create (rbd records its image id)."""
    return {**inputs, "imageId": "10a6b8b4567"} if inputs.get("kind") == "rbd-image" else dict(inputs)


def _day2(old: Plan, new: Plan) -> dict[str, list[str]]:
    """For each dynamic resource in both plans: its provider's verdict, as the engine would ask it.
    Returns the name -> changed input keys of those the provider updates; fails on a replacement."""
    olds, news = _dynamic(old), _dynamic(new)
    assert olds and set(olds) <= set(news), "a node added removes no dynamic resource"
    updated: dict[str, list[str]] = {}
    for urn, before in olds.items():
        after = news[urn]
        # The program's own pickle, from the plan just made (what the engine unpickles too).
        provider = dill.loads(base64.b64decode(after[PROVIDER_KEY]))  # noqa: S301
        name = urn.rsplit("::", 1)[-1]
        result = provider.diff(name, _state(before), after)
        assert not result.replaces, f"{name} would be replaced ({result.replaces})"
        assert not result.delete_before_replace, name
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        assert bool(result.changes) == bool(changed), f"{name}: diff says {result.changes}, inputs {changed}"
        if changed:
            updated[name] = changed
    return updated


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    root = _stack_dir(tmp_path_factory.mktemp("committed"), {})
    prod = _plan(root, "prod")
    return {"prod": prod, "dev": _plan(root, "dev", prod)}


@pytest.fixture(scope="module")
def prod_plus_node(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    edit = _add_node("prod", 1, "akiba06", "192.168.10.16", "66")
    root = _stack_dir(tmp_path_factory.mktemp("prod-plus-node"), {"prod": edit})
    prod = _plan(root, "prod")
    return {"prod": prod, "dev": _plan(root, "dev", prod)}


def test_adding_a_prod_ceph_node_updates_the_vm_in_place(
    committed: dict[str, Plan], prod_plus_node: dict[str, Plan]
) -> None:
    assert _day2(committed["prod"], prod_plus_node["prod"]) == {
        "akiba-vm01-akiba-vm01-boot": ["monHost"],  # the new monitor candidate
        "akiba-vm01": ["xslt"],  # the domain's <host> list: redefined, taken at the next boot
    }


def test_dev_disks_on_prods_ceph_follow_its_new_node_in_place(
    committed: dict[str, Plan], prod_plus_node: dict[str, Plan]
) -> None:
    updated = _day2(committed["dev"], prod_plus_node["dev"])
    disks = {f"akiba-dev0{n}-akiba-dev0{n}-{d}" for n in (1, 2) for d in ("boot", "osd0", "osd1")}
    assert updated == {**{disk: ["monHost"] for disk in disks}, "akiba-dev01": ["xslt"], "akiba-dev02": ["xslt"]}


def test_adding_a_dev_ceph_node_changes_no_existing_vm(committed: dict[str, Plan], tmp_path: Path) -> None:
    root = _stack_dir(tmp_path, {"dev": _add_node("dev", 1, "akiba-dev03", "192.168.20.13", "03")})
    dev = _plan(root, "dev", committed["prod"])
    # dev's own Ceph runs inside its VMs; their disks live on prod's, whose monitors did not change.
    assert _day2(committed["dev"], dev) == {}
    added = {r.name for r in dev.resources if r.type == DYNAMIC} - {
        r.name for r in committed["dev"].resources if r.type == DYNAMIC
    }
    assert added == {"akiba-dev03", *(f"akiba-dev03-akiba-dev03-{d}" for d in ("boot", "osd0", "osd1"))}
