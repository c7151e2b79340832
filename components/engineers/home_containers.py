"""An engineer's home container (the article's "home Docker"), their own: a DaemonSet in their
namespace on every office GPU node, sshd running as the engineer, their CephFS home at
/home/<login> and nobody else's, their kubeconfig, and their own rootless Docker
(components.engineers.rootless_docker, put in by components.engineers.home_docker), in a user
namespace of its own. A NodePort Service `ssh` with externalTrafficPolicy Local puts the
engineer's port on every node onto that node's pod, keeping the client address.

Adding or removing an engineer creates or deletes only their objects: no other engineer's pod
changes, so nobody else's session restarts. Accounts, keys and sshd's configuration are
rendered by components.engineers.home_sshd (which also says how GPUs are shared).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.cluster.placement import ON_OFFICE_NODES
from components.cluster.priorities import INTERACTIVE
from components.context import PlatformContext
from components.engineers.home_sshd import (
    AUTHORIZED_KEYS_DIR,
    HOME_PORT,
    PID_FILE,
    Engineer,
    render_authorized_keys,
    render_group_entries,
    render_passwd_entries,
    render_sshd_config,
)
from components.tenants.names import ENGINEER_LABEL, HOME_CLAIM, KUBECONFIG_SECRET, engineer_namespace

# The docker group of the old shared dind sidecar: no engineer's group may take this gid
# (stacks/rules.py), which keeps existing files' group ownership unambiguous.
DOCKER_GID = 2375
CONFIG_DIR = "/etc/akiba"
HOST_KEY_DIR = "/etc/ssh/host"
HOST_KEY = f"{HOST_KEY_DIR}/ssh_host_ed25519_key"
KUBECONFIG_DIR = f"{CONFIG_DIR}/kube"
# The ML image's own environment (its Dockerfile's ENV): sshd starts every session from scratch.
SESSION_ENV = {
    "PATH": "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "VIRTUAL_ENV": "/opt/venv",
    "LANG": "C.UTF-8",
    "KUBECONFIG": f"{KUBECONFIG_DIR}/config",
}
# Every office GPU node, the controllers included, and never a paid burst node (those are for
# Jobs; they also carry the GPU taint these pods do not tolerate).
ON_GPU_NODES: dict[str, Any] = {"nodeSelector": {"nvidia.com/gpu.present": "true"}, "affinity": ON_OFFICE_NODES}
# An idle sshd on every node, for every engineer: its requests are what it holds back from Jobs
# on every GPU node (and what the engineer's quota counts, once per node).
REQUESTS = {"cpu": "25m", "memory": "64Mi"}


@dataclass(frozen=True)
class HomeLimits:
    """What a login's shell may use at most on one node (its container's limits), e.g. 16 CPU,
    64Gi: interactive work (a build, a notebook, a data preparation) gets the node's CPUs while
    they are free. Only requests count against the quota; the namespace's LimitRange `max` (the
    engineer's quota) bounds each container, and the spec keeps these within it."""

    cpu: str  # e.g. "16"
    memory: str  # e.g. "64Gi"


def home_resources(limits: HomeLimits) -> dict[str, dict[str, str]]:
    """A small request (it is held on every node) and the login's generous limits."""
    return {"requests": dict(REQUESTS), "limits": {"cpu": limits.cpu, "memory": limits.memory}}


NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767
DEFAULT_SSH_PORT_BASE = 31000  # default node port: 31000 + uid % 1000


def default_ssh_port(uid: int) -> int:
    """The node port an engineer gets unless the stack file names one: 31000 + uid % 1000."""
    return DEFAULT_SSH_PORT_BASE + uid % 1000


def host_key_alias(login: str) -> str:
    """The name the engineer's ssh client files the home's host key under (HostKeyAlias): one
    known_hosts line for every node, as every node serves the same key."""
    return f"akiba-home-{login}"


def known_hosts_line(login: str, public_key_openssh: str) -> str:
    """`akiba-home-<login> ssh-ed25519 AAAA...`: the line for ~/.ssh/known_hosts."""
    return f"{host_key_alias(login)} {' '.join(public_key_openssh.split()[:2])}"


@dataclass(frozen=True)
class HomeDocker:
    """What the engineer's rootless Docker adds to their home pod
    (components.engineers.rootless_docker): none of it privileged, none of it a host path."""

    containers: tuple[dict[str, Any], ...]  # the daemon's sidecar(s)
    volumes: tuple[dict[str, Any], ...]  # their volumes (TLS material, the daemon's data)
    client_env: Mapping[str, str]  # DOCKER_HOST & co. for every ssh session
    client_mounts: tuple[dict[str, Any], ...] = ()  # what the home container mounts (client certificate)
    pod_settings: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"hostUsers": False}
    annotations: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)  # rolls the pod on new certificates
    after: tuple[pulumi.Resource, ...] = ()  # e.g. the engineer's TLS material


