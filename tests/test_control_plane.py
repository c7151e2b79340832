"""A control plane that loses a node: three controllers with stacked etcd behind kube-vip's VIP
in prod, one in dev; scheduled etcd snapshots on CephFS."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster import etcd_backup, kube_vip
from components.cluster.bootstrap import KUBEADM_CONFIG, ClusterJoin, NodeBootstrap, render_user_data
from stacks.problems import ConfigError
from tests.conftest import config_values, edited, parse
from tests.user_data import files as _files
from tests.user_data import only_line as _at
from tests.user_data import script_lines as _script
from tools.plan import checkers
from tools.plan.artifacts import CLOUD_CONFIG, user_data_of
from tools.plan.cluster import addons
from tools.plan.runner import Plan

N, C = "akiba:nodes", "akiba:cluster"
PROD_VIP = "192.168.10.10"
Edit = Callable[[dict[str, Any]], None]


# --- the spec ---------------------------------------------------------------------------------


def _roles(*controllers: int) -> Edit:
    def edit(cfg: dict[str, Any]) -> None:
        for i, node in enumerate(cfg[N]):
            if node["power"]["type"] != "virsh":
                node["role"] = "controller" if i in controllers else "worker"

    return edit


def _problems(stack: str, edit: Edit) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(edited(stack, edit))
    return [line.removeprefix("  - ") for line in str(caught.value).splitlines()[1:]]


@pytest.mark.parametrize("controllers", [(0, 1), (0, 1, 2, 3)])
def test_an_even_number_of_controllers_is_refused_for_etcd_quorum(controllers: tuple[int, ...]) -> None:
    problems = _problems("prod", _roles(*controllers))
    assert problems == [p for p in problems if p.startswith(f"{N}: ")], problems
    assert len(problems) == 1 and "odd number of controllers" in problems[0] and "majority" in problems[0]
    assert f"found {len(controllers)} controllers" in problems[0]


def test_more_than_one_controller_needs_the_vip() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        del cfg[C]["apiVip"]

    (problem,) = _problems("prod", edit)
    assert problem.startswith(f"{C}.apiVip: ") and "virtual IP" in problem and "unset" in problem


@pytest.mark.parametrize(
    ("vip", "clash"),
    [("192.168.10.13", f"{N}[2].ip"), ("192.168.10.1", "akiba:network.gateway"), ("192.168.10.2", "akiba:maas.url")],
)
def test_the_vip_is_no_machines_address(vip: str, clash: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg[C]["apiVip"] = vip

    problems = _problems("prod", edit)
    assert any(f"(also at {clash})" in p for p in problems), problems


def test_the_vip_is_on_the_office_lan() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg[C]["apiVip"] = "192.168.77.10"

    (problem,) = _problems("prod", edit)
    assert problem.startswith(f"{C}.apiVip: ") and "inside the office LAN" in problem


def test_prod_has_three_controllers_and_the_vip_dev_one_without() -> None:
    prod, dev = parse(edited("prod", lambda cfg: None)), parse(edited("dev", lambda cfg: None))
    assert [n.hostname for n in prod.controllers] == ["akiba01", "akiba02", "akiba03"]
    assert all(n.gpus for n in prod.controllers), "controllers keep their GPUs"
    assert prod.api_endpoint == f"https://{PROD_VIP}:6443"
    assert len(dev.controllers) == 1 and dev.cluster.api_vip is None
    assert dev.api_endpoint == f"https://{dev.controllers[0].ip}:6443"
    assert config_values("prod")["akiba:backups"]["etcdKeep"] == prod.backups.etcd_keep


# --- rendered node configuration --------------------------------------------------------------

JOIN = ClusterJoin(
    "akiba",
    "1.36.4",
    PROD_VIP,
    6443,
    "abcdef.0123456789abcdef",
    "sha256:00ff",
    "10.244.0.0/16",
    "10.96.0.0/12",
    "cluster.local",
    api_vip=PROD_VIP,
    controller_names=("192.168.10.11", "akiba01", "192.168.10.12", "akiba02", "192.168.10.13", "akiba03"),
)


def _node(role: Any, hostname: str = "akiba01", ip: str = "192.168.10.11", join: ClusterJoin = JOIN) -> str:
    return render_user_data(
        NodeBootstrap(
            role=role,
            kind="baremetal",
            cluster=join,
            registry_mirror="registry.akiba.lan:30443",
            registry_upstreams=("docker.io",),
            registry_authorization="Basic eA==",
            hostname=hostname,
            ip=ip,
            pki={"ca.crt": "C", "ca.key": "K"} if role != "worker" else None,
        )
    )


def test_the_first_controller_inits_on_the_vip_with_every_controller_in_the_certificate() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(_files(_node("controller-init"))[KUBEADM_CONFIG])}
    cluster = docs["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == f"{PROD_VIP}:6443"
    sans = cluster["apiServer"]["certSANs"]
    assert {PROD_VIP, "akiba01", "akiba02", "akiba03", "192.168.10.12", "192.168.10.13"} <= set(sans)
    assert len(sans) == len(set(sans))
    assert docs["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == "192.168.10.11"


def test_joining_controllers_use_the_vip_and_advertise_their_own_address() -> None:
    (join,) = yaml.safe_load_all(_files(_node("controller-join", "akiba02", "192.168.10.12"))[KUBEADM_CONFIG])
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == f"{PROD_VIP}:6443"
    assert join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] == "192.168.10.12"
    (worker,) = yaml.safe_load_all(_files(_node("worker", "akiba04", "192.168.10.14"))[KUBEADM_CONFIG])
    assert worker["discovery"]["bootstrapToken"]["apiServerEndpoint"] == f"{PROD_VIP}:6443"


def test_kube_vip_runs_on_controllers_only_with_super_admin_during_the_first_init() -> None:
    init = _script(_node("controller-init"))
    sed, kubeadm_init, install = (
        _at(init, "super-admin.conf"),
        _at(init, r"^kubeadm init --config"),
        _at(init, f"install .*{kube_vip.STAGED} {kube_vip.MANIFEST}"),
    )
    assert sed < kubeadm_init < install, "super-admin.conf during init, admin.conf after"
    assert init[sed].endswith(f"{kube_vip.STAGED} > {kube_vip.MANIFEST}")
    joiner = _script(_node("controller-join", "akiba02", "192.168.10.12"))
    assert not [line for line in joiner if "super-admin" in line]
    assert _at(joiner, r"^kubeadm join --config") < _at(joiner, f"install .*{kube_vip.MANIFEST}")
    worker = _node("worker", "akiba04", "192.168.10.14")
    assert kube_vip.STAGED not in _files(worker) and "kube-vip" not in worker
    single = dataclasses.replace(JOIN, api_host="192.168.20.11", api_vip=None, controller_names=())
    assert "kube-vip" not in _node("controller-init", "akiba-dev01", "192.168.20.11", single)


def test_the_kube_vip_manifest_is_a_valid_pod_announcing_the_vip(tmp_path: Path) -> None:
    text = _files(_node("controller-init"))[kube_vip.STAGED]
    path = tmp_path / "kube-vip.yaml"
    path.write_text(text)
    assert checkers.kubernetes([path], "1.36.4") == []
    pod = yaml.safe_load(text)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["address"] == PROD_VIP and env["vip_arp"] == "true" and env["cp_enable"] == "true"
    assert env["vip_interface"] == "bond0" and env["port"] == "6443"
    assert pod["spec"]["hostNetwork"] is True
    assert re.fullmatch(r"ghcr\.io/kube-vip/kube-vip:v\d+\.\d+\.\d+", pod["spec"]["containers"][0]["image"])
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == kube_vip.ADMIN_CONF


# --- the etcd snapshots -----------------------------------------------------------------------


def _cronjob(plan: Plan) -> dict[str, Any]:
    (job,) = [
        r.raw_inputs
        for r in plan.by_type("kubernetes:batch/v1:CronJob")
        if r.raw_inputs["metadata"]["name"] == etcd_backup.NAME
    ]
    return job


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_etcd_is_snapshotted_on_a_controller_to_the_cephfs_claim(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources
    job = _cronjob(plan)
    spec = parse(edited(stack, lambda cfg: None)).backups
    assert job["metadata"]["namespace"] == etcd_backup.NAMESPACE
    assert job["spec"]["schedule"] == spec.etcd_schedule and job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert pod["hostNetwork"] is True
    (save,) = pod["initContainers"]
    assert save["image"] == etcd_backup.ETCD_IMAGE and save["command"][:1] == ["etcdctl"]
    assert "snapshot" in save["command"] and "save" in save["command"]
    # Only the client side of etcd's TLS, file by file: never the directory with the CA's key.
    host_paths = {v["hostPath"]["path"]: v["hostPath"]["type"] for v in pod["volumes"] if "hostPath" in v}
    pki = "/etc/kubernetes/pki/etcd"
    assert host_paths == {f"{pki}/{f}": "File" for f in ("ca.crt", "healthcheck-client.crt", "healthcheck-client.key")}
    mounted = {m["mountPath"] for m in save["volumeMounts"] if m.get("readOnly")}
    assert set(host_paths) <= mounted and not [p for p in host_paths if p.endswith("ca.key")]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["snapshots"]["persistentVolumeClaim"]["claimName"] == "etcd-snapshots"
    for c in [save, *pod["containers"]]:
        assert c["securityContext"]["runAsUser"] == 0 and not c["securityContext"].get("privileged")
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["resources"]["requests"] and c["resources"]["limits"]
    (claim,) = [
        r.raw_inputs
        for r in plan.by_type("kubernetes:core/v1:PersistentVolumeClaim")
        if r.raw_inputs["metadata"]["name"] == "etcd-snapshots"
    ]
    assert claim["metadata"]["namespace"] == "akiba-backup"
    assert claim["spec"]["storageClassName"] == "akiba-cephfs" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    (ns,) = [r.raw_inputs for r in plan.by_type("kubernetes:core/v1:Namespace") if r.name == "akiba-backup"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_rotation_keeps_the_newest_snapshots(tmp_path: Path) -> None:
    """The rotate container's script, run by a real sh on a directory of snapshots."""
    keep = 3
    script = etcd_backup.pod_spec(keep)["containers"][0]["command"][2].replace(etcd_backup.MOUNT, str(tmp_path))
    old = [f"etcd-2026110{d}T000000Z-akiba0{d % 3 + 1}.db" for d in range(1, 6)]
    for name in old:
        (tmp_path / name).write_text(name)
    (tmp_path / "incoming.db").write_text("new")
    (tmp_path / "unrelated.txt").write_text("stays")
    out = subprocess.run(
        ["sh", "-c", script], env={"NODE_NAME": "akiba02", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    newest = [n for n in left if n.startswith("etcd-") and n.endswith("-akiba02.db") and n not in old]
    assert len(newest) == 1 and (tmp_path / newest[0]).read_text() == "new"
    assert left == sorted([*old[-(keep - 1) :], newest[0], "unrelated.txt"]), left
    assert f"{keep} snapshot(s) kept" in out.stdout


# --- the plan and the cluster check -----------------------------------------------------------


def test_prod_plan_api_endpoint_is_the_vip_and_kube_vip_runs_on_each_controller(plans: dict[str, Plan]) -> None:
    prod, dev = plans["prod"], plans["dev"]
    assert prod.resources and dev.resources
    assert prod.outputs["apiEndpoint"] == f"https://{PROD_VIP}:6443"
    assert sorted(n["hostname"] for n in prod.outputs["nodes"] if n["role"] == "controller") == [
        "akiba01",
        "akiba02",
        "akiba03",
    ]
    vips = addons.kube_vip(prod)
    assert sorted(w.name for w in vips) == ["kube-vip@akiba01", "kube-vip@akiba02", "kube-vip@akiba03"]
    assert all(w.host_network and w.containers[0].image == kube_vip.IMAGE for w in vips)
    assert addons.kube_vip(dev) == []
    dev_controller = next(n for n in dev.outputs["nodes"] if n["role"] == "controller")
    assert dev.outputs["apiEndpoint"] == f"https://{dev_controller['ip']}:6443"


def test_every_node_joins_through_the_vip(plans: dict[str, Plan]) -> None:
    endpoints = set()
    for r in plans["prod"].resources:
        text = user_data_of(r.type, r.raw_inputs)
        if text is None or KUBEADM_CONFIG not in text:
            continue
        doc = yaml.safe_load(text.removeprefix(CLOUD_CONFIG))
        files = {f["path"]: f["content"] for f in doc["write_files"] if not f.get("append")}
        for d in yaml.safe_load_all(files[KUBEADM_CONFIG]):
            if d["kind"] == "JoinConfiguration":
                endpoints.add(d["discovery"]["bootstrapToken"]["apiServerEndpoint"])
            if d["kind"] == "ClusterConfiguration":
                endpoints.add(d["controlPlaneEndpoint"])
    assert endpoints == {f"{PROD_VIP}:6443"}
