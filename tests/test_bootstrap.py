"""The one cloud-init renderer: what each node role gets, and the PKI arithmetic."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.bootstrap import BOOTSTRAP_SCRIPT as SCRIPT
from components.cluster.bootstrap import (
    CONTAINERD_CONFIG,
    CONTAINERD_VERSION,
    GPU_TAINT,
    IMDS_NODE_IP,
    JOIN_CONFIG,
    JOIN_TOKEN_FILE,
    JOIN_TOKEN_PLACEHOLDER,
    KUBE_RESERVED,
    KUBEADM_CONFIG,
    NETPLAN_PATH,
    PACKAGES,
    REGISTRY_AUTH_PLACEHOLDER,
    STAGED_CONTAINERD_CONFIG,
    SYSTEM_RESERVED,
    BondNetwork,
    ClusterJoin,
    NodeBootstrap,
    SsmSecrets,
    node_labels,
    node_taints,
    render_containerd_config,
    render_user_data,
)
from components.cluster.pki import ca_cert_hash, render_kubeconfig
from components.registry.credentials import PULL_USER, basic_authorization
from tests.conftest import IN_CI, require_tool
from tests.user_data import entries as _entries
from tests.user_data import files as _files
from tests.user_data import only_line as _index
from tests.user_data import script_lines as _script_lines

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
AUTH = basic_authorization(PULL_USER, "s3cret-pull-password")
CA = "/etc/kubernetes/pki/ca.crt"


def _node(**over: Any) -> NodeBootstrap:
    base: dict[str, Any] = {
        "hostname": "akiba02",
        "ip": "192.168.10.12",
        "role": "worker",
        "kind": "baremetal",
        "cluster": JOIN,
        "registry_mirror": "registry.akiba.lan:30443",
        "registry_upstreams": ("docker.io", "nvcr.io"),
        "registry_authorization": AUTH,
        "labels": node_labels("gtx-1070", 2, "baremetal"),
        "taints": node_taints("baremetal"),
        "gpu_driver_branch": "580",
        "network": BondNetwork(
            (("eno1", "aa:bb:cc:00:00:01"), ("enp3s0f0", "aa:bb:cc:00:00:02")),
            "192.168.10.12/24",
            "192.168.10.1",
            ("192.168.10.1",),
        ),
    }
    return NodeBootstrap(**(base | over))


def _burst(**over: Any) -> NodeBootstrap:
    base: dict[str, Any] = {
        "hostname": "",
        "ip": "",
        "kind": "burst",
        "labels": node_labels("tesla-t4", 1, "burst"),
        "taints": node_taints("burst"),
        "network": None,
        "instance_metadata": "aws",
    }
    return _node(**(base | over))


def _kubeadm(user_data: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(_files(user_data)["/etc/kubernetes/kubeadm.yaml"]))


# --- taints and labels ------------------------------------------------------------------------


def test_office_nodes_are_untainted_and_burst_nodes_keep_the_gpu_taint() -> None:
    """Every office node has GPUs, guarded by the nvidia.com/gpu resource: no taint, not even
    kubeadm's control-plane one (an explicit empty list). Paid burst capacity keeps its taint."""
    assert node_taints("baremetal") == node_taints("vm") == ()
    assert node_taints("burst") == (GPU_TAINT,)
    for role in ("controller-init", "controller-join", "worker"):
        reg = _kubeadm(render_user_data(_node(role=role, pki={"ca.crt": "C"})))[0]["nodeRegistration"]
        assert "taints" in reg and reg["taints"] == [], role
    burst = _kubeadm(render_user_data(_burst()))[0]["nodeRegistration"]
    assert burst["taints"] == [GPU_TAINT]


def test_gpu_worker_joins_with_labels_driver_and_toolkit() -> None:
    text = render_user_data(_node())
    join = _kubeadm(text)[0]
    assert join["kind"] == "JoinConfiguration"
    assert join["discovery"]["bootstrapToken"]["caCertHashes"] == ["sha256:00ff"]
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "192.168.10.11:6443"
    reg = join["nodeRegistration"]
    labels = next(a["value"] for a in reg["kubeletExtraArgs"] if a["name"] == "node-labels")
    assert "akiba.io/gpu-model=gtx-1070" in labels and "akiba.io/gpu-count=2" in labels
    script = _files(text)[SCRIPT]
    assert "nvidia-headless-580" in script and "nvidia-container-toolkit" in script
    assert "nvidia-ctk runtime configure --runtime=containerd --set-as-default" in script
    assert "kubeadm join --config" in script and "kubelet=1.36.4-1.1" in script


