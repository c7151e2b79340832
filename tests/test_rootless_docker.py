"""Docker without root on the node: each engineer's rootless daemon, the node profiles it runs
under (checked with the real AppArmor parser and libseccomp's syscall table), its TLS, and the
GPU rule the nodes enforce (no GPU past the scheduler)."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from components.cluster import node_security
from components.cluster.bootstrap import (
    BOOTSTRAP_SCRIPT,
    BondNetwork,
    ClusterJoin,
    NodeBootstrap,
    node_labels,
    node_taints,
    render_user_data,
)
from components.context import PlatformContext
from components.engineers import rootless_docker as rd
from components.engineers.home_sshd import Engineer
from tests import cluster_fixtures as fixtures
from tests import pod_security
from tests.conftest import ROOT, require_tool, stack_file
from tools.plan import checkers, runner
from tools.plan.cluster import check
from tools.plan.mocks import Recorded

APPARMOR = ("apparmor_parser", "apt-get install apparmor")
SCMP = ("scmp_sys_resolver", "apt-get install seccomp")
K8S_VERSION = "1.36.0"
LOGIN, UID, GID = "tanaka", 2001, 2001
ENGINEER = Engineer(LOGIN, UID, GID, ssh_keys=())


def _home_pod(**spec_over: Any) -> dict[str, Any]:
    """A home pod as components/engineers/home_containers.py assembles it from these pieces:
    the engineer's shell (their uid, their home, the Docker client) and the daemon's sidecar."""
    shell = {
        "name": "home",
        "image": "registry.akiba.lan:30443/akiba/ml-runtime:2.13.0-cu126-1",
        "securityContext": {
            "runAsUser": UID,
            "runAsGroup": GID,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "env": rd.docker_client_env(),
        "volumeMounts": [{"name": "home", "mountPath": f"/home/{LOGIN}"}, *rd.docker_client_mounts()],
    }
    spec = {
        **rd.POD_SETTINGS,
        "securityContext": {"runAsUser": UID, "runAsGroup": GID, "runAsNonRoot": True},
        "containers": [shell, *rd.docker_containers(ENGINEER)],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}, *rd.docker_volumes(ENGINEER)],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "home", "namespace": f"eng-{LOGIN}"},
        "spec": spec | spec_over,
    }


def _daemon() -> dict[str, Any]:
    (daemon,) = rd.docker_containers(ENGINEER)
    return daemon


# --- the pod: nothing of the node's, admitted by Pod Security baseline ---------------------------


def test_no_container_is_privileged_and_no_volume_is_the_nodes() -> None:
    pod = _home_pod()
    for c in pod["spec"]["containers"]:
        assert c.get("securityContext", {}).get("privileged") is not True, c["name"]
    kinds = {k for v in pod["spec"]["volumes"] for k in v if k != "name"}
    assert kinds == {"persistentVolumeClaim", "emptyDir", "secret", "configMap"}
    assert pod["spec"]["hostUsers"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod["spec"])


def test_home_pod_is_admitted_by_pod_security_baseline_and_schema() -> None:
    pod = _home_pod()
    assert pod_security.baseline(pod) == []
    utils = checkers._kubernetes_validate()
    assert checkers._validate_resource(utils, pod, "home-pod", K8S_VERSION) is None


def test_the_daemon_needs_its_own_user_namespace_to_be_admitted() -> None:
    """The evidence for hostUsers: false: without it, baseline refuses the unmasked /proc."""
    refused = pod_security.baseline(_home_pod(hostUsers=True))
    assert refused == ["docker: procMount Unmasked without hostUsers: false"]


def test_baseline_checker_refuses_the_old_dind_sidecar() -> None:
    """The checker is real: the privileged dind container with a host mount is refused."""
    pod = _home_pod()
    pod["spec"]["containers"][1]["securityContext"] = {"privileged": True}
    pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert set(pod_security.baseline(pod)) == {"docker: privileged", "volume host is hostPath"}
    pod = _home_pod()
    pod["spec"]["containers"][1]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    pod["spec"]["containers"][1]["securityContext"]["appArmorProfile"] = {"type": "Unconfined"}
    assert len(pod_security.baseline(pod)) == 2


def test_the_daemon_runs_under_the_node_profiles_by_name() -> None:
    sc = _daemon()["securityContext"]
    assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/akiba-rootless-docker.json"}
    assert "/var/lib/kubelet/seccomp/" + sc["seccompProfile"]["localhostProfile"] == node_security.SECCOMP_PATH
    profile_name = re.search(r"^profile (\S+) ", node_security.apparmor_profile_text(), re.M)
    assert profile_name and sc["appArmorProfile"] == {"type": "Localhost", "localhostProfile": profile_name[1]}
    # The daemon is the engineer: what its containers write in their home is theirs.
    assert (sc["runAsNonRoot"], sc["runAsUser"], sc["runAsGroup"]) == (True, UID, GID)


def test_the_daemon_listens_on_loopback_with_tls_only() -> None:
    command = _daemon()["command"]
    hosts = [a.split("=", 1)[1] for a in command if a.startswith("--host=")]
    assert hosts == ["tcp://127.0.0.1:2376"]
    assert "--tlsverify" in command
    assert "--net=host" in command  # the pod's network: no bridge, no iptables of its own
    assert not _daemon().get("ports")
    env = rd.client_env_map()
    assert env == {
        "DOCKER_HOST": "tcp://127.0.0.1:2376",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": rd.CLIENT_CERT_DIR,
    }


def test_client_key_is_mounted_only_where_the_engineer_runs_and_the_shell_has_no_server_key() -> None:
    pod = _home_pod()
    shell = pod["spec"]["containers"][0]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    client = volumes[rd.CLIENT_TLS_VOLUME]["secret"]
    assert client["secretName"] == rd.TLS_SECRET
    # Root's files in the pod, readable without fsGroup (which would re-group the CephFS home); the
    # container that mounts the client key runs nothing but the engineer's processes.
    assert client["defaultMode"] == 0o444 and "fsGroup" not in pod["spec"]["securityContext"]
    assert shell["securityContext"]["runAsUser"] == UID
    mounted = {m["name"] for m in shell["volumeMounts"]}
    assert rd.CLIENT_TLS_VOLUME in mounted and rd.SERVER_TLS_VOLUME not in mounted
    assert {m["name"] for m in _daemon()["volumeMounts"]} >= {rd.SERVER_TLS_VOLUME}
    assert rd.CLIENT_TLS_VOLUME not in {m["name"] for m in _daemon()["volumeMounts"]}


def test_daemon_state_is_an_emptydir_with_a_size_limit_and_it_sees_only_its_own_home() -> None:
    (state,) = [v for v in rd.docker_volumes(ENGINEER) if v["name"] == rd.STATE_VOLUME]
    assert state == {"name": "docker-state", "emptyDir": {"sizeLimit": "100Gi"}}
    mounts = {m["mountPath"]: m["name"] for m in _daemon()["volumeMounts"]}
    assert mounts[rd.STATE_DIR] == "docker-state" and rd.DATA_ROOT.startswith(rd.STATE_DIR + "/")
    assert mounts[f"/home/{LOGIN}"] == "home"  # `docker run -v ~/data:/data` works
    assert [p for p in mounts if p.startswith("/home/")] == [f"/home/{LOGIN}"]


@pytest.mark.parametrize("own", [1000, 2001, 59999])
def test_subordinate_ids_stay_inside_the_pods_65536_and_off_the_engineer_and_root(own: int) -> None:
    engineer = Engineer("kenji", own, own, ssh_keys=())
    files = rd.accounts(engineer)
    assert f"kenji:x:{own}:{own}:" in files["passwd"] and f"kenji:x:{own}:" in files["group"]
    for text in (files["subuid"], files["subgid"]):
        ids: set[int] = set()
        for line in text.splitlines():
            user, start, count = line.split(":")
            assert user == "kenji"
            block = set(range(int(start), int(start) + int(count)))
            assert block and not ids & block
            ids |= block
        assert max(ids) <= 65535 and 0 not in ids and own not in ids
        assert len(ids) == 65534  # with root (the engineer): uid 0..65534 in a container, nobody included


def test_daemon_image_matches_the_cli_in_the_ml_image() -> None:
    dockerfile = (ROOT / "images" / "ml-runtime" / "Dockerfile").read_text()
    cli = re.search(r"^FROM docker:(\S+)-cli ", dockerfile, re.M)
    assert cli and f"docker.io/library/docker:{cli[1]}-dind-rootless" == rd.DOCKER_IMAGE


# --- the node profiles, with the real tools ------------------------------------------------------


def test_apparmor_profile_passes_apparmor_parser(tmp_path: Path) -> None:
    parser = require_tool(*APPARMOR)
    profile = tmp_path / "akiba-rootless-docker"
    profile.write_text(node_security.apparmor_profile_text())
    result = subprocess.run([parser, "-Q", "--skip-kernel-load", str(profile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The check is real: a rule this parser does not know (AppArmor 4's userns, which jammy's
    # AppArmor 3 would refuse too) fails it.
    broken = tmp_path / "broken"
    broken.write_text(node_security.apparmor_profile_text().replace("  pivot_root,\n", "  pivot_root,\n  userns,\n"))
    assert subprocess.run([parser, "-Q", "--skip-kernel-load", str(broken)], capture_output=True).returncode != 0


def test_apparmor_profile_allows_mounts_and_keeps_the_nodes_kernel_settings_out_of_reach() -> None:
    text = node_security.apparmor_profile_text()
    rules = {line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")}
    assert {"mount,", "umount,", "pivot_root,"} <= rules and "deny mount," not in rules
    assert "deny @{PROC}/sysrq-trigger rwklx," in rules and "deny /sys/kernel/security/** rwklx," in rules
    # abi 3.0: the user-namespace class is not mediated, so rootlesskit may create one.
    assert "abi <abi/3.0>," in rules and "userns," not in rules


# OCI runtime-spec v1.2 config-linux.md "Seccomp" (schema/defs-linux.json, config-linux.json):
# what containerd unmarshals a Localhost profile into. additionalProperties: false catches Docker's
# own fields (archMap, includes, excludes), which containerd would silently drop -- turning a
# capability-conditioned rule into an unconditional one.
OCI_SECCOMP = {
    "type": "object",
    "required": ["defaultAction"],
    "additionalProperties": False,
    "properties": {
        "defaultAction": {"$ref": "#/$defs/action"},
        "defaultErrnoRet": {"type": "integer", "minimum": 0},
        "architectures": {"type": "array", "items": {"type": "string", "pattern": "^SCMP_ARCH_[A-Z0-9_]+$"}},
        "flags": {"type": "array", "items": {"type": "string"}},
        "listenerPath": {"type": "string"},
        "listenerMetadata": {"type": "string"},
        "syscalls": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["names", "action"],
                "additionalProperties": False,
                "properties": {
                    "names": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "action": {"$ref": "#/$defs/action"},
                    "errnoRet": {"type": "integer", "minimum": 0},
                    "args": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["index", "value", "op"],
                            "additionalProperties": False,
                            "properties": {
                                "index": {"type": "integer", "minimum": 0, "maximum": 5},
                                "value": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
                                "valueTwo": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
                                "op": {
                                    "enum": [
                                        *("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ"),
                                        *("SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"),
                                    ]
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "$defs": {
        "action": {
            "enum": [
                *("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"),
                *("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"),
            ]
        }
    },
}


def _seccomp() -> dict[str, Any]:
    profile: dict[str, Any] = json.loads(node_security.seccomp_profile_text())
    return profile


def test_seccomp_profile_has_the_oci_runtime_spec_shape() -> None:
    jsonschema.validate(_seccomp(), OCI_SECCOMP)
    docker_style = _seccomp() | {"archMap": []}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(docker_style, OCI_SECCOMP)


def _allowed(profile: dict[str, Any]) -> set[str]:
    return {
        n
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule
        for n in rule["names"]
    }


def test_seccomp_profile_allows_namespaces_and_mounts_and_refuses_the_kernels_own_calls() -> None:
    profile = _seccomp()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = _allowed(profile)
    assert {
        "unshare",
        "setns",
        "clone",
        "clone3",
        "mount",
        "umount2",
        "pivot_root",
        "open_tree",
        "move_mount",
    } <= allowed
    refused = {"bpf", "perf_event_open", "init_module", "finit_module", "delete_module", "kexec_load", "reboot"}
    refused |= {"open_by_handle_at", "settimeofday", "clock_settime", "swapon", "acct", "quotactl", "syslog", "iopl"}
    named = {n for rule in profile["syscalls"] for n in rule["names"]}
    assert not refused & named
    (keyrings,) = [r for r in profile["syscalls"] if "keyctl" in r["names"]]
    assert keyrings["action"] == "SCMP_ACT_ERRNO" and keyrings["errnoRet"] == 38  # ENOSYS: runc goes on


def test_every_seccomp_syscall_name_is_known_to_libseccomp() -> None:
    """runc skips a name libseccomp does not know: a typo would silently allow nothing."""
    resolver = require_tool(*SCMP)
    names = sorted({n for rule in _seccomp()["syscalls"] for n in rule["names"]})
    unknown = []
    for name in [*names, "not_a_syscall"]:
        numbers = [
            subprocess.run([resolver, "-a", arch, name], capture_output=True, text=True).stdout.strip()
            for arch in ("x86_64", "x86", "x32")
        ]
        if all(n == "-1" for n in numbers):
            unknown.append(name)
    assert unknown == ["not_a_syscall"]


# --- the node configuration -----------------------------------------------------------------------

JOIN = ClusterJoin(
    "akiba", "1.36.4", "192.168.10.11", 6443, "abcdef.0123456789abcdef", "sha256:00ff",
    "10.244.0.0/16", "10.96.0.0/12", "cluster.local",
)  # fmt: skip


def _node(kind: str = "baremetal", **over: Any) -> NodeBootstrap:
    base: dict[str, Any] = {
        "hostname": "akiba02",
        "ip": "192.168.10.12",
        "role": "worker",
        "kind": kind,
        "cluster": JOIN,
        "registry_mirror": "registry.akiba.lan:30443",
        "registry_upstreams": ("docker.io",),
        "registry_authorization": "Basic eDp5",
        "labels": node_labels("gtx-1070", 2, "baremetal"),
        "taints": node_taints("baremetal"),
        "gpu_driver_branch": "580",
        "network": BondNetwork((("eno1", "aa:bb:cc:00:00:01"),), "192.168.10.12/24", "192.168.10.1", ("192.168.10.1",)),
    }
    return NodeBootstrap(**(base | over))


def _files(user_data: str) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in yaml.safe_load(user_data)["write_files"]}


def _script(user_data: str) -> str:
    return str(_files(user_data)[BOOTSTRAP_SCRIPT]["content"])


def test_office_gpu_node_carries_the_profiles_and_the_gpu_rule() -> None:
    user_data = render_user_data(_node())
    files = _files(user_data)
    assert json.loads(files[node_security.SECCOMP_PATH]["content"]) == _seccomp()
    assert files[node_security.APPARMOR_PATH]["content"] == node_security.apparmor_profile_text()
    script = _script(user_data)
    assert f"apparmor_parser --replace --write-cache {node_security.APPARMOR_PATH}" in script
    toolkit = next(line for line in script.splitlines() if line.startswith("nvidia-ctk config"))
    assert "--set accept-nvidia-visible-devices-envvar-when-unprivileged=false" in toolkit
    assert "--set accept-nvidia-visible-devices-as-volume-mounts=true" in toolkit
    # After the toolkit is installed, before anything could start a container.
    assert script.index("nvidia-container-toolkit") < script.index(toolkit) < script.index("kubeadm join")


def test_burst_node_gets_the_gpu_rule_but_not_the_home_profiles() -> None:
    burst = _node("burst", hostname="", ip="", instance_metadata="aws", network=None, taints=node_taints("burst"))
    user_data = render_user_data(burst)
    assert node_security.SECCOMP_PATH not in _files(user_data)
    assert "apparmor_parser" not in _script(user_data)
    assert "accept-nvidia-visible-devices-envvar-when-unprivileged=false" in _script(user_data)


def test_node_without_gpus_has_no_toolkit_setting() -> None:
    assert "nvidia-ctk config" not in _script(render_user_data(_node(gpu_driver_branch=None, labels={})))


# --- the device plugin and the plan ---------------------------------------------------------------


def test_device_plugin_hands_gpus_out_as_volume_mounts(plans: dict[str, runner.Plan]) -> None:
    for stack, plan in plans.items():
        assert plan.resources, stack
        (chart,) = [r for r in plan.by_type("kubernetes:helm.sh/v4:Chart") if r.name == "nvidia-device-plugin"]
        assert chart.inputs["values"]["deviceListStrategy"] == "volume-mounts", stack


WORKLOADS = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def test_no_pod_in_an_engineers_namespace_is_privileged_or_mounts_the_node(plans: dict[str, runner.Plan]) -> None:
    for stack, plan in plans.items():
        assert plan.resources, stack
        seen = 0
        for r in plan.resources:
            path = WORKLOADS.get(r.type)
            metadata = r.inputs.get("metadata")
            if path is None or not isinstance(metadata, dict) or not str(metadata.get("namespace")).startswith("eng-"):
                continue
            spec: Any = r.inputs
            for key in path:
                spec = spec.get(key) or {}
            seen += 1
            for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
                assert (c.get("securityContext") or {}).get("privileged") is not True, (stack, r.name, c["name"])
            assert not [v for v in spec.get("volumes", []) if "hostPath" in v], (stack, r.name)
            assert pod_security.baseline({"spec": spec, "metadata": spec.get("metadata") or {}}) == [], (stack, r.name)
        assert seen, f"{stack}: no workload in an engineer's namespace"


# --- the TLS material -----------------------------------------------------------------------------


def test_docker_tls_makes_per_engineer_secrets_in_their_namespace() -> None:
    ctx = PlatformContext(stack="dev", cluster_name="akiba-dev", protect_stateful=False)

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        tls = rd.DockerTls("docker-tanaka", rd.DockerTlsArgs(ctx, provider, ENGINEER))
        pulumi.export("annotation", tls.annotation)

    plan = runner.run(stack_file("dev"), program)
    assert plan.resources
    secrets = {r.inputs["metadata"]["name"]: r for r in plan.by_type("kubernetes:core/v1:Secret")}
    assert set(secrets) == {rd.TLS_SECRET, rd.SERVER_TLS_SECRET}
    for s in secrets.values():
        assert s.inputs["metadata"]["namespace"] == f"eng-{LOGIN}"
        assert any(p.startswith("stringData") for p in s.secret_paths)  # the keys are secret
    requests = {r.name: r.inputs for r in plan.by_type("tls:index/certRequest:CertRequest")}
    assert requests["docker-tanaka-client"]["subject"]["commonName"] == LOGIN
    assert requests["docker-tanaka-server"]["ipAddresses"] == ["127.0.0.1"]
    assert requests["docker-tanaka-server"]["dnsNames"] == ["localhost"]
    certs = {r.name: r.inputs for r in plan.by_type("tls:index/locallySignedCert:LocallySignedCert")}
    assert "client_auth" in certs["docker-tanaka-client"]["allowedUses"]
    assert "server_auth" in certs["docker-tanaka-server"]["allowedUses"]
    (daemon_accounts,) = plan.by_type("kubernetes:core/v1:ConfigMap")
    meta = daemon_accounts.inputs["metadata"]
    assert (meta["name"], meta["namespace"]) == ("docker-accounts", f"eng-{LOGIN}")
    assert daemon_accounts.inputs["data"] == rd.accounts(ENGINEER)
    assert re.fullmatch(r"[0-9a-f]{16}", plan.raw_outputs["annotation"][rd.TLS_ANNOTATION])


# --- the cluster check: a pod under a Localhost profile lands only where the node installs it -----


def _with_profiles(node: Recorded) -> Recorded:
    """A machine whose configuration installs the rootless Docker profiles (as bootstrap.py does)."""
    inputs = copy.deepcopy(node.raw_inputs)
    doc = yaml.safe_load(inputs["deployParams"]["userData"])
    doc["write_files"] += [
        {"path": path, "content": content, "permissions": mode}
        for path, content, mode in node_security.rootless_docker_files()
    ]
    inputs["deployParams"]["userData"] = "#cloud-config\n" + yaml.safe_dump(doc)
    return dataclasses.replace(node, inputs=inputs, raw_inputs=inputs)


def _profile_problems(*machines: Recorded) -> list[str]:
    home = fixtures.daemonset("home", namespace=f"eng-{LOGIN}", containers=rd.docker_containers(ENGINEER))
    found = check(fixtures.plan(*machines, *fixtures.node_basics(), home), fixtures.settings()).problems
    return [f"{p.subject}: {p.message}" for p in found if p.rule == "security-profile"]


def test_cluster_check_finds_a_node_without_the_daemons_profiles() -> None:
    with_profiles = [
        _with_profiles(fixtures.machine(f"node{i}", f"10.0.0.{10 + i}", control_plane=i == 1)) for i in (1, 2)
    ]
    assert _profile_problems(*with_profiles) == []
    bare = fixtures.machine("node9", "10.0.0.19")
    found = _profile_problems(*with_profiles, bare)
    assert len(found) == 2 and all("node9 do(es) not install" in f for f in found), found
    assert any("seccomp profile 'profiles/akiba-rootless-docker.json'" in f for f in found)
    assert any("apparmor profile 'akiba-rootless-docker'" in f for f in found)


def test_daemon_command_makes_the_runtime_dir_and_hands_every_argument_on(tmp_path: Path) -> None:
    """Run the container's command with stand-ins for docker-init: it gets the rest verbatim."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker-init").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (bindir / "docker-init").chmod(0o755)
    runtime = tmp_path / "state" / "run"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime)}
    result = subprocess.run(_daemon()["command"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert runtime.is_dir()
    command = _daemon()["command"]
    assert result.stdout.splitlines() == command[command.index("docker-init") + 1 :]


def test_engineer_namespaces_enforce_a_baseline_that_admits_the_daemon(plans: dict[str, runner.Plan]) -> None:
    """The unmasked /proc of a hostUsers: false pod is admitted from policy version 1.34: an
    engineer's namespace must enforce baseline at `latest` (or unset, which is latest)."""
    for stack, plan in plans.items():
        namespaces = [
            r.inputs["metadata"]
            for r in plan.by_type("kubernetes:core/v1:Namespace")
            if str(r.inputs["metadata"].get("name", "")).startswith("eng-")
        ]
        assert namespaces, f"{stack}: no engineer namespace"
        for meta in namespaces:
            labels = meta.get("labels") or {}
            assert labels["pod-security.kubernetes.io/enforce"] == "baseline", meta["name"]
            version = labels.get("pod-security.kubernetes.io/enforce-version", "latest")
            assert version == "latest" or tuple(map(int, version.lstrip("v").split("."))) >= (1, 34), meta["name"]


def test_every_home_pod_in_the_plan_has_its_own_daemon_and_keys_where_they_belong(
    plans: dict[str, runner.Plan],
) -> None:
    for stack, plan in plans.items():
        homes = [
            r.inputs
            for r in plan.by_type("kubernetes:apps/v1:DaemonSet")
            if str(r.inputs["metadata"]["namespace"]).startswith("eng-") and r.inputs["metadata"]["name"] == "home"
        ]
        assert homes, f"{stack}: no home pod"
        for home in homes:
            ns, spec = home["metadata"]["namespace"], home["spec"]["template"]["spec"]
            containers = {c["name"]: c for c in spec["containers"]}
            daemon = containers["docker"]
            assert daemon["image"] == rd.DOCKER_IMAGE and daemon["securityContext"]["procMount"] == "Unmasked", ns
            assert spec["hostUsers"] is False, ns
            uid = spec["securityContext"]["runAsUser"]
            assert daemon["securityContext"]["runAsUser"] == uid, ns  # the daemon is the engineer
            for name, c in containers.items():
                mounted = {m["name"] for m in c.get("volumeMounts", [])}
                runs_as = (c.get("securityContext") or {}).get("runAsUser", uid)
                if rd.CLIENT_TLS_VOLUME in mounted or rd.SERVER_TLS_VOLUME in mounted:
                    assert runs_as == uid, (ns, name)
                assert (rd.SERVER_TLS_VOLUME in mounted) == (name == "docker"), (ns, name)
            assert any(
                rd.CLIENT_TLS_VOLUME in {m["name"] for m in c.get("volumeMounts", [])} for c in containers.values()
            )