def sshd_config(
    engineer: Engineer,
    extra_env: Mapping[str, str] | None = None,
    *,
    port: int = HOME_PORT,
    listen: str = "0.0.0.0",  # noqa: S104 (the pod's own network namespace)
    host_key: str = HOST_KEY,
    authorized_keys_dir: str = AUTHORIZED_KEYS_DIR,
    pid_file: str = PID_FILE,
) -> str:
    """The engineer's sshd_config; the keywords are the pod's paths (tests put them elsewhere)."""
    return render_sshd_config(
        port,
        [engineer.name],
        [host_key],
        listen_addresses=[listen],
        authorized_keys_dir=authorized_keys_dir,
        pid_file=pid_file,
        set_env={**SESSION_ENV, **(extra_env or {})},
    )


def accounts_config(engineer: Engineer, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The engineer's ConfigMap: their passwd and group lines (appended to the image's own by the
    init container), sshd's configuration, and their authorized_keys."""
    return {
        "passwd": render_passwd_entries([engineer]),
        "group": render_group_entries([engineer]),
        "sshd_config": sshd_config(engineer, extra_env),
        "authorized_keys": render_authorized_keys(engineer),
    }


def config_hash(data: Mapping[str, str]) -> str:
    """Changes whenever the ConfigMap does: files mounted by subPath are not updated in a
    running pod, so a new key rolls the engineer's pods (and only theirs)."""
    return hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()[:16]