def test_node_without_gpu_gets_no_driver() -> None:
    text = render_user_data(_node(labels=node_labels(None, 0, "baremetal"), gpu_driver_branch=None))
    assert "nvidia" not in text
    assert _kubeadm(text)[0]["nodeRegistration"]["taints"] == []


def test_first_controller_inits_with_the_programs_pki() -> None:
    pki = {"ca.crt": "CERT", "ca.key": "KEY", "sa.key": "SAKEY", "sa.pub": "SAPUB"}
    text = render_user_data(_node(role="controller-init", pki=pki))
    init, cluster = _kubeadm(text)[:2]
    assert init["kind"] == "InitConfiguration" and cluster["kind"] == "ClusterConfiguration"
    assert "bootstrapTokens" not in init, "kubeadm's own 24 h token at init; ours is made valid from its file"
    assert cluster["networking"] == {
        "podSubnet": "10.244.0.0/16",
        "serviceSubnet": "10.96.0.0/12",
        "dnsDomain": "cluster.local",
    }
    files = _files(text)
    assert files["/etc/kubernetes/pki/ca.key"] == "KEY"
    modes = {f["path"]: f.get("permissions") for f in _entries(text)}
    assert modes["/etc/kubernetes/pki/ca.key"] == "0600"
    assert files[JOIN_TOKEN_FILE] == JOIN.token + "\n" and modes[JOIN_TOKEN_FILE] == "0600"


def test_kubelet_reserves_cpu_and_memory_and_keeps_the_default_eviction() -> None:
    """The cluster's kubelet configuration goes with `kubeadm init`, which stores it for every
    node; `kubeadm join` would ignore a copy beside its JoinConfiguration, so none is written."""
    assert not [d for d in _kubeadm(render_user_data(_node())) if d["kind"] == "KubeletConfiguration"]
    init = render_user_data(_node(role="controller-init", pki={"ca.key": "k"}))
    kubelet = next(d for d in _kubeadm(init) if d["kind"] == "KubeletConfiguration")
    assert kubelet["systemReserved"] == SYSTEM_RESERVED == {"cpu": "500m", "memory": "1Gi"}
    assert kubelet["kubeReserved"] == KUBE_RESERVED == {"cpu": "500m", "memory": "1Gi"}
    assert kubelet["cgroupDriver"] == "systemd"
    # One evictionHard signal would zero the kubelet's other default thresholds.
    assert "evictionHard" not in kubelet


# --- containerd -------------------------------------------------------------------------------


