"""An engineer's registry account where they use it: the Secret `registry` in eng-<login>
(components.tenants.names.REGISTRY_SECRET) with a Docker client `config.json` that logs their
`docker push` in as them, and the registry's CA for their own Docker daemon; and what their home
pod mounts from it (`with_registry`).

The account is theirs (components.registry.credentials makes one per engineer), but
distribution's htpasswd auth has no per-repository rights: it lets them push to, and delete
from, any repository, `akiba/*` included. It is for attribution (the registry logs each request
with `auth.user.name=<login>`) and revocation (removing the engineer removes their htpasswd line;
distribution re-reads the file when it changes, components.registry.registry).

In the home pod:

- the shell container mounts `config.json` alone at DOCKER_CONFIG_DIR, read-only, and every ssh
  session gets `DOCKER_CONFIG` (sshd's SetEnv, like DOCKER_HOST): `docker push` reads it, no
  `docker login`. `docker login` there fails (it writes config.json; the directory is the
  Secret's). buildx keeps its state in $DOCKER_CONFIG/buildx unless BUILDX_CONFIG says
  otherwise, and `docker build` is buildx: BUILDX_CONFIG is ~/.docker/buildx, where it was.
- the daemon does the push (the CLI only hands it the credentials) and checks the registry's
  certificate itself: under rootlesskit, dockerd reads `<user config dir>/docker/certs.d/<host:port>/ca.crt`
  (moby daemon/pkg/registry CertsDir: os.UserConfigDir, $HOME/.config here, HOME being the
  daemon's state directory), not /etc/docker/certs.d.

Both are directory mounts, not subPath: a new password reaches the running pod (the kubelet
rewrites the files), and the CLI reads config.json on each command.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.context import PlatformContext
from components.engineers import rootless_docker
from components.engineers.home_containers import HomeDocker
from components.tenants.names import ENGINEER_LABEL, REGISTRY_SECRET, engineer_namespace

CONFIG_KEY = "config.json"  # Docker's own file name in DOCKER_CONFIG
CA_KEY = "ca.crt"  # the name dockerd looks for in certs.d/<host:port>/
DOCKER_CONFIG_DIR = "/etc/akiba/docker-config"
# Rootless dockerd: $XDG_CONFIG_HOME/docker/certs.d, XDG_CONFIG_HOME defaulting to $HOME/.config.
DAEMON_CERTS_DIR = f"{rootless_docker.STATE_DIR}/.config/docker/certs.d"
CLIENT_VOLUME, DAEMON_VOLUME = "registry", "registry-ca"
# Like the pod's other Secrets: readable without fsGroup (components.engineers.home_docker).
SECRET_MODE = 0o444


def docker_config(registry: str, user: str, password: str) -> str:
    """Docker's config.json with one registry's credentials, as `docker login` writes it."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"auth": auth}}}, indent=2, sort_keys=True) + "\n"


def session_env(login: str, registry: str) -> dict[str, str]:
    """What every ssh session of the engineer gets (sshd's SetEnv: no spaces or quotes)."""
    return {
        "DOCKER_CONFIG": DOCKER_CONFIG_DIR,
        # buildx writes its state under DOCKER_CONFIG by default, which is read-only here.
        "BUILDX_CONFIG": f"/home/{login}/.docker/buildx",
        "AKIBA_REGISTRY": registry,  # host:port, for `docker tag ... $AKIBA_REGISTRY/<login>/<name>:<tag>`
    }


def pod_volumes() -> list[dict[str, Any]]:
    """Two views of the engineer's Secret: config.json for the shell, the CA for the daemon."""

    def view(name: str, key: str) -> dict[str, Any]:
        return {
            "name": name,
            "secret": {
                "secretName": REGISTRY_SECRET,
                "items": [{"key": key, "path": key}],
                "defaultMode": SECRET_MODE,
                "optional": True,  # like the kubeconfig: a login never waits on it
            },
        }

    return [view(CLIENT_VOLUME, CONFIG_KEY), view(DAEMON_VOLUME, CA_KEY)]


def client_mounts() -> list[dict[str, Any]]:
    return [{"name": CLIENT_VOLUME, "mountPath": DOCKER_CONFIG_DIR, "readOnly": True}]


def daemon_mounts(registry: str) -> list[dict[str, Any]]:
    return [{"name": DAEMON_VOLUME, "mountPath": f"{DAEMON_CERTS_DIR}/{registry}", "readOnly": True}]


@dataclass(frozen=True)
class RegistryLoginArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    login: str  # the engineer, e.g. "tanaka": their account's user and namespace eng-<login>
    registry: str  # host:port engineers push to (the stack's registry.mirror), e.g. registry.akiba.lan:30443
    password: pulumi.Output[str]  # secret: their account's (RegistryCredentials.engineer_passwords)
    ca_cert_pem: pulumi.Input[str]  # the CA the registry's certificate is signed by (the cluster's)
    after: tuple[pulumi.Resource, ...] = ()  # e.g. their Namespace


class RegistryLogin(pulumi.ComponentResource):
    """The Secret `registry` in eng-<login>: `config.json` (their account) and `ca.crt`."""

    registry: str
    session_env: dict[str, str]

    def __init__(self, name: str, args: RegistryLoginArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:registry:RegistryLogin", name, None, opts)
        login = args.login

        def files(v: list[Any]) -> dict[str, str]:
            return {CONFIG_KEY: docker_config(args.registry, login, v[0]), CA_KEY: v[1]}

        # Secret as a whole: the password is in it (and the plan's no-plaintext rule checks it).
        password: pulumi.Output[str] = pulumi.Output.secret(args.password)
        data = pulumi.Output.all(password, args.ca_cert_pem).apply(files)
        k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={
                "name": REGISTRY_SECRET,
                "namespace": engineer_namespace(login),
                "labels": {**args.ctx.labels, ENGINEER_LABEL: login, "app.kubernetes.io/name": "registry-login"},
            },
            type="Opaque",
            string_data=data,
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after)),
        )
        self.registry = args.registry
        self.session_env = session_env(login, args.registry)
        self.register_outputs({"registry": args.registry})


def with_registry(docker: HomeDocker, login: RegistryLogin) -> HomeDocker:
    """The engineer's home Docker with their registry account: config.json in the shell, the CA
    in the daemon's sidecar(s), the environment in every session; the pod waits for the Secret."""
    return dataclasses.replace(
        docker,
        containers=tuple(
            {**c, "volumeMounts": [*c.get("volumeMounts", []), *daemon_mounts(login.registry)]}
            for c in docker.containers
        ),
        volumes=(*docker.volumes, *pod_volumes()),
        client_env={**docker.client_env, **login.session_env},
        client_mounts=(*docker.client_mounts, *client_mounts()),
        after=(*docker.after, login),
    )
