"""Whatever must be unique across the whole stack is: the names the entries become (URNs,
machines, hosts, RBD images, pools), addresses, ports, disks and GPU slots. A collision is
refused in the spec naming both entries' key paths; one that slipped past would still fail the
offline plan the way the engine fails it. Also: the stack file read as strictly as Pulumi reads
it (duplicate keys), and no credential inside a URL in config or outputs."""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pulumi
import pytest
import yaml

from stacks import names, outputs, rules
from stacks.problems import ConfigError
from stacks.types import KUBERNETES_MINORS
from tests.conftest import ROOT, STACKS, config_values, edited, parse
from tools.plan.mocks import DuplicateUrnError
from tools.plan.runner import Plan, run
from tools.plan.stackfile import StackFile, StackFileError, read_stack_file
from tools.plan.strict_yaml import DuplicateKeyError, StrictSafeLoader

Edit = Callable[[dict[str, Any]], None]
N, APPS, ENG = "akiba:nodes", "akiba:apps", "akiba:engineers"


def _set(path: list[str | int], value: Any) -> Edit:
    def edit(cfg: dict[str, Any]) -> None:
        target: Any = cfg
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


def _get(cfg: dict[str, Any], path: list[str | int]) -> Any:
    value: Any = cfg
    for part in path:
        value = value[part]
    return value


def _copy(src: list[str | int], dst: list[str | int]) -> Edit:
    return lambda cfg: _set(dst, _get(cfg, src))(cfg)


def _append(path: list[str | int], value: Any) -> Edit:
    return lambda cfg: _get(cfg, path).append(value)


def _both(*edits: Edit) -> Edit:
    def edit(cfg: dict[str, Any]) -> None:
        for e in edits:
            e(cfg)

    return edit


def _lines(stack: str, edit: Edit, path: str) -> list[str]:
    """The problem lines at `path`."""
    with pytest.raises(ConfigError) as caught:
        parse(edited(stack, edit))
    lines = [line for line in str(caught.value).splitlines() if line.startswith(f"  - {path}: ")]
    assert lines, f"no problem at {path} in:\n{caught.value}"
    return lines


