"""The article's "mission control" screen as a Grafana dashboard, built as data: per node and
per GPU model, utilisation, memory, power and temperature; free GPUs; burst nodes and their
cost; Ceph's health, capacity and OSDs; the alerts firing now. Metrics come from the DCGM
exporter (the counters below, which it is configured with), kube-state-metrics, Ceph's mgr and
Prometheus' own ALERTS series."""

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
    # DCGM 4's name for the throttle-reasons bitmask (was DCGM_FI_DEV_CLOCK_THROTTLE_REASONS).
    ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "gauge", "Current clock event (throttle) reasons, a bitmask."),
)
# kube-state-metrics series the dashboard reads (node labels need the allowlist below).
KSM_METRICS = ("kube_node_labels", "kube_node_status_allocatable", "kube_pod_container_resource_requests")
KSM_NODE_LABELS = ("akiba.io/node-kind", "akiba.io/gpu-model")
# Ceph mgr prometheus-module series the dashboard reads (ceph/ceph monitoring/ceph-mixin).
CEPH_METRICS = (
    "ceph_health_status",
    "ceph_cluster_total_bytes",
    "ceph_cluster_total_used_bytes",
    "ceph_osd_up",
    "ceph_osd_in",
)


def counters_csv() -> str:
    return "".join(f"{field}, {kind}, {doc}\n" for field, kind, doc in DCGM_COUNTERS)


def _panel(pid: int, title: str, expr: str, unit: str, x: int, y: int, kind: str = "timeseries") -> dict[str, Any]:
    width = {"timeseries": 12, "table": 24}.get(kind, 6)
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"x": x, "y": y, "w": width, "h": 8},
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
        _ceph_health(10, 0, 32),
        _panel(
            11,
            "Ceph capacity used",
            "ceph_cluster_total_used_bytes / ceph_cluster_total_bytes",
            "percentunit",
            6,
            32,
            "stat",
        ),
        _panel(12, "Ceph OSDs up", "sum(ceph_osd_up)", "none", 12, 32, "stat"),
        _panel(13, "Ceph OSDs in", "sum(ceph_osd_in)", "none", 18, 32, "stat"),
        _alerts_table(14, 0, 40),
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


def _ceph_health(pid: int, x: int, y: int) -> dict[str, Any]:
    panel = _panel(pid, "Ceph health", "max(ceph_health_status)", "none", x, y, "stat")
    colours = ((0, "HEALTH_OK", "green"), (1, "HEALTH_WARN", "orange"), (2, "HEALTH_ERR", "red"))
    panel["fieldConfig"]["defaults"]["mappings"] = [
        {"type": "value", "options": {str(v): {"text": text, "color": colour} for v, text, colour in colours}}
    ]
    panel["options"] = {"colorMode": "background"}
    return panel


def _alerts_table(pid: int, x: int, y: int) -> dict[str, Any]:
    """The alerts firing now, one row each (Prometheus' ALERTS series, page before warn)."""
    panel = _panel(pid, "Firing alerts", 'sort_desc(ALERTS{alertstate="firing"})', "none", x, y, "table")
    panel["targets"][0].update({"instant": True, "format": "table", "legendFormat": "{{alertname}}"})
    panel["transformations"] = [
        {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}}}
    ]
    return panel


def dashboard_json(burst_hourly_usd: float) -> str:
    return json.dumps(gpu_dashboard(burst_hourly_usd), indent=2, sort_keys=True)
