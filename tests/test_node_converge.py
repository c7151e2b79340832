"""Day-2 node configuration: the applier a node runs (for real, on a temporary root), the
script it hands over to, and the chain of commands the plan declares."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from components.cluster.bootstrap import (
    APPLIED_CONTAINERD_CONFIG,
    BOOTSTRAP_SCRIPT,
    JOIN_CONFIG,
    JOIN_TOKEN_FILE,
    KUBEADM_CONFIG,
    NETPLAN_PATH,
    STAGED_CONTAINERD_CONFIG,
    NodeInstall,
    render_install_user_data,
    render_user_data,
)
from components.machines import converge_apply
from components.machines.node_converge import APPLIER, apply_command, create_command, drain_script, uncordon_script
from tests.conftest import require_tool
from tests.test_bootstrap import _node
from tools.plan.runner import Plan

CHANGED = converge_apply.CHANGED_LIST


def _init_converge(plan: Plan) -> tuple[str, str]:
    """(name, token): the one node configuration that carries the office nodes' join token (the
    first controller's, which makes it valid on the cluster)."""
    import yaml

    found = []
    for r in plan.by_type("command:remote:Command"):
        if r.name.endswith("-converge"):
            files = yaml.safe_load(r.raw_inputs["stdin"])["write_files"]
            found += [(r.name, str(f["content"]).strip()) for f in files if f["path"] == JOIN_TOKEN_FILE]
    (only,) = found
    assert len(only[1]) == 23 and only[1][6] == "."
    return only