def test_containerd_config_is_a_complete_version_3_file() -> None:
    config = tomllib.loads(render_containerd_config())
    assert config["version"] == 3
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert images["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.10.1"
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]
    assert runtime["default_runtime_name"] == "runc"
    assert runtime["runtimes"]["runc"]["runtime_type"] == "io.containerd.runc.v2"
    assert runtime["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert "disabled_plugins" not in config  # the package's own file disables "cri"
    files = _files(render_user_data(_node()))
    assert files[STAGED_CONTAINERD_CONFIG] == render_containerd_config()
    assert CONTAINERD_CONFIG not in files, "a file there before apt makes dpkg ask about its conffile"


def test_containerd_2_comes_pinned_from_dockers_repository() -> None:
    text = render_user_data(_node())
    lines = _script_lines(text)
    assert "containerd" not in PACKAGES and "packages" not in yaml.safe_load(text)
    assert "install_pinned " + " ".join(PACKAGES) in lines  # the script installs them (converge too)
    key = _index(lines, r"download\.docker\.com/linux/ubuntu/gpg -o /etc/apt/keyrings/docker\.asc")
    source = _index(lines, r"docker\.sources$")
    assert (
        '"Signed-By: /etc/apt/keyrings/docker.asc"' in lines[source] and '"Suites: $VERSION_CODENAME"' in lines[source]
    )
    assert '"Types: deb"' in lines[source]  # deb822
    install = _index(lines, r"^install_pinned .*containerd\.io")
    pin = f'"containerd.io={CONTAINERD_VERSION}~ubuntu.${{VERSION_ID}}~${{VERSION_CODENAME}}"'
    assert pin in lines[install] and CONTAINERD_VERSION.startswith("2.")
    assert _index(lines, r"^\. /etc/os-release$") < install, "VERSION_ID and VERSION_CODENAME come from it"
    assert re.search(r"^apt-mark hold .*containerd\.io", "\n".join(lines), re.M)
    # Ours over the package's config after apt, then nvidia-ctk's drop-in, then the restart.
    ours = lines.index(f"install -D -m 0644 {STAGED_CONTAINERD_CONFIG} {CONTAINERD_CONFIG}")
    nvidia = _index(lines, r"^nvidia-ctk runtime configure")
    restart = lines.index("systemctl restart containerd")
    assert key < source < install < ours < nvidia < restart < _index(lines, r"^kubeadm join")
    assert not any("containerd config default" in line or "sed -i -e 's/SystemdCgroup" in line for line in lines)


def test_every_download_retries_and_the_bond_is_waited_for() -> None:
    for node in (_node(), _burst()):
        lines = _script_lines(render_user_data(node))
        curls = [line for line in lines if re.search(r"\bcurl\b.*https://", line)]  # downloads
        assert curls and all("--retry 5 --retry-all-errors --retry-delay 3" in line for line in curls)
        apts = [line for line in lines if re.search(r"\bapt-get\b", line)]
        assert apts and all("-o Acquire::Retries=5" in line for line in apts)
    lines = _script_lines(render_user_data(_node()))
    wait = "/usr/lib/systemd/systemd-networkd-wait-online --interface=bond0:routable --timeout=120"
    assert lines.index("netplan apply") + 1 == lines.index(wait)
    first_download = min(i for i, line in enumerate(lines) if "https://" in line or line.startswith("apt-get"))
    assert lines.index(wait) < first_download
    assert lines[lines.index("netplan apply") - 2] == f"if changed {NETPLAN_PATH}; then", "a converge keeps the bond"


@pytest.mark.checker
def test_bootstrap_scripts_parse_in_bash(tmp_path: Path) -> None:
    bash = require_tool("bash", "apt-get install bash")
    nodes = [_node(), _node(role="controller-init", pki={"ca.crt": "C"}), _burst(), _node(gpu_driver_branch=None)]
    for i, node in enumerate(nodes):
        script = tmp_path / f"bootstrap-{i}.sh"
        script.write_text(_files(render_user_data(node))[SCRIPT])
        proc = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr


# --- the registry from every node -------------------------------------------------------------


def test_containerd_pulls_through_the_mirror_with_the_pull_credential() -> None:
    entries = {f["path"]: f for f in _entries(render_user_data(_node()))}
    nvcr = tomllib.loads(entries["/etc/containerd/certs.d/nvcr.io/hosts.toml"]["content"])
    assert nvcr["server"] == "https://nvcr.io"
    mirror = nvcr["host"]["https://registry.akiba.lan:30443/nvcr.io"]
    assert mirror["capabilities"] == ["pull", "resolve"] and mirror["ca"] == CA
    assert mirror["header"] == {"Authorization": [AUTH]} and "override_path" not in mirror
    docker = tomllib.loads(entries["/etc/containerd/certs.d/docker.io/hosts.toml"]["content"])
    assert docker["server"] == "https://registry-1.docker.io"
    # The registry's own images: certs.d/<host:port>/, only from it, with the credential.
    own = tomllib.loads(entries["/etc/containerd/certs.d/registry.akiba.lan:30443/hosts.toml"]["content"])
    assert own == {"server": "https://registry.akiba.lan:30443", "ca": CA, "header": {"Authorization": [AUTH]}}
    user, _, password = base64.b64decode(AUTH.removeprefix("Basic ")).decode().partition(":")
    assert (user, password) == (PULL_USER, "s3cret-pull-password")
    hosts = [f for path, f in entries.items() if path.endswith("/hosts.toml")]
    assert len(hosts) == 3 and all(f["permissions"] == "0600" for f in hosts), "they hold the credential"


def test_shared_fragments_are_cached_per_credential() -> None:
    """The containerd files are rendered once and reused; a node of another credential must
    never get the first one's."""
    other = basic_authorization(PULL_USER, "another-password")
    first, second = render_user_data(_node()), render_user_data(_node(registry_authorization=other))
    assert AUTH in first and other not in first
    assert other in second and AUTH not in second


def test_the_registry_resolves_to_the_node_itself() -> None:
    text = render_user_data(_node())
    assert yaml.safe_load(text)["manage_etc_hosts"] == "localhost", "True re-renders /etc/hosts at every boot"
    appended = [f for f in _entries(text) if f["path"] == "/etc/hosts"]
    assert appended == [{"path": "/etc/hosts", "append": True, "content": "192.168.10.12 registry.akiba.lan\n"}]
    burst = render_user_data(_burst())
    (entry,) = [f for f in _entries(burst) if f["path"] == "/etc/hosts"]
    assert entry["content"] == f"{IMDS_NODE_IP} registry.akiba.lan\n" and entry["append"] is True
    sed = next(line for line in _script_lines(burst) if line.startswith("sed -i"))
    assert f"s|{IMDS_NODE_IP}|$node_ip|g" in sed and sed.endswith(" /etc/kubernetes/kubeadm.yaml /etc/hosts")
    # Looked up one by one, so a failed lookup stops the script, and none may be empty.
    lines = _script_lines(burst)
    assert "node_name=$(md local-hostname); node_ip=$(md local-ipv4)" in lines
    assert ': "${node_name:?}" "${node_ip:?}" "${zone:?}" "${instance_id:?}"' in lines
    assert lines.index(': "${node_name:?}" "${node_ip:?}" "${zone:?}" "${instance_id:?}"') < lines.index(sed)


# --- network ----------------------------------------------------------------------------------


def test_flannel_kernel_settings() -> None:
    files = _files(render_user_data(_node()))
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


# --- secrets: the join token, the burst nodes' SSM secrets, encryption at rest ----------------

SSM = SsmSecrets(join_token="/akiba/burst/join-token", registry_authorization="/akiba/burst/registry-authorization")


@pytest.mark.parametrize(
    "node",
    [
        _node(),
        _node(role="controller-join", pki={"ca.crt": "CERT"}),
        _burst(secrets_from_ssm=SSM, registry_authorization=""),
    ],
    ids=["worker", "controller-join", "burst"],
)
def test_a_joining_nodes_document_carries_no_join_token(node: NodeBootstrap) -> None:
    """A rotation must not change every node's document, and a launch template is readable by
    anyone with ec2:DescribeLaunchTemplateVersions: the token reaches the node apart."""
    text = render_user_data(node)
    assert JOIN.token not in text and JOIN.token.split(".")[1] not in text
    join = next(d for d in _kubeadm(text) if d["kind"] == "JoinConfiguration")
    assert join["discovery"]["bootstrapToken"]["token"] == JOIN_TOKEN_PLACEHOLDER
    assert JOIN_TOKEN_FILE not in _files(text), "only the first controller's document has the token"
    lines = _script_lines(text)
    assert lines.index(f"with_join_token {KUBEADM_CONFIG}") + 1 == lines.index(f"kubeadm join --config {JOIN_CONFIG}")
    assert f"rm -f {JOIN_CONFIG} {JOIN_TOKEN_FILE}" in lines, "the token is removed once joined"


def test_with_join_token_fills_in_the_token_for_root_only(tmp_path: Path) -> None:
    """The script's own function, run by bash on a temporary root."""
    bash = require_tool("bash", "apt-get install bash")
    script = _files(render_user_data(_node()))[SCRIPT]
    start = script.index("with_join_token() {")
    function = script[start : script.index("\n}\n", start) + 3]
    token_file, config = tmp_path / "join-token", tmp_path / "run" / "kubeadm-join.yaml"
    function = function.replace(JOIN_TOKEN_FILE, str(token_file)).replace(JOIN_CONFIG, str(config))
    function = function.replace(JOIN_CONFIG.rsplit("/", 1)[0], str(config.parent))
    token_file.write_text(JOIN.token + "\n")
    kubeadm = tmp_path / "kubeadm.yaml"
    kubeadm.write_text(_files(render_user_data(_node()))[KUBEADM_CONFIG])
    subprocess.run([bash, "-c", f"set -euo pipefail\n{function}with_join_token {kubeadm}"], check=True)
    join = next(d for d in yaml.safe_load_all(config.read_text()) if d["kind"] == "JoinConfiguration")
    assert join["discovery"]["bootstrapToken"]["token"] == JOIN.token
    assert config.stat().st_mode & 0o077 == 0 and config.parent.stat().st_mode & 0o077 == 0
    token_file.write_text("")
    empty = subprocess.run([bash, "-c", f"set -euo pipefail\n{function}with_join_token {kubeadm}"], check=False)
    assert empty.returncode != 0, "no token: the join stops before kubeadm runs"


def test_the_first_controller_makes_the_token_valid_with_a_ttl_and_drops_tokens_that_never_expire() -> None:
    text = render_user_data(_node(role="controller-init", pki={"ca.crt": "CERT"}))
    lines = _script_lines(text)
    block = lines[lines.index(f"if changed {JOIN_TOKEN_FILE}; then") :]
    create = next(line for line in block if "kubeadm token create" in line)
    assert "--ttl 336h" in create and create.endswith(">/dev/null"), "two weeks: twice the rotation; never printed"
    assert any('$2 == "<forever>"' in line for line in block) and any("kubeadm token delete" in line for line in block)
    assert "--ttl 0" not in text
    assert lines.index(f"kubeadm init --config {KUBEADM_CONFIG} --skip-token-print") < lines.index(
        f"if changed {JOIN_TOKEN_FILE}; then"
    )
    # A rotation changes that file alone: no kubelet restart, no other node's document.
    rotated = ClusterJoin(**{**JOIN.__dict__, "token": "zyxwvu.9876543210zyxwvu"})
    before = _files(text)
    after = _files(render_user_data(_node(role="controller-init", pki={"ca.crt": "CERT"}, cluster=rotated)))
    assert [p for p in before if before[p] != after.get(p)] == [JOIN_TOKEN_FILE]
    assert _files(render_user_data(_node())) == _files(render_user_data(_node(cluster=rotated)))


def test_burst_nodes_read_their_secrets_from_ssm_at_boot() -> None:
    text = render_user_data(_burst(secrets_from_ssm=SSM, registry_authorization=""))
    assert AUTH not in text and "s3cret" not in text and JOIN.token not in text
    # Every `token:` key (the JoinConfiguration's, anywhere in the text) holds the placeholder.
    assert set(re.findall(r"^\s*token:\s*(\S+)", text, re.MULTILINE)) == {JOIN_TOKEN_PLACEHOLDER}
    hosts = [c for p, c in _files(text).items() if p.endswith("hosts.toml")]
    assert hosts and all(REGISTRY_AUTH_PLACEHOLDER in c for c in hosts)
    lines = _script_lines(text)
    assert f"join_token=$(ssm {SSM.join_token})" in lines
    assert f"registry_auth=$(ssm {SSM.registry_authorization})" in lines
    fill = _index(lines, f"s\\|{REGISTRY_AUTH_PLACEHOLDER}\\|")
    assert fill < _index(lines, r"^install_pinned \"containerd\.io"), "credentials before containerd pulls"
    assert _index(lines, r"^ssm\(\) \{ aws ssm get-parameter .*--with-decryption") < fill
    assert lines.index(f"(umask 077; printf '%s\\n' \"$join_token\" > {JOIN_TOKEN_FILE})") < lines.index(
        f"with_join_token {KUBEADM_CONFIG}"
    )
    with pytest.raises(ValueError, match="SSM"):
        _node(secrets_from_ssm=SSM)


def test_api_server_refuses_external_ips_and_keeps_node_restriction() -> None:
    """Engineers create Services: spec.externalIPs would let one intercept traffic to any address
    (CVE-2020-8554). The flag replaces kubeadm's default, so NodeRestriction must stay in it."""
    init = render_user_data(_node(role="controller-init", pki={"ca.crt": "C"}))
    (cluster,) = [d for d in _kubeadm(init) if d["kind"] == "ClusterConfiguration"]
    assert cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    extra = cluster["apiServer"]["extraArgs"]
    # v1beta4's shape: a list of {name, value}, not v1beta3's map.
    assert isinstance(extra, list) and all(set(a) == {"name", "value"} for a in extra)
    (plugins,) = [a["value"] for a in extra if a["name"] == "enable-admission-plugins"]
    assert plugins.split(",") == ["NodeRestriction", "DenyServiceExternalIPs"]
    # A running controller regenerates its API server when the flag is missing (a day-2 converge).
    flag = "--enable-admission-plugins=NodeRestriction,DenyServiceExternalIPs"
    join = render_user_data(_node(role="controller-join", pki={"ca.crt": "C"}))
    for text, regenerate in (
        (init, f"kubeadm init phase control-plane apiserver --config {KUBEADM_CONFIG}"),
        (join, "kubeadm upgrade node phase control-plane"),
    ):
        lines = _script_lines(text)
        check = _index(lines, re.escape(f"grep -qF -- {flag} /etc/kubernetes/manifests/kube-apiserver.yaml"))
        assert lines[check].startswith("if [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]")
        assert lines[check + 1] == regenerate
    assert flag not in render_user_data(_node()), "workers run no API server"


def test_controllers_encrypt_secrets_at_rest_with_the_same_file() -> None:
    from components.cluster.encryption import ENCRYPTION_CONFIG, encryption_configuration, render_encryption_config

    key = base64.b64encode(bytes(range(32))).decode()
    config = render_encryption_config([("key-1", key)])
    init = render_user_data(_node(role="controller-init", pki={"ca.crt": "C"}, encryption_config=config))
    join = render_user_data(_node(role="controller-join", pki={"ca.crt": "C"}, encryption_config=config))
    for text in (init, join):
        assert _files(text)[ENCRYPTION_CONFIG] == config
        assert {f["path"]: f.get("permissions") for f in _entries(text)}[ENCRYPTION_CONFIG] == "0600"
    assert ENCRYPTION_CONFIG not in render_user_data(_node()), "workers never see the key"
    api = next(d for d in _kubeadm(init) if d["kind"] == "ClusterConfiguration")["apiServer"]
    args = {a["name"]: a["value"] for a in api["extraArgs"]}
    assert args == {
        "enable-admission-plugins": "NodeRestriction,DenyServiceExternalIPs",
        "encryption-provider-config": ENCRYPTION_CONFIG,
        "encryption-provider-config-automatic-reload": "true",
    }
    (volume,) = api["extraVolumes"]
    assert ENCRYPTION_CONFIG.startswith(volume["mountPath"] + "/") and volume["hostPath"] == volume["mountPath"]
    assert volume["readOnly"] is True
    # The shape kube-apiserver reads (apiserver.config.k8s.io/v1; kubernetes-validate has no schema
    # for it): secrets only, secretbox with 32-byte keys first (it encrypts), identity last (reads
    # what was written before encryption was on).
    doc = yaml.safe_load(config)
    assert doc == encryption_configuration([("key-1", key)])
    assert doc["apiVersion"] == "apiserver.config.k8s.io/v1" and doc["kind"] == "EncryptionConfiguration"
    (rule,) = doc["resources"]
    assert rule["resources"] == ["secrets"]
    first, last = rule["providers"]
    assert [len(base64.b64decode(k["secret"])) for k in first["secretbox"]["keys"]] == [32]
    assert last == {"identity": {}}
    # A running controller regenerates its API server's static pod once the flag is missing.
    init_lines, join_lines = _script_lines(init), _script_lines(join)
    assert f"kubeadm init phase control-plane apiserver --config {KUBEADM_CONFIG}" in init_lines
    assert "kubeadm upgrade node phase control-plane" in join_lines
    for lines in (init_lines, join_lines):
        check = _index(lines, "grep -qF -- --encryption-provider-config=")
        assert lines[check].startswith("if [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]")
