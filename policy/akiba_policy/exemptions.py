"""Every exception the pack makes, in one list, each with its reason. A rule's finding on a
resource that an entry matches (every field that is set) is dropped, in the offline gate and in
the pack alike. Add an entry only for platform behaviour a reviewer can defend; never for an
engineer namespace (those are refused before this list is read)."""

from __future__ import annotations

from dataclasses import dataclass

from .k8s import kind, name_of, namespace_of
from .model import PlannedResource


@dataclass(frozen=True)
class Exemption:
    rule: str
    reason: str
    namespace: str | None = None  # the object's namespace
    kind: str | None = None  # its Kubernetes kind
    name: str | None = None  # its metadata.name
    within: str | None = None  # a type among its parents (a Helm chart's children)


# The platform namespaces that may enforce Pod Security `privileged` (and so run privileged pods
# and reach their node): a namespace labelled privileged and not listed here fires, so that
# loosening one is a change to this file, not a label slipped into a component.
PRIVILEGED_NAMESPACES: dict[str, str] = {
    "rook-ceph": "Ceph OSDs, mons and the CSI node plugins own the nodes' disks and mounts",
    "kube-flannel": "the CNI: host network, /run/flannel and the CNI configuration",
    "nvidia-device-plugin": "the device plugin's socket under /var/lib/kubelet and the GPUs' device nodes",
    "monitoring": "node-exporter (host network, PID and /proc) and dcgm-exporter (GPU counters)",
    "akiba-backup": "the etcd snapshot runs on a controller's host network with its etcd client certificate",
    "akiba-system": "the platform's own system namespace; no engineer has rights in it",
}

EXEMPTIONS: tuple[Exemption, ...] = (
    # kubeadm creates kube-system without Pod Security labels (privileged) and the program does
    # not declare it; the charts installed there (cluster-autoscaler, the spot termination
    # handler, the network policy add-on) are node agents that need the host.
    Exemption("no-privileged-containers", "kube-system: the cluster's own node agents", namespace="kube-system"),
    Exemption("no-host-access", "kube-system: the cluster's own node agents", namespace="kube-system"),
    # A chart's operator RBAC (rook's `*` on its own CRDs, prometheus-operator's) is upstream's,
    # reviewed with the pinned chart version; bindings to cluster-admin or to every
    # authenticated user are a separate rule with no exemption.
    Exemption("rbac-least-privilege", "a pinned Helm chart's own operator RBAC", within="kubernetes:helm.sh/v4:Chart"),
)


def exempt(rule: str, res: PlannedResource) -> bool:
    return any(
        e.rule == rule
        and (e.namespace is None or (kind(res) is not None and namespace_of(res) == e.namespace))
        and (e.kind is None or kind(res) == e.kind)
        and (e.name is None or name_of(res) == e.name)
        and (e.within is None or e.within in res.ancestry)
        for e in EXEMPTIONS
    )
