"""The cluster check, rule by rule: each fires on a plan the cluster could not run and stays
quiet on the one it could, through the same Plan objects `make plan` gives it."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster_fixtures import (
    REGISTRY,
    burst_group,
    chart,
    claim,
    container,
    deployment,
    gateway,
    hosts_toml,
    machine,
    node_basics,
    plan,
    resource,
    settings,
)
from tests.conftest import STACKS, stack_file
from tools.plan.__main__ import cluster_settings
from tools.plan.artifacts import REMOTE_COMMAND
from tools.plan.cluster import Problem, Report, check
from tools.plan.cluster.report import document
from tools.plan.cluster.report import write as report_file
from tools.plan.mocks import Recorded
from tools.plan.runner import Plan

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
TOLERATE_GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def problems(
    *resources: Recorded, failover: bool = False, rule: str | None = None, subject: str | None = None
) -> list[Problem]:
    p = plan(*resources)
    assert p.resources, "the synthetic plan is empty"
    found = check(p, settings(failover)).problems
    return [f for f in found if (rule is None or f.rule == rule) and (subject is None or f.subject == subject)]


def fleet(n: int = 3, **kwargs: Any) -> list[Recorded]:
    """n office nodes; the first runs `kubeadm init` (untainted, like the platform's controllers)."""
    init = {"control_plane": True, "taints": kwargs.get("taints", [])}
    return [machine(f"node{i}", f"10.0.0.{10 + i}", **(kwargs | init if i == 1 else kwargs)) for i in range(1, n + 1)]


def test_a_healthy_small_cluster_has_no_problems() -> None:
    assert problems(*fleet(), *node_basics(), deployment("web", replicas=2, strategy="RollingUpdate")) == []


def test_untolerated_taint_is_worded_like_the_scheduler() -> None:
    nodes = [*fleet(2, taints=[GPU_TAINT]), machine("cp", "10.0.0.9", control_plane=True)]
    found = problems(*nodes, *node_basics(), deployment("web"), rule="unschedulable")
    assert [f.message for f in found if f.subject == "Deployment apps/web"] == [
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 node(s) had untolerated taint {nvidia.com/gpu: present}."
    ]


def test_tolerated_taint_is_quiet() -> None:
    web = deployment("web", tolerations=[TOLERATE_GPU])
    assert problems(*fleet(2, taints=[GPU_TAINT]), *node_basics(), web, subject="Deployment apps/web") == []


def test_no_execute_taint_counts_too() -> None:
    taint = {"key": "dedicated", "value": "ceph", "effect": "NoExecute"}
    found = problems(*fleet(1, taints=[taint]), *node_basics(), deployment("web"), subject="Deployment apps/web")
    assert "untolerated taint {dedicated: ceph}" in found[0].message


def test_node_selector_and_required_affinity() -> None:
    nodes = fleet(2)
    selector = deployment("a", nodeSelector={"disk": "ssd"})
    term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    affinity = deployment(
        "b",
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}},
    )
    found = problems(*nodes, *node_basics(), selector, affinity, rule="unschedulable")
    assert {f.subject for f in found} == {"Deployment apps/a", "Deployment apps/b"}
    assert all("2 node(s) didn't match Pod's node affinity/selector" in f.message for f in found)
    labelled = fleet(2, labels={"disk": "ssd", "zone": "b"})
    assert problems(*labelled, *node_basics(), selector, affinity) == []


def test_gpus_are_counted_across_pods() -> None:
    gpu = container(resources={"limits": {"nvidia.com/gpu": "1"}})
    jobs = deployment("train", replicas=3, containers=[gpu])
    found = problems(*fleet(1, gpus=2), *node_basics(), jobs, rule="unschedulable")
    assert [f.message for f in found] == ["0/1 nodes are available: 1 Insufficient nvidia.com/gpu."]
    assert problems(*fleet(1, gpus=2), *node_basics(), deployment("train", replicas=2, containers=[gpu])) == []