# (id, stack, edit, the later entry's key path, the earlier entry's key path, words)
COLLISIONS: list[tuple[str, str, Edit, str, str, str]] = [
    # (a) names the entries become
    (
        "hostnames-differ-in-case",
        "prod",
        _set([N, 2, "hostname"], "AKIBA02"),
        "akiba:nodes[2].hostname",
        "akiba:nodes[1].hostname",
        "'akiba02'",
    ),
    (
        "vm-named-like-a-node",
        "prod",
        _set([N, 5, "power", "domain"], "akiba01"),
        "akiba:nodes[5].power.domain",
        "akiba:nodes[0].hostname",
        "the machine",
    ),
    (
        "one-domain-on-two-hypervisors",
        "dev",
        _both(
            _append(["akiba:hypervisors"], {"name": "desk02", "uri": "qemu+ssh://virsh@192.168.10.6/system"}),
            _set([N, 1, "power", "hypervisor"], "desk02"),
            _set([N, 1, "power", "domain"], "akiba-dev01"),
        ),
        "akiba:nodes[1].power.domain",
        "akiba:nodes[0].power.domain",
        "akiba:vm:LibvirtVm",
    ),
    (
        "vm-named-like-another-vms-disk",
        "dev",
        _set([N, 1, "power", "domain"], "akiba-dev01-akiba-dev01-boot"),
        "akiba:nodes[1].power.domain",
        "akiba:nodes[0].disks.boot",
        "'akiba-dev01-akiba-dev01-boot'",
    ),
    (
        "vm-disk-image-on-two-vms",
        "dev",
        _copy([N, 0, "disks", "ceph", 0], [N, 1, "disks", "ceph", 0]),
        "akiba:nodes[1].disks.ceph[0]",
        "akiba:nodes[0].disks.ceph[0]",
        "the RBD image in the VM pool 'akiba-dev01-osd0'",
    ),
    (
        "two-apps-one-name",
        "prod",
        _copy([APPS, "apps", 0, "name"], [APPS, "apps", 2, "name"]),
        "akiba:apps.apps[2].name",
        "akiba:apps.apps[0].name",
        "akiba:apps:MlApp",
    ),
    (
        "app-named-like-grafana",
        "prod",
        _set([APPS, "apps", 1, "name"], "grafana"),
        "akiba:apps.apps[1].name",
        "akiba:apps.domain",
        "the ingress host 'grafana.akiba.lan'",
    ),
    (
        "app-named-like-the-registry",
        "prod",
        _set([APPS, "apps", 1, "name"], "registry"),
        "akiba:apps.apps[1].name",
        "akiba:registry.mirror",
        "the ingress host 'registry.akiba.lan'",
    ),
    (
        "engineers-differ-by-a-sanitized-character",
        "prod",
        _both(_set([ENG, 0, "name"], "ta-rui"), _set([ENG, 1, "name"], "ta_rui")),
        "akiba:engineers[1].name",
        "akiba:engineers[0].name",
        "'home-ta-rui'",
    ),
    (
        "two-engineers-one-name",
        "prod",
        _copy([ENG, 0, "name"], [ENG, 3, "name"]),
        "akiba:engineers[3].name",
        "akiba:engineers[0].name",
        "an engineer name not used elsewhere",
    ),
    (
        "upstream-twice",
        "prod",
        _copy(["akiba:registry", "upstreams", 0], ["akiba:registry", "upstreams", 3]),
        "akiba:registry.upstreams[3]",
        "akiba:registry.upstreams[0]",
        "'cache-docker-io'",
    ),
    (
        "upstreams-differ-by-a-sanitized-character",
        "prod",
        _both(
            _set(["akiba:registry", "upstreams", 0], "a-b.example"),
            _set(["akiba:registry", "upstreams", 1], "a.b-example"),
        ),
        "akiba:registry.upstreams[1]",
        "akiba:registry.upstreams[0]",
        "'cache-a-b-example'",
    ),
    (
        "block-pool-is-the-vm-pool",
        "prod",
        _set(["akiba:storage", "blockPool"], "vm-disks"),
        "akiba:storage.vmPool",
        "akiba:storage.blockPool",
        "CephBlockPool 'cephblockpool-vm-disks'",
    ),
    (
        "block-pool-is-the-filesystems",
        "prod",
        _set(["akiba:storage", "blockPool"], "homes-metadata"),
        "akiba:storage.filesystem",
        "akiba:storage.blockPool",
        "the Ceph pool 'homes-metadata'",
    ),
    (
        "zone-twice",
        "prod",
        _copy(["akiba:burst", "zones", 0], ["akiba:burst", "zones", 2]),
        "akiba:burst.zones[2]",
        "akiba:burst.zones[0]",
        "aws:ec2/subnet:Subnet 'burst-ap-northeast-1a'",
    ),
    (
        "instance-type-twice",
        "prod",
        _copy(["akiba:burst", "instanceTypes", 0], ["akiba:burst", "instanceTypes", 1]),
        "akiba:burst.instanceTypes[1]",
        "akiba:burst.instanceTypes[0]",
        "the instance type",
    ),
    (
        "hypervisor-twice",
        "prod",
        _append(["akiba:hypervisors"], {"name": "desk01", "uri": "qemu+ssh://virsh@192.168.10.6/system"}),
        "akiba:hypervisors[1].name",
        "akiba:hypervisors[0].name",
        "a hypervisor name not used elsewhere",
    ),
    # (b) addresses, ports, disks, GPU slots, MACs: unique across the whole stack
    (
        "node-on-the-gateway",
        "prod",
        _set([N, 3, "ip"], "192.168.10.1"),
        "akiba:nodes[3].ip",
        "akiba:network.gateway",
        "an IP address not used elsewhere",
    ),
    (
        "node-on-maas",
        "prod",
        _set([N, 1, "ip"], "192.168.10.2"),
        "akiba:nodes[1].ip",
        "akiba:maas.url",
        "an IP address not used elsewhere",
    ),
    (
        "bmc-on-a-node",
        "prod",
        _copy([N, 0, "ip"], [N, 4, "power", "address"]),
        "akiba:nodes[4].power.address",
        "akiba:nodes[0].ip",
        "an IP address not used elsewhere",
    ),
    (
        "hypervisor-on-the-gateway",
        "prod",
        _set(["akiba:hypervisors", 0, "uri"], "qemu+ssh://virsh@192.168.10.1/system"),
        "akiba:hypervisors[0].uri",
        "akiba:network.gateway",
        "an IP address not used elsewhere",
    ),
    (
        "two-hypervisors-one-host",
        "prod",
        _append(["akiba:hypervisors"], {"name": "desk02", "uri": "qemu+ssh://root@192.168.10.5/system"}),
        "akiba:hypervisors[1].uri",
        "akiba:hypervisors[0].uri",
        "an IP address not used elsewhere",
    ),
    (
        "resolver-on-a-node",
        "prod",
        _set(["akiba:network", "dnsServers"], ["192.168.10.1", "192.168.10.13"]),
        "akiba:nodes[2].ip",
        "akiba:network.dnsServers[1]",
        "an IP address not used elsewhere",
    ),
    (
        "node-ports-shared",
        "prod",
        _set(["akiba:storage", "nfsNodePort"], 30080),
        "akiba:storage.nfsNodePort",
        "akiba:apps.ingressHttpPort",
        "a node port not used elsewhere",
    ),
    (
        "ceph-disk-on-two-hosts",
        "prod",
        _copy([N, 0, "disks", "ceph", 2], [N, 3, "disks", "ceph", 4]),
        "akiba:nodes[3].disks.ceph[4]",
        "akiba:nodes[0].disks.ceph[2]",
        "a disk of one host only",
    ),
    (
        "gpu-slot-of-the-host-node-to-a-vm",
        "prod",
        _both(
            _set(["akiba:hypervisors", 0, "uri"], "qemu+ssh://virsh@192.168.10.11/system"),
            _set([N, 5, "gpus"], [{"model": "gtx-1080", "pci": "0000:02:00.0"}]),
        ),
        "akiba:nodes[5].gpus[0].pci",
        "akiba:nodes[0].gpus[1].pci",
        "a GPU slot of hypervisor desk01 not used elsewhere",
    ),
    (
        "mac-of-a-pc-on-a-vm",
        "prod",
        _copy([N, 2, "nics", 1, "mac"], [N, 5, "nics", 2, "mac"]),
        "akiba:nodes[5].nics[2].mac",
        "akiba:nodes[2].nics[1].mac",
        "a MAC address not used elsewhere",
    ),
    (
        "mac-written-differently",
        "dev",
        _set([N, 1, "nics", 0, "mac"], "52-54-00-20-01-01"),
        "akiba:nodes[1].nics[0].mac",
        "akiba:nodes[0].nics[0].mac",
        "a MAC address not used elsewhere",
    ),
    (
        "nic-name-twice-in-a-node",
        "prod",
        _copy([N, 1, "nics", 0, "name"], [N, 1, "nics", 2, "name"]),
        "akiba:nodes[1].nics[2].name",
        "akiba:nodes[1].nics[0].name",
        "a NIC name not used by another NIC of this node",
    ),
    (
        "group-id-of-another-engineer",
        "prod",
        _set([ENG, 2, "gid"], 2001),
        "akiba:engineers[2].gid",
        "akiba:engineers[0].uid",
        "a group id not used elsewhere",
    ),
]


