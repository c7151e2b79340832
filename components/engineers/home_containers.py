"""The home container on every GPU node (the article's "home Docker"): sshd in the ML runtime
image on port 2222 of every node, each engineer's CephFS home at /home/<name>, the node's GPUs,
and `docker` / `docker compose` through a dind sidecar over TLS.

Accounts, keys and sshd's configuration come from the stack config (`components.engineers.home_sshd`);
see that module for how GPUs are shared between interactive use and scheduled Jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    Engineer,
    render_authorized_keys,
    render_group_entries,
    render_passwd_entries,
    render_shadow_entries,
    render_sshd_config,
)

DIND_IMAGE = "docker.io/library/docker:29.8.1-dind"  # the CLI in the ML image is the same version
DOCKER_GID = 2375
HOST_KEY = "/etc/ssh/host/ssh_host_ed25519_key"
CONFIG_DIR = "/etc/akiba"
# Both DaemonSets run on every office GPU node, the controllers included, and never on a paid
# burst node (those are for Jobs; they also carry the GPU taint these pods do not tolerate).
ON_GPU_NODES: dict[str, Any] = {"nodeSelector": {"nvidia.com/gpu.present": "true"}, "affinity": ON_OFFICE_NODES}
# The image's USER is the unprivileged `runtime` (65532): sshd must start as root to switch to the
# engineer who logs in (and chroot its privilege-separation child), and the accounts step reads the
# image's /etc/shadow (root:shadow 0640). Both keep only the capabilities they use.
AS_ROOT = {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False}
# sshd must switch users and write their login records; nothing else of root's.
SSHD_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "SYS_CHROOT", "AUDIT_WRITE", "KILL"]


def accounts_config(engineers: list[Engineer]) -> dict[str, str]:
    """The ConfigMap: account lines the init container appends to the image's own files,
    sshd's configuration, and one authorized_keys file per engineer."""
    data = {
        "passwd": render_passwd_entries(engineers),
        "group": render_group_entries(engineers, {"docker": DOCKER_GID}),
        "shadow": render_shadow_entries(engineers),
        # hostPort maps the node's port 2222 to the pod: sshd listens inside the pod.
        "sshd_config": render_sshd_config(
            HOME_PORT,
            [e.name for e in engineers],
            [HOST_KEY],
            listen_addresses=["0.0.0.0"],  # noqa: S104 (pod netns)
        ),
    }
    data |= {f"authorized_keys.{e.name}": render_authorized_keys(e) for e in engineers}
    return data


def home_pod(image: str, engineers: list[Engineer], claims: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    accounts = "accounts"
    keys_items = [{"key": f"authorized_keys.{e.name}", "path": e.name} for e in engineers]
    # The image's own account files plus the platform's lines (one command per file, so what is
    # read is plain to see).
    merge = (
        "set -eu; "
        + " ".join(f"cp /etc/{f} /merged/{f} && cat /config/{f} >> /merged/{f};" for f in ("passwd", "group", "shadow"))
        + " chmod 0640 /merged/shadow"
    )
    docker_env = [
        {"name": "DOCKER_HOST", "value": "tcp://127.0.0.1:2376"},
        {"name": "DOCKER_TLS_VERIFY", "value": "1"},
        {"name": "DOCKER_CERT_PATH", "value": "/certs/client"},
    ]
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            **ON_GPU_NODES,
            # Above Jobs: a node full of batch work still gets its login (they are preempted).
            "priorityClassName": INTERACTIVE,
            # Preemptible by design: nodes restart for platform work; work checkpoints to /home.
            "terminationGracePeriodSeconds": 60,
            "initContainers": [
                {
                    "name": "accounts",
                    "image": image,
                    "command": ["bash", "-c", merge],
                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                    # root owns the files it reads and writes: no capability needed.
                    "securityContext": {
                        **AS_ROOT,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": accounts, "mountPath": "/config"},
                        {"name": "merged", "mountPath": "/merged"},
                    ],
                }
            ],
            "containers": [
                {
                    "name": "home",
                    "image": image,
                    "command": ["/usr/sbin/sshd", "-D", "-e", "-f", f"{CONFIG_DIR}/sshd_config"],
                    "ports": [{"name": "ssh", "containerPort": HOME_PORT, "hostPort": HOME_PORT}],
                    "env": [
                        # See components/engineers/home_sshd.py: the node's GPUs without reserving them.
                        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                        {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"},
                        *docker_env,
                    ],
                    "readinessProbe": {"tcpSocket": {"port": HOME_PORT}, "periodSeconds": 10},
                    # Requests are what an idle sshd holds back from the scheduler on every node;
                    # interactive work bursts up to the limits (and is the first to be throttled).
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "1Gi"},
                        "limits": {"cpu": "16", "memory": "64Gi"},
                    },
                    "securityContext": {
                        **AS_ROOT,
                        "allowPrivilegeEscalation": True,  # sshd's privilege separation
                        "capabilities": {"drop": ["ALL"], "add": SSHD_CAPABILITIES},
                    },
                    "volumeMounts": [
                        *({"name": f"home-{e.name}", "mountPath": f"/home/{e.name}"} for e in engineers),
                        {"name": accounts, "mountPath": f"{CONFIG_DIR}/sshd_config", "subPath": "sshd_config"},
                        {"name": "authorized-keys", "mountPath": AUTHORIZED_KEYS_DIR},
                        {"name": "host-key", "mountPath": "/etc/ssh/host"},
                        *(
                            {"name": "merged", "mountPath": f"/etc/{f}", "subPath": f}
                            for f in ("passwd", "group", "shadow")
                        ),
                        {"name": "docker-certs", "mountPath": "/certs/client", "subPath": "client"},
                    ],
                },
                {
                    # Docker in Kubernetes: the only container the policy pack lets run privileged.
                    "name": "dind",
                    "image": DIND_IMAGE,
                    "env": [{"name": "DOCKER_TLS_CERTDIR", "value": "/certs"}],
                    "securityContext": {"privileged": True},
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "256Mi"},
                        "limits": {"cpu": "8", "memory": "32Gi"},
                    },
                    "volumeMounts": [
                        {"name": "docker-certs", "mountPath": "/certs"},
                        {"name": "docker-data", "mountPath": "/var/lib/docker"},
                        *({"name": f"home-{e.name}", "mountPath": f"/home/{e.name}"} for e in engineers),
                    ],
                },
            ],
            "volumes": [
                *(
                    {"name": f"home-{e.name}", "persistentVolumeClaim": {"claimName": claims[e.name]}}
                    for e in engineers
                ),
                {"name": accounts, "configMap": {"name": "home-accounts"}},
                {
                    "name": "authorized-keys",
                    "configMap": {"name": "home-accounts", "items": keys_items, "defaultMode": 0o444},
                },
                {"name": "host-key", "secret": {"secretName": "home-host-key", "defaultMode": 0o400}},
                {"name": "merged", "emptyDir": {}},
                {"name": "docker-certs", "emptyDir": {}},
                {"name": "docker-data", "emptyDir": {"sizeLimit": "200Gi"}},
            ],
        },
    }


PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def prepull_pod(image: str, labels: dict[str, str]) -> dict[str, Any]:
    """Keeps the (large) ML image on every GPU node: the init container pulls it and exits, a
    pause container holds the pod, so the kubelet's image GC never counts the image unused."""
    small = {"limits": {"cpu": "50m", "memory": "32Mi"}}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            **ON_GPU_NODES,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "initContainers": [
                {
                    "name": "pull",
                    "image": image,
                    "command": ["true"],
                    "resources": small,
                    "securityContext": {"allowPrivilegeEscalation": False},
                }
            ],
            "containers": [
                {
                    "name": "hold",
                    "image": PAUSE_IMAGE,
                    "resources": small,
                    "securityContext": {"allowPrivilegeEscalation": False},
                }
            ],
        },
    }


@dataclass(frozen=True)
class HomeContainersArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    namespace: str
    image: pulumi.Input[str]  # the ML runtime image, pinned
    engineers: tuple[Engineer, ...]  # accounts and keys, the same on every node
    claims: dict[str, str]  # engineer -> home claim in `namespace`
    after: tuple[pulumi.Resource, ...] = ()


class HomeContainers(pulumi.ComponentResource):
    def __init__(self, name: str, args: HomeContainersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:homes:HomeContainers", name, None, opts)
        ctx, ns = args.ctx, args.namespace
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        engineers = list(args.engineers)
        labels = {**ctx.labels, "app.kubernetes.io/name": "home"}
        k8s.core.v1.ConfigMap(
            "home-accounts",
            metadata={"name": "home-accounts", "namespace": ns, "labels": labels},
            data=accounts_config(engineers),
            opts=on_cluster,
        )
        # One host key for every node: the same fingerprint wherever an engineer logs in.
        host_key = tls.PrivateKey("home-host-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self))
        k8s.core.v1.Secret(
            "home-host-key",
            metadata={"name": "home-host-key", "namespace": ns, "labels": labels},
            string_data=host_key.private_key_openssh.apply(lambda pem: {"ssh_host_ed25519_key": pem}),
            opts=on_cluster,
        )
        k8s.apps.v1.DaemonSet(
            "home",
            metadata={"name": "home", "namespace": ns, "labels": labels},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/name": "home"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": pulumi.Output.from_input(args.image).apply(
                    lambda image: home_pod(image, engineers, args.claims, labels)
                ),
            },
            opts=on_cluster,
        )
        prepull_labels = {**ctx.labels, "app.kubernetes.io/name": "ml-image-prepull"}
        k8s.apps.v1.DaemonSet(
            "ml-image-prepull",
            metadata={"name": "ml-image-prepull", "namespace": ns, "labels": prepull_labels},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/name": "ml-image-prepull"}},
                "template": pulumi.Output.from_input(args.image).apply(
                    lambda image: prepull_pod(image, prepull_labels)
                ),
            },
            opts=on_cluster,
        )
        self.register_outputs({"port": HOME_PORT})