def test_cpu_and_memory_are_summed_per_node() -> None:
    big = container(resources={"requests": {"cpu": "5", "memory": "1Gi"}})
    found = problems(
        *fleet(1, cpus=8), *node_basics(), deployment("a", containers=[big]), deployment("b", containers=[big])
    )
    assert [f.message for f in found if f.rule == "unschedulable"] == ["0/1 nodes are available: 1 Insufficient cpu."]


def test_host_port_conflicts() -> None:
    port = container(ports=[{"containerPort": 2222, "hostPort": 2222}])
    found = problems(*fleet(1), *node_basics(), deployment("a", containers=[port]), deployment("b", containers=[port]))
    assert [f.message for f in found if f.rule == "unschedulable"] == [
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    ]
    other = container(ports=[{"containerPort": 2223, "hostPort": 2223}])
    assert (
        problems(*fleet(1), *node_basics(), deployment("a", containers=[port]), deployment("b", containers=[other]))
        == []
    )


def _with_claim(name: str, replicas: int, strategy: str) -> Recorded:
    return deployment(
        name,
        replicas=replicas,
        strategy=strategy,
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
    )


@pytest.mark.parametrize(
    ("mode", "replicas", "strategy", "fires"),
    [
        ("ReadWriteOnce", 2, "Recreate", True),
        ("ReadWriteOnce", 1, "RollingUpdate", True),
        ("ReadWriteOnce", 1, "Recreate", False),
        ("ReadWriteMany", 3, "RollingUpdate", False),
    ],
)
def test_read_write_once_claims_on_several_nodes(mode: str, replicas: int, strategy: str, fires: bool) -> None:
    found = problems(
        *fleet(3), *node_basics(), claim("data", mode), _with_claim("db", replicas, strategy), rule="claim"
    )
    assert bool(found) == fires, found
    if fires:
        assert "Multi-Attach" in found[0].message


def test_a_claim_nobody_declares() -> None:
    found = problems(*fleet(1), *node_basics(), _with_claim("db", 1, "Recreate"), rule="claim")
    assert found and "no such PersistentVolumeClaim" in found[0].message


def test_a_platform_service_on_one_node_has_no_failover_in_prod() -> None:
    pinned = deployment("registry", nodeSelector={"kubernetes.io/hostname": "node1"})
    assert [f.rule for f in problems(*fleet(3), *node_basics(), pinned, failover=True)] == ["no-failover"]
    assert problems(*fleet(3), *node_basics(), pinned, failover=False) == []
    assert problems(*fleet(3), *node_basics(), deployment("registry"), failover=True) == []


BURST_LABELS = {"akiba.io/node-kind": "burst", "akiba.io/gpu-count": "1", "nvidia.com/gpu.present": "true"}


def test_a_pod_without_gpu_that_fits_only_burst_capacity() -> None:
    nodes = fleet(1, taints=[CP_TAINT])
    burst = burst_group(BURST_LABELS, [GPU_TAINT])
    stray = deployment("stray", tolerations=[TOLERATE_GPU])
    found = problems(*nodes, *burst, *node_basics(), stray, rule="burst-only")
    assert [f.subject for f in found] == ["Deployment apps/stray"]
    gpu = container(resources={"limits": {"nvidia.com/gpu": "1"}})
    trainer = deployment("train", tolerations=[TOLERATE_GPU], containers=[gpu])
    assert problems(*nodes, *burst, *node_basics(), trainer, rule="burst-only") == []


def test_a_pending_gpu_pod_scales_the_burst_group_up_to_its_maximum() -> None:
    gpu = container(resources={"limits": {"nvidia.com/gpu": "1"}})
    trainer = deployment("train", replicas=3, tolerations=[TOLERATE_GPU], containers=[gpu])
    burst = burst_group(BURST_LABELS, [GPU_TAINT], max_size=2)
    found = problems(*fleet(1), *burst, *node_basics(), trainer, rule="unschedulable")
    assert len(found) == 1 and "Insufficient nvidia.com/gpu" in found[0].message
    assert "pod didn't trigger scale-up: test-burst(g4dn.xlarge): the group is at its maximum size" in found[0].message