@pytest.mark.parametrize(
    ("stack", "edit", "path", "other", "words"), [c[1:] for c in COLLISIONS], ids=[c[0] for c in COLLISIONS]
)
def test_collision_names_both_entries(stack: str, edit: Edit, path: str, other: str, words: str) -> None:
    lines = _lines(stack, edit, path)
    assert any(f"also at {other}" in line and words in line for line in lines), "\n".join(lines)


def test_each_class_has_cases() -> None:
    assert len(COLLISIONS) >= 25


def test_a_collision_is_reported_once_per_pair() -> None:
    """Two apps of one name clash as a component, three objects and a host: one line."""
    lines = _lines("prod", _copy([APPS, "apps", 0, "name"], [APPS, "apps", 1, "name"]), "akiba:apps.apps[1].name")
    assert len(lines) == 1 and "also at akiba:apps.apps[0].name" in lines[0], lines


def test_a_vm_named_after_its_own_node_is_that_node() -> None:
    spec = parse(edited("dev", lambda cfg: None))
    assert all(n.hostname == n.power.domain for n in spec.nodes if n.power.type == "virsh")


# --- names the spec lists are the names the program declares --------------------------------


def _engine_types(plan: Plan) -> dict[str, str]:
    """Recorded URN -> its type chain as the engine writes URNs (the parent's whole chain)."""
    by_urn = {r.urn: r for r in plan.resources}
    chains: dict[str, str] = {}

    def chain(urn: str) -> str:
        if urn not in chains:
            res = by_urn[urn]
            parent = chain(res.parent) if res.parent in by_urn else ""
            chains[urn] = f"{parent}${res.type}" if parent else res.type
        return chains[urn]

    return {urn: chain(urn) for urn in by_urn}


