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