def test_the_autoscaler_model_must_match_what_burst_nodes_register() -> None:
    prefix = "k8s.io/cluster-autoscaler/node-template/"
    wrong = {f"{prefix}label/akiba.io/node-kind": "burst", f"{prefix}resources/nvidia.com/gpu": "1"}
    found = problems(
        *fleet(1), *burst_group(BURST_LABELS, [GPU_TAINT], tags=wrong), *node_basics(), rule="burst-template"
    )
    assert any("taints" in f.message for f in found)
    assert problems(*fleet(1), *burst_group(BURST_LABELS, [GPU_TAINT]), *node_basics(), rule="burst-template") == []


def test_gpu_nodes_offer_gpus_only_where_the_device_plugin_runs() -> None:
    plugin = chart("nvidia-device-plugin", "0.20.0", {"nodeSelector": {"gpu-vendor": "amd"}})
    found = problems(*fleet(1, gpus=2), chart("flannel", "v0.28.9", {}), plugin, rule="gpus-not-offered")
    assert [f.subject for f in found] == ["node1"]


def test_a_node_without_its_cni_pod_never_becomes_ready() -> None:
    cni = chart("flannel", "v0.28.9", {"flannel": {"tolerations": []}})
    dedicated = machine("ceph1", "10.0.0.20", taints=[{"key": "dedicated", "value": "ceph", "effect": "NoSchedule"}])
    found = problems(*fleet(1), dedicated, cni, chart("nvidia-device-plugin", "0.20.0", {}), rule="not-on-every-node")
    assert [f.subject for f in found] == ["DaemonSet kube-system/kube-flannel-ds"]
    assert "ceph1" in found[0].message


PRIVATE = f"{REGISTRY}/team/app:1.0"


@pytest.mark.parametrize(
    ("registries", "etc_hosts", "why"),
    [
        ({}, "self", "does not trust"),
        ({REGISTRY: hosts_toml(REGISTRY, auth=False)}, "self", "no credentials"),
        ({REGISTRY: hosts_toml(REGISTRY, ca=False)}, "self", "does not trust"),
        ({REGISTRY: hosts_toml(REGISTRY)}, None, "does not resolve"),
        ({REGISTRY: hosts_toml(REGISTRY)}, "192.0.2.1", "which is no node"),
    ],
)
def test_a_private_image_the_node_cannot_pull(registries: dict[str, str], etc_hosts: str | None, why: str) -> None:
    node = machine("node1", "10.0.0.11", registries=registries, etc_hosts=etc_hosts)
    found = problems(node, *node_basics(), deployment("app", containers=[container(image=PRIVATE)]), rule="pull")
    assert len(found) == 1 and why in found[0].message, found


