"""Prometheus and Grafana (kube-prometheus-stack) with GPU metrics from the DCGM exporter, and
the GPU dashboard provisioned as code (a ConfigMap Grafana's sidecar loads)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster.addons import ALL_NODES
from components.cluster.helm import pinned_chart
from components.cluster.namespaces import declare_namespace
from components.context import PlatformContext
from components.monitoring.gpu_dashboard import KSM_NODE_LABELS, counters_csv, dashboard_json
from components.storage.ceph_storage import RBD_CLASS

NAMESPACE = "monitoring"
PROMETHEUS_STACK_VERSION = "88.5.3"  # prometheus-operator v0.93.x (CRDs in ../shared/crds)
DCGM_EXPORTER_VERSION = "4.8.2"
DCGM_EXPORTER_IMAGE_TAG = "4.5.3-4.8.2-distroless"
COUNTERS = "/etc/dcgm-exporter/akiba-counters.csv"


@dataclass(frozen=True)
class MonitoringArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    grafana_host: str
    ingress_class: str
    burst_hourly_usd: float
    retention: str = "30d"
    storage_size: str = "50Gi"


class Monitoring(pulumi.ComponentResource):
    dashboard_path: str

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:monitoring:Monitoring", name, None, opts)
        ctx = args.ctx
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        # node-exporter and the DCGM exporter read the host.
        ns = declare_namespace(NAMESPACE, "privileged", ctx, on_cluster)
        in_ns = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[ns]))
        admin = random.RandomPassword(
            "grafana-admin", length=24, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        k8s.core.v1.Secret(
            "grafana-admin",
            metadata={"name": "grafana-admin", "namespace": NAMESPACE, "labels": ctx.labels},
            string_data=admin.result.apply(lambda pw: {"admin-user": "admin", "admin-password": pw}),
            opts=in_ns,
        )
        stack = pinned_chart(
            "kube-prometheus-stack",
            chart="kube-prometheus-stack",
            version=PROMETHEUS_STACK_VERSION,
            repo="https://prometheus-community.github.io/helm-charts",
            namespace=NAMESPACE,
            values={
                "grafana": {
                    "admin": {"existingSecret": "grafana-admin"},
                    "ingress": {"enabled": True, "ingressClassName": args.ingress_class, "hosts": [args.grafana_host]},
                    "sidecar": {
                        "dashboards": {"enabled": True, "label": "grafana_dashboard", "searchNamespace": "ALL"}
                    },
                },
                "kube-state-metrics": {
                    # Node labels the dashboard groups by (GPU model, on-prem or burst).
                    "metricLabelsAllowlist": [f"nodes=[{','.join(KSM_NODE_LABELS)}]"],
                },
                "prometheus": {
                    "prometheusSpec": {
                        "retention": args.retention,
                        "serviceMonitorSelectorNilUsesHelmValues": False,  # pick up the DCGM exporter's
                        "storageSpec": {
                            "volumeClaimTemplate": {
                                "spec": {
                                    "storageClassName": RBD_CLASS,
                                    "accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": args.storage_size}},
                                }
                            }
                        },
                    }
                },
                # Every node, burst nodes (GPU taint) included.
                "prometheus-node-exporter": {"tolerations": ALL_NODES},
                # Pulumi's helm.v4.Chart skips Helm hooks (pulumi/pulumi-kubernetes#3284), so the Jobs
                # that would make the operator's TLS Secret never run and the operator would never
                # start: serve its API without TLS (in-cluster only) and drop the admission webhooks.
                "prometheusOperator": {"tls": {"enabled": False}, "admissionWebhooks": {"enabled": False}},
            },
            opts=in_ns,
        )
        counters = k8s.core.v1.ConfigMap(
            "dcgm-counters",
            metadata={"name": "dcgm-counters", "namespace": NAMESPACE, "labels": ctx.labels},
            data={"counters.csv": counters_csv()},
            opts=in_ns,
        )
        pinned_chart(
            "dcgm-exporter",
            chart="dcgm-exporter",
            version=DCGM_EXPORTER_VERSION,
            repo="https://nvidia.github.io/dcgm-exporter/helm-charts",
            namespace=NAMESPACE,
            values={
                "image": {"tag": DCGM_EXPORTER_IMAGE_TAG},
                "arguments": ["-f", COUNTERS],
                "extraConfigMapVolumes": [
                    {
                        "name": "counters",
                        "configMap": {
                            "name": "dcgm-counters",
                            "items": [{"key": "counters.csv", "path": "akiba-counters.csv"}],
                        },
                    }
                ],
                "extraVolumeMounts": [{"name": "counters", "mountPath": COUNTERS, "subPath": "akiba-counters.csv"}],
                "serviceMonitor": {"enabled": True, "interval": "15s"},
                "nodeSelector": {"nvidia.com/gpu.present": "true"},
                "tolerations": ALL_NODES,
                "resources": {"limits": {"cpu": "200m", "memory": "256Mi"}},
            },
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[stack, counters])),
        )
        k8s.core.v1.ConfigMap(
            "dashboard-gpus",
            metadata={
                "name": "dashboard-gpus",
                "namespace": NAMESPACE,
                "labels": {**ctx.labels, "grafana_dashboard": "1"},
            },
            data={"akiba-gpus.json": dashboard_json(args.burst_hourly_usd)},
            opts=in_ns,
        )
        self.dashboard_path = "/d/akiba-gpus"
        self.register_outputs({"dashboard": self.dashboard_path})
