"""The article's "mission control" screen as a Grafana dashboard, built as data: per node and
per GPU model, utilisation, memory, power and temperature; free GPUs; burst nodes and their
cost. Metrics come from the DCGM exporter (the counters below, which it is configured with)
and kube-state-metrics."""

from __future__ import annotations

import json
from typing import Any

# The DCGM exporter's counters (its CSV format: field, Prometheus type, help).
DCGM_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
)
# kube-state-metrics series the dashboard reads (node labels need the allowlist below).
KSM_METRICS = ("kube_node_labels", "kube_node_status_allocatable", "kube_pod_container_resource_requests")
KSM_NODE_LABELS = ("akiba.io/node-kind", "akiba.io/gpu-model")


def counters_csv() -> str:
    return "".join(f"{field}, {kind}, {doc}\n" for field, kind, doc in DCGM_COUNTERS)


def _panel(pid: int, title: str, expr: str, unit: str, x: int, y: int, kind: str = "timeseries") -> dict[str, Any]:
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"x": x, "y": y, "w": 12 if kind == "timeseries" else 6, "h": 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{Hostname}} {{modelName}} gpu{{gpu}}"}],
    }


def gpu_dashboard(burst_hourly_usd: float) -> dict[str, Any]:
    """The dashboard JSON model. `burst_hourly_usd`: the expected price of one burst node."""
    gpus_allocatable = 'sum(kube_node_status_allocatable{resource="nvidia_com_gpu"})'
    gpus_requested = 'sum(kube_pod_container_resource_requests{resource="nvidia_com_gpu"}) or vector(0)'
    burst_nodes = 'count(kube_node_labels{label_akiba_io_node_kind="burst"}) or vector(0)'
    panels = [
        _panel(1, "GPU utilisation", "avg by (Hostname, modelName, gpu) (DCGM_FI_DEV_GPU_UTIL)", "percent", 0, 0),
        _panel(
            2, "GPU memory used", "avg by (Hostname, modelName, gpu) (DCGM_FI_DEV_FB_USED) * 1048576", "bytes", 12, 0
        ),
        _panel(3, "Power draw", "avg by (Hostname, modelName, gpu) (DCGM_FI_DEV_POWER_USAGE)", "watt", 0, 8),
        _panel(4, "Temperature", "max by (Hostname, modelName, gpu) (DCGM_FI_DEV_GPU_TEMP)", "celsius", 12, 8),
        _panel(5, "Utilisation by GPU model", "avg by (modelName) (DCGM_FI_DEV_GPU_UTIL)", "percent", 0, 16),
        _panel(6, "Free GPUs", f"{gpus_allocatable} - ({gpus_requested})", "none", 12, 16, "stat"),
        _panel(7, "Burst nodes running", burst_nodes, "none", 18, 16, "stat"),
        _panel(8, "Burst cost per hour", f"({burst_nodes}) * {burst_hourly_usd}", "currencyUSD", 12, 24, "stat"),
        _panel(9, "Fleet power draw", "sum(DCGM_FI_DEV_POWER_USAGE)", "watt", 18, 24, "stat"),
    ]
    return {
        "uid": "akiba-gpus",
        "title": "akiba: GPUs (mission control)",
        "tags": ["akiba", "gpu"],
        "timezone": "browser",
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }


def dashboard_json(burst_hourly_usd: float) -> str:
    return json.dumps(gpu_dashboard(burst_hourly_usd), indent=2, sort_keys=True)