def test_a_private_image_pulls_with_the_node_config_or_a_pull_secret() -> None:
    assert problems(*fleet(1), *node_basics(), deployment("app", containers=[container(image=PRIVATE)])) == []
    secret = resource(
        "kubernetes:core/v1:Secret",
        "pull",
        {
            "metadata": {"name": "pull", "namespace": "apps"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": json.dumps({"auths": {REGISTRY: {"auth": "eDp5"}}})},
        },
    )
    ca_only = hosts_toml(REGISTRY, mirror=False).replace('server = "', 'ca = "/etc/kubernetes/pki/ca.crt"\nserver = "')
    node = machine("node1", "10.0.0.11", registries={REGISTRY: ca_only})
    app = deployment("app", containers=[container(image=PRIVATE)], imagePullSecrets=[{"name": "pull"}])
    assert problems(node, *node_basics(), secret, app, rule="pull") == []


def test_a_configured_cache_that_cannot_work_is_reported() -> None:
    broken = {"docker.io": hosts_toml("docker.io", auth=False)}
    node = machine("node1", "10.0.0.11", registries=broken)
    found = problems(node, *node_basics(), deployment("web"), rule="cache-unused")
    assert found and "falls back to https://registry-1.docker.io" in found[0].message
    assert problems(*fleet(1), *node_basics(), deployment("web"), rule="cache-unused") == []


def _image(name: str, tag: str, dockerfile: str = "images/ml-runtime/Dockerfile", **args: str) -> Recorded:
    return resource(
        "docker-build:index:Image",
        name,
        {"tags": [f"{REGISTRY}/akiba/{name}:{tag}"], "dockerfile": {"location": dockerfile}, "buildArgs": args},
    )


def test_an_image_of_this_repository_the_plan_never_builds() -> None:
    app = deployment("prepull", containers=[container(image=f"{REGISTRY}/akiba/ml-runtime:1")])
    assert [f.rule for f in problems(*fleet(1), *node_basics(), app)] == ["not-built"]
    assert problems(*fleet(1), *node_basics(), app, _image("ml-runtime", "1")) == []


@pytest.mark.parametrize(
    ("security", "fires"),
    [
        # As the image's user or an engineer's: it logs in only that user and needs nothing more.
        ({}, None),
        ({"runAsUser": 2001, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}, None),
        ({"runAsUser": 0, "runAsNonRoot": True}, "runAsNonRoot is set but it would run as root"),
        ({"runAsUser": 0, "capabilities": {"drop": ["ALL"]}}, "sshd needs SETGID, SETUID, SYS_CHROOT"),
        ({"runAsUser": 0, "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID", "SYS_CHROOT"]}}, None),
    ],
)
def test_a_built_image_starts_as_the_user_its_entrypoint_needs(security: dict[str, Any], fires: str | None) -> None:
    sshd = container(image=f"{REGISTRY}/akiba/ml-runtime:1", command=["/usr/sbin/sshd", "-D"], securityContext=security)
    found = problems(
        *fleet(1), *node_basics(), deployment("home", containers=[sshd]), _image("ml-runtime", "1"), rule="start"
    )
    if fires is None:
        assert found == []
    else:
        assert len(found) == 1 and fires in found[0].message, found


def test_a_shell_that_reads_the_shadow_file_needs_root() -> None:
    merge = container(image=f"{REGISTRY}/akiba/ml-runtime:1", command=["bash", "-c", "cp /etc/shadow /merged/shadow"])
    found = problems(
        *fleet(1), *node_basics(), deployment("home", containers=[merge]), _image("ml-runtime", "1"), rule="start"
    )
    assert found and "/etc/shadow" in found[0].message


def test_a_chart_without_a_model_is_a_problem() -> None:
    found = problems(*fleet(1), *node_basics(), chart("mystery", "1.0.0", {}), rule="chart")
    assert found and "where its pods land is unknown" in found[0].message
    found = problems(*fleet(1), *node_basics(), chart("traefik", "99.0.0", {}), rule="chart")
    assert found and "a model of 41.3.0" in found[0].message


def test_hook_jobs_pulumi_skips_leave_a_pod_that_never_starts() -> None:
    stack = chart("kube-prometheus-stack", "88.5.3", {})
    found = problems(*fleet(1), *node_basics(), stack, rule="start")
    assert any("hook" in f.message for f in found)
    webhooks_off = {"prometheusOperator": {"admissionWebhooks": {"enabled": False}}}
    assert problems(*fleet(1), *node_basics(), chart("kube-prometheus-stack", "88.5.3", webhooks_off), rule="start")
    off = {"prometheusOperator": {"admissionWebhooks": {"enabled": False}, "tls": {"enabled": False}}}
    assert problems(*fleet(1), *node_basics(), chart("kube-prometheus-stack", "88.5.3", off), rule="start") == []