def _run_applier(root: Path, document: str) -> list[str]:
    """The applier as a node runs it (`python3 -c <its text>`, the document on stdin)."""
    proc = subprocess.run(
        [sys.executable, "-c", APPLIER.read_text()],
        input=document,
        env={**os.environ, "AKIBA_ROOT": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "file(s) changed" in proc.stdout
    return (root / CHANGED.lstrip("/")).read_text().splitlines()


def test_the_applier_writes_what_changed_and_nothing_else(tmp_path: Path) -> None:
    first = render_user_data(_node())
    written = _run_applier(tmp_path, first)
    assert {KUBEADM_CONFIG, NETPLAN_PATH, STAGED_CONTAINERD_CONFIG, BOOTSTRAP_SCRIPT, "/etc/hosts"} <= set(written)
    kubeadm = tmp_path / KUBEADM_CONFIG.lstrip("/")
    assert stat.S_IMODE(kubeadm.stat().st_mode) == 0o600, "root's only"
    assert os.access(tmp_path / BOOTSTRAP_SCRIPT.lstrip("/"), os.X_OK)
    # The same document again: nothing to restart, and /etc/hosts keeps one registry line.
    assert _run_applier(tmp_path, first) == []
    hosts = (tmp_path / "etc/hosts").read_text().splitlines()
    assert len(hosts) == 1 and hosts[0].endswith("registry.akiba.lan")
    # A day-2 change (one more registry upstream) touches only its own file.
    second = render_user_data(_node(registry_upstreams=("docker.io", "nvcr.io", "quay.io")))
    assert _run_applier(tmp_path, second) == ["/etc/containerd/certs.d/quay.io/hosts.toml"]


def test_a_mode_change_alone_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    path.chmod(0o644)
    doc = "#cloud-config\nwrite_files:\n- path: /f\n  permissions: '0600'\n  content: x\n"
    assert converge_apply.apply(doc, str(tmp_path)) == ["/f"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert converge_apply.apply(doc, str(tmp_path)) == []


def test_the_script_restarts_only_what_changed() -> None:
    lines = [line.strip() for line in render_user_data(_node()).split(BOOTSTRAP_SCRIPT, 1)[1].splitlines()]
    text = "\n".join(lines)
    assert f"if changed {NETPLAN_PATH}; then" in lines, "the bond is re-applied only when its file changed"
    assert f"if ! cmp -s {STAGED_CONTAINERD_CONFIG} {APPLIED_CONTAINERD_CONFIG}; then" in lines
    assert lines.index("systemctl restart containerd") > lines.index(
        f"if ! cmp -s {STAGED_CONTAINERD_CONFIG} {APPLIED_CONTAINERD_CONFIG}; then"
    )
    # A joined node on another version upgrades with kubeadm; a new node joins.
    assert 'if [ -f /etc/kubernetes/kubelet.conf ] && [ "$(kubelet --version)" != "Kubernetes v1.36.4" ]; then' in text
    assert "kubeadm upgrade node" in lines and f"kubeadm join --config {JOIN_CONFIG}" in lines
    init = render_user_data(_node(role="controller-init", pki={"ca.crt": "C"}))
    assert "kubeadm upgrade apply -y v1.36.4" in init
    assert f"kubeadm init phase upload-config kubelet --config {KUBEADM_CONFIG}" in init
    assert "kubeadm token create" in init, "a rotated join token becomes valid without a reinstall"


@pytest.mark.checker
def test_the_commands_parse_in_bash(tmp_path: Path) -> None:
    bash = require_tool("bash", "apt-get install bash")
    for i, script in enumerate(
        (apply_command(), drain_script("akiba01", "1.36.4"), uncordon_script("akiba01", "1.36.4"))
    ):
        path = tmp_path / f"cmd-{i}.sh"
        path.write_text(script)
        proc = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr


def test_the_applier_travels_whole(tmp_path: Path) -> None:
    """The remote command carries the applier itself: decoded, it is the file the tests run."""
    encoded = apply_command().split("echo ", 1)[1].split(" |", 1)[0]
    proc = subprocess.run(["base64", "-d"], input=encoded, capture_output=True, text=True, check=True)
    assert proc.stdout == APPLIER.read_text()


@pytest.mark.checker
def test_the_install_is_valid_and_holds_only_what_needs_a_new_machine(tmp_path: Path) -> None:
    cloud_init = require_tool("cloud-init", "apt-get install cloud-init")
    text = render_install_user_data(
        NodeInstall(
            hostname="akiba01",
            nics=(("eno1", "d0:50:99:a1:01:01"), ("enp3s0f0", "00:1b:21:b2:01:10")),
            address="192.168.10.11/24",
            converge_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVhZ3VlIGtleSBmb3IgdGVzdHMgb25seSEhISEhISE=",
        )
    )
    path = tmp_path / "install.yaml"
    path.write_text(text)
    proc = subprocess.run([cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "Valid" in proc.stdout, proc.stdout + proc.stderr
    assert "d0:50:99:a1:01:01" in text and "192.168.10.11/24" in text
    for later in ("kubeadm", "containerd", "mtu", "gateway", "nameservers", "00:1b:21:b2:01:10", "enp3s0f0"):
        assert later not in text, f"{later!r} would reinstall the node when it changes"


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_each_node_converges_over_ssh_with_the_configuration_key(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    converges = [r for r in plan.by_type("command:remote:Command") if r.name.endswith("-converge")]
    assert converges
    init, token = _init_converge(plan)
    for r in converges:
        inputs = r.raw_inputs
        assert inputs["update"] == apply_command(), "a change updates: the same apply"
        if r.name == init:  # the first controller: its document has the token
            assert inputs["create"] == apply_command() and not r.ignore_changes
        else:
            # A joining node gets the token once, at creation; a rotation updates no running node.
            assert inputs["create"] == create_command(token) and r.ignore_changes == ["create"]
            assert token not in inputs["stdin"]
        assert "triggers" not in inputs, "triggers would replace the command"
        assert inputs["connection"]["user"] == "akiba-converge"
        assert inputs["stdin"].startswith("#cloud-config\n")
    for r in plan.by_type("maas:index/instance:Instance"):
        assert "akiba-converge" in r.raw_inputs["deployParams"]["userData"]


def _run_on_runner(tmp_path: Path, script: str, kubelet: str, annotation: str = "") -> list[str]:
    """A local command as pulumi-command runs it (`/bin/sh -c`), against a stand-in kubectl that
    answers for a node with this kubelet version ("" : not in the cluster) and this drain mark,
    and logs what it is asked to do."""
    log = tmp_path / "kubectl.log"
    log.unlink(missing_ok=True)
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir(exist_ok=True)
    kubectl.write_text(
        "#!/bin/sh\n"
        "shift 2  # --kubeconfig FILE\n"
        'case "$*" in\n'
        f"  *kubeletVersion*) printf %s '{kubelet}' ;;\n"
        f"  *annotations*) printf %s '{annotation}' ;;\n"
        f'  *) echo "$*" >> {log} ;;\n'
        "esac\n"
    )
    kubectl.chmod(0o755)
    env = {"PATH": f"{kubectl.parent}:/usr/bin:/bin", "AKIBA_KUBECONFIG": "apiVersion: v1"}
    subprocess.run(["/bin/sh", "-c", script], env=env, check=True)
    return log.read_text().splitlines() if log.exists() else []


def test_the_rollout_drains_only_a_node_on_another_version(tmp_path: Path) -> None:
    drain = drain_script("akiba01", "1.36.5")
    assert _run_on_runner(tmp_path, drain, kubelet="") == [], "a node not yet joined has nothing to drain"
    assert _run_on_runner(tmp_path, drain, kubelet="v1.36.5") == [], "already upgraded: no eviction"
    assert _run_on_runner(tmp_path, drain, kubelet="v1.36.4") == [
        "annotate node akiba01 akiba.io/drained-for-upgrade=v1.36.5 --overwrite",
        "drain akiba01 --ignore-daemonsets --delete-emptydir-data --timeout=30m",
    ]
    uncordon = uncordon_script("akiba01", "1.36.5")
    assert _run_on_runner(tmp_path, uncordon, kubelet="", annotation="v1.36.5") == [
        "uncordon akiba01",
        "annotate node akiba01 akiba.io/drained-for-upgrade-",
    ]
    assert _run_on_runner(tmp_path, uncordon, kubelet="", annotation="") == [], "a cordon by hand stays"
    # Drained for a version since rolled back: still let back.
    assert _run_on_runner(tmp_path, uncordon, kubelet="", annotation="v1.36.9")[0] == "uncordon akiba01"


def test_an_api_that_does_not_answer_fails_the_rollout(tmp_path: Path) -> None:
    """Not "nothing to drain": the step fails, the rollout stops, `pulumi up` says where."""
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text("#!/bin/sh\necho 'connection refused' >&2\nexit 1\n")
    kubectl.chmod(0o755)
    env = {"PATH": f"{kubectl.parent}:/usr/bin:/bin", "AKIBA_KUBECONFIG": "apiVersion: v1"}
    for script in (drain_script("akiba01", "1.36.5"), uncordon_script("akiba01", "1.36.5")):
        assert subprocess.run(["/bin/sh", "-c", script], env=env, check=False).returncode != 0


def test_the_configuration_never_prints_the_join_token() -> None:
    """The script's output is the converge command's output: in Pulumi's state and on the
    screen of whoever runs `pulumi up`. kubeadm prints the token unless told not to."""
    init = render_user_data(_node(role="controller-init", pki={"ca.crt": "C"}))
    script = init.split(BOOTSTRAP_SCRIPT, 1)[1]
    assert f"kubeadm init --config {KUBEADM_CONFIG} --skip-token-print" in script
    created = [line for line in script.splitlines() if "kubeadm token create" in line]
    assert created and all(line.rstrip().endswith(">/dev/null") for line in created)


def test_a_reinstalled_first_controller_rejoins_instead_of_starting_a_second_cluster() -> None:
    """With a VIP the other controllers keep the cluster while the first is reinstalled: its
    configuration joins them if the API answers there, and inits only a cluster that is not."""
    import dataclasses

    import yaml

    from components.cluster.bootstrap import KUBEADM_REJOIN_CONFIG

    node = _node(role="controller-init", pki={"ca.crt": "C"})
    with_vip = dataclasses.replace(node, cluster=dataclasses.replace(node.cluster, api_vip="192.168.10.10"))
    doc = yaml.safe_load(render_user_data(with_vip))
    files = {f["path"]: f["content"] for f in doc["write_files"] if not f.get("append")}
    (join,) = yaml.safe_load_all(files[KUBEADM_REJOIN_CONFIG])
    assert join["kind"] == "JoinConfiguration" and join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"]
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"].endswith(":6443")
    lines = [line.strip() for line in files[BOOTSTRAP_SCRIPT].splitlines()]
    probe = next(i for i, line in enumerate(lines) if line.startswith("if curl -sf --max-time 10 --cacert"))
    assert lines[probe + 1 : probe + 3] == [
        f"with_join_token {KUBEADM_REJOIN_CONFIG}",
        f"kubeadm join --config {JOIN_CONFIG}",
    ]
    assert lines.index(f"kubeadm init --config {KUBEADM_CONFIG} --skip-token-print") > probe
    # One controller (no VIP): nothing to rejoin, init as before.
    assert KUBEADM_REJOIN_CONFIG not in render_user_data(node)


def test_kubelet_settings_reach_every_node_not_only_the_first_controller() -> None:
    """A worker's configuration carries the cluster's KubeletConfiguration: changed, the file
    changes on every node and each restarts its kubelet with the ConfigMap's settings."""
    from components.cluster.bootstrap import KUBELET_SETTINGS

    worker = render_user_data(_node())
    assert KUBELET_SETTINGS in worker and "systemReserved" in worker
    assert f"elif changed {KUBEADM_CONFIG} || changed {KUBELET_SETTINGS}; then" in worker
    assert "kubeadm upgrade node phase kubelet-config" in worker


def test_controllers_roll_first_whatever_the_stack_files_order() -> None:
    """kubeadm's skew rule: every API server is upgraded before any kubelet; the first
    controller inits the cluster before anything joins it."""
    from stacks.composition import rollout_order
    from tests.conftest import edited, parse

    def worker_first(cfg: dict[str, object]) -> None:
        nodes = cfg["akiba:nodes"]
        assert isinstance(nodes, list)
        nodes.insert(0, nodes.pop(3))  # a worker PC to the top

    spec = parse(edited("prod", worker_first))
    assert spec.nodes[0].role == "worker"
    roles = [n.role for n in rollout_order(spec)]
    assert roles == sorted(roles, key=lambda r: r != "controller") and roles[0] == "controller"


def test_the_create_command_writes_the_token_for_root_then_applies(tmp_path: Path) -> None:
    """The token goes through the shell's own printf into `install` (no argument of any other
    process), root-only, then the applier runs. Here with sudo and the path redirected."""
    bash = require_tool("bash", "apt-get install bash")
    target = tmp_path / "etc" / "akiba" / "join-token"
    cmd = create_command("abcdef.0123456789abcdef").replace(JOIN_TOKEN_FILE, str(target))
    cmd = cmd.replace("sudo ", "").split(" && ", 1)[0] + " && echo applied"
    out = subprocess.run([bash, "-c", cmd], capture_output=True, text=True, check=True).stdout
    assert out == "applied\n" and target.read_text() == "abcdef.0123456789abcdef\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert create_command("x").endswith(" && " + apply_command())
