"""Docker for each engineer, without root on the node: a rootless Docker daemon as a sidecar in
their own home pod, its TLS keys their own.

What it takes, and why each setting is there (Kubernetes 1.36, containerd 2.2, Ubuntu kernels):

- The pod runs in its own user namespace (`hostUsers: false`, KEP-127, on by default since 1.33):
  uid 0..65535 inside are unprivileged ids on the node, so whatever the daemon's containers hold
  is held in that namespace only. Kubernetes refuses hostNetwork/hostPID/hostIPC with it.
- The daemon is `dockerd` under rootlesskit, AS THE ENGINEER (their uid and gid), never
  privileged: rootlesskit makes a user and mount namespace inside the pod's and maps the ranges
  in /etc/subuid through newuidmap (setuid, so allowPrivilegeEscalation stays true; it needs the
  user's name in /etc/passwd, which the daemon's ConfigMap gives). Root in a container is the
  engineer, so what `docker run -v ~/data:/data` writes in their home is theirs. The pod has 65536
  ids and the image's range (100000+) is outside them: the containers' other ids are the pod's
  own, less the engineer's (subids()).
- runc inside must mount a fresh /proc for each container, which the kernel allows only where
  /proc is not partly masked (mnt_too_revealing): `procMount: Unmasked`. Pod Security baseline
  admits that for pods with `hostUsers: false` from policy version 1.34 (k8s.io/pod-security-
  admission policy/check_procMount.go, relaxPolicyForUserNamespacePod).
- The runtime's default seccomp profile refuses unshare/mount/setns/pivot_root without
  CAP_SYS_ADMIN, and containerd's AppArmor profile denies every mount: Localhost profiles the
  node configuration installs (components/cluster/node_security.py) allow them. Baseline admits
  Localhost profiles and refuses Unconfined ones (policy/check_seccompProfile_baseline.go,
  check_appArmorProfile.go).
- Networking: rootlesskit's slirp4netns/pasta/vpnkit drivers all need /dev/net/tun, which a pod
  gets only from a privileged container, a hostPath or a device plugin (rootlesskit
  docs/network.md). `--net=host` keeps the pod's network namespace: the daemon makes no bridge
  and no iptables rules, and its containers share the pod's network (`docker run --network host`,
  `docker build --network host`), behind the engineer's NetworkPolicies. Published ports (-p)
  are not available; a container's port is already the pod's.
- The daemon listens on 127.0.0.1:2376 with TLS and client certificates: only processes in this
  pod reach it. Its data lives in an emptyDir with a size limit, on the node's disk, and goes
  with the pod; it mounts the engineer's own home (for `docker run -v`), nothing of the node's.
- Docker's own documentation runs `docker:dind-rootless` with --privileged (docs.docker.com,
  "Rootless Docker in Docker"); that is for a container in the node's user namespace, where the
  kernel would check these calls against the node. Here they are checked against the pod's.

Pure renderers for the home pod (components/engineers/home_docker.py puts them in), and one
ComponentResource per engineer for the TLS material.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.cluster import node_security
from components.context import PlatformContext
from components.tenants.names import engineer_namespace

# The CLI in the ML runtime image is the same version (images/ml-runtime/Dockerfile).
DOCKER_IMAGE = "docker.io/library/docker:29.8.1-dind-rootless"
DOCKER_PORT = 2376
POD_IDS = 65536  # a hostUsers: false pod's ids (KEP-127's default userNamespaces.idsPerPod)
STATE_DIR = "/var/lib/akiba-docker"  # the daemon's HOME, an emptyDir: data root and runtime dir
DATA_ROOT = f"{STATE_DIR}/data"
RUNTIME_DIR = f"{STATE_DIR}/run"  # XDG_RUNTIME_DIR: rootlesskit's state, containerd's sockets
DATA_SIZE_LIMIT = "100Gi"

TLS_SECRET = "docker-tls"  # noqa: S105 (a name) the engineer's client: ca.pem, cert.pem, key.pem
SERVER_TLS_SECRET = "docker-tls-server"  # noqa: S105 (a name) the daemon's: ca.pem, cert.pem, key.pem
ACCOUNTS_CONFIGMAP = "docker-accounts"  # passwd, group, subuid, subgid of the daemon's container
CLIENT_CERT_DIR = "/etc/akiba/docker-tls"  # DOCKER_CERT_PATH in the engineer's shell
SERVER_CERT_DIR = "/etc/akiba/docker-server-tls"

# Volume names in the home pod (`home` is the engineer's home claim, the home pod's own volume).
STATE_VOLUME, CLIENT_TLS_VOLUME, SERVER_TLS_VOLUME, ACCOUNTS_VOLUME = (
    "docker-state",
    "docker-tls",
    "docker-tls-server",
    "docker-accounts",
)
# Secret files are root's in the pod; without fsGroup (which would re-group the engineer's CephFS
# home, components/engineers/home_docker.py) the engineer reads them at 0444. Only the engineer's
# processes run in the containers that mount them: the client key is in the shell's container
# alone, the server key in the daemon's alone, and no container of the daemon's sees either
# unless the engineer mounts it there.
SECRET_MODE = 0o444

# Pod-level settings the home pod takes.
POD_SETTINGS: dict[str, Any] = {"hostUsers": False}

CERT_VALIDITY_HOURS = 24 * 365
# `pulumi up` within 30 days of expiry makes new ones; pods restart on the annotation below.
CERT_EARLY_RENEWAL_HOURS = 24 * 30
TLS_ANNOTATION = "akiba.io/docker-tls"


class Account(Protocol):
    """An engineer as the daemon needs them (components.engineers.home_sshd.Engineer is one)."""

    @property
    def name(self) -> str: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...


def subids(login: str, own: int) -> str:
    """/etc/subuid (or subgid) lines: every id of the pod but 0 and the engineer's own, the ids
    above theirs first. rootlesskit maps container root to the engineer and then these ranges in
    order (pkg/parent/parent.go, newugidmapArgsFromSubIDRanges): 65535 ids, nobody included."""
    return f"{login}:{own + 1}:{POD_IDS - 1 - own}\n{login}:1:{own - 1}\n"


def accounts(engineer: Account) -> dict[str, str]:
    """The daemon container's account files: newuidmap looks its caller up by name."""
    login, uid, gid = engineer.name, engineer.uid, engineer.gid
    return {
        "passwd": f"root:x:0:0:root:/root:/bin/sh\n{login}:x:{uid}:{gid}::{STATE_DIR}:/bin/sh\n",
        "group": f"root:x:0:\n{login}:x:{gid}:\n",
        "subuid": subids(login, uid),
        "subgid": subids(login, gid),
    }