def test_volumes_need_their_csi_driver_running() -> None:
    sc = resource(
        "kubernetes:storage.k8s.io/v1:StorageClass",
        "rbd",
        {
            "metadata": {"name": "rbd", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rook-ceph.rbd.csi.ceph.com",
        },
    )
    user = _with_claim("db", 1, "Recreate")
    found = problems(*fleet(2), *node_basics(), sc, claim("data"), user, rule="storage")
    assert any("no controller of CSI driver rook-ceph.rbd.csi.ceph.com" in f.message for f in found)
    assert any("where that driver's node plugin does not run" in f.message for f in found)
    drivers = chart(
        "ceph-csi-drivers",
        "1.0.4",
        {"drivers": {"rbd": {"name": "rook-ceph.rbd.csi.ceph.com", "enabled": True}}},
        "rook-ceph",
    )
    assert problems(*fleet(2), *node_basics(), sc, claim("data"), user, drivers, rule="storage") == []


def test_a_node_without_a_hardware_floor_cannot_be_sized() -> None:
    node = machine("node1", "10.0.0.11")
    del node.raw_inputs["allocateParams"]["minCpuCount"]
    found = problems(node, *fleet(1), *node_basics(), rule="node")
    assert found and "CPU and memory are unknown" in found[0].message


@pytest.mark.parametrize(
    ("flannel_mtu", "tunnel_mtu", "fires"),
    [
        (None, 1420, "flannel.mtu is unset"),
        (1500, 1420, "larger than the WireGuard tunnel's 1420"),
        (1420, None, "wg0.conf sets no MTU"),
        (1420, 1420, None),
    ],
)
def test_the_pod_network_fits_the_path_to_burst_nodes(
    flannel_mtu: int | None, tunnel_mtu: int | None, fires: str | None
) -> None:
    values = {"flannel": {"mtu": flannel_mtu}} if flannel_mtu else {}
    nodes = fleet(2, mtu=1500)
    burst = burst_group(BURST_LABELS, [GPU_TAINT])
    found = problems(*nodes, *burst, gateway(tunnel_mtu), chart("flannel", "v0.28.9", values), rule="mtu")
    assert [f.message for f in found if fires and fires in f.message] or (fires is None and found == []), found


def test_the_pod_network_fits_the_office_bond() -> None:
    too_big = chart("flannel", "v0.28.9", {"flannel": {"mtu": 9000}})
    found = problems(*fleet(2, mtu=1500), too_big, rule="mtu")
    assert len(found) == 2 and "larger than node1's interface MTU 1500" in found[0].message
    assert problems(*fleet(2, mtu=1500), chart("flannel", "v0.28.9", {"flannel": {"mtu": 1500}}), rule="mtu") == []


# --- the real stacks ---------------------------------------------------------------------------


def _real(plans: dict[str, Plan], stack: str) -> Report:
    plan = plans[stack]
    assert plan.resources, f"{stack}: the recorded plan is empty"
    return check(plan, cluster_settings(stack_file(stack).config))


@pytest.mark.parametrize("stack", STACKS)
def test_both_stacks_run_as_planned(plans: dict[str, Plan], stack: str, tmp_path: Path) -> None:
    report = _real(plans, stack)
    assert report.problems == []
    labels = {p.workload.label: p for p in report.placements}
    # kubeadm's add-ons, the charts' and Rook's pods are all part of the picture.
    for name in ("Deployment kube-system/coredns", "DaemonSet kube-system/kube-proxy", "Deployment traefik/traefik"):
        assert labels[name].placed, name
    assert any(label.startswith("Ceph daemon rook-ceph/osd@") for label in labels)
    gpu_nodes = [n for n in report.nodes if n.gpus and not n.template]
    plugin = labels["DaemonSet nvidia-device-plugin/nvidia-device-plugin"]
    assert gpu_nodes and {n.name for n in gpu_nodes} <= {n.name for n in plugin.placed}
    # The table a reviewer reads, written where the plan writes its artifacts.
    text = report_file(report, tmp_path).read_text()
    assert "can land on" in text and "cluster check: 0 problem(s)" in text
    assert json.loads((tmp_path / "placement.json").read_text())["placements"]


def test_prod_platform_services_fail_over(plans: dict[str, Plan]) -> None:
    """Every platform service that asks for no GPU fits at least two office nodes in prod."""
    report = _real(plans, "prod")
    for p in report.placements:
        w = p.workload
        if w.replicas and not w.node_local and w.gpus == 0:
            assert len([n for n in p.candidates if not n.template]) >= 2, w.label


def _with_gpu_taint(r: Recorded) -> Recorded:
    """A node configuration that registers the node with the GPU taint, as every PC did before."""
    doc = yaml.safe_load(r.raw_inputs["stdin"].removeprefix("#cloud-config\n"))
    for f in doc["write_files"]:
        if f["path"] == "/etc/kubernetes/kubeadm.yaml":
            docs = list(yaml.safe_load_all(f["content"]))
            for d in docs:
                if "nodeRegistration" in d:
                    d["nodeRegistration"]["taints"] = [GPU_TAINT]
            f["content"] = yaml.safe_dump_all(docs)
    inputs = copy.deepcopy(r.raw_inputs)
    inputs["stdin"] = "#cloud-config\n" + yaml.safe_dump(doc)
    return dataclasses.replace(r, raw_inputs=inputs)


def test_the_old_gpu_taint_on_every_pc_is_caught_in_the_real_plan(plans: dict[str, Plan]) -> None:
    plan = plans["dev"]
    tainted = [_with_gpu_taint(r) if r.type == REMOTE_COMMAND else r for r in plan.resources]
    found = check(dataclasses.replace(plan, resources=tainted), cluster_settings(stack_file("dev").config)).problems
    coredns = [f.message for f in found if f.subject == "Deployment kube-system/coredns"]
    assert coredns and coredns[0].startswith(
        "2 pods: 0/2 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}."
    )


def test_a_one_per_node_rollout_needs_a_spare_node() -> None:
    spread = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    web = deployment("web", replicas=2, strategy="RollingUpdate", affinity=spread)
    web.raw_inputs["spec"]["template"]["metadata"] = {"labels": {"app": "web"}}
    found = problems(*fleet(2), *node_basics(), web, rule="rollout")
    assert found and "only 2 node(s) fit 3" in found[0].message
    assert problems(*fleet(3), *node_basics(), web, rule="rollout") == []
    no_surge = copy.deepcopy(web)
    no_surge.raw_inputs["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}}
    assert problems(*fleet(2), *node_basics(), no_surge, rule="rollout") == []


def test_ceph_daemons_keep_off_a_vm_that_boots_from_that_ceph() -> None:
    vm = machine("vm1", "10.0.0.30", labels={"akiba.io/boots-from-cluster-ceph": "true"})
    cluster = resource(
        "kubernetes:ceph.rook.io/v1:CephCluster",
        "ceph",
        {
            "metadata": {"name": "ceph", "namespace": "rook-ceph"},
            "spec": {"mon": {"count": 1}, "network": {"provider": "host"}},
        },
    )
    found = problems(*fleet(2), vm, *node_basics(), cluster, rule="ceph-on-itself")
    assert {f.subject for f in found} == {"Ceph daemon rook-ceph/mon", "Ceph daemon rook-ceph/mgr"}
    away = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "akiba.io/boots-from-cluster-ceph", "operator": "DoesNotExist"}]}
            ]
        }
    }
    placed = copy.deepcopy(cluster)
    placed.raw_inputs["spec"]["placement"] = {"all": {"nodeAffinity": away}}
    assert problems(*fleet(2), vm, *node_basics(), placed, rule="ceph-on-itself") == []


