"""What a pod may take from its node, judged by the namespace it runs in.

Only a platform namespace the plan declares with Pod Security `enforce: privileged` (and that
is not an engineer's) may run privileged containers or reach the host, and only the namespaces
listed in exemptions.PRIVILEGED_NAMESPACES may carry that label; an engineer namespace never
may, and it must itself enforce baseline or restricted, since its engineer creates pods there
that no plan shows. Every pod-bearing kind, init and ephemeral containers included. No
exemption by container name: a name is whatever the author writes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .context import ENFORCE, PlanContext
from .exemptions import PRIVILEGED_NAMESPACES
from .k8s import containers, get, kind, name_of, namespace_of, pod_metadata, pod_spec
from .model import PlannedResource, PolicyConfig

# Pod Security Standards, baseline profile (kubernetes.io/docs/concepts/security/pod-security-standards).
BASELINE_CAPABILITIES = {
    *("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE"),
    *("SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"),
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
SAFE_SYSCTLS = {
    *("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start"),
    *("net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports"),
    *("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl"),
    "net.ipv4.tcp_keepalive_probes",
}
SECCOMP_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
CONTAINER_SECCOMP_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _where(ns: str, plan: PlanContext) -> str:
    trust = plan.trust(ns)
    if trust == "engineer":
        return f"engineer namespace {ns!r} (never allowed there)"
    return f"namespace {ns!r} (not a platform namespace the plan labels pod-security enforce=privileged)"


def _namespace(res: PlannedResource, plan: PlanContext) -> Iterator[str]:
    name, level = name_of(res), get(res.props, "metadata", "labels", ENFORCE)
    if plan.trust(name) == "engineer":
        if level not in ("baseline", "restricted"):
            yield f"engineer namespace enforces Pod Security {level!r}: it must be baseline or restricted"
    elif level == "privileged" and name not in PRIVILEGED_NAMESPACES:
        yield "namespace enforces Pod Security privileged but is not a reviewed privileged namespace (exemptions.py)"


def no_privileged_containers(res: PlannedResource, _: PolicyConfig, plan: PlanContext) -> Iterator[str]:
    if kind(res) == "Namespace":
        yield from _namespace(res, plan)
    spec = pod_spec(res)
    if spec is None:
        return
    ns = namespace_of(res)
    trust = plan.trust(ns)
    if trust == "privileged":
        return
    for c in containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged") is True:
            yield f"container {c.get('name')!r} runs privileged in {_where(ns, plan)}"
        if trust == "engineer" and sc.get("allowPrivilegeEscalation") is True and spec.get("hostUsers") is not False:
            yield (
                f"container {c.get('name')!r} allows privilege escalation in {_where(ns, plan)} "
                "without its own user namespace (hostUsers: false)"
            )


def _security_context(who: str, sc: Mapping[str, Any], user_namespace: bool) -> Iterator[str]:
    if get(sc, "seccompProfile", "type") == "Unconfined":
        yield f"{who} runs seccomp Unconfined"
    if get(sc, "appArmorProfile", "type") == "Unconfined":
        yield f"{who} runs AppArmor Unconfined"
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        yield f"{who} sets SELinux options outside baseline ({dict(selinux)})"
    if get(sc, "windowsOptions", "hostProcess") is True:
        yield f"{who} is a Windows host process"
    if sc.get("procMount") == "Unmasked" and not user_namespace:
        yield f"{who} mounts /proc Unmasked without hostUsers: false"
    added = {str(cap).upper().removeprefix("CAP_") for cap in get(sc, "capabilities", "add") or []}
    if extra := sorted(added - BASELINE_CAPABILITIES):
        yield f"{who} adds capabilities beyond Pod Security baseline: {', '.join(extra)}"


def _host_access(spec: Mapping[str, Any], meta: Mapping[str, Any]) -> Iterator[str]:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            yield f"pod sets {field}: true"
    for v in spec.get("volumes") or []:
        if isinstance(v, Mapping) and v.get("hostPath") is not None:
            yield f"volume {v.get('name')!r} is a hostPath ({get(v, 'hostPath', 'path')})"
    user_namespace = spec.get("hostUsers") is False
    yield from _security_context("pod", spec.get("securityContext") or {}, user_namespace)
    for sysctl in get(spec, "securityContext", "sysctls") or []:
        if isinstance(sysctl, Mapping) and sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"pod sets sysctl {sysctl.get('name')!r} (not in Pod Security baseline's safe set)"
    annotations = meta.get("annotations") or {}
    for key, value in annotations.items() if isinstance(annotations, Mapping) else ():
        if str(value).lower() == "unconfined" and (
            key == SECCOMP_ANNOTATION or key.startswith((CONTAINER_SECCOMP_ANNOTATION, APPARMOR_ANNOTATION))
        ):
            yield f"annotation {key} is unconfined"
    for c in containers(spec):
        who = f"container {c.get('name')!r}"
        for port in c.get("ports") or []:
            if isinstance(port, Mapping) and port.get("hostPort"):
                yield f"{who} binds hostPort {port.get('hostPort')}"
        yield from _security_context(who, c.get("securityContext") or {}, user_namespace)


def no_host_access(res: PlannedResource, _: PolicyConfig, plan: PlanContext) -> Iterator[str]:
    if kind(res) == "PersistentVolume":
        source = next((s for s in ("hostPath", "local") if get(res.props, "spec", s) is not None), None)
        claim_ns = get(res.props, "spec", "claimRef", "namespace")
        if source and not (isinstance(claim_ns, str) and plan.trust(claim_ns) == "privileged"):
            holder = f"namespace {claim_ns!r}" if claim_ns else "any claim"
            yield f"PersistentVolume exposes a node's {source} to {holder}"
        return
    spec = pod_spec(res)
    if spec is None:
        return
    ns = namespace_of(res)
    if plan.trust(ns) == "privileged":
        return
    for finding in _host_access(spec, pod_metadata(res)):
        yield f"{finding} in {_where(ns, plan)}"
