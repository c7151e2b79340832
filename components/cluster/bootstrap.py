"""The one renderer of cloud-init user-data for every node kind.

Controllers, bare-metal GPU workers, VMs and spot burst nodes all boot from this: containerd 2.x
(Docker's `containerd.io`) with the registry mirror and its credentials, the NVIDIA driver and
container toolkit where there are GPUs, kernel settings for flannel VXLAN, the bonded network,
and kubeadm init/join with the node's labels, taints and reserved resources. Pure functions:
they take resolved values and return text.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from components import yamltext
from components.cluster import kube_vip, node_security
from components.cluster.encryption import ENCRYPTION_CONFIG, api_server_settings
from components.cluster.placement import BOOTS_FROM_CLUSTER_CEPH

Role = Literal["controller-init", "controller-join", "worker"]
NodeKind = Literal["baremetal", "vm", "burst"]
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
# Admission plugins beyond the API server's defaults; the flag replaces kubeadm's own value, so
# NodeRestriction (a kubelet edits only its own Node and pods) stays. DenyServiceExternalIPs:
# engineers create Services in their namespaces, and a Service's spec.externalIPs lets its
# author intercept traffic to any address (CVE-2020-8554); nothing here uses externalIPs.
ADMISSION_PLUGINS = ("NodeRestriction", "DenyServiceExternalIPs")
PKI_DIR = "/etc/kubernetes/pki"
BOOTSTRAP_SCRIPT = "/usr/local/sbin/akiba-bootstrap"
KUBEADM_CONFIG = "/etc/kubernetes/kubeadm.yaml"
KUBEADM_REJOIN_CONFIG = "/etc/kubernetes/kubeadm-rejoin.yaml"  # the first controller, reinstalled
# Placeholders the bootstrap script fills from IMDSv2 on burst nodes.
IMDS_NODE_NAME, IMDS_NODE_IP = "__IMDS_NODE_NAME__", "__IMDS_NODE_IP__"
IMDS_ZONE, IMDS_INSTANCE_ID = "__IMDS_ZONE__", "__IMDS_INSTANCE_ID__"
# No configuration document carries a joining node's token (it would change every node's
# document at each rotation, and a burst launch template is readable by anyone with
# ec2:DescribeLaunchTemplateVersions). The JoinConfiguration holds this placeholder; the token
# reaches JOIN_TOKEN_FILE once, when the node is created (node_converge.py's create command; on
# burst nodes from SSM Parameter Store), and is filled in only for `kubeadm join`.
JOIN_TOKEN_PLACEHOLDER = "__AKIBA_JOIN_TOKEN__"  # noqa: S105 (a placeholder, not a token)
JOIN_TOKEN_FILE = "/etc/akiba/join-token"  # noqa: S105 (a path)
JOIN_CONFIG = "/run/akiba/kubeadm-join.yaml"  # tmpfs: the filled-in copy, removed after the join
# Burst nodes: the registry's pull credential, filled in from SSM Parameter Store at boot.
REGISTRY_AUTH_PLACEHOLDER = "__AKIBA_REGISTRY_AUTHORIZATION__"
# No "containerd" here: Ubuntu's package is 1.7 in noble's release pocket and moves to 2.x in
# noble-updates under us; containerd.io below is pinned instead.
PACKAGES = ["apt-transport-https", "ca-certificates", "curl", "gpg"]
# Kubernetes 1.36 supports containerd 2.2+ only (containerd RELEASES.md, "Kubernetes Support").
# Docker's apt repository builds it per Ubuntu release: 2.2.6-1~ubuntu.24.04~noble, ...~22.04~jammy
# (burst Kepler nodes run jammy). Check a new pin with `apt-cache madison containerd.io` on a node.
CONTAINERD_VERSION = "2.2.6-1"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.1"  # containerd 2.2's default and kubeadm 1.36's pause
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
# Written by cloud-init before apt runs, installed over the package's file after it: a file
# already at CONTAINERD_CONFIG would make dpkg ask about its conffile.
STAGED_CONTAINERD_CONFIG = "/etc/akiba/containerd-config.toml"
APPLIED_CONTAINERD_CONFIG = "/etc/akiba/containerd-config.applied"
NETPLAN_PATH = "/etc/netplan/60-akiba-bond.yaml"
CERTS_D = "/etc/containerd/certs.d"
# A node boots unattended: a download that fails once (a mirror hiccup, the bond still
# settling) would otherwise leave it half installed.
CURL = "curl -fsSL --retry 5 --retry-all-errors --retry-delay 3"
# The first configuration starts seconds after MAAS reports the node deployed, when apt-daily
# may hold the lock; a pinned upgrade must keep our containerd config.toml without asking.
APT_GET = "apt-get -o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold"
# What the kubelet keeps off the pods' allocatable for the OS and for itself. evictionHard is
# left alone: setting one signal zeroes the kubelet's other default thresholds.
SYSTEM_RESERVED = {"cpu": "500m", "memory": "1Gi"}
KUBE_RESERVED = {"cpu": "500m", "memory": "1Gi"}


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
    api_host: str  # the VIP when there is one, else the one controller's address
    api_port: int
    # secret: the office nodes' join token. Only the first controller's document carries it (it
    # makes it valid on the cluster); joining nodes receive it apart (JOIN_TOKEN_FILE).
    token: str
    ca_cert_hash: str
    pod_cidr: str
    service_cidr: str
    dns_domain: str
    # The API's virtual IP (kube-vip on every controller); None: one controller, no VIP.
    api_vip: str | None = None
    # Every controller's address and hostname: any of them may serve the API behind the VIP, so
    # the API server certificate names all of them (and the VIP).
    controller_names: tuple[str, ...] = ()
    token_ttl_hours: int = 336  # how long the first controller makes `token` valid: 2 rotations


@dataclass(frozen=True)
class SsmSecrets:
    """Where a burst node reads its secrets at boot (SSM Parameter Store SecureStrings that only
    the burst instance profile may read): the launch template's user-data holds none."""

    join_token: str  # parameter name, e.g. /akiba/burst/join-token
    registry_authorization: str  # parameter name of the pull account's `Basic ...` header


