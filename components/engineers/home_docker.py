"""The engineer's rootless Docker (components.engineers.rootless_docker) as it goes into their
home pod (components.engineers.home_containers.HomeDocker)."""

from __future__ import annotations

from typing import Any

from components.engineers import rootless_docker as docker
from components.engineers.home_containers import HomeDocker, HomeLimits
from components.engineers.home_sshd import Engineer

# The Secrets' files readable by the pod's user without fsGroup. fsGroup would have the kubelet
# re-group and g+rw every file of the CephFS home whenever its root directory does not carry
# the group with 2770 (OnRootMismatch compares mode and setgid too), and ssh then refuses the
# engineer's own private keys. The pod and its Secrets are the engineer's alone.
SECRET_MODE = 0o444
# The daemon runs the engineer's builds and containers: interactive work like the shell's, with
# the same limits (components.engineers.home_containers.HomeLimits, within the LimitRange's max).
# Its requests are an idle daemon's, held back on every GPU node for every engineer (prod: 4 x 5),
# and they are all the quota counts of it.
DAEMON_REQUESTS = {"cpu": "25m", "memory": "128Mi"}


def _readable(volume: dict[str, Any]) -> dict[str, Any]:
    if "secret" not in volume:
        return volume
    return {**volume, "secret": {**volume["secret"], "defaultMode": SECRET_MODE}}


def _sized(container: dict[str, Any], limits: HomeLimits) -> dict[str, Any]:
    resources = {"requests": dict(DAEMON_REQUESTS), "limits": {"cpu": limits.cpu, "memory": limits.memory}}
    return {**container, "resources": resources}


def home_docker(engineer: Engineer, tls: docker.DockerTls, limits: HomeLimits) -> HomeDocker:
    """The daemon's sidecar and volumes, the client's certificate and environment in every ssh
    session, a pod annotation that rolls the pod when the certificates are renewed."""
    return HomeDocker(
        containers=tuple(_sized(c, limits) for c in docker.docker_containers(engineer)),
        volumes=tuple(_readable(v) for v in docker.docker_volumes(engineer)),
        client_env={e["name"]: e["value"] for e in docker.docker_client_env()},
        client_mounts=tuple(docker.docker_client_mounts()),
        pod_settings=dict(docker.POD_SETTINGS),
        annotations=tls.annotation,
        after=(tls,),
    )
