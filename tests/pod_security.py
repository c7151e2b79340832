"""Pod Security Standards as the API server's admission plugin enforces them, for tests that
must know whether a rendered pod is admitted to a namespace at `baseline` or `restricted`.

Transcribed from k8s.io/pod-security-admission/policy (check_*.go) at policy version 1.34+,
the one Kubernetes 1.36 enforces under `enforce-version: latest`: every control of both levels,
with the relaxations for pods in their own user namespace (relaxPolicyForUserNamespacePod:
procMount, runAsNonRoot, runAsUser). Returns the reasons a pod is refused; empty when admitted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# check_capabilities_baseline.go
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# check_sysctls.go (1.32+)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# check_restrictedVolumes.go
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def baseline(pod: Mapping[str, Any]) -> list[str]:
    spec, meta = pod["spec"], pod.get("metadata") or {}
    userns = spec.get("hostUsers") is False
    psc = spec.get("securityContext") or {}
    out: list[str] = []
    out += [f"{f}: true" for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f) is True]
    out += [f"volume {v['name']} is hostPath" for v in spec.get("volumes") or [] if "hostPath" in v]
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith(APPARMOR_ANNOTATION) and not (value == "runtime/default" or value.startswith("localhost/")):
            out.append(f"annotation {key}={value}")
    contexts = [("pod", psc)] + [(c["name"], c.get("securityContext") or {}) for c in _containers(spec)]
    for who, sc in contexts:
        if (sc.get("windowsOptions") or {}).get("hostProcess") is True:
            out.append(f"{who}: hostProcess")
        if (sc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
            out.append(f"{who}: appArmorProfile {sc['appArmorProfile']['type']}")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            out.append(f"{who}: seccompProfile Unconfined")
        se = sc.get("seLinuxOptions") or {}
        if se.get("type", "") not in SELINUX_TYPES or se.get("user") or se.get("role"):
            out.append(f"{who}: seLinuxOptions {se}")
    for c in _containers(spec):
        sc, name = c.get("securityContext") or {}, c["name"]
        if sc.get("privileged") is True:
            out.append(f"{name}: privileged")
        extra = {cap.removeprefix("CAP_") for cap in (sc.get("capabilities") or {}).get("add") or []}
        if extra - BASELINE_CAPABILITIES:
            out.append(f"{name}: adds {sorted(extra - BASELINE_CAPABILITIES)}")
        if sc.get("procMount", "Default") != "Default" and not userns:
            out.append(f"{name}: procMount {sc['procMount']} without hostUsers: false")
        out += [f"{name}: hostPort {p['hostPort']}" for p in c.get("ports") or [] if p.get("hostPort")]
    out += [f"sysctl {s['name']}" for s in psc.get("sysctls") or [] if s["name"] not in SAFE_SYSCTLS]
    return out


def restricted(pod: Mapping[str, Any]) -> list[str]:
    spec = pod["spec"]
    userns = spec.get("hostUsers") is False
    psc = spec.get("securityContext") or {}
    out = baseline(pod)
    for v in spec.get("volumes") or []:
        kinds = set(v) - {"name"}
        if kinds - RESTRICTED_VOLUMES:
            out.append(f"volume {v['name']}: {sorted(kinds)}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if psc.get("runAsUser") == 0 and not userns:
        out.append("pod: runAsUser 0")
    for c in _containers(spec):
        sc, name = c.get("securityContext") or {}, c["name"]
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation not false")
        if not userns:
            if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
                out.append(f"{name}: runAsNonRoot not true")
            if sc.get("runAsUser") == 0:
                out.append(f"{name}: runAsUser 0")
        if (sc.get("seccompProfile") or {}).get("type", pod_seccomp) not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: no RuntimeDefault/Localhost seccomp profile")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: does not drop ALL capabilities")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: adds {caps['add']}")
    return out