def daemon_command() -> list[str]:
    """rootlesskit with the pod's network, then dockerd on loopback with TLS. The runtime dir is
    made first (dockerd-entrypoint.sh does the same; the state emptyDir starts empty)."""
    return [
        "sh",
        "-c",
        'mkdir -p "$XDG_RUNTIME_DIR" && exec "$@"',
        "sh",
        "docker-init",  # tini: reaps what the daemon's shims leave (docker-library/docker#318)
        "--",
        "rootlesskit",
        "--net=host",
        "--port-driver=none",
        # /etc and /run become writable copies inside rootlesskit's mount namespace (as
        # dockerd-entrypoint.sh does): dockerd writes /run/docker and /etc/docker.
        "--copy-up=/etc",
        "--copy-up=/run",
        f"--state-dir={RUNTIME_DIR}/rootlesskit",
        "dockerd",
        f"--host=tcp://127.0.0.1:{DOCKER_PORT}",
        "--tlsverify",
        f"--tlscacert={SERVER_CERT_DIR}/ca.pem",
        f"--tlscert={SERVER_CERT_DIR}/cert.pem",
        f"--tlskey={SERVER_CERT_DIR}/key.pem",
        f"--data-root={DATA_ROOT}",
        f"--exec-root={RUNTIME_DIR}/docker",
        # The pod's network namespace is not the daemon's to change.
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
    ]