def home_pod(
    image: str,
    engineer: Engineer,
    labels: dict[str, str],
    config_checksum: str,
    limits: HomeLimits,
    docker: HomeDocker | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    login = engineer.name
    # Not root, no capability, no escalation: what sshd needs when it serves only its own user.
    locked = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    # The image's account files (readable by all) plus the engineer's lines, as the engineer.
    merge = "set -eu; cat /etc/passwd /config/passwd > /accounts/passwd; cat /etc/group /config/group > /accounts/group"
    return {
        "metadata": {
            "labels": labels,
            "annotations": {"akiba.io/config-checksum": config_checksum, **(annotations or {})},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            # A user namespace: even a way out of the container lands as an unprivileged host uid.
            "hostUsers": False,
            **(docker.pod_settings if docker else {}),
            **ON_GPU_NODES,
            # Above Jobs: a node full of batch work still gets its login (they are preempted).
            "priorityClassName": INTERACTIVE,
            # Preemptible by design: nodes restart for platform work; work checkpoints to /home.
            "terminationGracePeriodSeconds": 60,
            # No fsGroup: the kubelet would re-group every file of the home (CephFS honours it).
            # The Secrets are mode 0444 instead: this pod is the engineer's alone.
            "securityContext": {
                "runAsUser": engineer.uid,
                "runAsGroup": engineer.gid,
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [
                {
                    "name": "accounts",
                    "image": image,
                    "command": ["bash", "-c", merge],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                    "securityContext": locked,
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/config", "readOnly": True},
                        {"name": "accounts", "mountPath": "/accounts"},
                    ],
                }
            ],
            "containers": [
                {
                    "name": "home",
                    "image": image,
                    "command": ["/usr/sbin/sshd", "-D", "-e", "-f", f"{CONFIG_DIR}/sshd_config"],
                    "ports": [{"name": "ssh", "containerPort": HOME_PORT}],
                    "readinessProbe": {"tcpSocket": {"port": HOME_PORT}, "periodSeconds": 10},
                    "resources": home_resources(limits),
                    "securityContext": locked,
                    "volumeMounts": [
                        {"name": "home", "mountPath": f"/home/{login}"},
                        *(
                            {"name": "accounts", "mountPath": f"/etc/{f}", "subPath": f, "readOnly": True}
                            for f in ("passwd", "group")
                        ),
                        {
                            "name": "config",
                            "mountPath": f"{CONFIG_DIR}/sshd_config",
                            "subPath": "sshd_config",
                            "readOnly": True,
                        },
                        # One root-owned file in a directory the runtime makes root's: StrictModes
                        # accepts it (a whole ConfigMap volume's directory is world-writable).
                        {
                            "name": "config",
                            "mountPath": f"{AUTHORIZED_KEYS_DIR}/{login}",
                            "subPath": "authorized_keys",
                            "readOnly": True,
                        },
                        {"name": "host-key", "mountPath": HOST_KEY_DIR, "readOnly": True},
                        {"name": "kubeconfig", "mountPath": KUBECONFIG_DIR, "readOnly": True},
                        {"name": "run", "mountPath": PID_FILE.rsplit("/", 1)[0]},
                        *(docker.client_mounts if docker else ()),
                    ],
                },
                *(docker.containers if docker else ()),
            ],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": HOME_CLAIM}},
                {"name": "config", "configMap": {"name": "home-accounts", "defaultMode": 0o444}},
                {"name": "accounts", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                # sshd reads it as the engineer; sshd checks a key's mode only when it owns the file.
                {"name": "host-key", "secret": {"secretName": "home-host-key", "defaultMode": 0o444}},
                # Made by the tenants component; optional so that a login never waits on it.
                {
                    "name": "kubeconfig",
                    "secret": {"secretName": KUBECONFIG_SECRET, "defaultMode": 0o444, "optional": True},
                },
                {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                *(docker.volumes if docker else ()),
            ],
        },
    }


def ssh_service(login: str, port: int, labels: dict[str, str]) -> dict[str, Any]:
    """`ssh` in the engineer's namespace: their port on every node reaches that node's pod."""
    return {
        "metadata": {"name": "ssh", "namespace": engineer_namespace(login), "labels": labels},
        "spec": {
            "type": "NodePort",
            # Local: a node's port goes to the pod on that node only (the same home everywhere,
            # and no second hop), and sshd sees the client's own address.
            "externalTrafficPolicy": "Local",
            "selector": {"app.kubernetes.io/name": "home"},
            "ports": [{"name": "ssh", "port": 22, "targetPort": "ssh", "nodePort": port}],
        },
    }


@dataclass(frozen=True)
class HomeContainerArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    image: pulumi.Input[str]  # the ML runtime image, pinned
    engineer: Engineer  # their account and keys
    ssh_port: int  # the node port of their sshd, 30000..32767, unique in the stack, e.g. 31001
    limits: HomeLimits  # their shell's limits, within their LimitRange's max
    docker: HomeDocker | None = None  # their rootless Docker; None: no Docker in the pod
    after: tuple[pulumi.Resource, ...] = field(default=())  # their namespace, home claim, PriorityClasses


class HomeContainer(pulumi.ComponentResource):
    """One engineer's home: `ssh_port`, `host_public_key` (OpenSSH format), and `known_hosts`,
    its line for the engineer's ~/.ssh/known_hosts (`akiba-home-<login> ssh-ed25519 AAAA...`)."""

    ssh_port: int
    host_public_key: pulumi.Output[str]
    known_hosts: pulumi.Output[str]

    def __init__(self, name: str, args: HomeContainerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:homes:HomeContainer", name, None, opts)
        ctx, engineer, docker = args.ctx, args.engineer, args.docker
        login, ns = engineer.name, engineer_namespace(engineer.name)
        if not NODE_PORT_MIN <= args.ssh_port <= NODE_PORT_MAX:
            raise ValueError(f"{login}: ssh port {args.ssh_port} is outside {NODE_PORT_MIN}..{NODE_PORT_MAX}")
        after = [*args.after, *(docker.after if docker else ())]
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=after)
        labels = {**ctx.labels, ENGINEER_LABEL: login, "app.kubernetes.io/name": "home"}
        # Every session: their Docker's client settings, and the image akiba-gpu-shell starts.
        data = pulumi.Output.from_input(args.image).apply(
            lambda image: accounts_config(engineer, {**(docker.client_env if docker else {}), "AKIBA_ML_IMAGE": image})
        )
        k8s.core.v1.ConfigMap(
            f"home-accounts-{login}",
            metadata={"name": "home-accounts", "namespace": ns, "labels": labels},
            data=data,
            opts=on_cluster,
        )
        # The engineer's own host key, the same on every node: sshd runs as the engineer, who can
        # read it, so a key shared between engineers would let one impersonate another's home.
        host_key = tls.PrivateKey(
            f"home-host-key-{login}", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self)
        )
        k8s.core.v1.Secret(
            f"home-host-key-{login}",
            metadata={"name": "home-host-key", "namespace": ns, "labels": labels},
            string_data=host_key.private_key_openssh.apply(lambda pem: {"ssh_host_ed25519_key": pem}),
            opts=on_cluster,
        )
        checksum = data.apply(config_hash)
        k8s.apps.v1.DaemonSet(
            f"home-{login}",
            metadata={"name": "home", "namespace": ns, "labels": labels},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/name": "home"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": pulumi.Output.all(args.image, docker.annotations if docker else {}, checksum).apply(
                    lambda v: home_pod(v[0], engineer, labels, v[2], args.limits, docker, v[1])
                ),
            },
            opts=on_cluster,
        )
        service = ssh_service(login, args.ssh_port, labels)
        k8s.core.v1.Service(f"home-ssh-{login}", metadata=service["metadata"], spec=service["spec"], opts=on_cluster)
        self.ssh_port = args.ssh_port
        self.host_public_key = host_key.public_key_openssh.apply(lambda key: " ".join(key.split()[:2]))
        self.known_hosts = host_key.public_key_openssh.apply(lambda key: known_hosts_line(login, key))
        self.register_outputs({"sshPort": self.ssh_port, "hostPublicKey": self.host_public_key})
