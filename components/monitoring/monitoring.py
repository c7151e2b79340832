"""Prometheus and Grafana (kube-prometheus-stack) with GPU metrics from the DCGM exporter, and
the GPU dashboard provisioned as code (a ConfigMap Grafana's sidecar loads); Ceph's metrics
from Rook's mgr; the platform's alert rules (alert_rules.py) and, when a webhook URL is
configured, an Alertmanager receiver that sends page and warn alerts there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster.addons import ALL_NODES
from components.cluster.helm import pinned_chart
from components.cluster.k8s_object import KubernetesObject
from components.cluster.namespaces import declare_namespace
from components.cluster.priorities import PLATFORM
from components.context import PlatformContext
from components.monitoring.alert_rules import PAGE, WARN, BurstBudget, rule_groups
from components.monitoring.gpu_dashboard import KSM_NODE_LABELS, counters_csv, dashboard_json
from components.storage.ceph_storage import RBD_CLASS
from components.storage.rook_ceph import NAMESPACE as ROOK_NAMESPACE

NAMESPACE = "monitoring"
PROMETHEUS_STACK_VERSION = "88.5.3"  # prometheus-operator v0.93.x (CRDs in ../shared/crds)
DCGM_EXPORTER_VERSION = "4.8.2"
DCGM_EXPORTER_IMAGE_TAG = "4.5.3-4.8.2-distroless"
COUNTERS = "/etc/dcgm-exporter/akiba-counters.csv"
WEBHOOK_SECRET = "alertmanager-webhook"  # noqa: S105 (a Secret's name)
# The prometheus-operator mounts each of alertmanagerSpec.secrets at this path (its
# Alertmanager docs, `secrets`); Alertmanager reads the URL from the file, so the URL is in no
# Helm value, config Secret the chart renders, or plan output.
WEBHOOK_URL_FILE = f"/etc/alertmanager/secrets/{WEBHOOK_SECRET}/url"
# One summary and what to do per alert, for the chat receivers (the webhook gets them as JSON).
CHAT_TEXT = (
    "{{ range .Alerts }}[{{ .Labels.severity }}] {{ .Annotations.summary }}\n{{ .Annotations.description }}\n{{ end }}"
)
# Each kind's file-URL field (prometheus/alertmanager: webhook url_file 0.26+, #3223; slack
# api_url_file; msteamsv2 webhook_url_file 0.28+, #4024, Teams' workflow webhooks).
RECEIVERS: dict[str, tuple[str, dict[str, Any]]] = {
    "webhook": ("webhook_configs", {"url_file": WEBHOOK_URL_FILE}),
    "slack": ("slack_configs", {"api_url_file": WEBHOOK_URL_FILE, "text": CHAT_TEXT}),
    "msteams": ("msteamsv2_configs", {"webhook_url_file": WEBHOOK_URL_FILE, "text": CHAT_TEXT}),
}


def with_priority(alertmanager: dict[str, Any]) -> dict[str, Any]:
    """The `alertmanager` values with the Alertmanager pods at platform priority."""
    spec = alertmanager.get("alertmanagerSpec", {})
    return {**alertmanager, "alertmanagerSpec": {**spec, "priorityClassName": PLATFORM}}


def alertmanager_values(receiver: str | None) -> dict[str, Any]:
    """kube-prometheus-stack's `alertmanager` values: `receiver` is how page and warn alerts are
    posted to the URL; None (no URL configured) keeps the chart's own config (alerts visible in
    Alertmanager and Grafana, sent nowhere)."""
    if receiver is None:
        return {}
    field, config = RECEIVERS[receiver]
    platform = {"receiver": "platform"}
    return {
        "alertmanagerSpec": {"secrets": [WEBHOOK_SECRET]},
        "config": {
            "route": {
                "receiver": "null",
                "group_by": ["alertname", "namespace"],
                "routes": [
                    # A page repeats hourly until fixed or silenced; a warning twice a day.
                    {**platform, "matchers": [f'severity="{PAGE}"'], "repeat_interval": "1h"},
                    # The chart's own critical rules (etcd members down, the API unreachable,
                    # certificates expiring) page as ours do.
                    {**platform, "matchers": ['severity="critical"'], "repeat_interval": "1h"},
                    {**platform, "matchers": [f'severity="{WARN}"'], "repeat_interval": "12h"},
                ],
            },
            "receivers": [
                {"name": "null"},
                {"name": "platform", field: [{**config, "send_resolved": True}]},
            ],
        },
    }


@dataclass(frozen=True)
class MonitoringArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    grafana_host: str
    ingress_class: str
    burst_hourly_usd: float
    burst_budget: BurstBudget | None = None  # the burst spend alerts; None: burst is off
    alert_webhook_url: pulumi.Output[str] | None = None  # akiba:alertWebhookUrl (a secret)
    alert_receiver: str = "webhook"  # alerts.receiver: how the URL is posted to
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
                # Platform priority for every pod of the stack: unset, they would get the default
                # (batch) and an engineer's interactive pod could preempt the monitoring.
                "grafana": {
                    "priorityClassName": PLATFORM,
                    "admin": {"existingSecret": "grafana-admin"},
                    "ingress": {"enabled": True, "ingressClassName": args.ingress_class, "hosts": [args.grafana_host]},
                    "sidecar": {
                        "dashboards": {"enabled": True, "label": "grafana_dashboard", "searchNamespace": "ALL"}
                    },
                },
                "kube-state-metrics": {
                    "priorityClassName": PLATFORM,
                    # Node labels the dashboard groups by (GPU model, on-prem or burst).
                    "metricLabelsAllowlist": [f"nodes=[{','.join(KSM_NODE_LABELS)}]"],
                },
                "alertmanager": with_priority(
                    alertmanager_values(args.alert_receiver if args.alert_webhook_url is not None else None)
                ),
                "prometheus": {
                    "prometheusSpec": {
                        "priorityClassName": PLATFORM,
                        "retention": args.retention,
                        "serviceMonitorSelectorNilUsesHelmValues": False,  # pick up the DCGM exporter's
                        # Without this the chart selects only rules labelled with its release
                        # (templates/prometheus/prometheus.yaml ruleSelector): ours have no such label.
                        "ruleSelectorNilUsesHelmValues": False,
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
                "prometheus-node-exporter": {"tolerations": ALL_NODES, "priorityClassName": PLATFORM},
                # Pulumi's helm.v4.Chart skips Helm hooks (pulumi/pulumi-kubernetes#3284), so the Jobs
                # that would make the operator's TLS Secret never run and the operator would never
                # start: serve its API without TLS (in-cluster only) and drop the admission webhooks.
                "prometheusOperator": {
                    "priorityClassName": PLATFORM,
                    "tls": {"enabled": False},
                    "admissionWebhooks": {"enabled": False},
                },
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
                # The chart's own default at 4.8.2 (deployment/values.yaml), written out: the nodes'
                # NVIDIA container toolkit ignores NVIDIA_VISIBLE_DEVICES for unprivileged containers
                # and counts a container privileged by CAP_SYS_ADMIN in its bounding set
                # (components/cluster/node_security.py), so without it the exporter sees no GPU and every
                # GPU alert goes quiet. Pinned here so that a chart upgrade changing the default
                # cannot blind it; SYS_ADMIN also serves the profiling counters (DCGM_FI_PROF_*).
                # monitoring is a reviewed privileged namespace (policy/akiba_policy/exemptions.py).
                "securityContext": {
                    "runAsNonRoot": False,
                    "runAsUser": 0,
                    "capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]},
                    "allowPrivilegeEscalation": False,
                },
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
        if args.alert_webhook_url is not None:
            k8s.core.v1.Secret(
                WEBHOOK_SECRET,
                metadata={"name": WEBHOOK_SECRET, "namespace": NAMESPACE, "labels": ctx.labels},
                string_data={"url": args.alert_webhook_url},
                opts=in_ns,
            )
        # Rook serves the mgr's prometheus module on Service rook-ceph-mgr, port http-metrics
        # (rook/rook deploy/examples/monitoring/service-monitor.yaml); scraped from here so the
        # storage component needs no monitoring switch.
        after_stack = pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[stack]))
        KubernetesObject(
            "ceph-mgr",
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "ceph-mgr", "namespace": NAMESPACE, "labels": ctx.labels},
                "spec": {
                    "namespaceSelector": {"matchNames": [ROOK_NAMESPACE]},
                    "selector": {"matchLabels": {"app": "rook-ceph-mgr"}},
                    "endpoints": [{"port": "http-metrics", "path": "/metrics", "interval": "30s"}],
                },
            },
            opts=after_stack,
        )
        for group in rule_groups(args.burst_budget):
            KubernetesObject(
                group["name"],
                {
                    "apiVersion": "monitoring.coreos.com/v1",
                    "kind": "PrometheusRule",
                    "metadata": {"name": group["name"], "namespace": NAMESPACE, "labels": ctx.labels},
                    "spec": {"groups": [group]},
                },
                opts=after_stack,
            )
        self.dashboard_path = "/d/akiba-gpus"
        self.register_outputs({"dashboard": self.dashboard_path})
