"""The one cloud-init renderer: what each node role gets, and the PKI arithmetic."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.bootstrap import (
    GPU_TAINT,
    BondNetwork,
    ClusterJoin,
    NodeBootstrap,
    node_labels,
    node_taints,
    render_user_data,
)
from components.cluster.pki import ca_cert_hash, render_kubeconfig
from tests.conftest import IN_CI

JOIN = ClusterJoin(
    "akiba",
    "1.36.4",
    "192.168.10.11",
    6443,
    "abcdef.0123456789abcdef",
    "sha256:00ff",
    "10.244.0.0/16",
    "10.96.0.0/12",
    "cluster.local",
)


def _node(**over: Any) -> NodeBootstrap:
    base: dict[str, Any] = {
        "hostname": "akiba02",
        "ip": "192.168.10.12",
        "role": "worker",
        "kind": "baremetal",
        "cluster": JOIN,
        "registry_mirror": "registry.akiba.lan:5000",
        "registry_upstreams": ("docker.io", "nvcr.io"),
        "labels": node_labels("gtx-1070", 2, "baremetal"),
        "taints": node_taints("worker", True),
        "gpu_driver_branch": "580",
        "network": BondNetwork(
            (("eno1", "aa:bb:cc:00:00:01"), ("enp3s0f0", "aa:bb:cc:00:00:02")),
            "192.168.10.12/24",
            "192.168.10.1",
            ("192.168.10.1",),
        ),
    }
    return NodeBootstrap(**(base | over))


def _files(user_data: str) -> dict[str, str]:
    assert user_data.startswith("#cloud-config\n")
    doc = yaml.safe_load(user_data)
    return {f["path"]: f["content"] for f in doc["write_files"]}


def _kubeadm(user_data: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(_files(user_data)["/etc/kubernetes/kubeadm.yaml"]))


def test_gpu_worker_joins_with_labels_taint_driver_and_toolkit() -> None:
    text = render_user_data(_node())
    join = _kubeadm(text)[0]
    assert join["kind"] == "JoinConfiguration"
    assert join["discovery"]["bootstrapToken"]["caCertHashes"] == ["sha256:00ff"]
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "192.168.10.11:6443"
    reg = join["nodeRegistration"]
    labels = next(a["value"] for a in reg["kubeletExtraArgs"] if a["name"] == "node-labels")
    assert "akiba.io/gpu-model=gtx-1070" in labels and "akiba.io/gpu-count=2" in labels
    assert reg["taints"] == [GPU_TAINT]
    script = _files(text)["/usr/local/sbin/akiba-bootstrap"]
    assert "nvidia-headless-580" in script and "nvidia-container-toolkit" in script
    assert "nvidia-ctk runtime configure --runtime=containerd" in script
    assert "kubeadm join --config" in script and "kubelet=1.36.4-1.1" in script


def test_node_without_gpu_gets_no_driver_and_no_taint() -> None:
    text = render_user_data(
        _node(labels=node_labels(None, 0, "baremetal"), taints=node_taints("worker", False), gpu_driver_branch=None)
    )
    assert "nvidia" not in text
    reg = _kubeadm(text)[0]["nodeRegistration"]
    assert reg["taints"] == []


def test_first_controller_inits_with_the_programs_pki() -> None:
    pki = {"ca.crt": "CERT", "ca.key": "KEY", "sa.key": "SAKEY", "sa.pub": "SAPUB"}
    text = render_user_data(_node(role="controller-init", pki=pki, taints=node_taints("controller-init", True)))
    init, cluster = _kubeadm(text)[:2]
    assert init["kind"] == "InitConfiguration" and cluster["kind"] == "ClusterConfiguration"
    assert init["bootstrapTokens"][0]["token"] == JOIN.token
    assert cluster["networking"] == {
        "podSubnet": "10.244.0.0/16",
        "serviceSubnet": "10.96.0.0/12",
        "dnsDomain": "cluster.local",
    }
    files = _files(text)
    assert files["/etc/kubernetes/pki/ca.key"] == "KEY"
    doc = yaml.safe_load(text)
    modes = {f["path"]: f.get("permissions") for f in doc["write_files"]}
    assert modes["/etc/kubernetes/pki/ca.key"] == "0600"
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in init["nodeRegistration"][
        "taints"
    ]


def test_containerd_pulls_through_the_mirror_and_flannel_kernel_settings() -> None:
    files = _files(render_user_data(_node()))
    hosts = files["/etc/containerd/certs.d/nvcr.io/hosts.toml"]
    assert 'server = "https://nvcr.io"' in hosts and 'host."https://registry.akiba.lan:5000/nvcr.io"' in hosts
    assert 'ca = "/etc/kubernetes/pki/ca.crt"' in hosts and "override_path" not in hosts
    assert "registry-1.docker.io" in files["/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert "net.bridge.bridge-nf-call-iptables = 1" in files["/etc/sysctl.d/90-akiba-k8s.conf"]
    assert "vxlan" in files["/etc/modules-load.d/akiba-k8s.conf"]


def test_bond_is_balance_alb_over_every_nic() -> None:
    netplan = yaml.safe_load(_files(render_user_data(_node()))["/etc/netplan/60-akiba-bond.yaml"])
    bond = netplan["network"]["bonds"]["bond0"]
    assert bond["interfaces"] == ["eno1", "enp3s0f0"]
    assert bond["parameters"]["mode"] == "balance-alb"
    assert bond["addresses"] == ["192.168.10.12/24"]


def test_ca_cert_hash_matches_openssl(tmp_path: Path) -> None:
    """The hash kubeadm documents: openssl x509 -pubkey | openssl rsa -pubin -outform der | sha256."""
    if not shutil.which("openssl"):
        if IN_CI:
            pytest.fail("openssl is missing")
        pytest.skip("openssl is not installed")
    key = tmp_path / "ca.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    pub = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout"], check=True, capture_output=True, text=True
    ).stdout
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "der"], check=True, capture_output=True
    ).stdout
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hex"], input=der, check=True, capture_output=True
    ).stdout.decode()
    assert ca_cert_hash(pub) == "sha256:" + digest.split("= ")[-1].strip()


def test_kubeconfig_points_at_the_api_with_embedded_credentials() -> None:
    doc = yaml.safe_load(render_kubeconfig("akiba", "https://192.168.10.11:6443", "CA", "CERT", "KEY"))
    assert doc["clusters"][0]["cluster"]["server"] == "https://192.168.10.11:6443"
    assert doc["users"][0]["user"]["client-key-data"] == "S0VZ"  # base64("KEY")
    assert doc["current-context"] == doc["contexts"][0]["name"]