@dataclass(frozen=True)
class NodeBootstrap:
    """Everything that makes one node's user-data."""

    role: Role
    kind: NodeKind
    cluster: ClusterJoin
    registry_mirror: str
    registry_upstreams: tuple[str, ...]
    # secret: `Basic <base64 user:password>` of the registry's pull account, which containerd
    # sends with every request to the registry (it needs htpasswd auth).
    registry_authorization: str
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
    encryption_config: str | None = None  # controllers only; secret: components/cluster/encryption.py
    secrets_from_ssm: SsmSecrets | None = None  # burst nodes: token and pull credential read at boot

    def __post_init__(self) -> None:
        if self.instance_metadata == "none" and not (self.hostname and self.ip):
            raise ValueError("a node without instance metadata needs its hostname and ip")
        if self.instance_metadata == "aws" and self.role != "worker":
            raise ValueError("only workers take their identity from instance metadata")
        if self.secrets_from_ssm is not None and self.instance_metadata != "aws":
            raise ValueError("only an AWS instance reads its secrets from SSM Parameter Store")


def node_labels(
    gpu_model: str | None, gpu_count: int, kind: NodeKind, boots_from_cluster_ceph: bool = False
) -> dict[str, str]:
    """Labels every node carries; the scheduler and the dashboard select on them.
    `boots_from_cluster_ceph`: a VM whose disks are images in this cluster's own Ceph (Ceph's
    daemons must not run there: see components/cluster/placement.py)."""
    labels: dict[str, str] = {"akiba.io/node-kind": kind}
    if boots_from_cluster_ceph:
        labels[BOOTS_FROM_CLUSTER_CEPH] = "true"
    if gpu_model:
        labels |= {
            "akiba.io/gpu-model": gpu_model,
            "akiba.io/gpu-count": str(gpu_count),
            "nvidia.com/gpu.present": "true",
        }
    return labels


def node_taints(kind: NodeKind) -> tuple[dict[str, str], ...]:
    """Office nodes (PCs and VMs, controllers included) carry no taint: every one of them has
    GPUs, and the nvidia.com/gpu extended resource already keeps pods that did not ask for one
    off the GPUs, so a GPU taint would only push the platform's own pods off every node. The
    empty list also stops kubeadm's control-plane taint (the control-plane label stays).
    Burst nodes keep the GPU taint: paid spot capacity is for pods that need a GPU."""
    return (GPU_TAINT,) if kind == "burst" else ()


CONVERGE_USER = "akiba-converge"  # the account node configuration runs as (over ssh, sudo)


