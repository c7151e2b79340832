"""The one renderer of cloud-init user-data for every node kind.

Controllers, bare-metal GPU workers, VMs and spot burst nodes all boot from this: containerd
with the registry mirror, the NVIDIA driver and container toolkit where there are GPUs,
kernel settings for flannel VXLAN, the bonded network, and kubeadm init/join with the node's
labels and taints. Pure functions: they take resolved values and return text.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from components import yamltext

Role = Literal["controller-init", "controller-join", "worker"]
NodeKind = Literal["baremetal", "vm", "burst"]
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
PKI_DIR = "/etc/kubernetes/pki"
BOOTSTRAP_SCRIPT = "/usr/local/sbin/akiba-bootstrap"
# Placeholders the bootstrap script fills from IMDSv2 on burst nodes.
IMDS_NODE_NAME, IMDS_NODE_IP = "__IMDS_NODE_NAME__", "__IMDS_NODE_IP__"
IMDS_ZONE, IMDS_INSTANCE_ID = "__IMDS_ZONE__", "__IMDS_INSTANCE_ID__"
PACKAGES = ["apt-transport-https", "ca-certificates", "curl", "gpg", "containerd"]


@dataclass(frozen=True)
class BondNetwork:
    """The node's NICs bonded into bond0 with a static address (None: leave DHCP alone)."""

    nics: tuple[tuple[str, str], ...]  # (name, mac); the first one PXE-boots
    address: str  # 192.168.10.11/24
    gateway: str
    dns: tuple[str, ...]
    mode: str = "balance-alb"
    mtu: int = 1500


@dataclass(frozen=True)
class RegistryMirror:
    """The in-cluster registry every node's containerd pulls through."""

    mirror: str  # host[:port], e.g. "registry.akiba.lan:5000"
    upstreams: tuple[str, ...]  # registries mirrored through it, e.g. ("docker.io", "nvcr.io")


@dataclass(frozen=True)
class ClusterJoin:
    """What every node needs to find and trust the control plane."""

    cluster_name: str
    kubernetes_version: str  # 1.36.4
    api_host: str
    api_port: int
    token: str  # secret
    ca_cert_hash: str
    pod_cidr: str
    service_cidr: str
    dns_domain: str


@dataclass(frozen=True)
class NodeBootstrap:
    """Everything that makes one node's user-data."""

    role: Role
    kind: NodeKind
    cluster: ClusterJoin
    registry_mirror: str
    registry_upstreams: tuple[str, ...]
    hostname: str = ""  # empty only with instance_metadata="aws"
    ip: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()
    gpu_driver_branch: str | None = None  # None: no GPU, no driver
    network: BondNetwork | None = None
    # "aws": one user-data serves every instance of a launch template, so the name, address
    # and aws:///<zone>/<id> providerID are read from IMDSv2 at boot. On-prem nodes have none.
    instance_metadata: Literal["none", "aws"] = "none"
    pki: dict[str, str] | None = None  # controllers only; secret

    def __post_init__(self) -> None:
        if self.instance_metadata == "none" and not (self.hostname and self.ip):
            raise ValueError("a node without instance metadata needs its hostname and ip")
        if self.instance_metadata == "aws" and self.role != "worker":
            raise ValueError("only workers take their identity from instance metadata")


def node_labels(gpu_model: str | None, gpu_count: int, kind: NodeKind) -> dict[str, str]:
    """Labels every node carries; the scheduler and the dashboard select on them."""
    labels: dict[str, str] = {"akiba.io/node-kind": kind}
    if gpu_model:
        labels |= {
            "akiba.io/gpu-model": gpu_model,
            "akiba.io/gpu-count": str(gpu_count),
            "nvidia.com/gpu.present": "true",
        }
    return labels


def node_taints(role: Role, has_gpu: bool) -> tuple[dict[str, str], ...]:
    """GPU nodes are tainted so only pods that asked for GPUs land there."""
    taints = [CONTROL_PLANE_TAINT] if role != "worker" else []
    if has_gpu:
        taints.append(GPU_TAINT)
    return tuple(taints)


def render_user_data(node: NodeBootstrap) -> str:
    """`#cloud-config` user-data for one node."""
    shared = _shared_files(node.registry_mirror, node.registry_upstreams) + _file_items(
        ((BOOTSTRAP_SCRIPT, _script(node), "0755"),)
    )
    own = _kubeadm_files(node)
    if node.network is not None:
        own += _network_files(node.network)
    if node.pki is not None:
        own += [
            {"path": f"{PKI_DIR}/{name}", "content": body, "permissions": "0600" if name.endswith(".key") else "0644"}
            for name, body in sorted(node.pki.items())
        ]
    head: dict[str, object] = {"manage_etc_hosts": True, "package_update": True, "packages": PACKAGES}
    if node.instance_metadata == "none":
        head = {"hostname": node.hostname, **head}
    return (
        "#cloud-config\n"
        + yamltext.dump(head)
        + "write_files:\n"
        + shared
        + yamltext.dump(own)
        + yamltext.dump({"runcmd": [[BOOTSTRAP_SCRIPT]]})
    )


