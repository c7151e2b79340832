"""GPU plumbing, the mission-control dashboard and the ML web apps, as planned."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.cluster.node_security import NVIDIA_TOOLKIT_SETTINGS
from components.monitoring.gpu_dashboard import CEPH_METRICS, DCGM_COUNTERS, KSM_METRICS, gpu_dashboard
from stacks.problems import ConfigError
from tests import pod_security
from tests.conftest import ROOT, STACKS, config_values, edited, parse
from tools.plan import references
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
    # The toolkit hands an exporter without CAP_SYS_ADMIN no GPU (NVIDIA_VISIBLE_DEVICES is ignored
    # for unprivileged containers): the capability is ours, not left to the chart's default.
    context = dcgm["values"]["securityContext"]
    assert context["capabilities"]["add"] == ["SYS_ADMIN"] and context["capabilities"]["drop"] == ["ALL"]
    assert context["allowPrivilegeEscalation"] is False
    assert ("accept-nvidia-visible-devices-envvar-when-unprivileged", "false") in NVIDIA_TOOLKIT_SETTINGS
    (namespace,) = [
        r.raw_inputs
        for r in plan.by_type("kubernetes:core/v1:Namespace")
        if r.raw_inputs["metadata"]["name"] == "monitoring"
    ]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
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


def _in(plan: Plan, typ: str, namespace: str, name: str) -> dict[str, Any]:
    (found,) = [
        r.raw_inputs
        for r in plan.by_type(typ)
        if r.raw_inputs["metadata"].get("namespace") == namespace and r.raw_inputs["metadata"]["name"] == name
    ]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_each_engineer_has_a_home_pod_of_their_own_on_every_gpu_node(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources
    engineers = config_values(stack)["akiba:engineers"]
    homes = [
        r.raw_inputs for r in plan.by_type("kubernetes:apps/v1:DaemonSet") if r.raw_inputs["metadata"]["name"] == "home"
    ]
    assert sorted(h["metadata"]["namespace"] for h in homes) == sorted(f"eng-{e['name']}" for e in engineers)
    prepull = _in(plan, "kubernetes:apps/v1:DaemonSet", "akiba-workloads", "ml-image-prepull")["spec"]["template"][
        "spec"
    ]
    for eng in engineers:
        login, ns = eng["name"], f"eng-{eng['name']}"
        gid = eng.get("gid", eng["uid"])
        pod = _in(plan, "kubernetes:apps/v1:DaemonSet", ns, "home")["spec"]["template"]["spec"]
        # Admitted by Pod Security baseline, which their namespace enforces.
        assert pod_security.baseline({"spec": pod, "metadata": {}}) == []
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"} == prepull["nodeSelector"]
        # Office GPU nodes only: burst nodes are for Jobs.
        (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert term["matchExpressions"] == [
            {"key": "akiba.io/node-kind", "operator": "In", "values": ["baremetal", "vm"]}
        ]
        # sshd as the engineer: no root, no capability, no escalation, no host namespace or path.
        assert pod["securityContext"] == {
            "runAsUser": eng["uid"],
            "runAsGroup": gid,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod["hostUsers"] is False and not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
        assert all("hostPath" not in v for v in pod["volumes"])
        for c in [*pod["initContainers"], *pod["containers"]]:
            ctx = c["securityContext"]
            assert not ctx.get("privileged") and ctx.get("runAsUser", eng["uid"]) == eng["uid"], c["name"]
        home, docker = pod["containers"]  # and their own rootless Docker, never the old privileged dind
        for c in (home, pod["initContainers"][0]):  # sshd and the accounts step keep nothing at all
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert docker["name"] == "docker" and docker["image"].endswith("-dind-rootless")
        # The Secrets (host key, kubeconfig, Docker TLS) without fsGroup, which would re-group the home.
        assert "fsGroup" not in pod["securityContext"]
        assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {
            "home-host-key",
            "kubeconfig",
            "docker-tls",
            "docker-tls-server",
            "registry",  # their registry account (components.registry.engineer_login)
        }
        assert home["image"] == prepull["initContainers"][0]["image"]
        assert home["image"].startswith(config_values(stack)["akiba:registry"]["mirror"] + "/akiba/ml-runtime:")
        assert home["ports"] == [{"name": "ssh", "containerPort": 2222}]
        # GPUs only through the scheduler: none requested here, none made visible.
        assert "nvidia.com/gpu" not in home["resources"]["limits"]
        assert not [e for e in home.get("env", []) if e["name"].startswith("NVIDIA_")]
        # An idle login on every node, times every engineer: next to nothing held back from Jobs.
        assert home["resources"]["requests"] == {"cpu": "25m", "memory": "64Mi"}
        assert docker["resources"]["requests"] == {"cpu": "25m", "memory": "128Mi"}
        # Only their own home and their own objects.
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claims == ["home"]
        assert {"name": "home", "mountPath": f"/home/{login}"} in home["volumeMounts"]
        kube = next(v for v in pod["volumes"] if v["name"] == "kubeconfig")
        assert kube["secret"]["secretName"] == "kubeconfig"
        config = _in(plan, "kubernetes:core/v1:ConfigMap", ns, "home-accounts")["data"]
        assert config["passwd"] == f"{login}:x:{eng['uid']}:{gid}::/home/{login}:/bin/bash\n"
        assert config["authorized_keys"] == "".join(" ".join(k.split()) + "\n" for k in eng["sshKeys"])
        sshd = config["sshd_config"]
        assert f"AllowUsers {login}\n" in sshd and "PasswordAuthentication no" in sshd and "Port 2222\n" in sshd
        (set_env,) = [line.split()[1:] for line in sshd.splitlines() if line.startswith("SetEnv ")]
        # Every session: their kubeconfig, their own Docker, the image akiba-gpu-shell starts.
        assert {"KUBECONFIG=/etc/akiba/kube/config", "DOCKER_HOST=tcp://127.0.0.1:2376"} <= set(set_env)
        assert f"AKIBA_ML_IMAGE={home['image']}" in set_env
        others = [e["name"] for e in engineers if e["name"] != login]
        assert not [o for o in others if o in "".join(config.values())]
        # Reached on every node at their own port, on that node's pod, with the client's address.
        service = _in(plan, "kubernetes:core/v1:Service", ns, "ssh")["spec"]
        assert service["type"] == "NodePort" and service["externalTrafficPolicy"] == "Local"
        (port,) = service["ports"]
        assert port["nodePort"] == eng.get("sshPort", 31000 + eng["uid"] % 1000) and port["targetPort"] == "ssh"
        assert service["selector"] == {"app.kubernetes.io/name": "home"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_engineer_has_a_host_key_of_their_own(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    keys = [r for r in plan.by_type("tls:index/privateKey:PrivateKey") if "HomeContainer" in r.urn]
    assert len(keys) == len(config_values(stack)["akiba:engineers"])
    assert all(k.raw_inputs["algorithm"] == "ED25519" for k in keys)
    secrets = [
        r for r in plan.by_type("kubernetes:core/v1:Secret") if r.raw_inputs["metadata"]["name"] == "home-host-key"
    ]
    assert sorted(s.raw_inputs["metadata"]["namespace"] for s in secrets) == sorted(
        f"eng-{e['name']}" for e in config_values(stack)["akiba:engineers"]
    )


def test_adding_an_engineer_touches_no_one_elses_objects(plans: dict[str, Plan]) -> None:
    """A new engineer's objects are new; every object in another engineer's namespace (their home
    pods, ConfigMap, host key, Service, claim) is exactly as before: no session restarts."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOl+A//5LFfTZpfE7f7fCgRJMx1vwhPES+k37g0FJiRB newcomer@laptop"

    def add(values: dict[str, Any]) -> None:
        values["akiba:engineers"].append({"name": "newcomer", "uid": 2950, "sshKeys": [key]})

    base, grown = plans["dev"], references.plan(edited("dev", add), ROOT)
    assert base.resources and grown.resources

    def engineers_objects(plan: Plan) -> dict[str, Any]:
        return {
            r.urn: r.raw_inputs
            for r in plan.resources
            if r.type.startswith("kubernetes:")
            and str((r.raw_inputs.get("metadata") or {}).get("namespace", "")).startswith("eng-")
        }

    before, after = engineers_objects(base), engineers_objects(grown)
    assert before, "no objects in engineers' namespaces"
    assert {u: after.get(u) for u in before} == before
    new = {after[u]["metadata"]["namespace"] for u in set(after) - set(before)}
    assert new == {"eng-newcomer"}
    kinds = {u.split("::")[-2].rsplit("$", 1)[-1] for u in set(after) - set(before)}
    assert {"kubernetes:apps/v1:DaemonSet", "kubernetes:core/v1:Service", "kubernetes:core/v1:Secret"} <= kinds
    service = _in(grown, "kubernetes:core/v1:Service", "eng-newcomer", "ssh")["spec"]
    assert service["ports"][0]["nodePort"] == 31950


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