@pytest.mark.parametrize("stack", STACKS)
def test_every_listed_resource_name_is_declared(plans: dict[str, Plan], stack: str) -> None:
    """stacks.names mirrors how components name resources: if a component renames one, this
    fails instead of the collision rule silently checking a name nobody uses."""
    plan = plans[stack]
    assert plan.resources
    chains = _engine_types(plan)
    declared = {(chains[r.urn], r.name) for r in plan.resources}
    raw = {k.removeprefix("akiba:"): v for k, v in config_values(stack).items()}
    listed = [n for n in names.names(raw) if ":" in n.space]  # the URN spaces
    assert {n.space for n in listed} >= {names.NODE, names.APP, names.HOME, names.CACHE, names.BLOCK_POOL}
    missing = [(n.space, n.name) for n in listed if (n.space, n.name) not in declared]
    assert not missing, f"listed by stacks.names but not declared: {missing}"


# --- the offline plan refuses a duplicate URN as the engine does ----------------------------


class _Part(pulumi.ComponentResource):
    def __init__(self, typ: str, name: str, child: str) -> None:
        super().__init__(typ, name)
        pulumi.ComponentResource("test:index:Child", child, opts=pulumi.ResourceOptions(parent=self))


def _offline(program: Callable[[], None]) -> Plan:
    return run(StackFile("s", ROOT / "Pulumi.s.yaml", {}, []), program, project="p")


def test_engine_message_for_a_duplicate_urn() -> None:
    def program() -> None:
        _Part("test:index:Part", "one", "same")
        _Part("test:index:Part", "two", "same")  # same parent type, same name: one URN

    with pytest.raises(DuplicateUrnError) as caught:
        _offline(program)
    assert str(caught.value) == (
        "Duplicate resource URN 'urn:pulumi:s::p::test:index:Part$test:index:Child::same'; try giving it a unique name"
    )
    _quiet_failed_registrations()


def test_urns_the_engine_tells_apart_pass() -> None:
    """The engine's URN holds the parent's whole type chain: leaves under mids of one type under
    tops of different types are two resources (the mock's own make_urn would see one)."""

    def program() -> None:
        for typ in ("test:index:A", "test:index:B"):
            top = pulumi.ComponentResource(typ, "top")
            mid = pulumi.ComponentResource("test:index:Mid", "mid", opts=pulumi.ResourceOptions(parent=top))
            pulumi.ComponentResource("test:index:Leaf", "leaf", opts=pulumi.ResourceOptions(parent=mid))

    plan = _offline(program)
    assert len([r for r in plan.resources if r.type == "test:index:Leaf"]) == 2


def test_a_collision_past_the_spec_fails_the_offline_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the name rule switched off, two apps of one name reach the engine's check."""
    monkeypatch.setattr(rules, "RULES", tuple(r for r in rules.RULES if r is not names.names_unique))
    sf = edited("prod", _copy([APPS, "apps", 0, "name"], [APPS, "apps", 1, "name"]))
    with pytest.raises(DuplicateUrnError) as caught:
        run(sf)
    assert str(caught.value) == (
        "Duplicate resource URN 'urn:pulumi:prod::akiba::akiba:apps:MlApp::icachan'; try giving it a unique name"
    )
    _quiet_failed_registrations()


def _quiet_failed_registrations() -> None:
    """The failed run leaves each refused resource's output futures holding the error; asyncio
    would print each as "never retrieved" when they are collected, at interpreter exit."""
    loop = asyncio.get_event_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not isinstance(context.get("exception"), DuplicateUrnError):
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


# --- (c) the stack file, read as strictly as the Pulumi CLI reads it ------------------------

DUPLICATED = textwrap.dedent(
    """\
    config:
      akiba:cluster:
        name: akiba
      akiba:nodes:
        - hostname: akiba01
          ip: 192.168.10.11
          ip: 192.168.10.12
      akiba:cluster:
        name: other
    """
)


def test_a_key_given_twice_is_refused_with_line_and_key_path() -> None:
    with pytest.raises(DuplicateKeyError) as caught:
        yaml.load(DUPLICATED, Loader=StrictSafeLoader)  # noqa: S506 (a SafeLoader)
    assert caught.value.duplicates == [
        'line 7: mapping key "ip" already defined at line 6 (akiba:nodes[0].ip)',
        'line 8: mapping key "akiba:cluster" already defined at line 2 (akiba:cluster)',
    ]
    assert isinstance(caught.value, yaml.YAMLError)  # what a stack file reader already catches