# Files that are the same on many nodes are rendered to YAML once: at 500 nodes PyYAML's
# representer was the program's largest cost in `make bench`. Two block sequences at the same
# indent concatenate into one sequence, so the cached text splices into `write_files`.
@lru_cache(maxsize=64)
def _shared_files(mirror: str, upstreams: tuple[str, ...]) -> str:
    return yamltext.dump(_containerd_files(mirror, upstreams) + _kernel_files())


@lru_cache(maxsize=64)
def _file_items(items: tuple[tuple[str, str, str], ...]) -> str:
    return yamltext.dump([{"path": path, "permissions": mode, "content": content} for path, content, mode in items])


def _containerd_files(mirror: str, upstreams: tuple[str, ...]) -> list[dict[str, str]]:
    """Every upstream registry resolves through its in-cluster pull-through cache first (served
    under /<upstream>/, containerd adds /v2), then upstream. The cache's certificate comes from
    the cluster CA, which kubeadm puts on every node."""
    files = []
    for upstream in upstreams:
        server = "https://registry-1.docker.io" if upstream == "docker.io" else f"https://{upstream}"
        hosts = (
            f'server = "{server}"\n\n'
            f'[host."https://{mirror}/{upstream}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
            f'  ca = "{PKI_DIR}/ca.crt"\n'
        )
        files.append({"path": f"/etc/containerd/certs.d/{upstream}/hosts.toml", "content": hosts})
    return files


def _kernel_files() -> list[dict[str, str]]:
    # flannel VXLAN needs bridged traffic to pass iptables and forwarding on.
    return [
        {"path": "/etc/modules-load.d/akiba-k8s.conf", "content": "overlay\nbr_netfilter\nvxlan\nbonding\n"},
        {
            "path": "/etc/sysctl.d/90-akiba-k8s.conf",
            "content": "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n"
            "net.ipv4.ip_forward = 1\nfs.inotify.max_user_instances = 8192\n",
        },
    ]


def _network_files(net: BondNetwork) -> list[dict[str, str]]:
    """netplan for bond0. MAAS configures only the PXE NIC; cloud-init is told to leave the
    network alone so this file is the one source of truth after the first boot."""
    names = [name for name, _ in net.nics]
    netplan = {
        "network": {
            "version": 2,
            "renderer": "networkd",
            "ethernets": {
                name: {"match": {"macaddress": mac}, "set-name": name, "dhcp4": False} for name, mac in net.nics
            },
            "bonds": {
                "bond0": {
                    "interfaces": names,
                    "mtu": net.mtu,
                    "addresses": [net.address],
                    "routes": [{"to": "default", "via": net.gateway}],
                    "nameservers": {"addresses": list(net.dns)},
                    "parameters": {"mode": net.mode, "mii-monitor-interval": "100"},
                }
            },
        }
    }
    return [
        {"path": "/etc/netplan/60-akiba-bond.yaml", "permissions": "0600", "content": render_netplan(netplan)},
        {"path": "/etc/cloud/cloud.cfg.d/99-akiba-network.cfg", "content": "network: {config: disabled}\n"},
    ]


def render_netplan(doc: Mapping[str, object]) -> str:
    return yamltext.dump(doc)