@dataclass(frozen=True)
class NodeInstall:
    """What MAAS installs a node with: only what cannot change without a new machine (its name,
    NICs and address) and the key node configuration logs in with. Everything else converges
    afterwards (components/machines/node_converge.py), so a day-2 change never reinstalls."""

    hostname: str
    nics: tuple[tuple[str, str], ...]  # (name, mac), as in BondNetwork: the first one PXE-boots
    address: str  # 192.168.10.11/24
    converge_key: str  # OpenSSH public key of the node-configuration key


def render_install_user_data(install: NodeInstall) -> str:
    """`#cloud-config` for MAAS: the node comes up on bond0 at its address, with only the NIC it
    PXE-boots from (which MAAS enlisted it by: changing it is another machine anyway); the other
    NICs, the declared mode, MTU, gateway and resolvers arrive with its configuration. The
    configuration account logs in by key only."""
    pxe_name, pxe_mac = install.nics[0]
    netplan = {
        "network": {
            "version": 2,
            "renderer": "networkd",
            "ethernets": {pxe_name: {"match": {"macaddress": pxe_mac}, "set-name": pxe_name, "dhcp4": False}},
            "bonds": {
                "bond0": {
                    "interfaces": [pxe_name],
                    "addresses": [install.address],
                    "parameters": {"mode": "active-backup", "mii-monitor-interval": "100"},
                }
            },
        }
    }
    doc: dict[str, object] = {
        "hostname": install.hostname,
        "manage_etc_hosts": "localhost",
        "ssh_pwauth": False,
        "users": [
            "default",  # MAAS's ubuntu user with the operators' keys stays
            {
                "name": CONVERGE_USER,
                "gecos": "akiba node configuration",
                "shell": "/bin/bash",
                "lock_passwd": True,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "ssh_authorized_keys": [install.converge_key],
            },
        ],
        "write_files": [
            {"path": NETPLAN_PATH, "permissions": "0600", "content": render_netplan(netplan)},
            {"path": "/etc/cloud/cloud.cfg.d/99-akiba-network.cfg", "content": "network: {config: disabled}\n"},
        ],
        "runcmd": [["sh", "-c", "rm -f /etc/netplan/50-cloud-init.yaml && netplan apply"]],
    }
    return "#cloud-config\n" + yamltext.dump(doc)


def render_user_data(node: NodeBootstrap) -> str:
    """`#cloud-config` user-data for one node."""
    authorization = REGISTRY_AUTH_PLACEHOLDER if node.secrets_from_ssm else node.registry_authorization
    shared = _shared_files(node.registry_mirror, node.registry_upstreams, authorization) + _file_items(
        ((BOOTSTRAP_SCRIPT, _script(node), "0755"),)
    )
    if node.kind != "burst":
        # Engineers' home pods (rootless Docker's profiles) run on office nodes only; a paid node's
        # user-data stays within EC2's 16 KB.
        shared += _file_items(node_security.rootless_docker_files())
    own = [*_kubeadm_files(node), _registry_address(node)]
    if node.role != "worker" and node.cluster.api_vip is not None:
        vip = kube_vip.render(node.cluster.api_vip, node.cluster.api_port, "bond0")
        own.append({"path": kube_vip.STAGED, "permissions": "0600", "content": vip})
    if node.network is not None:
        own += _network_files(node.network)
    if node.pki is not None:
        own += [
            {"path": f"{PKI_DIR}/{name}", "content": body, "permissions": "0600" if name.endswith(".key") else "0644"}
            for name, body in sorted(node.pki.items())
        ]
    if node.encryption_config is not None:
        own.append({"path": ENCRYPTION_CONFIG, "permissions": "0600", "content": node.encryption_config})
    if node.role == "controller-init":
        # The one document with the token: this node makes it valid (and rejoins with it).
        own.append({"path": JOIN_TOKEN_FILE, "permissions": "0600", "content": node.cluster.token + "\n"})
    # "localhost": cloud-init only keeps the hostname's own line; True would re-render /etc/hosts
    # from its template at every boot and drop the registry's line.
    head: dict[str, object] = {"manage_etc_hosts": "localhost"}
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
# The key includes the pull credential: one text per stack's registry account.
@lru_cache(maxsize=64)
def _shared_files(mirror: str, upstreams: tuple[str, ...], authorization: str) -> str:
    return yamltext.dump(_containerd_files(mirror, upstreams, authorization) + _kernel_files())


