"""The GPU nodes' own pods: the device plugin that offers their GPUs, and the metrics exporter.

Sources:
- NVIDIA/k8s-device-plugin, deployments/helm/nvidia-device-plugin @ v0.20.0 (templates/daemonset-*.yml,
  values.yaml) and its vendored charts/node-feature-discovery-0.19.0.tgz (on when gfd.enabled);
- NVIDIA/dcgm-exporter, deployment/ @ 4.5.3-4.8.2 (chart 4.8.2; templates/daemonset.yaml, values.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.plan.cluster.charts.base import Pod, container, merge, required_node_affinity

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
NFD_IMAGE = "registry.k8s.io/nfd/node-feature-discovery:v0.19.0"
CONTROL_PLANE_NO_SCHEDULE = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def nvidia_device_plugin(v: Mapping[str, Any]) -> list[Pod]:
    """The plugin and MPS control daemon DaemonSets (the latter only where nvidia.com/mps.capable),
    GPU feature discovery and node-feature-discovery when gfd.enabled. The default affinity
    keeps all of them to nodes labelled as having an NVIDIA GPU."""
    defaults = {
        "tolerations": [
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        ],
        "nodeSelector": {},
        "affinity": required_node_affinity(
            [{"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In", "values": ["true"]}],
            [{"key": "feature.node.kubernetes.io/cpu-model.vendor_id", "operator": "In", "values": ["NVIDIA"]}],
            [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}],
        ),
        "resources": {},
        "gfd": {"enabled": False},
        "nfd": {},
    }
    d = merge(defaults, v)

    def plugin_ds(name: str, selector: Mapping[str, Any] | None = None, **extra: Any) -> Pod:
        return Pod(
            kind="DaemonSet",
            name=name,
            replicas=0,
            containers=[container(name, DEVICE_PLUGIN_IMAGE, d["resources"])],
            tolerations=d["tolerations"],
            node_selector={**d["nodeSelector"], **(selector or {})},
            affinity=d["affinity"],
            priority="system-node-critical",
            extra=extra,
        )

    pods = [
        plugin_ds("nvidia-device-plugin", serves_gpus=True),
        plugin_ds("nvidia-device-plugin-mps-control-daemon", {"nvidia.com/mps.capable": "true"}),
    ]
    if d["gfd"].get("enabled"):
        pods.append(plugin_ds("nvidia-device-plugin-gpu-feature-discovery"))
    # Chart.yaml: `condition: nfd.enabled,gfd.enabled` -- the first path that is set decides.
    if d["nfd"].get("enabled", d["gfd"].get("enabled")):
        pods += _node_feature_discovery(d["nfd"])
    return pods


def _node_feature_discovery(values: Mapping[str, Any]) -> list[Pod]:
    """node-feature-discovery 0.19.0 as the device plugin's chart configures it."""
    nfd = merge(
        {
            "master": {
                "tolerations": [{**CONTROL_PLANE_NO_SCHEDULE, "operator": "Equal", "value": ""}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "4Gi"}},
                "nodeSelector": {},
            },
            "worker": {
                "tolerations": [
                    {"key": "node-role.kubernetes.io/master", "operator": "Equal", "value": "", "effect": "NoSchedule"},
                    {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
                ],
                "resources": {"requests": {"cpu": "5m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                "nodeSelector": {},
            },
            "gc": {
                "tolerations": [],
                "resources": {"requests": {"cpu": "10m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                "nodeSelector": {},
            },
        },
        values,
    )
    pods = []
    for part, kind in (("master", "Deployment"), ("worker", "DaemonSet"), ("gc", "Deployment")):
        p = nfd[part]
        pods.append(
            Pod(
                kind=kind,
                name=f"nvidia-device-plugin-node-feature-discovery-{part}",
                replicas=0 if kind == "DaemonSet" else int(p.get("replicaCount", 1)),
                containers=[container(part, NFD_IMAGE, p["resources"])],
                tolerations=p["tolerations"],
                node_selector=p["nodeSelector"],
            )
        )
    return pods


def dcgm_exporter(v: Mapping[str, Any]) -> list[Pod]:
    """One DaemonSet; no GPU selector by default, so it runs on every node it tolerates."""
    d = merge(
        {
            "tolerations": [{**CONTROL_PLANE_NO_SCHEDULE, "operator": "Exists"}],
            "nodeSelector": {},
            "affinity": {},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}},
            "image": {"repository": "nvcr.io/nvidia/k8s/dcgm-exporter", "tag": "4.5.3-4.8.2-distroless"},
        },
        v,
    )
    return [
        Pod(
            kind="DaemonSet",
            name="dcgm-exporter",
            replicas=0,
            containers=[container("exporter", f"{d['image']['repository']}:{d['image']['tag']}", d["resources"])],
            tolerations=d["tolerations"],
            node_selector=d["nodeSelector"],
            affinity=d["affinity"],
            priority="system-node-critical",
        )
    ]
