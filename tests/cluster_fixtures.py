"""Small synthetic plans for the cluster check's own tests: nodes as MAAS deployments with the
user-data the kubelet would register from, burst groups, and Kubernetes objects."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from tools.plan.artifacts import REMOTE_COMMAND
from tools.plan.cluster import Settings
from tools.plan.cluster.nodes import CLUSTER_CA
from tools.plan.cluster.pulls import PlatformRegistry
from tools.plan.mocks import Recorded
from tools.plan.runner import Plan

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "registry.test.lan:30443"
AUTH = {"Authorization": ["Basic " + base64.b64encode(b"akiba-pull:pw").decode()]}
GIB = 1024


def resource(typ: str, name: str, inputs: dict[str, Any], rid: str = "") -> Recorded:
    return Recorded(
        urn=f"urn:pulumi:test::akiba::{typ}::{name}",
        type=typ,
        name=name,
        parent="",
        custom=True,
        dependencies=[],
        protect=False,
        retain_on_delete=False,
        provider="",
        inputs=inputs,
        secret_paths=[],
        secret_digests={},
        raw_inputs=inputs,
        id=rid or f"{name}-id",
    )


def hosts_toml(namespace: str, mirror: bool = True, auth: bool = True, ca: bool = True) -> str:
    server = "https://registry-1.docker.io" if namespace == "docker.io" else f"https://{namespace}"
    lines = [f'server = "{server}"']
    if mirror:
        url = f"https://{REGISTRY}" if namespace == REGISTRY else f"https://{REGISTRY}/{namespace}"
        lines += [f'[host."{url}"]', '  capabilities = ["pull", "resolve"]']
        if ca:
            lines.append(f'  ca = "{CLUSTER_CA}"')
        if auth:
            lines += [f'[host."{url}".header]', f"  Authorization = {json.dumps(AUTH['Authorization'])}"]
    return "\n".join(lines) + "\n"


def user_data(
    name: str,
    ip: str,
    *,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    control_plane: bool = False,
    registries: dict[str, str] | None = None,
    etc_hosts: str | None = "self",
    mtu: int | None = None,
) -> str:
    """cloud-config as the bootstrap writes it: kubeadm registration, kubelet config, containerd."""
    args = [{"name": "node-ip", "value": ip}]
    if labels:
        args.append({"name": "node-labels", "value": ",".join(f"{k}={v}" for k, v in labels.items())})
    registration: dict[str, Any] = {"name": name, "kubeletExtraArgs": args}
    if taints is not None:
        registration["taints"] = taints
    kind = "InitConfiguration" if control_plane else "JoinConfiguration"
    docs = [
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": kind, "nodeRegistration": registration},
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "systemReserved": {"cpu": "500m", "memory": "1Gi"},
        },
    ]
    files: list[dict[str, Any]] = [{"path": "/etc/kubernetes/kubeadm.yaml", "content": yaml.safe_dump_all(docs)}]
    if registries is None:
        registries = {ns: hosts_toml(ns) for ns in ("docker.io", REGISTRY)}
    files += [{"path": f"/etc/containerd/certs.d/{ns}/hosts.toml", "content": text} for ns, text in registries.items()]
    if etc_hosts is not None:
        address = ip if etc_hosts == "self" else etc_hosts
        files.append({"path": "/etc/hosts", "append": True, "content": f"{address} {REGISTRY.split(':')[0]}\n"})
    if mtu is not None:
        netplan = {"network": {"version": 2, "bonds": {"bond0": {"interfaces": ["eno1"], "mtu": mtu}}}}
        files.append({"path": "/etc/netplan/60-akiba-bond.yaml", "content": yaml.safe_dump(netplan)})
    return "#cloud-config\n" + yaml.safe_dump({"write_files": files})


def gateway(mtu: int | None) -> Recorded:
    """The WireGuard gateway's launch template, its wg0.conf with or without an MTU."""
    conf = "[Interface]\nAddress = 10.255.255.1/30\n" + (f"MTU = {mtu}\n" if mtu else "") + "ListenPort = 51820\n"
    text = "#cloud-config\n" + yaml.safe_dump({"write_files": [{"path": "/etc/wireguard/wg0.conf", "content": conf}]})
    return resource(
        "aws:ec2/launchTemplate:LaunchTemplate", "burst-gateway", {"userData": base64.b64encode(text.encode()).decode()}
    )


def machine(name: str, ip: str, *, cpus: int = 8, memory_gib: int = 32, gpus: int = 0, **kwargs: Any) -> Recorded:
    labels = {"akiba.io/node-kind": "baremetal", **(kwargs.pop("labels", None) or {})}
    if gpus:
        labels |= {"akiba.io/gpu-count": str(gpus), "nvidia.com/gpu.present": "true", "akiba.io/gpu-model": "gtx-1080"}
    return resource(
        "maas:index/instance:Instance",
        name,
        {
            "allocateParams": {"hostname": name, "minCpuCount": cpus, "minMemory": memory_gib * GIB},
            "deployParams": {"userData": user_data(name, ip, labels=labels, **kwargs)},
        },
    )