def docker_containers(engineer: Account, home_volume: str = "home") -> list[dict[str, Any]]:
    """The daemon's sidecar in `engineer`'s home pod, running as them, with their home (the home
    pod's `home_volume`) at the same path as in their shell."""
    return [
        {
            "name": "docker",
            "image": DOCKER_IMAGE,
            "command": daemon_command(),
            "env": [
                {"name": "HOME", "value": STATE_DIR},
                {"name": "USER", "value": engineer.name},
                {"name": "XDG_RUNTIME_DIR", "value": RUNTIME_DIR},
            ],
            "resources": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "8", "memory": "32Gi"},
            },
            "securityContext": {
                "runAsUser": engineer.uid,
                "runAsGroup": engineer.gid,
                "runAsNonRoot": True,
                "privileged": False,
                # newuidmap/newgidmap are setuid (the one privilege rootless mode keeps), in the
                # pod's user namespace.
                "allowPrivilegeEscalation": True,
                # The runtime's default set, namespaced by hostUsers: false: newuidmap uses
                # SETUID/SETGID and writes the map files of another process.
                "capabilities": {"drop": ["NET_RAW"]},
                "procMount": "Unmasked",
                "seccompProfile": {"type": "Localhost", "localhostProfile": node_security.SECCOMP_LOCALHOST},
                "appArmorProfile": {"type": "Localhost", "localhostProfile": node_security.PROFILE_NAME},
            },
            "volumeMounts": [
                {"name": STATE_VOLUME, "mountPath": STATE_DIR},
                {"name": home_volume, "mountPath": f"/home/{engineer.name}"},
                {"name": SERVER_TLS_VOLUME, "mountPath": SERVER_CERT_DIR, "readOnly": True},
                *(
                    {"name": ACCOUNTS_VOLUME, "mountPath": f"/etc/{f}", "subPath": f, "readOnly": True}
                    for f in ("passwd", "group", "subuid", "subgid")
                ),
            ],
        }
    ]


def docker_volumes(engineer: Account, data_size_limit: str = DATA_SIZE_LIMIT) -> list[dict[str, Any]]:
    """The pod's volumes for the daemon and the client: no hostPath, only the engineer's own
    Secrets and ConfigMap (in their namespace) and an emptyDir. (Their home is the pod's own.)"""
    del engineer  # the objects have the same names in every engineer's namespace
    return [
        {"name": STATE_VOLUME, "emptyDir": {"sizeLimit": data_size_limit}},
        {"name": CLIENT_TLS_VOLUME, "secret": {"secretName": TLS_SECRET, "defaultMode": SECRET_MODE}},
        {"name": SERVER_TLS_VOLUME, "secret": {"secretName": SERVER_TLS_SECRET, "defaultMode": SECRET_MODE}},
        {"name": ACCOUNTS_VOLUME, "configMap": {"name": ACCOUNTS_CONFIGMAP, "defaultMode": 0o444}},
    ]


def docker_client_env() -> list[dict[str, str]]:
    """The engineer's shell: `docker` talks to their own daemon, over TLS, as them."""
    return [
        {"name": "DOCKER_HOST", "value": f"tcp://127.0.0.1:{DOCKER_PORT}"},
        {"name": "DOCKER_TLS_VERIFY", "value": "1"},
        {"name": "DOCKER_CERT_PATH", "value": CLIENT_CERT_DIR},
    ]


def client_env_map() -> dict[str, str]:
    """The same as a mapping, for sshd's SetEnv (an ssh session does not inherit the container's
    environment)."""
    return {e["name"]: e["value"] for e in docker_client_env()}


def docker_client_mounts() -> list[dict[str, Any]]:
    """The client's certificate and key in the engineer's shell container (not the server's)."""
    return [{"name": CLIENT_TLS_VOLUME, "mountPath": CLIENT_CERT_DIR, "readOnly": True}]


