"""A table of config mistakes: each is rejected before any resource, with its key path,
what was expected and what was found; several mistakes are reported together."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from stacks.problems import ConfigError
from stacks.spec import SECRET_KEYS
from tests.conftest import ROOT, config_values, edited, parse

Edit = Callable[[dict[str, Any]], None]


def _set(path: list[str | int], value: Any) -> Edit:
    def edit(cfg: dict[str, Any]) -> None:
        target: Any = cfg
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


def _delete(key: str) -> Edit:
    return lambda cfg: cfg.pop(key)


def _copy(src: list[str | int], dst: list[str | int]) -> Edit:
    def edit(cfg: dict[str, Any]) -> None:
        value: Any = cfg
        for part in src:
            value = value[part]
        _set(dst, value)(cfg)

    return edit


def _all_workers(cfg: dict[str, Any]) -> None:
    for node in cfg["akiba:nodes"]:
        node["role"] = "worker"


N = "akiba:nodes"
CASES: list[tuple[str, str, Edit, str, str]] = [
    # (id, stack, edit, key path in the message, words in the message)
    ("unknown-top-level-key", "prod", _set(["akiba:nodez"], "[]"), "akiba:nodez", "did you mean 'nodes'"),
    ("nested-typo", "prod", _set([N, 0, "gpuz"], []), "akiba:nodes[0].gpuz", "did you mean 'gpus'"),
    ("wrong-type", "prod", _set([N, 1, "ip"], 12), "akiba:nodes[1].ip", "found 12"),
    (
        "unknown-gpu-model",
        "prod",
        _set([N, 3, "gpus", 0, "model"], "gtx-1090"),
        "akiba:nodes[3].gpus[0].model",
        "'gtx-1090'",
    ),
    (
        "duplicate-hostname",
        "prod",
        _copy([N, 1, "hostname"], [N, 2, "hostname"]),
        "akiba:nodes[2].hostname",
        "also at akiba:nodes[1].hostname",
    ),
    (
        "duplicate-mac",
        "prod",
        _copy([N, 0, "nics", 0, "mac"], [N, 1, "nics", 0, "mac"]),
        "akiba:nodes[1].nics[0].mac",
        "a MAC address not used elsewhere",
    ),
    (
        "duplicate-ip",
        "prod",
        _copy([N, 0, "ip"], [N, 2, "ip"]),
        "akiba:nodes[2].ip",
        "an IP address not used elsewhere",
    ),
    (
        "bad-mac",
        "dev",
        _set([N, 0, "nics", 1, "mac"], "52:54:00:zz:01:02"),
        "akiba:nodes[0].nics[1].mac",
        "a MAC address like",
    ),
    (
        "pod-cidr-overlaps-lan",
        "prod",
        _set(["akiba:cluster", "podCidr"], "192.168.0.0/16"),
        "akiba:cluster.podCidr",
        "does not overlap akiba:network.officeLan",
    ),
    (
        "vpc-overlaps-services",
        "prod",
        _set(["akiba:burst", "vpcCidr"], "10.96.0.0/16"),
        "akiba:burst.vpcCidr",
        "does not overlap akiba:cluster.serviceCidr",
    ),
    (
        "cidr-host-bits",
        "dev",
        _set(["akiba:network", "officeLan"], "192.168.20.7/24"),
        "akiba:network.officeLan",
        "no host bits",
    ),
    (
        "ip-outside-lan",
        "prod",
        _set([N, 1, "ip"], "10.1.2.3"),
        "akiba:nodes[1].ip",
        "inside the office LAN 192.168.10.0/24",
    ),
    (
        "plaintext-secret",
        "prod",
        _set(["akiba:maasApiKey"], "abc:def:ghi"),
        "akiba:maasApiKey",
        "found a plaintext value",
    ),
    (
        "plaintext-nested-secret",
        "prod",
        _set([N, 4, "power", "password"], "hunter2"),
        "akiba:nodes[4].power.password",
        "no secret inside a structured value",
    ),
    (
        "missing-secret",
        "prod",
        _delete("akiba:maasApiKey"),
        "akiba:maasApiKey",
        "pulumi config set --secret --stack prod akiba:maasApiKey",
    ),
    ("too-many-gpus", "prod", _set([N, 0, "gpus"], [{"model": "gtx-1080"}] * 9), "akiba:nodes[0].gpus", "at most 8"),
    (
        "mixed-gpu-models",
        "prod",
        _set([N, 0, "gpus", 1, "model"], "gtx-970"),
        "akiba:nodes[0].gpus",
        "GPUs of one model per node",
    ),
    (
        "duplicate-gpu-pci",
        "prod",
        _copy([N, 0, "gpus", 0, "pci"], [N, 0, "gpus", 1, "pci"]),
        "akiba:nodes[0].gpus[1].pci",
        "PCI address",
    ),
    (
        "boot-disk-for-ceph",
        "prod",
        _copy([N, 0, "disks", "boot"], [N, 0, "disks", "ceph", 0]),
        "akiba:nodes[0].disks.ceph[0]",
        "other than the boot disk",
    ),
    (
        "unstable-disk-path",
        "prod",
        _set([N, 0, "disks", "ceph", 1], "/dev/sdb"),
        "akiba:nodes[0].disks.ceph[1]",
        "/dev/disk/by-id/",
    ),
    (
        "undeclared-hypervisor",
        "dev",
        _set([N, 0, "power", "hypervisor"], "desk02"),
        "akiba:nodes[0].power.hypervisor",
        "declared in akiba:hypervisors (desk01)",
    ),
    ("no-controller", "prod", _all_workers, "akiba:nodes", "at least one node with role 'controller'"),
    (
        "amt-without-address",
        "prod",
        lambda c: c[N][4]["power"].pop("address"),
        "akiba:nodes[4].power.address",
        "required",
    ),
    ("missing-section", "dev", _delete("akiba:maas"), "akiba:maas", "required"),
    (
        "zone-of-other-region",
        "prod",
        _set(["akiba:burst", "zones", 1], "us-east-1a"),
        "akiba:burst.zones[1]",
        "a zone of ap-northeast-1",
    ),
    (
        "pc-without-hardware",
        "prod",
        lambda c: c[N][1].pop("hardware"),
        "akiba:nodes[1].hardware",
        "the PC's hardware floor, like {cpus: 8, memoryGib: 62}",
    ),
    (
        "vm-with-hardware",
        "dev",
        _set([N, 0, "hardware"], {"cpus": 8, "memoryGib": 32}),
        "akiba:nodes[0].hardware",
        "no hardware for a VM (it is power.vcpus and power.memoryMib)",
    ),
    (
        "gpu-pci-not-function-0",
        "dev",
        _set([N, 1, "gpus", 0, "pci"], "0000:02:00.1"),
        "akiba:nodes[1].gpus[0].pci",
        "the GPU's function 0 (0000:02:00.0)",
    ),
    (
        "gpu-slot-on-two-vms",
        "dev",
        _copy([N, 0, "gpus", 0, "pci"], [N, 1, "gpus", 0, "pci"]),
        "akiba:nodes[1].gpus[0].pci",
        "a GPU slot of hypervisor desk01 not used elsewhere",
    ),
    (
        "duplicate-uid",
        "prod",
        _copy(["akiba:engineers", 0, "uid"], ["akiba:engineers", 1, "uid"]),
        "akiba:engineers[1].uid",
        "a uid not used elsewhere",
    ),
    # Whatever must be unique across the stack, where one entry is at fault (collisions that
    # name two entries: tests/test_config_uniqueness.py).
    (
        "bmc-on-the-lans-broadcast",
        "prod",
        _set([N, 4, "power", "address"], "192.168.10.255"),
        "akiba:nodes[4].power.address",
        "a host address of the office LAN 192.168.10.0/24, not its first or last",
    ),
    (
        "maas-inside-the-service-network",
        "prod",
        _set(["akiba:maas", "url"], "http://10.96.0.10:5240/MAAS"),
        "akiba:maas.url",
        "an address outside akiba:cluster.serviceCidr (10.96.0.0/12)",
    ),
    (
        "office-public-address-on-the-lan",
        "dev",
        _set(["akiba:burst", "siteLink", "officePublicIp"], "192.168.20.200"),
        "akiba:burst.siteLink.officePublicIp",
        "the office's public address, outside the office LAN",
    ),
    (
        "pod-cidr-overlaps-services",
        "prod",
        _set(["akiba:cluster", "podCidr"], "10.96.0.0/16"),
        "akiba:cluster.serviceCidr",
        "does not overlap akiba:cluster.podCidr",
    ),
    (
        "registry-mirror-port-not-the-ingress",
        "prod",
        _set(["akiba:registry", "mirror"], "registry.akiba.lan:32049"),
        "akiba:registry.mirror",
        "registry.akiba.lan:30443: the registry is served on the ingress's https node port",
    ),
    (
        "ingress-port-moved-without-the-registry",
        "dev",
        _set(["akiba:apps", "ingressHttpsPort"], 31443),
        "akiba:registry.mirror",
        "registry.akiba-dev.lan:31443",
    ),
    (
        "ceph-disk-twice-on-a-host",
        "prod",
        _copy([N, 2, "disks", "ceph", 0], [N, 2, "disks", "ceph", 3]),
        "akiba:nodes[2].disks.ceph[3]",
        "a disk not listed twice",
    ),
    (
        "multicast-mac",
        "prod",
        _set([N, 0, "nics", 0, "mac"], "01:00:5e:00:00:01"),
        "akiba:nodes[0].nics[0].mac",
        "a unicast MAC address",
    ),
    (
        "vm-gpu-without-its-slot",
        "dev",
        lambda c: c[N][0]["gpus"][0].pop("pci"),
        "akiba:nodes[0].gpus[0].pci",
        "the GPU's PCI slot on hypervisor desk01",
    ),
    # A credential inside a URL in plain config (it would be published).
    (
        "maas-url-with-a-password",
        "prod",
        _set(["akiba:maas", "url"], "http://admin:hunter2@192.168.10.2:5240/MAAS"),
        "akiba:maas.url",
        "a URL without a password in it",
    ),
    (
        "hypervisor-uri-with-a-password",
        "dev",
        _set(["akiba:hypervisors", 0, "uri"], "qemu+ssh://virsh:hunter2@192.168.10.5/system"),
        "akiba:hypervisors[0].uri",
        "a URL without a password in it",
    ),
    (
        "url-with-a-password-anywhere",
        "prod",
        _set(["akiba:apps", "apps", 0, "purpose"], "demo: https://demo:hunter2@icachan.example/"),
        "akiba:apps.apps[0].purpose",
        "a URL without a password in it",
    ),
    (
        "upstream-with-credentials",
        "prod",
        _set(["akiba:registry", "upstreams", 0], "bot:hunter2@docker.io"),
        "akiba:registry.upstreams[0]",
        "no scheme, user, port or path",
    ),
    # What a component would have refused with a traceback.
    (
        "reserved-login",
        "prod",
        _set(["akiba:engineers", 2, "name"], "root"),
        "akiba:engineers[2].name",
        "a login name the system does not own",
    ),
    (
        "login-with-underscore",
        "prod",
        _set(["akiba:engineers", 2, "name"], "ha_ruka"),
        "akiba:engineers[2].name",
        "a login name that is also a Kubernetes name",
    ),
    (
        "uid-above-the-home-range",
        "prod",
        _set(["akiba:engineers", 3, "uid"], 60000),
        "akiba:engineers[3].uid",
        "less than or equal to 59999",
    ),
    (
        "gid-of-the-docker-group",
        "prod",
        _set(["akiba:engineers", 1, "gid"], 2375),
        "akiba:engineers[1].gid",
        "the home containers' docker group",
    ),
    (
        "ssh-key-of-another-type",
        "prod",
        _set(
            ["akiba:engineers", 0, "sshKeys", 0],
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIMRQ/v7pQd5TgNMmtlQd+Hl1lsCse9gBpYuuodA5nLua tarui@akiba",
        ),
        "akiba:engineers[0].sshKeys[0]",
        "key data does not hold a ssh-rsa key",
    ),
    (
        "upstream-with-a-path",
        "prod",
        _set(["akiba:registry", "upstreams", 1], "ghcr.io/akiba"),
        "akiba:registry.upstreams[1]",
        "a registry host as image references name it",
    ),
    (
        "app-name-starts-with-a-digit",
        "prod",
        _set(["akiba:apps", "apps", 0, "name"], "1cachan"),
        "akiba:apps.apps[0].name",
        "starts with a letter",
    ),
    ("vpc-too-small", "prod", _set(["akiba:burst", "vpcCidr"], "10.60.0.0/26"), "akiba:burst.vpcCidr", "/16 to /24"),
    (
        "too-many-zones",
        "prod",
        _set(["akiba:burst", "zones"], [f"ap-northeast-1{z}" for z in "abcdefghijklmnop"]),
        "akiba:burst.zones",
        "at most 15 zones",
    ),
    (
        "tunnel-without-two-ends",
        "prod",
        _set(["akiba:burst", "siteLink", "tunnelCidr"], "10.255.255.0/32"),
        "akiba:burst.siteLink.tunnelCidr",
        "/30 or larger",
    ),
    # What only a later checker, kubeadm, MAAS, AWS or the API server would have found.
    (
        "kubernetes-too-old",
        "prod",
        _set(["akiba:cluster", "kubernetesVersion"], "1.30.9"),
        "akiba:cluster.kubernetesVersion",
        "a Kubernetes release 1.31.x to 1.37.x",
    ),
    (
        "kubernetes-too-new",
        "dev",
        _set(["akiba:cluster", "kubernetesVersion"], "1.38.0"),
        "akiba:cluster.kubernetesVersion",
        "a Kubernetes release 1.31.x to 1.37.x",
    ),
    (
        "jammy-lacks-idmapped-cephfs",
        "prod",
        _set(["akiba:maas", "distroSeries"], "jammy"),
        "akiba:maas.distroSeries",
        "idmapped mounts of CephFS (Linux 6.7 or later); jammy's GA kernel is 5.15; found 'jammy'",
    ),
    (
        "unknown-distro-series",
        "dev",
        _set(["akiba:maas", "distroSeries"], "focal"),
        "akiba:maas.distroSeries",
        "expected 'noble'",
    ),
    (
        "kernel-of-another-series",
        "prod",
        _set(["akiba:maas", "hweKernel"], "hwe-22.04"),
        "akiba:maas.hweKernel",
        "a kernel of noble (24.04), like hwe-24.04",
    ),
    (
        "dns-domain-not-a-dns-name",
        "prod",
        _set(["akiba:cluster", "dnsDomain"], "Cluster.Local"),
        "akiba:cluster.dnsDomain",
        "a lowercase DNS name",
    ),
    (
        "cron-hour-out-of-range",
        "prod",
        _set(["akiba:databases", "refreshSchedule"], "0 25 * * *"),
        "akiba:databases.refreshSchedule",
        "a cron schedule of five fields",
    ),
    (
        "benchmark-results-on-a-block-class",
        "dev",
        _set(["akiba:gpuBenchmark", "storageClass"], "akiba-rbd"),
        "akiba:gpuBenchmark.storageClass",
        "'akiba-cephfs', the platform's ReadWriteMany class",
    ),
    (
        "app-asks-more-gpus-than-a-node-has",
        "prod",
        _set(["akiba:apps", "apps", 0, "gpus"], 5),
        "akiba:apps.apps[0].gpus",
        "at most 2, the most GPUs one node has (akiba:nodes[0])",
    ),
    (
        "cluster-name-too-long-for-iam",
        "prod",
        _set(["akiba:cluster", "name"], "a" * 50),
        "akiba:cluster.name",
        "at most 45 characters with burst enabled",
    ),
]


# Field errors and cross-field errors mixed: all must come out of one run.
MIXED = {
    "unknown-gpu-model",
    "duplicate-mac",
    "pod-cidr-overlaps-lan",
    "plaintext-secret",
    "unstable-disk-path",
    "nested-typo",
}


def _problems(stack: str, edit: Edit) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(edited(stack, edit))
    return caught.value


@pytest.mark.parametrize(("stack", "edit", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mistake_is_rejected_with_its_key_path(stack: str, edit: Edit, path: str, words: str) -> None:
    err = _problems(stack, edit)
    lines = [line for line in str(err).splitlines() if line.startswith(f"  - {path}: ")]
    assert lines, f"no problem at {path} in:\n{err}"
    assert any(words in line for line in lines), f"{words!r} not in:\n{err}"
    assert str(err).startswith(f"Pulumi.{stack}.yaml: ")


def test_table_has_at_least_fifteen_distinct_mistakes() -> None:
    assert len({c[0] for c in CASES}) >= 15


def test_several_mistakes_are_reported_together() -> None:
    chosen = [c for c in CASES if c[1] == "prod" and c[0] in MIXED]

    def many(cfg: dict[str, Any]) -> None:
        for case in chosen:
            case[2](cfg)

    err = _problems("prod", many)
    for case in chosen:
        assert f"  - {case[3]}: " in str(err), f"{case[0]} missing from:\n{err}"
    assert len(chosen) == len(MIXED)


def test_the_real_stacks_are_valid() -> None:
    for stack in ("prod", "dev"):
        spec = parse(edited(stack, lambda cfg: None))
        assert spec.nodes and spec.controllers


def test_cli_prints_problems_without_a_traceback(tmp_path: Any) -> None:
    cfg = config_values("prod")
    cfg["akiba:nodes"][3]["gpus"][0]["model"] = "gtx-1090"
    cfg["akiba:cluster"]["podCidr"] = "192.168.10.0/25"
    doc = {
        "config": {k: ({"secure": "v1:x"} if k in {f"akiba:{s}" for s in SECRET_KEYS} else v) for k, v in cfg.items()}
    }
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(doc))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.plan",
            "plan",
            "--stack",
            "broken",
            "--stack-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    # The bad model also mixes models on that node: three problems, all listed.
    assert "Pulumi.broken.yaml: 3 problem(s)" in res.stderr
    assert "akiba:nodes[3].gpus[0].model" in res.stderr and "akiba:cluster.podCidr" in res.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written for an invalid config"


def test_jammy_is_refused_once_for_its_kernel() -> None:
    """jammy with the stack's noble kernel: one problem, the series and why (no second one
    sending the reader to pick a jammy kernel)."""
    err = _problems("prod", _set(["akiba:maas", "distroSeries"], "jammy"))
    assert [p.path for p in err.problems] == ["akiba:maas.distroSeries"]
    assert "Linux 6.7" in str(err) and "hostUsers: false" in str(err)


def test_an_app_image_may_carry_its_tag_and_digest() -> None:
    """`name:tag@sha256:...` pins what runs by digest while people read the tag (README, Known
    limits: engineers' registry accounts can overwrite tags); a bare name is still refused."""
    digest = "sha256:" + "a" * 64

    def pin(value: str) -> Callable[[dict[str, Any]], None]:
        def edit(cfg: dict[str, Any]) -> None:
            cfg["akiba:apps"]["apps"][0]["image"] = value

        return edit

    image = "registry.akiba.lan:30443/akiba/icachan:2026.11.0"
    assert parse(edited("prod", pin(f"{image}@{digest}"))).apps.apps[0].image == f"{image}@{digest}"
    with pytest.raises(ConfigError, match=r"akiba:apps\.apps\[0\]\.image"):
        parse(edited("prod", pin("registry.akiba.lan:30443/akiba/icachan")))


def test_an_ed25519_key_off_the_curve_is_refused_at_its_key_path() -> None:
    """sshd parses such a line, but no private key has it: the engineer could never log in (and
    their kubeconfig could not be sealed to it). This one was in the stack file until issue 13."""
    off_curve = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJKH50WdUVtMvZkfOqJgrKmawWZv4LjkqhGr2eWXvjIR yuta@akiba"

    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:engineers"][1]["sshKeys"] = [off_curve]

    with pytest.raises(ConfigError, match=r"akiba:engineers\[1\]\.sshKeys\[0\].*not a point of the curve"):
        parse(edited("prod", edit))


@pytest.mark.parametrize("login", ["akiba-consumer", "akiba-admin", "akiba-push"])
def test_a_login_cannot_be_one_of_the_platforms_identities(login: str) -> None:
    """The Kubernetes user is the login: akiba-consumer would take the consumer's cluster-wide
    read, akiba-admin (prod's deployer, <cluster>-admin) would be taken for that engineer."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:engineers"][3]["name"] = login

    with pytest.raises(ConfigError, match=r"akiba:engineers\[3\]\.name: .*platform's identities"):
        parse(edited("prod", edit))


def test_the_deployers_name_follows_the_cluster_name() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:cluster"]["name"] = "lab"
        cfg["akiba:engineers"][0]["name"] = "lab-admin"

    with pytest.raises(ConfigError, match=r"akiba:engineers\[0\]\.name: .*lab-admin"):
        parse(edited("dev", edit))
