"""GPU plumbing, the mission-control dashboard and the ML web apps, as planned."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.monitoring.gpu_dashboard import CEPH_METRICS, DCGM_COUNTERS, KSM_METRICS, gpu_dashboard
from tests.conftest import STACKS, config_values
from tools.plan.runner import Plan

METRIC = re.compile(r"\b(DCGM_FI_[A-Z_]+|kube_[a-z_]+|ceph_[a-z_]+|ALERTS)\b")


def _chart(plan: Plan, name: str) -> dict[str, Any]:
    return next(r.raw_inputs for r in plan.by_type("kubernetes:helm.sh/v4:Chart") if r.name == name)


def test_every_panel_queries_an_exported_metric() -> None:
    exported = {c[0] for c in DCGM_COUNTERS} | set(KSM_METRICS) | set(CEPH_METRICS) | {"ALERTS"}
    dashboard = json.loads(json.dumps(gpu_dashboard(0.25)))
    titles = {p["title"] for p in dashboard["panels"]}
    assert {
        "GPU utilisation",
        "GPU memory used",
        "Power draw",
        "Temperature",
        "Free GPUs",
        "Burst nodes running",
        "Burst cost per hour",
    } <= titles
    for panel in dashboard["panels"]:
        names = {m for t in panel["targets"] for m in METRIC.findall(t["expr"])}
        assert names, panel["title"]
        assert names <= exported, (panel["title"], names - exported)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_and_exporter_are_provisioned(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    maps = {r.name: r.raw_inputs for r in plan.by_type("kubernetes:core/v1:ConfigMap")}
    dashboard = json.loads(maps["dashboard-gpus"]["data"]["akiba-gpus.json"])
    assert maps["dashboard-gpus"]["metadata"]["labels"]["grafana_dashboard"] == "1"
    cost = next(p for p in dashboard["panels"] if p["title"] == "Burst cost per hour")
    assert cost["targets"][0]["expr"].endswith("* 0.25")
    dcgm = _chart(plan, "dcgm-exporter")
    assert dcgm["version"] == "4.8.2" and dcgm["values"]["arguments"] == ["-f", "/etc/dcgm-exporter/akiba-counters.csv"]
    csv = maps["dcgm-counters"]["data"]["counters.csv"]
    assert {line.split(",")[0] for line in csv.splitlines()} == {c[0] for c in DCGM_COUNTERS}
    ksm = _chart(plan, "kube-prometheus-stack")["values"]["kube-state-metrics"]
    assert ksm["metricLabelsAllowlist"] == ["nodes=[akiba.io/node-kind,akiba.io/gpu-model]"]
    assert plan.outputs["dashboardUrl"].endswith(":30080/d/akiba-gpus")


@pytest.mark.parametrize("stack", STACKS)
def test_pod_network_and_gpu_plugin(plans: dict[str, Plan], stack: str) -> None:
    flannel = _chart(plans[stack], "flannel")
    assert flannel["values"]["podCidr"] == config_values(stack)["akiba:cluster"]["podCidr"]
    # The underlay MTU (flannel subtracts VXLAN's 50 itself): both stacks have burst nodes, whose
    # VXLAN packets cross the WireGuard tunnel (1420) rather than only the bond (1500).
    assert flannel["values"]["flannel"] == {"backend": "vxlan", "mtu": 1420}
    plugin = _chart(plans[stack], "nvidia-device-plugin")
    assert plugin["version"] == "0.20.0" and plugin["values"]["gfd"] == {"enabled": True}


@pytest.mark.parametrize("stack", STACKS)
def test_ml_apps(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    domain = config_values(stack)["akiba:apps"]["domain"]
    assert plan.outputs["apps"] == {n: f"http://{n}.{domain}:30080" for n in ("icachan", "micancnn", "tacocnn")}
    deployments = {r.name: r.raw_inputs for r in plan.by_type("kubernetes:apps/v1:Deployment")}
    for app in config_values(stack)["akiba:apps"]["apps"]:
        name, gpus = app["name"], app.get("gpus", 0)
        pod = deployments[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["resources"]["limits"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
        # Guaranteed: what it asks for is what it may use.
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert container["resources"]["limits"]["cpu"] == app.get("cpu", "2")
        assert ("tolerations" in pod) is bool(gpus)
        assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(container)
    ingresses = {r.name: r.raw_inputs for r in plan.by_type("kubernetes:networking.k8s.io/v1:Ingress")}
    assert ingresses["icachan"]["spec"]["rules"][0]["host"] == f"icachan.{domain}"
    assert ingresses["icachan"]["spec"]["ingressClassName"] == "traefik"


@pytest.mark.parametrize("stack", STACKS)
def test_home_container_on_every_gpu_node(plans: dict[str, Plan], stack: str) -> None:
    daemonsets = {r.name: r.raw_inputs for r in plans[stack].by_type("kubernetes:apps/v1:DaemonSet")}
    ds = daemonsets["home"]
    prepull = daemonsets["ml-image-prepull"]["spec"]["template"]["spec"]
    assert prepull["initContainers"][0]["image"] == ds["spec"]["template"]["spec"]["containers"][0]["image"]
    assert prepull["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    # Office GPU nodes only: burst nodes are for Jobs.
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": "akiba.io/node-kind", "operator": "In", "values": ["baremetal", "vm"]}]
    home, dind = pod["containers"]
    # The image's USER is unprivileged; sshd and the accounts step start as root (tools/plan/cluster/start.py).
    (accounts_step,) = pod["initContainers"]
    for container in (home, accounts_step):
        assert container["securityContext"]["runAsUser"] == 0
        assert container["securityContext"]["runAsNonRoot"] is False
    assert accounts_step["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert home["ports"] == [{"name": "ssh", "containerPort": 2222, "hostPort": 2222}]
    assert "nvidia.com/gpu" not in home["resources"]["limits"], "interactive use must not reserve GPUs"
    privileged = [c["name"] for c in pod["containers"] if c.get("securityContext", {}).get("privileged")]
    assert privileged == ["dind"] and dind["name"] == "dind"
    engineers = [e["name"] for e in config_values(stack)["akiba:engineers"]]
    mounts = {m["mountPath"] for m in home["volumeMounts"]}
    assert {f"/home/{e}" for e in engineers} <= mounts
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {f"home-{e}" for e in engineers}
    assert home["image"].startswith(config_values(stack)["akiba:registry"]["mirror"] + "/akiba/ml-runtime:")
    accounts = next(
        r.raw_inputs for r in plans[stack].by_type("kubernetes:core/v1:ConfigMap") if r.name == "home-accounts"
    )
    sshd = accounts["data"]["sshd_config"]
    assert "PasswordAuthentication no" in sshd and "PermitRootLogin no" in sshd and "Port 2222" in sshd


@pytest.mark.parametrize("stack", STACKS)
def test_registry_serves_private_images_and_one_cache_per_upstream(plans: dict[str, Plan], stack: str) -> None:
    registry = config_values(stack)["akiba:registry"]
    ingress = next(
        r.raw_inputs for r in plans[stack].by_type("kubernetes:networking.k8s.io/v1:Ingress") if r.name == "registry"
    )
    paths = {p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {"/v2": "registry", **{f"/{u}/": "cache-" + u.replace(".", "-") for u in registry["upstreams"]}}
    assert ingress["spec"]["tls"][0]["secretName"] == "registry-tls"
    claims = {
        r.name for r in plans[stack].by_type("kubernetes:core/v1:PersistentVolumeClaim") if r.name.endswith("-data")
    }
    assert claims == {f"{name}-data" for name in paths.values()}
    out = plans[stack].outputs
    assert out["registry"]["host"] == registry["mirror"] and out["registryPushPassword"] == "[secret]"
