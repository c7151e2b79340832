"""The platform's alerting rules, as data: one place that the PrometheusRule objects and the
rule files `promtool check rules` / `promtool test rules` read are both made from.

Severity is `page` (someone gets up: data or the cluster at risk) or `warn` (look today). Only
these two reach the `platform` receiver; kube-prometheus-stack's own default rules (severity
warning/critical) stay in Alertmanager's UI and Grafana.

Metric names, by source:
- Ceph: the mgr `prometheus` module Rook enables (ceph/ceph monitoring/ceph-mixin/
  prometheus_alerts.yml: ceph_health_status 0/1/2, ceph_osd_up, ceph_osd_in, ceph_pg_total,
  ceph_pg_active, ceph_pg_clean, ceph_cluster_total_bytes, ceph_cluster_total_used_bytes).
- GPUs: the DCGM exporter with the counters in gpu_dashboard.DCGM_COUNTERS (DCGM 4 names the
  throttle bitmask DCGM_FI_DEV_CLOCKS_EVENT_REASONS; the bits are DCGM's dcgm_fields.h
  DCGM_CLOCKS_EVENT_REASON_*: HW_SLOWDOWN 0x8, SW_THERMAL 0x20, HW_THERMAL 0x40, HW_POWER_BRAKE
  0x80, the mask DCGM's own diagnostics treat as a failure).
- Nodes, Jobs: kube-state-metrics and node-exporter from kube-prometheus-stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

PAGE = "page"
WARN = "warn"
RUNBOOK = 'README.md, "Operations: alerts and where they go"'

GOLDEN_NAMESPACE = "akiba-db"  # components/storage/personal_databases.py NAMESPACE
GOLDEN_REFRESH = "golden-refresh"  # its CronJob and first Job (PIPELINE)
# Backup Jobs by name (a CronJob's Jobs are <cronjob>-<minute>): etcd snapshots
# (components/cluster/etcd_backup.py), the homes' snapshot schedules, any off-site backup.
BACKUP_JOBS = "etcd-snapshot.*|home-snapshots.*|.*backup.*"
# XIDs that mean the GPU or its memory/link failed rather than a program faulting (NVIDIA's
# "XID Errors" table: 48 double-bit ECC, 63/64 row remapping, 74 NVLink, 79 fell off the bus,
# 92 high single-bit ECC rate, 94/95 contained/uncontained ECC, 119/120 GSP errors).
HARDWARE_XIDS = (48, 63, 64, 74, 79, 92, 94, 95, 119, 120)
THROTTLE_BITS = (8, 32, 64, 128)
GPU_LABELS = "Hostname, gpu, UUID, modelName"
# A burst node's kube_node_labels (the label allowlist in monitoring.py; nodes.py labels them).
BURST_NODES = 'kube_node_labels{label_akiba_io_node_kind="burst"}'
# kube-state-metrics' creation time of each bootstrap-token Secret (kubeadm's and the program's).
BOOTSTRAP_TOKENS = 'kube_secret_created{namespace="kube-system", secret=~"bootstrap-token-.*"}'
HOURS_PER_MONTH = 730  # 365 * 24 / 12, AWS's convention for monthly estimates


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: str
    summary: str
    runbook: str  # what to do first
    for_: str = ""  # "" fires on the first evaluation

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {"summary": self.summary, "description": self.runbook, "runbook": RUNBOOK}
        return rule


@dataclass(frozen=True)
class Record:
    name: str
    expr: str

    def rule(self) -> dict[str, Any]:
        return {"record": self.name, "expr": self.expr}


@dataclass(frozen=True)
class BurstBudget:
    node_hourly_usd: float  # the dearest configured instance type's expected spot price
    monthly_usd: float  # burst.monthlyBudgetUsd


def _xid_hardware() -> str:
    xid = f"max by ({GPU_LABELS}) (DCGM_FI_DEV_XID_ERRORS)"
    return " or ".join(f"{xid} == {code}" for code in HARDWARE_XIDS)


def _throttled() -> str:
    reasons = f"max by ({GPU_LABELS}) (DCGM_FI_DEV_CLOCKS_EVENT_REASONS)"
    # PromQL has no bitwise AND: bit b is set when floor(x / b) is odd.
    return " + ".join(f"floor({reasons} / {bit}) % 2" for bit in THROTTLE_BITS) + " > 0"


def _failed_jobs(selector: str) -> str:
    # A Job whose Failed condition is true (a retried pod that then succeeded is not a failure),
    # started in the last 26 h: a CronJob keeps its last failed Job, so the alert resolves a day
    # later instead of firing until someone deletes it.
    started = f"kube_job_status_start_time{{{selector.lstrip(',')}}}" if selector else "kube_job_status_start_time"
    return (
        f'kube_job_failed{{condition="true"{selector}}} == 1 '
        f"and on (namespace, job_name) (time() - {started} < 26 * 3600)"
    )


def ceph_group() -> dict[str, Any]:
    used = "ceph_cluster_total_used_bytes / ceph_cluster_total_bytes"
    return _group(
        "akiba-ceph",
        [
            Alert(
                "CephMetricsMissing",
                "absent(ceph_health_status)",
                WARN,
                "Prometheus has no Ceph metrics: the alerts below are blind",
                "Check the rook-ceph-mgr ServiceMonitor target (Prometheus > Status > Targets) and "
                "`kubectl -n rook-ceph get pods -l app=rook-ceph-mgr`.",
                "15m",
            ),
            Alert(
                "CephHealthError",
                "ceph_health_status == 2",
                PAGE,
                "Ceph is HEALTH_ERR: I/O to volumes, homes and VM disks may be blocked",
                "`ceph health detail` (from a Rook toolbox pod) names the failing check; act on the first one.",
                "5m",
            ),
            Alert(
                "CephHealthWarning",
                "ceph_health_status == 1",
                WARN,
                "Ceph has been HEALTH_WARN for 30 minutes",
                "`ceph health detail` names the check; a node coming back clears most of them.",
                "30m",
            ),
            Alert(
                "CephOSDDown",
                "count(ceph_osd_up == 0) > 0",
                PAGE,
                "{{ $value }} Ceph OSD(s) down: data has fewer copies until they return",
                "`ceph osd tree down` shows which; bring the node back or replace the disk before another fails.",
                "10m",
            ),
            Alert(
                "CephOSDOut",
                "count(ceph_osd_in == 0) > 0",
                WARN,
                "{{ $value }} Ceph OSD(s) out: the cluster is rebalancing onto the rest",
                "`ceph osd tree out`; mark it back in (`ceph osd in osd.N`) once the disk is healthy.",
                "15m",
            ),
            Alert(
                "CephPGsInactive",
                "sum(ceph_pg_total - ceph_pg_active) > 0",
                PAGE,
                "{{ $value }} placement groups are not active: I/O to them is blocked",
                "`ceph pg dump_stuck inactive`; usually OSDs down on several hosts at once.",
                "5m",
            ),
            Alert(
                "CephPGsNotClean",
                "sum(ceph_pg_total - ceph_pg_clean) > 0",
                WARN,
                "{{ $value }} placement groups have not been active+clean for an hour",
                "`ceph pg stat`; recovery that does not progress needs the down OSD back or marked out.",
                "1h",
            ),
            Alert(
                "CephCapacityHigh",
                f"{used} > 0.75",
                WARN,
                "Ceph is {{ $value | humanizePercentage }} full",
                "Free space (old golden snapshots, unused volumes) or add disks before 85% (nearfull).",
                "30m",
            ),
            Alert(
                "CephCapacityCritical",
                f"{used} > 0.85",
                PAGE,
                "Ceph is {{ $value | humanizePercentage }} full: writes stop at 95%",
                "Delete data now (`ceph df` per pool) or add an OSD.",
                "5m",
            ),
        ],
    )


def nodes_group() -> dict[str, Any]:
    not_ready = 'kube_node_status_condition{condition="Ready",status="true"} == 0'
    avail = (
        'node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs|ramfs"}'
        ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs|ramfs"}'
    )
    return _group(
        "akiba-nodes",
        [
            Alert(
                "NodeNotReady",
                f"({not_ready}) unless on (node) {BURST_NODES}",
                PAGE,
                "Node {{ $labels.node }} has not been Ready for 5 minutes",
                "`kubectl describe node {{ $labels.node }}`; if it is off, power it on (MAAS) - its OSDs "
                "and VMs are down with it.",
                "5m",
            ),
            Alert(
                "BurstNodeNotReady",
                f"({not_ready}) and on (node) {BURST_NODES}",
                WARN,
                "Burst node {{ $labels.node }} has not been Ready for 15 minutes",
                "A spot reclaim normally removes the node within minutes; check the WireGuard link and "
                "the instance in the AWS console.",
                "15m",
            ),
            Alert(
                "DiskSpaceLow",
                f"{avail} < 0.10",
                WARN,
                "{{ $labels.instance }} {{ $labels.mountpoint }} has {{ $value | humanizePercentage }} free",
                "`du -xh --max-depth=2` on the mount; container images: `crictl rmi --prune`.",
                "15m",
            ),
            Alert(
                "DiskSpaceCritical",
                f"{avail} < 0.05",
                PAGE,
                "{{ $labels.instance }} {{ $labels.mountpoint }} has {{ $value | humanizePercentage }} free",
                "Free space now: kubelet evicts pods and etcd stops at a full disk.",
                "5m",
            ),
        ],
    )


def gpus_group() -> dict[str, Any]:
    xid = f"max by ({GPU_LABELS}) (DCGM_FI_DEV_XID_ERRORS)"
    temp = f"max by ({GPU_LABELS}) (DCGM_FI_DEV_GPU_TEMP)"
    return _group(
        "akiba-gpus",
        [
            Alert(
                "GpuXidHardwareError",
                _xid_hardware(),
                PAGE,
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported hardware XID {{ $value }}",
                "Cordon the node (`kubectl cordon`), drain it, and reset or replace the GPU; "
                "`nvidia-smi -q` shows ECC and row-remap counts.",
            ),
            Alert(
                "GpuXidError",
                f"({xid} > 0) unless ({_xid_hardware()})",
                WARN,
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID {{ $value }}",
                "Usually a program fault (13, 31, 43): check the pod that ran there; repeated XIDs "
                "on one GPU mean hardware.",
            ),
            Alert(
                "GpuTemperatureHigh",
                f"{temp} > 83",
                WARN,
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is at {{ $value }} C",
                "Check the case fans and the room; the GPU slows itself down near 90 C.",
                "15m",
            ),
            Alert(
                "GpuTemperatureCritical",
                f"{temp} >= 90",
                PAGE,
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is at {{ $value }} C",
                "Stop work on the node (`kubectl cordon` + drain) before the GPU shuts down.",
                "5m",
            ),
            Alert(
                "GpuThrottled",
                _throttled(),
                WARN,
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is slowed by heat or power (clock event)",
                "Thermal or power-brake slowdown: airflow, the PSU, or `nvidia-smi -q -d PERFORMANCE`.",
                "10m",
            ),
        ],
    )


def jobs_group() -> dict[str, Any]:
    golden = f',namespace="{GOLDEN_NAMESPACE}",job_name=~"{GOLDEN_REFRESH}.*"'
    backup = f',job_name=~"{BACKUP_JOBS}"'
    return _group(
        "akiba-jobs",
        [
            Alert(
                "GoldenRefreshFailed",
                _failed_jobs(golden),
                PAGE,
                "The golden database refresh Job {{ $labels.job_name }} failed",
                f"`kubectl -n {GOLDEN_NAMESPACE} logs job/{{{{ $labels.job_name }}}}`; engineers' "
                "clones stay on the previous snapshot until a refresh succeeds.",
            ),
            Alert(
                "GoldenRefreshStale",
                f'time() - kube_cronjob_status_last_successful_time{{namespace="{GOLDEN_NAMESPACE}",'
                f'cronjob="{GOLDEN_REFRESH}"}} > 2 * 86400',
                WARN,
                "The golden database has not refreshed successfully for 2 days",
                f"`kubectl -n {GOLDEN_NAMESPACE} get jobs`; a suspended or never-scheduled CronJob shows here.",
                "1h",
            ),
            Alert(
                "BackupJobFailed",
                _failed_jobs(backup),
                PAGE,
                "Backup Job {{ $labels.namespace }}/{{ $labels.job_name }} failed",
                "`kubectl -n {{ $labels.namespace }} logs job/{{ $labels.job_name }}`; the last good "
                "backup is now older than planned.",
            ),
            Alert(
                "JobFailed",
                f"({_failed_jobs('')}) unless on (namespace, job_name) "
                f'(kube_job_failed{{job_name=~"{BACKUP_JOBS}"}} or kube_job_failed{{{golden.lstrip(",")}}})',
                WARN,
                "Job {{ $labels.namespace }}/{{ $labels.job_name }} failed",
                "`kubectl -n {{ $labels.namespace }} describe job {{ $labels.job_name }}`.",
                "15m",
            ),
        ],
    )


def burst_group(budget: BurstBudget) -> dict[str, Any]:
    # No per-instance bill here: kube_node_labels counts the burst group's running nodes and the
    # price is the dearest configured type's (the same upper bound as the dashboard and the
    # `burstMaxHourlyCostUsd` output). The AWS Budget (components/burst/budget.py) has the billed
    # figure, a day late; this sees a runaway group within hours. The group runs hourly, so each
    # recorded sample is one hour's spend and their sum over 30 days is the dollars spent (a
    # Prometheus younger than that counts only what it saw, never extrapolates).
    spend = "akiba:burst_spend_usd_per_hour"
    month = f"sum_over_time({spend}[30d])"
    cap = budget.monthly_usd
    return _group(
        "akiba-burst",
        interval="1h",
        rules=[
            Record(spend, f"(count({BURST_NODES}) or vector(0)) * {budget.node_hourly_usd}"),
            Alert(
                "BurstRunRateOverBudget",
                f"{spend} * {HOURS_PER_MONTH} > {cap}",
                WARN,
                f"Burst nodes are running at ${{{{ $value | humanize }}}} a month (budget ${cap:g})",
                "Check the pending GPU pods the autoscaler is serving; lower burst.maxSize if this is not wanted.",
                "2h",
            ),
            Alert(
                "BurstSpendNearBudget",
                f"{month} > {0.8 * cap:g}",
                WARN,
                f"Burst spend over the last 30 days is about ${{{{ $value | humanize }}}} (80% of ${cap:g})",
                "The AWS Budget mails at the same point; decide whether to raise the budget or stop bursting.",
            ),
            Alert(
                "BurstSpendOverBudget",
                f"{month} > {cap:g}",
                PAGE,
                f"Burst spend over the last 30 days is about ${{{{ $value | humanize }}}}, over the ${cap:g} budget",
                "Scale the burst group to zero (burst.maxSize: 0, `pulumi up`) or raise burst.monthlyBudgetUsd.",
            ),
            # The burst nodes' join token is rotated daily and valid two days
            # (components/burst/credentials.py): with burst on it is the newest bootstrap token.
            # None newer than 36 h: the rotating `pulumi up --refresh` stopped, and in 12 h no
            # burst node can join.
            Alert(
                "BurstJoinTokenExpiring",
                f"time() - max({BOOTSTRAP_TOKENS}) > {36 * 3600}",
                WARN,
                "No join token newer than 36 h: the burst nodes' token expires within 12 h",
                "Run `pulumi up --refresh` (the refresh rotates the join tokens); schedule it daily.",
            ),
        ],
    )


def _group(name: str, rules: list[Alert | Record], interval: str = "") -> dict[str, Any]:
    return {"name": name, **({"interval": interval} if interval else {}), "rules": [r.rule() for r in rules]}


def rule_groups(burst: BurstBudget | None) -> list[dict[str, Any]]:
    """Every rule group the platform declares; burst spend only when burst is configured."""
    groups = [ceph_group(), nodes_group(), gpus_group(), jobs_group()]
    return [*groups, burst_group(burst)] if burst else groups


def rules_file(groups: list[dict[str, Any]]) -> str:
    """A Prometheus rule file (what `promtool check rules` reads)."""
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000)