def test_every_node_gets_the_kubelet_configuration_kubeadm_init_stored() -> None:
    """A joining node's own KubeletConfiguration is ignored by kubeadm join: sizes come from init's."""
    joiner = machine("node2", "10.0.0.12")
    doc = yaml.safe_load(joiner.raw_inputs["deployParams"]["userData"].removeprefix("#cloud-config\n"))
    kubeadm = doc["write_files"][0]
    docs = list(yaml.safe_load_all(kubeadm["content"]))
    docs[1]["systemReserved"] = {"cpu": "6", "memory": "1Gi"}  # would leave 2 CPUs if it counted
    kubeadm["content"] = yaml.safe_dump_all(docs)
    joiner.raw_inputs["deployParams"]["userData"] = "#cloud-config\n" + yaml.safe_dump(doc)
    report = check(plan(*fleet(1), joiner, *node_basics()), settings())
    assert {n.name: float(n.capacity["cpu"]) for n in report.nodes} == {"node1": 7.5, "node2": 7.5}
    alone = check(plan(joiner, *node_basics()), settings()).problems
    assert [p.message for p in alone if p.rule == "node"] == ["no node runs `kubeadm init`: nothing would ever start"]


def test_images_teams_push_are_listed_not_failed() -> None:
    app = deployment("app", containers=[container(image=f"{REGISTRY}/team/app:1.0")])
    report = check(plan(*fleet(1), *node_basics(), app), settings())
    assert report.problems == [] and report.external == {f"{REGISTRY}/team/app": ["Deployment apps/app"]}