@lru_cache(maxsize=64)
def _file_items(items: tuple[tuple[str, str, str], ...]) -> str:
    return yamltext.dump([{"path": path, "permissions": mode, "content": content} for path, content, mode in items])


def render_containerd_config() -> str:
    """containerd 2.x's config.toml (version 3), complete: the package's own file disables the
    CRI plugin, and a versionless file would be read as version 1. Keys from containerd's
    docs/cri/config.md; `config_path` set explicitly (2.0/2.1 have no default for it)."""
    return (
        "# Written by akiba's node bootstrap; GPU nodes add their runtime as a drop-in.\n"
        "version = 3\n"
        "\n"
        "[plugins.'io.containerd.cri.v1.images'.pinned_images]\n"
        f"  sandbox = '{SANDBOX_IMAGE}'\n"
        "\n"
        "[plugins.'io.containerd.cri.v1.images'.registry]\n"
        f"  config_path = '{CERTS_D}'\n"
        "\n"
        "[plugins.'io.containerd.cri.v1.runtime'.containerd]\n"
        "  default_runtime_name = 'runc'\n"
        "\n"
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
        "  runtime_type = 'io.containerd.runc.v2'\n"
        "\n"
        "# The kubelet's cgroupDriver is systemd too.\n"
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n"
        "  SystemdCgroup = true\n"
    )


def _containerd_files(mirror: str, upstreams: tuple[str, ...], authorization: str) -> list[dict[str, str]]:
    """Every upstream registry resolves through its in-cluster pull-through cache first (served
    under /<upstream>/, containerd adds /v2), then upstream; the registry's own images
    (<mirror>/...) only from it. The registry needs credentials on every request: the pull
    account's header is sent with each (containerd merges `header` into every request to that
    host; no 401 round trip). Its certificate comes from the cluster CA, which kubeadm puts on
    every node. The header makes these files secrets: root-only."""
    ca = f'"{PKI_DIR}/ca.crt"'
    auth = f"Authorization = [{json.dumps(authorization)}]\n"  # a JSON string is a TOML basic string
    files = []
    for upstream in upstreams:
        server = "https://registry-1.docker.io" if upstream == "docker.io" else f"https://{upstream}"
        host = f'host."https://{mirror}/{upstream}"'
        hosts = (
            f'server = "{server}"\n\n'
            f"[{host}]\n"
            '  capabilities = ["pull", "resolve"]\n'
            f"  ca = {ca}\n\n"
            f"[{host}.header]\n"
            f"  {auth}"
        )
        files.append({"path": f"{CERTS_D}/{upstream}/hosts.toml", "permissions": "0600", "content": hosts})
    # The private images (<mirror>/akiba/...): containerd looks up certs.d/<host:port>/.
    own = f'server = "https://{mirror}"\nca = {ca}\n\n[header]\n  {auth}'
    files.append({"path": f"{CERTS_D}/{mirror}/hosts.toml", "permissions": "0600", "content": own})
    files.append({"path": STAGED_CONTAINERD_CONFIG, "permissions": "0644", "content": render_containerd_config()})
    return files


def _registry_address(node: NodeBootstrap) -> dict[str, object]:
    """The registry's name resolves to the node itself: the ingress NodePort listens on every
    node. Appended, so cloud-init (manage_etc_hosts: localhost) keeps it; on burst nodes the
    bootstrap script puts the instance's address in for the placeholder."""
    ip = IMDS_NODE_IP if node.instance_metadata == "aws" else node.ip
    host = node.registry_mirror.rsplit(":", 1)[0]  # host[:port]
    return {"path": "/etc/hosts", "append": True, "content": f"{ip} {host}\n"}


KUBELET_SETTINGS = "/etc/akiba/kubelet-config.yaml"  # the cluster's, as kubeadm init uploads it


