"""Monitoring: kube-prometheus-stack and the subcharts it turns on.

Sources: prometheus-community/helm-charts, charts/kube-prometheus-stack @ kube-prometheus-stack-88.5.3
(templates/prometheus-operator/deployment.yaml, values.yaml), with its subcharts at their own tags:
charts/kube-state-metrics @ kube-state-metrics-8.4.0, charts/prometheus-node-exporter @
prometheus-node-exporter-4.56.1 (same repository), and grafana-community/helm-charts charts/grafana @
grafana-12.11.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.plan.cluster.charts.base import (
    EXISTS_NO_SCHEDULE,
    NOT_FARGATE,
    Pod,
    container,
    merge,
    required_node_affinity,
)

PLAIN = {"tolerations": [], "nodeSelector": {}, "replicas": 1, "resources": {}}
OPERATOR = "quay.io/prometheus-operator/prometheus-operator:v0.93.1"
PROMETHEUS = (
    "quay.io/prometheus/prometheus:v3.14.0-distroless",
    "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
)
ALERTMANAGER = "quay.io/prometheus/alertmanager:v0.34.0"
GRAFANA = ("docker.io/grafana/grafana:13.2.0", "quay.io/kiwigrid/k8s-sidecar:2.10.1")
KUBE_STATE_METRICS = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"


def _plain(kind: str, name: str, values: Mapping[str, Any] | None, *images: str, **extra: Any) -> Pod:
    """A workload with no placement, requests or ports of its own by default: `values` may set
    replicas, tolerations, nodeSelector and the main container's resources."""
    d = merge(PLAIN, values or {})
    containers = [container(f"{name}-{i}", image, d["resources"] if i == 0 else None) for i, image in enumerate(images)]
    return Pod(
        kind=kind,
        name=name,
        replicas=int(d["replicas"]),
        containers=containers,
        tolerations=d["tolerations"],
        node_selector=d["nodeSelector"],
        extra=extra,
    )


def kube_prometheus_stack(v: Mapping[str, Any]) -> list[Pod]:
    """The operator, the Prometheus and Alertmanager it runs, Grafana, kube-state-metrics and the
    node exporter (a host-network DaemonSet whose port 9100 is a host port)."""
    po = merge(
        {
            "tolerations": [],
            "nodeSelector": {},
            "resources": {},
            "admissionWebhooks": {"enabled": True, "certManager": {"enabled": False}},
            "tls": {"enabled": True},
        },
        v.get("prometheusOperator") or {},
    )
    blocked = []
    # templates/prometheus-operator/deployment.yaml: with tls.enabled the operator mounts the Secret
    # <fullname>-admission, which cert-manager or the admission webhook's hook Jobs create.
    if po["tls"].get("enabled") and not po["admissionWebhooks"]["certManager"].get("enabled"):
        blocked.append(
            "mounts the Secret kube-prometheus-stack-admission, which only the chart's hook Jobs create; "
            "Pulumi's helm.v4.Chart skips hooks, so the pod never starts"
        )
    ne = merge(
        {
            "tolerations": [EXISTS_NO_SCHEDULE],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "resources": {},
            "hostNetwork": True,
            "service": {"port": 9100},
        },
        v.get("prometheus-node-exporter") or {},
    )
    return [
        _plain("Deployment", "kube-prometheus-stack-operator", po, OPERATOR, blocked=tuple(blocked)),
        _plain("StatefulSet", "prometheus", (v.get("prometheus") or {}).get("prometheusSpec"), *PROMETHEUS),
        _plain("StatefulSet", "alertmanager", (v.get("alertmanager") or {}).get("alertmanagerSpec"), ALERTMANAGER),
        _plain("Deployment", "grafana", v.get("grafana"), *GRAFANA),
        _plain("Deployment", "kube-state-metrics", v.get("kube-state-metrics"), KUBE_STATE_METRICS),
        Pod(
            kind="DaemonSet",
            name="prometheus-node-exporter",
            replicas=0,
            containers=[
                container(
                    "node-exporter",
                    "quay.io/prometheus/node-exporter:v1.12.1-distroless",
                    ne["resources"],
                    (int(ne["service"]["port"]),),
                )
            ],
            tolerations=ne["tolerations"],
            node_selector=ne["nodeSelector"],
            affinity=required_node_affinity(
                [NOT_FARGATE, {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]
            ),
            host_network=bool(ne["hostNetwork"]),
        ),
    ]