def test_the_same_plan_gives_the_same_answer_whatever_the_order(plans: dict[str, Plan]) -> None:
    plan_ = plans["dev"]
    shuffled = list(plan_.resources)
    random.Random(11).shuffle(shuffled)  # noqa: S311 (an order, not a secret)
    config = cluster_settings(stack_file("dev").config)
    first = document(check(plan_, config))
    again = document(check(dataclasses.replace(plan_, resources=shuffled), config))
    assert first == again and first["placements"]


def test_traefik_spread_over_nodes_updates_without_a_spare_one() -> None:
    spread = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    values: dict[str, Any] = {"deployment": {"replicas": 2}, "affinity": spread}
    found = problems(*fleet(2), *node_basics(), chart("traefik", "41.3.0", values, "traefik"), rule="rollout")
    assert found and found[0].subject == "Deployment traefik/traefik"
    values["updateStrategy"] = {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert problems(*fleet(2), *node_basics(), chart("traefik", "41.3.0", values, "traefik"), rule="rollout") == []


def test_a_node_whose_configuration_does_not_register_it_is_named() -> None:
    node = machine("node2", "10.0.0.12")
    node.raw_inputs["deployParams"]["userData"] = "#cloud-config\nwrite_files: []\n"
    found = problems(*fleet(1), node, *node_basics(), rule="node")
    assert [(f.subject, f.message) for f in found] == [
        ("MAAS deployment node2", "its configuration writes no /etc/kubernetes/kubeadm.yaml")
    ]


def test_a_node_nothing_configures_is_named() -> None:
    """A MAAS install alone (no converge command beside it) never joins the cluster."""
    laid_out = plan(*fleet(1), machine("node2", "10.0.0.12"), *node_basics())
    bare = [r for r in laid_out.resources if r.name != "node2-converge"]
    found = check(dataclasses.replace(laid_out, resources=bare), settings()).problems
    assert [(f.subject, f.message) for f in found if f.rule == "node"] == [
        ("MAAS deployment node2", "no configuration command (converge) in its node: it would stay bare")
    ]


def _local_service(target: str | int, namespace: str = "eng-a") -> Recorded:
    spec = {
        "type": "NodePort",
        "externalTrafficPolicy": "Local",
        "selector": {"app.kubernetes.io/name": "home"},
        "ports": [{"name": "ssh", "port": 22, "targetPort": target, "nodePort": 31001}],
    }
    meta = {"name": "ssh", "namespace": namespace}
    inputs = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}
    return resource("kubernetes:core/v1:Service", "ssh", inputs)


def _home(node_selector: dict[str, str] | None = None) -> Recorded:
    pod: dict[str, Any] = {"containers": [container("home", ports=[{"name": "ssh", "containerPort": 2222}])]}
    if node_selector:
        pod["nodeSelector"] = node_selector
    template = {"metadata": {"labels": {"app.kubernetes.io/name": "home"}}, "spec": pod}
    meta = {"name": "home", "namespace": "eng-a"}
    inputs = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta, "spec": {"template": template}}
    return resource("kubernetes:apps/v1:DaemonSet", "home", inputs)


@pytest.mark.parametrize(
    ("objects", "fires"),
    [
        ((_home(), _local_service("ssh")), None),
        ((_home(), _local_service(2222)), None),
        ((_home(), _local_service("sshd")), "targetPort 'sshd' is no port of its pods"),
        ((_home({"no": "such-node"}), _local_service("ssh")), "its port answers nowhere"),
        # Another namespace's pods are not its pods: nothing to judge.
        ((_home(), _local_service("sshd", namespace="eng-b")), None),
    ],
)
def test_a_local_node_port_reaches_its_own_pods(objects: tuple[Recorded, ...], fires: str | None) -> None:
    found = problems(*fleet(2), *node_basics(), *objects, rule="service")
    if fires is None:
        assert found == []
    else:
        assert len(found) == 1 and fires in found[0].message, found