def test_ssh_ports_are_node_ports_no_one_else_uses() -> None:
    """Two engineers whose default ports meet (uids 1000 apart), an sshPort on the NFS port, and
    one outside the node-port range: each reported at its key path, all at once."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOl+A//5LFfTZpfE7f7fCgRJMx1vwhPES+k37g0FJiRB other@laptop"

    def clash(values: dict[str, Any]) -> None:
        first = values["akiba:engineers"][0]
        values["akiba:engineers"] += [
            {"name": "twin", "uid": first["uid"] + 1000, "sshKeys": [key]},
            {
                "name": "nfsport",
                "uid": 2990,
                "sshPort": values["akiba:storage"].get("nfsNodePort", 32049),
                "sshKeys": [key],
            },
            {"name": "low", "uid": 2991, "sshPort": 2222, "sshKeys": [key]},
        ]

    with pytest.raises(ConfigError) as err:
        parse(edited("dev", clash))
    text = str(err.value)
    n = len(config_values("dev")["akiba:engineers"])
    assert f"akiba:engineers[{n}].uid" in text and "or an sshPort of their own" in text
    assert f"akiba:engineers[{n + 1}].sshPort" in text and "a node port not used elsewhere" in text
    assert f"akiba:engineers[{n + 2}].sshPort" in text