def kubelet_configuration() -> dict[str, object]:
    """The whole cluster's KubeletConfiguration: `kubeadm init` uploads it to the kubelet-config
    ConfigMap and every join takes it from there. Every node's configuration also carries a
    copy, so that a change reaches each node as a changed file (`kubeadm upgrade node phase
    kubelet-config` and a kubelet restart), not only the first controller."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "systemReserved": SYSTEM_RESERVED,
        "kubeReserved": KUBE_RESERVED,
    }


def _kernel_files() -> list[dict[str, str]]:
    # flannel VXLAN needs bridged traffic to pass iptables and forwarding on.
    return [
        {"path": "/etc/modules-load.d/akiba-k8s.conf", "content": "overlay\nbr_netfilter\nvxlan\nbonding\n"},
        {
            "path": "/etc/sysctl.d/90-akiba-k8s.conf",
            "content": "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n"
            "net.ipv4.ip_forward = 1\nfs.inotify.max_user_instances = 8192\n",
        },
        {"path": KUBELET_SETTINGS, "permissions": "0644", "content": yamltext.dump(kubelet_configuration())},
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
        {"path": NETPLAN_PATH, "permissions": "0600", "content": render_netplan(netplan)},
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
                # No bootstrapTokens: kubeadm then makes one of its own (24 h, never printed:
                # --skip-token-print). The program's rotating token is created after init, from
                # JOIN_TOKEN_FILE, so that a rotation changes that file and not this one.
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
                "apiServer": {
                    "certSANs": list(dict.fromkeys([node.ip, node.hostname, c.api_host, *c.controller_names])),
                    **_api_server_settings(node),
                },
            }
        )
    else:
        docs.append(_join_document(node, registration, control_plane=node.role == "controller-join"))
    if node.role == "controller-init":
        # The whole cluster's kubelet configuration: `kubeadm init` stores it in the kubelet-config
        # ConfigMap and every `kubeadm join` takes it from there (join ignores any
        # KubeletConfiguration beside its JoinConfiguration).
        docs.append(kubelet_configuration())
    text = yamltext.dump_all(docs)
    files = [{"path": KUBEADM_CONFIG, "permissions": "0600", "content": text}]
    if node.role == "controller-init" and c.api_vip is not None:
        # A reinstalled first controller whose cluster still runs on the others must join it as
        # a controller: `kubeadm init` would start a second cluster behind the same VIP.
        rejoin = yamltext.dump_all([_join_document(node, registration, control_plane=True)])
        files.append({"path": KUBEADM_REJOIN_CONFIG, "permissions": "0600", "content": rejoin})
    return files


def _api_server_settings(node: NodeBootstrap) -> dict[str, object]:
    """kube-apiserver's flags (kubeadm v1beta4: a list of name/value): the admission plugins, and
    the file of Secrets' encryption keys that every controller's document writes. Joining
    controllers take these settings from the kubeadm-config ConfigMap."""
    args: list[dict[str, str]] = [{"name": "enable-admission-plugins", "value": ",".join(ADMISSION_PLUGINS)}]
    if node.encryption_config is None:
        return {"extraArgs": args}
    encryption_args, volumes = api_server_settings()
    return {"extraArgs": [*args, *encryption_args], "extraVolumes": volumes}


def _join_document(
    node: NodeBootstrap, registration: Mapping[str, object], *, control_plane: bool
) -> dict[str, object]:
    c = node.cluster
    join: dict[str, object] = {
        "apiVersion": KUBEADM_API,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": f"{c.api_host}:{c.api_port}",
                "token": JOIN_TOKEN_PLACEHOLDER,
                "caCertHashes": [c.ca_cert_hash],
            }
        },
        "nodeRegistration": registration,
    }
    if control_plane:
        join["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": node.ip, "bindPort": c.api_port}}
    return join


def _ssm_secret_lines(ssm: SsmSecrets) -> list[str]:
    """A burst node's secrets, read at boot with its instance profile's credentials (IMDSv2, which
    the aws CLI uses by itself). The CLI is a snap: Ubuntu's AMIs ship snapd, not the CLI (and
    noble has no awscli deb)."""
    return [
        'region=$(md placement/region); : "${region:?}"',
        # At first boot snapd may still be seeding: a snap install then fails ("too early").
        "command -v aws >/dev/null || { snap wait system seed.loaded && snap install aws-cli --classic; }",
        'ssm() { aws ssm get-parameter --region "$region" --with-decryption --name "$1"'
        " --query Parameter.Value --output text; }",
        f"join_token=$(ssm {shlex.quote(ssm.join_token)})",
        f"registry_auth=$(ssm {shlex.quote(ssm.registry_authorization)})",
        ': "${join_token:?}" "${registry_auth:?}"',
        f"install -d -m 0755 {JOIN_TOKEN_FILE.rsplit('/', 1)[0]}",
        f"(umask 077; printf '%s\\n' \"$join_token\" > {JOIN_TOKEN_FILE})",
        f'sed -i "s|{REGISTRY_AUTH_PLACEHOLDER}|$registry_auth|" {CERTS_D}/*/hosts.toml',
        "unset join_token registry_auth",
    ]


def _join_token_lines(node: NodeBootstrap) -> list[str]:
    """The first controller makes the office nodes' token valid for its TTL whenever the token
    file changes (at init, and at each rotation: the only file a rotation changes), and deletes
    tokens that never expire (the ones made before rotation). kubeadm prints a created token:
    not here (this output is the converge command's, kept in Pulumi's state)."""
    if node.role != "controller-init":
        return []
    ttl = node.cluster.token_ttl_hours
    return [
        f"if changed {JOIN_TOKEN_FILE}; then",
        f'  token=$(cat {JOIN_TOKEN_FILE}); : "${{token:?}}"',
        "  listed=$(kubeadm token list | awk 'NR > 1 {print $1}')",
        '  grep -qxF "$token" <<<"$listed"'
        f' || kubeadm token create "$token" --ttl {ttl}h --description "akiba office nodes" >/dev/null',
        "  forever=$(kubeadm token list | awk 'NR > 1 && $2 == \"<forever>\" {print $1}')",
        '  if [ -n "$forever" ]; then xargs kubeadm token delete <<<"$forever" >/dev/null; fi',
        "fi",
    ]


def _api_server_lines(node: NodeBootstrap) -> list[str]:
    """A running controller whose API server lacks a flag of its configuration (the encryption
    config arrived with a day-2 converge, an admission plugin was added) gets its static pod
    regenerated: the first controller from its own kubeadm configuration (just uploaded to
    kubeadm-config), the others from kubeadm-config. A changed key alone needs nothing: the API
    server reloads the file."""
    if node.role == "worker":
        return []
    manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
    flags = [f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}"]
    if node.encryption_config is not None:
        flags.append("--encryption-provider-config=")
    lacking = " || ".join(f"! grep -qF -- {flag} {manifest}" for flag in flags)
    regenerate = (
        f"kubeadm init phase control-plane apiserver --config {KUBEADM_CONFIG}"
        if node.role == "controller-init"
        else "kubeadm upgrade node phase control-plane"
    )
    return [
        f"if [ -f {manifest} ] && {{ {lacking}; }}; then",
        f"  {regenerate}",
        "fi",
    ]


def _script(node: NodeBootstrap) -> str:
    """The ordered steps; upstream's documented install for each package repository.

    The same script installs a node (cloud-init at first boot: nothing has been applied yet)
    and converges it afterwards (components/machines/converge_apply.py runs it after writing
    the changed files, listed in $AKIBA_CHANGED): every step is idempotent, and a restart
    happens only when a file it reads changed. A version bump is `kubeadm upgrade`, never a
    reinstall (kubernetes.io "Upgrading kubeadm clusters": kubeadm first, then
    `upgrade apply` on the first control-plane node and `upgrade node` on the others, then
    kubelet and kubectl)."""
    version = node.cluster.kubernetes_version
    minor = ".".join(version.split(".")[:2])
    pkg = f"{version}-1.1"
    lines = [
        "#!/bin/bash",
        "set -euo pipefail",
        # True when the file changed in this run; always at first boot (no list).
        'changed() { [ ! -f "${AKIBA_CHANGED:-}" ] || grep -qxF "$1" "$AKIBA_CHANGED"; }',
        # A kubeadm join configuration with the token filled in, on tmpfs, root's only.
        "with_join_token() {",
        f'  local token; token=$(cat {JOIN_TOKEN_FILE}); : "${{token:?no join token in {JOIN_TOKEN_FILE}}}"',
        f"  install -d -m 0700 {JOIN_CONFIG.rsplit('/', 1)[0]}",
        f'  (umask 077; sed "s|{JOIN_TOKEN_PLACEHOLDER}|$token|" "$1" > {JOIN_CONFIG})',
        "}",
        f"install_pinned() {{ DEBIAN_FRONTEND=noninteractive {APT_GET} install -y --allow-change-held-packages"
        ' "$@"; }',
        "modprobe -a overlay br_netfilter vxlan bonding",
        "sysctl --system",
        "swapoff -a",
    ]
    if node.instance_metadata == "aws":
        imds = "http://169.254.169.254/latest"
        lines += [
            f"IMDS_TOKEN=$({CURL} -X PUT {imds}/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')",
            f'md() {{ {CURL} -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "{imds}/meta-data/$1"; }}',
            # Each value in its own assignment, so a failed lookup stops the script (set -e does
            # not see a failure inside another command's arguments), and none may be empty.
            "node_name=$(md local-hostname); node_ip=$(md local-ipv4)",
            "zone=$(md placement/availability-zone); instance_id=$(md instance-id)",
            ': "${node_name:?}" "${node_ip:?}" "${zone:?}" "${instance_id:?}"',
            f'sed -i -e "s|{IMDS_NODE_NAME}|$node_name|g" -e "s|{IMDS_NODE_IP}|$node_ip|g"'
            f' -e "s|{IMDS_ZONE}|$zone|g" -e "s|{IMDS_INSTANCE_ID}|$instance_id|g"'
            " /etc/kubernetes/kubeadm.yaml /etc/hosts",
        ]
        if node.secrets_from_ssm is not None:
            lines += _ssm_secret_lines(node.secrets_from_ssm)
    if node.network is not None:
        # netplan apply returns before bond0 has its address: wait for it, or the downloads
        # below race the bond coming up. Only when the file changed: a converge that touched
        # nothing else must not bounce the node's network.
        lines += [
            f"if changed {NETPLAN_PATH}; then",
            "  rm -f /etc/netplan/50-cloud-init.yaml",
            "  netplan apply",
            "  /usr/lib/systemd/systemd-networkd-wait-online --interface=bond0:routable --timeout=120",
            "fi",
        ]
    lines += [
        f"{APT_GET} update",
        "install_pinned " + " ".join(PACKAGES),
        "install -d -m 0755 /etc/apt/keyrings",
        f"{CURL} https://pkgs.k8s.io/core:/stable:/v{minor}/deb/Release.key"
        " | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg",
        "echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
        f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /' > /etc/apt/sources.list.d/kubernetes.list",
        # Docker's repository for containerd.io (docs.docker.com/engine/install/ubuntu, deb822).
        f"{CURL} https://download.docker.com/linux/ubuntu/gpg -o /etc/apt/keyrings/docker.asc",
        "chmod a+r /etc/apt/keyrings/docker.asc",
        ". /etc/os-release",
        'printf "%s\\n" "Types: deb" "URIs: https://download.docker.com/linux/ubuntu" "Suites: $VERSION_CODENAME"'
        ' "Components: stable" "Architectures: $(dpkg --print-architecture)"'
        ' "Signed-By: /etc/apt/keyrings/docker.asc" > /etc/apt/sources.list.d/docker.sources',
    ]
    if node.gpu_driver_branch:
        lines += [
            f"{CURL} https://nvidia.github.io/libnvidia-container/gpgkey"
            " | gpg --dearmor --yes -o /etc/apt/keyrings/nvidia-container-toolkit.gpg",
            f"{CURL} https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list"
            " | sed 's#deb https://#deb [signed-by=/etc/apt/keyrings/nvidia-container-toolkit.gpg] https://#g'"
            " > /etc/apt/sources.list.d/nvidia-container-toolkit.list",
        ]
    lines.append(f"{APT_GET} update")
    packages = [f"kubeadm={pkg}"]
    if node.gpu_driver_branch:
        b = node.gpu_driver_branch
        # A new branch installs beside the running driver; it loads at the next reboot, which
        # the node announces (/var/run/reboot-required) and an engineer schedules.
        packages += [f"nvidia-headless-{b}", f"nvidia-utils-{b}", "nvidia-container-toolkit"]
    # Docker builds containerd.io per Ubuntu release; the release comes from /etc/os-release.
    containerd = f'"containerd.io={CONTAINERD_VERSION}~ubuntu.${{VERSION_ID}}~${{VERSION_CODENAME}}"'
    upgrade = f"kubeadm upgrade apply -y v{version}" if node.role == "controller-init" else "kubeadm upgrade node"
    lines += [
        f"install_pinned {containerd} " + " ".join(shlex.quote(p) for p in packages),
        "restart_kubelet=0",
        # A joined node on another version: kubeadm (just installed) upgrades it in place.
        f'if [ -f /etc/kubernetes/kubelet.conf ] && [ "$(kubelet --version)" != "Kubernetes v{version}" ]; then',
        f"  {upgrade}",
        "  restart_kubelet=1",
        "fi",
        f"install_pinned kubelet={pkg} kubectl={pkg}",
        "apt-mark hold kubelet kubeadm kubectl containerd.io",
        # GPUs only through the scheduler (components/cluster/node_security.py).
        *(node_security.nvidia_toolkit_lines() if node.gpu_driver_branch else []),
        *(node_security.apparmor_load_lines() if node.kind != "burst" else []),
        # The package's config disables the CRI plugin: ours replaces it whole. nvidia-ctk then
        # edits the installed file, so compare against the copy last applied, not against it.
        f"if ! cmp -s {STAGED_CONTAINERD_CONFIG} {APPLIED_CONTAINERD_CONFIG}; then",
        f"  install -D -m 0644 {STAGED_CONTAINERD_CONFIG} {CONTAINERD_CONFIG}",
    ]
    if node.gpu_driver_branch:
        lines.append("  nvidia-ctk runtime configure --runtime=containerd --set-as-default")
    lines += [
        # Running containers survive: their shims are not containerd's children.
        "  systemctl restart containerd",
        f"  cp {STAGED_CONTAINERD_CONFIG} {APPLIED_CONTAINERD_CONFIG}",
        "fi",
        "systemctl enable kubelet",
        "if [ ! -f /etc/kubernetes/kubelet.conf ]; then",
    ]
    vip_before, vip_after = kube_vip.install_lines(node.role == "controller-init")
    if node.role == "worker" or node.cluster.api_vip is None:
        vip_before, vip_after = [], []
    if node.role == "controller-init":
        init = [
            *vip_before,
            # Its output is the converge command's, kept in Pulumi's state and shown by `pulumi up`:
            # never the join token (init prints a join command with it unless told not to).
            f"  kubeadm init --config {KUBEADM_CONFIG} --skip-token-print",
        ]
        if node.cluster.api_vip is not None:
            # Reinstalled while the other controllers keep the cluster (and the VIP): rejoin it.
            # /readyz is readable without credentials (system:public-info-viewer).
            endpoint = f"https://{node.cluster.api_host}:{node.cluster.api_port}/readyz"
            init = [
                f"  if curl -sf --max-time 10 --cacert {PKI_DIR}/ca.crt {endpoint} >/dev/null; then",
                f"    with_join_token {KUBEADM_REJOIN_CONFIG}",
                f"    kubeadm join --config {JOIN_CONFIG}",
                f"    rm -f {JOIN_CONFIG}",
                "  else",
                *(f"  {line}" for line in init),
                "  fi",
            ]
        lines += [
            *init,
            f"elif changed {KUBEADM_CONFIG} || changed {KUBELET_SETTINGS}; then",
            # The cluster's kubelet settings live in the kubelet-config ConfigMap: update it
            # (nodes after this one read it), and make a rotated join token valid. Controllers
            # joining later take the ClusterConfiguration (endpoint, SANs) from kubeadm-config.
            f"  kubeadm init phase upload-config kubelet --config {KUBEADM_CONFIG}",
            f"  kubeadm init phase upload-config kubeadm --config {KUBEADM_CONFIG}",
            "  restart_kubelet=1",
        ]
    else:
        lines += [
            f"  with_join_token {KUBEADM_CONFIG}",
            f"  kubeadm join --config {JOIN_CONFIG}",
            # Joined: the token is of no further use here (a rejoin is a new converge, with a new one).
            f"  rm -f {JOIN_CONFIG} {JOIN_TOKEN_FILE}",
            f"elif changed {KUBEADM_CONFIG} || changed {KUBELET_SETTINGS}; then",
            "  restart_kubelet=1",
        ]
    lines += [
        "fi",
        *vip_after,
        *_join_token_lines(node),
        *_api_server_lines(node),
        'if [ "$restart_kubelet" = 1 ]; then',
        # The node's copy of the cluster's kubelet settings (kubeadm's documented day-2 path).
        "  kubeadm upgrade node phase kubelet-config",
        "  systemctl daemon-reload",
        "  systemctl restart kubelet",
        "fi",
        # Done means the kubelet answers: the next node's converge starts only then.
        "for _ in $(seq 60); do curl -sf http://127.0.0.1:10248/healthz >/dev/null && exit 0; sleep 2; done",
        'echo "kubelet not healthy after 120 s" >&2',
        "exit 1",
    ]
    return "\n".join(lines) + "\n"