def burst_group(
    labels: dict[str, str],
    taints: list[dict[str, str]],
    tags: dict[str, str] | None = None,
    itype: str = "g4dn.xlarge",
    max_size: int = 2,
) -> list[Recorded]:
    """An ASG and its launch template, tagged for scale from zero as the autoscaler reads it."""
    text = user_data(
        "__IMDS_NODE_NAME__", "__IMDS_NODE_IP__", labels=labels, taints=taints, etc_hosts="__IMDS_NODE_IP__"
    )
    template = resource(
        "aws:ec2/launchTemplate:LaunchTemplate", "burst-turing", {"userData": base64.b64encode(text.encode()).decode()}
    )
    prefix = "k8s.io/cluster-autoscaler/node-template/"
    if tags is None:
        tags = {f"{prefix}label/{k}": v for k, v in labels.items()}
        tags |= {f"{prefix}taint/{t['key']}": f"{t.get('value', '')}:{t['effect']}" for t in taints}
        tags[f"{prefix}resources/nvidia.com/gpu"] = labels.get("akiba.io/gpu-count", "0")
    group = resource(
        "aws:autoscaling/group:Group",
        "burst",
        {
            "name": "test-burst",
            "maxSize": max_size,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
            "mixedInstancesPolicy": {
                "launchTemplate": {
                    "launchTemplateSpecification": {"launchTemplateId": template.id},
                    "overrides": [
                        {"instanceType": itype, "launchTemplateSpecification": {"launchTemplateId": template.id}}
                    ],
                }
            },
        },
    )
    return [template, group]


def container(name: str = "app", image: str = "docker.io/library/nginx:1.27", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}, **extra}


def deployment(
    name: str, *, replicas: int = 1, namespace: str = "apps", strategy: str = "Recreate", **pod: Any
) -> Recorded:
    containers = pod.pop("containers", None) or [container()]
    spec = {"containers": containers, **pod}
    return resource(
        "kubernetes:apps/v1:Deployment",
        name,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "strategy": {"type": strategy}, "template": {"spec": spec}},
        },
    )


def daemonset(name: str, namespace: str = "kube-system", **pod: Any) -> Recorded:
    containers = pod.pop("containers", None) or [container()]
    return resource(
        "kubernetes:apps/v1:DaemonSet",
        name,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": {"containers": containers, **pod}}},
        },
    )


def claim(
    name: str, mode: str = "ReadWriteOnce", namespace: str = "apps", storage_class: str | None = None
) -> Recorded:
    spec: dict[str, Any] = {"accessModes": [mode], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return resource(
        "kubernetes:core/v1:PersistentVolumeClaim",
        name,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    )


def chart(name: str, version: str, values: dict[str, Any], namespace: str = "kube-system") -> Recorded:
    return resource(
        "kubernetes:helm.sh/v4:Chart",
        name,
        {"chart": name, "version": version, "namespace": namespace, "values": values},
    )


# Everything a node needs to become Ready and offer its GPUs (the CNI and the device plugin).
def node_basics() -> list[Recorded]:
    return [
        chart("flannel", "v0.28.9", {}),
        chart("nvidia-device-plugin", "0.20.0", {}),
    ]


MAAS_INSTANCE = "maas:index/instance:Instance"


def _as_deployed(instance: Recorded) -> list[Recorded]:
    """A `machine()` laid out as the program declares a node (components/machines/
    baremetal_node.py): a BareMetalNode holding the MAAS deployment (install user-data) and a
    NodeConverge whose remote command carries the node's configuration document, which is the
    text the test gave as the machine's user-data."""
    node = f"urn:pulumi:test::akiba::akiba:node:BareMetalNode::{instance.name}"
    converge = resource("akiba:node:NodeConverge", instance.name, {})
    converge.urn, converge.parent, converge.custom = f"{node}$akiba:node:NodeConverge::{instance.name}", node, False
    document = instance.raw_inputs["deployParams"]["userData"]
    command = resource(REMOTE_COMMAND, f"{instance.name}-converge", {"stdin": document})
    command.parent = converge.urn
    install = dict(instance.raw_inputs, deployParams={"userData": f"#cloud-config\nhostname: {instance.name}\n"})
    deployed = dataclasses.replace(instance, parent=node, inputs=install, raw_inputs=install)
    return [deployed, converge, command]


def plan(*resources: Recorded) -> Plan:
    laid_out = [r for x in resources for r in (_as_deployed(x) if x.type == MAAS_INSTANCE else [x])]
    return Plan(stack="test", resources=laid_out, outputs={}, secret_outputs=set(), secret_values=set())


def settings(require_failover: bool = False) -> Settings:
    return Settings(
        kubernetes_version="1.36.4",
        platform_registries=(PlatformRegistry(REGISTRY, requires_auth=True, ca_files=frozenset({CLUSTER_CA})),),
        require_failover=require_failover,
        instance_types={"g4dn.xlarge": (4, 16)},
        root=ROOT,
    )
