"""Security settings a node carries for the pods that run on it: the seccomp and AppArmor
profiles of each engineer's rootless Docker daemon, and the NVIDIA container toolkit's rule that
GPUs reach a container only through the scheduler. Pure functions; the node configuration
(components/cluster/bootstrap.py) writes the files and runs the commands.

The profiles are files beside this module (profiles/), checked by tests/test_rootless_docker.py:
- akiba-rootless-docker.json: the OCI runtime-spec seccomp shape (`defaultAction`, `syscalls`),
  which is what the kubelet hands containerd for a Localhost profile. Built from Docker's default
  profile (moby/moby profiles/seccomp/default.json: its unconditional list, the x86 and
  default-capability entries, the socket/personality filters), plus the namespace and mount calls
  that profile grants only with CAP_SYS_ADMIN (clone/clone3 with any flags, unshare, setns, mount
  and the new mount API, pivot_root, sethostname): rootlesskit and runc need them to build the
  daemon's and its containers' namespaces, and in a pod with `hostUsers: false` the kernel checks
  them against the pod's own user namespace, never the node's. Still refused: bpf, perf_event_open,
  kernel modules, kexec, reboot, the clock, swap, quotas, syslog, open_by_handle_at, AF_VSOCK
  sockets. Keyrings (not namespaced) answer ENOSYS, which runc reads as "no keyring" and goes on.
- akiba-rootless-docker.apparmor: containerd's container profile without its `deny mount`
  (see the file for why abi 3.0).
"""

from __future__ import annotations

from pathlib import Path

PROFILES = Path(__file__).with_name("profiles")
PROFILE_NAME = "akiba-rootless-docker"
# The kubelet resolves a Localhost seccomp profile under <root-dir>/seccomp
# (kubernetes.io/docs/tutorials/security/seccomp); the pod names it relative to there.
SECCOMP_LOCALHOST = f"profiles/{PROFILE_NAME}.json"
SECCOMP_PATH = f"/var/lib/kubelet/seccomp/{SECCOMP_LOCALHOST}"
# apparmor.service loads /etc/apparmor.d at boot; the configuration loads it at once when changed.
APPARMOR_PATH = f"/etc/apparmor.d/{PROFILE_NAME}"

NVIDIA_TOOLKIT_CONFIG = "/etc/nvidia-container-runtime/config.toml"
# NVIDIA/nvidia-container-toolkit internal/config/config.go (toml keys; `nvidia-ctk config --set`
# takes them by those names, cmd/nvidia-ctk/config/config.go). With the device plugin's
# deviceListStrategy=volume-mounts (components/cluster/addons.py) a container gets the GPUs the
# kubelet allocated to it as mounts under /var/run/nvidia-container-devices, and an unprivileged
# container's NVIDIA_VISIBLE_DEVICES=all is ignored: no pod takes a GPU past the scheduler and
# the ResourceQuota. (A container holding CAP_SYS_ADMIN counts as privileged to the toolkit: the
# device plugin and the metrics exporter, in their privileged namespaces.)
NVIDIA_TOOLKIT_SETTINGS = (
    ("accept-nvidia-visible-devices-envvar-when-unprivileged", "false"),
    ("accept-nvidia-visible-devices-as-volume-mounts", "true"),
)


def seccomp_profile_text() -> str:
    return (PROFILES / f"{PROFILE_NAME}.json").read_text()


def apparmor_profile_text() -> str:
    return (PROFILES / f"{PROFILE_NAME}.apparmor").read_text()


def rootless_docker_files() -> tuple[tuple[str, str, str], ...]:
    """(path, content, mode) of the profiles, for the nodes engineers' home pods run on."""
    return (
        (SECCOMP_PATH, seccomp_profile_text(), "0644"),
        (APPARMOR_PATH, apparmor_profile_text(), "0644"),
    )


def apparmor_load_lines() -> list[str]:
    """Bootstrap-script lines: (re)load the profile into the kernel when its file changed (`changed`
    is the script's own test). The kubelet refuses to start a pod whose Localhost profile is not
    loaded, so a node that could not load it runs no home pod rather than an unconfined one."""
    return [f"if changed {APPARMOR_PATH}; then apparmor_parser --replace --write-cache {APPARMOR_PATH}; fi"]


def nvidia_toolkit_lines() -> list[str]:
    """Bootstrap-script line for GPU nodes, after the toolkit is installed: idempotent, read by the
    toolkit's hook at each container start (no restart)."""
    sets = " ".join(f"--set {key}={value}" for key, value in NVIDIA_TOOLKIT_SETTINGS)
    return [f"nvidia-ctk config --in-place --config-file={NVIDIA_TOOLKIT_CONFIG} {sets}"]