def _kubeadm_files(node: NodeBootstrap) -> list[dict[str, str]]:
    c = node.cluster
    endpoint = f"{c.api_host}:{c.api_port}"
    aws = node.instance_metadata == "aws"
    args = [{"name": "node-ip", "value": IMDS_NODE_IP if aws else node.ip}]
    if node.labels:
        args.append({"name": "node-labels", "value": ",".join(f"{k}={v}" for k, v in sorted(node.labels.items()))})
    if aws:
        # The cluster-autoscaler maps nodes to ASG instances by this ID.
        args.append({"name": "provider-id", "value": f"aws:///{IMDS_ZONE}/{IMDS_INSTANCE_ID}"})
    registration = {
        "name": IMDS_NODE_NAME if aws else node.hostname,
        "criSocket": "unix:///run/containerd/containerd.sock",
        "kubeletExtraArgs": args,
        "taints": list(node.taints),
    }
    docs: list[dict[str, object]] = []
    if node.role == "controller-init":
        docs.append(
            {
                "apiVersion": KUBEADM_API,
                "kind": "InitConfiguration",
                # ttl 0: nodes added later (a config change, then `pulumi up`) join with the
                # same token. Rotate it by replacing the token resource and re-running init.
                "bootstrapTokens": [{"token": c.token, "ttl": "0s", "usages": ["signing", "authentication"]}],
                "localAPIEndpoint": {"advertiseAddress": node.ip, "bindPort": c.api_port},
                "nodeRegistration": registration,
            }
        )
        docs.append(
            {
                "apiVersion": KUBEADM_API,
                "kind": "ClusterConfiguration",
                "clusterName": c.cluster_name,
                "kubernetesVersion": f"v{c.kubernetes_version}",
                "controlPlaneEndpoint": endpoint,
                "networking": {"podSubnet": c.pod_cidr, "serviceSubnet": c.service_cidr, "dnsDomain": c.dns_domain},
                "apiServer": {"certSANs": list(dict.fromkeys([node.ip, node.hostname, c.api_host]))},
            }
        )
    else:
        join: dict[str, object] = {
            "apiVersion": KUBEADM_API,
            "kind": "JoinConfiguration",
            "discovery": {
                "bootstrapToken": {"apiServerEndpoint": endpoint, "token": c.token, "caCertHashes": [c.ca_cert_hash]}
            },
            "nodeRegistration": registration,
        }
        if node.role == "controller-join":
            join["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": node.ip, "bindPort": c.api_port}}
        docs.append(join)
    docs.append(
        {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd"}
    )
    text = yamltext.dump_all(docs)
    return [{"path": "/etc/kubernetes/kubeadm.yaml", "permissions": "0600", "content": text}]


def _script(node: NodeBootstrap) -> str:
    """The ordered steps; upstream's documented install for each package repository."""
    minor = ".".join(node.cluster.kubernetes_version.split(".")[:2])
    pkg = f"{node.cluster.kubernetes_version}-1.1"
    lines = [
        "#!/bin/bash",
        "set -euo pipefail",
        "modprobe -a overlay br_netfilter vxlan bonding",
        "sysctl --system",
        "swapoff -a",
    ]
    if node.instance_metadata == "aws":
        imds = "http://169.254.169.254/latest"
        lines += [
            f"IMDS_TOKEN=$(curl -fsS -X PUT {imds}/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')",
            f'md() {{ curl -fsS -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "{imds}/meta-data/$1"; }}',
            f'sed -i -e "s|{IMDS_NODE_NAME}|$(md local-hostname)|g" -e "s|{IMDS_NODE_IP}|$(md local-ipv4)|g"'
            f' -e "s|{IMDS_ZONE}|$(md placement/availability-zone)|g" -e "s|{IMDS_INSTANCE_ID}|$(md instance-id)|g"'
            " /etc/kubernetes/kubeadm.yaml",
        ]
    if node.network is not None:
        lines += ["rm -f /etc/netplan/50-cloud-init.yaml", "netplan apply"]
    lines += [
        "install -d -m 0755 /etc/apt/keyrings",
        f"curl -fsSL https://pkgs.k8s.io/core:/stable:/v{minor}/deb/Release.key"
        " | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg",
        "echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
        f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /' > /etc/apt/sources.list.d/kubernetes.list",
    ]
    if node.gpu_driver_branch:
        lines += [
            "curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey"
            " | gpg --dearmor --yes -o /etc/apt/keyrings/nvidia-container-toolkit.gpg",
            "curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list"
            " | sed 's#deb https://#deb [signed-by=/etc/apt/keyrings/nvidia-container-toolkit.gpg] https://#g'"
            " > /etc/apt/sources.list.d/nvidia-container-toolkit.list",
        ]
    lines.append("apt-get update")
    packages = [f"kubelet={pkg}", f"kubeadm={pkg}", f"kubectl={pkg}"]
    if node.gpu_driver_branch:
        b = node.gpu_driver_branch
        packages += [f"nvidia-headless-{b}", f"nvidia-utils-{b}", "nvidia-container-toolkit"]
    lines += [
        "DEBIAN_FRONTEND=noninteractive apt-get install -y " + " ".join(shlex.quote(p) for p in packages),
        "apt-mark hold kubelet kubeadm kubectl",
        "install -d /etc/containerd",
        "containerd config default > /etc/containerd/config.toml",
        "sed -i -e 's/SystemdCgroup = false/SystemdCgroup = true/'"
        " -e \"s#config_path = ''#config_path = '/etc/containerd/certs.d'#\""
        ' -e \'s#config_path = ""#config_path = "/etc/containerd/certs.d"#\' /etc/containerd/config.toml',
    ]
    if node.gpu_driver_branch:
        lines.append("nvidia-ctk runtime configure --runtime=containerd --set-as-default")
    lines += ["systemctl restart containerd", "systemctl enable kubelet"]
    if node.role == "controller-init":
        lines.append("kubeadm init --config /etc/kubernetes/kubeadm.yaml")
    else:
        lines.append("kubeadm join --config /etc/kubernetes/kubeadm.yaml")
    return "\n".join(lines) + "\n"
