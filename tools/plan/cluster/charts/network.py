"""The pod network: flannel.

Source: flannel-io/flannel, chart/kube-flannel @ v0.28.9 (templates/daemonset.yaml, values.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.plan.cluster.charts.base import EXISTS_NO_SCHEDULE, Pod, container, merge, required_node_affinity


def flannel(v: Mapping[str, Any]) -> list[Pod]:
    """One DaemonSet on the host network on every Linux node, tolerating every taint; its healthz
    port (`flannel.healthz.port`) is a host port."""
    f = merge(
        {
            "tolerations": [{"effect": "NoExecute", "operator": "Exists"}, EXISTS_NO_SCHEDULE],
            "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
            "healthz": {"port": 8081},
            "nodeSelector": {},
        },
        v.get("flannel") or {},
    )
    ports = (int(f["healthz"]["port"]),) if f["healthz"].get("port") else ()
    return [
        Pod(
            kind="DaemonSet",
            name="kube-flannel-ds",
            replicas=0,
            containers=[
                container("kube-flannel", "ghcr.io/flannel-io/flannel:v0.28.9", f["resources"], ports),
                container("install-cni-plugin", "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3", init=True),
            ],
            tolerations=f["tolerations"],
            node_selector=f["nodeSelector"],
            affinity=required_node_affinity([{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]),
            host_network=True,
            priority="system-node-critical",
            extra={"every_node": True},
        )
    ]