def test_keys_alike_only_in_value_or_in_other_mappings_pass() -> None:
    doc = "a: {x: 1}\nb: {x: 1}\nc: &anchor {y: 2}\nd: *anchor\n'1': one\ne: [{x: 1}, {x: 2}]\n"
    assert yaml.load(doc, Loader=StrictSafeLoader)["d"] == {"y": 2}  # noqa: S506


def test_quoting_does_not_make_a_key_different() -> None:
    """yaml.v3 compares the keys' text: `ip` and `"ip"` are one key."""
    with pytest.raises(DuplicateKeyError):
        yaml.load('ip: 1\n"ip": 2\n', Loader=StrictSafeLoader)  # noqa: S506


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_have_no_key_twice(stack: str) -> None:
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert yaml.load(text, Loader=StrictSafeLoader)["config"]  # noqa: S506


def test_the_stack_file_reader_refuses_a_key_given_twice(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dup.yaml").write_text(DUPLICATED)
    with pytest.raises(StackFileError, match=r'mapping key "ip" already defined at line 6 \(akiba:nodes\[0\]\.ip\)'):
        read_stack_file(tmp_path, "dup")


# --- (d) no credential in a URL, in config or in outputs -------------------------------------


def test_a_secret_url_may_hold_its_credentials() -> None:
    assert rules.credentials_in_urls({"goldenDbSourceUrl": "postgresql://reader:pw@db.example/prod"}) == []


def test_an_output_with_a_password_in_a_url_is_refused() -> None:
    assert outputs.without_credentials("x", {"a": ["http://host/"]}) == {"a": ["http://host/"]}
    with pytest.raises(ValueError, match=r"output maasUrl\.a\[1\]: a URL with user:password@"):
        outputs.without_credentials("maasUrl", {"a": ["http://host/", "http://admin:pw@host/"]})


@pytest.mark.parametrize("stack", STACKS)
def test_no_public_output_holds_a_url_credential(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources and plan.outputs
    public = {k: v for k, v in plan.raw_outputs.items() if k not in plan.secret_outputs}
    assert not re.search(r"://[^/@\s\"]*:[^/@\s\"]*@", repr(public))


# --- (f) the Kubernetes versions the spec accepts are the ones the checkers know ------------


def test_supported_minors_have_kubernetes_validate_schemas() -> None:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    known = {int(m.group(1)) for p in base.iterdir() if (m := re.fullmatch(r"v1\.(\d+)\.0-local-strict", p.name))}
    assert set(KUBERNETES_MINORS) <= known
    assert KUBERNETES_MINORS[-1] == max(known), "kubernetes-validate knows a newer minor: consider supporting it"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["akiba:databases", "refreshSchedule"], "*/15 6-18 * * mon-fri"),
        (["akiba:databases", "refreshSchedule"], "0 0 1 jan,jul *"),
        (["akiba:databases", "refreshSchedule"], "@daily"),
        (["akiba:maas", "hweKernel"], "ga-24.04"),
        (["akiba:maas", "hweKernel"], "hwe-24.04-edge"),
        (["akiba:cluster", "dnsDomain"], "k8s.akiba.internal"),
        (["akiba:burst", "siteLink", "tunnelCidr"], "10.255.255.0/30"),
    ],
)
def test_values_the_new_rules_must_not_refuse(path: list[str | int], value: Any) -> None:
    assert parse(edited("prod", _set(path, value))).nodes


@pytest.mark.parametrize("version", ["1.31.0", "1.36.4", "1.37.1"])
def test_supported_versions_pass(version: str) -> None:
    spec = parse(edited("prod", _set(["akiba:cluster", "kubernetesVersion"], version)))
    assert spec.cluster.kubernetes_version == version


def test_make_plan_reports_a_past_the_spec_collision_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make plan` prints the engine's message and exits 2, as for a config error: no traceback."""
    from tools.plan.__main__ import plan_command

    monkeypatch.setattr(rules, "RULES", tuple(r for r in rules.RULES if r is not names.names_unique))
    sf = edited("prod", _copy([APPS, "apps", 0, "name"], [APPS, "apps", 1, "name"]))
    monkeypatch.setattr("tools.plan.__main__.read_stack_file", lambda *_a, **_k: sf)
    assert plan_command("prod", tmp_path / "out", check=False, stack_dir=tmp_path) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "Duplicate resource URN 'urn:pulumi:prod::akiba::akiba:apps:MlApp::icachan'; try giving it a unique name"
    ]
    _quiet_failed_registrations()