def tls_annotation(client_cert_pem: str) -> dict[str, str]:
    """A pod-template annotation that changes with the certificates: dockerd reads them at start,
    so renewed ones need a new pod."""
    return {TLS_ANNOTATION: hashlib.sha256(client_cert_pem.encode()).hexdigest()[:16]}


@dataclass(frozen=True)
class DockerTlsArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    engineer: Account  # e.g. home_sshd.Engineer("tanaka", 2001, 2001, ...): eng-<name>, the client cert's CN
    after: tuple[pulumi.Resource, ...] = ()  # e.g. their Namespace


class DockerTls(pulumi.ComponentResource):
    """One engineer's Docker TLS: their own CA, a server certificate for 127.0.0.1/localhost, a
    client certificate (CN=login), the Secrets `docker-tls` (client) and `docker-tls-server`
    (daemon), and the daemon's account ConfigMap, all in eng-<login>."""

    client_cert_pem: pulumi.Output[str]
    annotation: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: DockerTlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:engineers:DockerTls", name, None, opts)
        own = pulumi.ResourceOptions(parent=self)
        login = args.engineer.name
        ns = engineer_namespace(login)
        validity = {"validity_period_hours": CERT_VALIDITY_HOURS, "early_renewal_hours": CERT_EARLY_RENEWAL_HOURS}

        def key(suffix: str) -> tls.PrivateKey:
            return tls.PrivateKey(f"{name}-{suffix}", algorithm="ECDSA", ecdsa_curve="P256", opts=own)

        ca_key = key("ca")
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            subject={"common_name": f"akiba docker CA ({login})"},
            is_ca_certificate=True,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            **validity,
            opts=own,
        )

        def signed(
            suffix: str, cn: str, uses: list[str], **sans: list[str]
        ) -> tuple[tls.PrivateKey, tls.LocallySignedCert]:
            k = key(suffix)
            request = tls.CertRequest(
                f"{name}-{suffix}", private_key_pem=k.private_key_pem, subject={"common_name": cn}, **sans, opts=own
            )
            cert = tls.LocallySignedCert(
                f"{name}-{suffix}",
                cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=ca_key.private_key_pem,
                ca_cert_pem=ca.cert_pem,
                allowed_uses=uses,
                **validity,
                opts=own,
            )
            return k, cert

        server_key, server = signed(
            "server",
            "localhost",
            ["server_auth", "digital_signature", "key_encipherment"],
            ip_addresses=["127.0.0.1"],
            dns_names=["localhost"],
        )
        client_key, client = signed("client", login, ["client_auth", "digital_signature"])

        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        labels = {**args.ctx.labels, "app.kubernetes.io/name": "docker"}

        def secret(secret_name: str, cert: tls.LocallySignedCert, k: tls.PrivateKey) -> None:
            k8s.core.v1.Secret(
                f"{name}-{secret_name}",
                metadata={"name": secret_name, "namespace": ns, "labels": labels},
                type="Opaque",
                string_data=pulumi.Output.all(ca.cert_pem, cert.cert_pem, k.private_key_pem).apply(
                    lambda pems: {"ca.pem": pems[0], "cert.pem": pems[1], "key.pem": pems[2]}
                ),
                opts=on_cluster,
            )

        secret(TLS_SECRET, client, client_key)
        secret(SERVER_TLS_SECRET, server, server_key)
        k8s.core.v1.ConfigMap(
            f"{name}-{ACCOUNTS_CONFIGMAP}",
            metadata={"name": ACCOUNTS_CONFIGMAP, "namespace": ns, "labels": labels},
            data=accounts(args.engineer),
            opts=on_cluster,
        )
        self.client_cert_pem = client.cert_pem
        self.annotation = client.cert_pem.apply(tls_annotation)
        self.register_outputs({"clientCertPem": self.client_cert_pem})
