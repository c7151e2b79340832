"""The alert rules the plans declare pass Prometheus' own checker (`promtool check rules`), the
important ones fire as tests/alerts/*.yaml expects (`promtool test rules`), and the webhook
receiver reads its URL from a Kubernetes Secret, never from a value or output."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.monitoring.alert_rules import (
    BACKUP_JOBS,
    GOLDEN_NAMESPACE,
    GOLDEN_REFRESH,
    BurstBudget,
    rule_groups,
    rules_file,
)
from components.monitoring.gpu_dashboard import gpu_dashboard
from components.monitoring.monitoring import WEBHOOK_SECRET, WEBHOOK_URL_FILE, alertmanager_values
from stacks.problems import ConfigError
from tests.conftest import ROOT, STACKS, config_values, edited, parse, require_tool, stack_file
from tests.test_secrets import _everything_written
from tools.plan import references
from tools.plan.runner import Plan
from tools.plan.stackfile import StackFile, placeholder

RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
PROMTOOL = "Debian/Ubuntu: apt-get install prometheus"
ALERT_TESTS = sorted((ROOT / "tests" / "alerts").glob("*.yaml"))
WEBHOOK_KEY = "akiba:alertWebhookUrl"


def require_promtool() -> str:
    return require_tool("promtool", PROMTOOL)


def planned_groups(plan: Plan) -> dict[str, dict[str, Any]]:
    """Every rule group of the plan's PrometheusRule objects, by name."""
    rules = plan.by_type(RULE)
    assert rules, "the plan declares PrometheusRules"
    groups = [g for r in rules for g in r.raw_inputs["spec"]["groups"]]
    by_name = {g["name"]: g for g in groups}
    assert len(by_name) == len(groups), "group names are unique"
    return by_name


def write_groups(plan: Plan, out: Path) -> list[Path]:
    files = []
    for name, group in planned_groups(plan).items():
        path = out / f"{name}.yaml"
        path.write_text(rules_file([group]))
        files.append(path)
    return files


def _chart_values(plan: Plan) -> dict[str, Any]:
    chart = next(r for r in plan.by_type("kubernetes:helm.sh/v4:Chart") if r.name == "kube-prometheus-stack")
    values: dict[str, Any] = chart.raw_inputs["values"]
    return values


@pytest.mark.parametrize("stack", STACKS)
def test_every_planned_rule_group_passes_promtool_check(plans: dict[str, Plan], stack: str, tmp_path: Path) -> None:
    promtool = require_promtool()
    plan = plans[stack]
    groups = planned_groups(plan)
    # Burst is on in both stacks: its spend alerts are there too.
    assert set(groups) == {"akiba-ceph", "akiba-nodes", "akiba-gpus", "akiba-jobs", "akiba-burst"}
    for path in write_groups(plan, tmp_path):
        run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
        assert run.returncode == 0, f"{stack} {path.name}: {run.stdout}{run.stderr}"
    # The Prometheus the chart runs selects them (the chart otherwise wants its release label).
    assert _chart_values(plan)["prometheus"]["prometheusSpec"]["ruleSelectorNilUsesHelmValues"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_planned_rules_are_the_rules_as_data(plans: dict[str, Plan], stack: str) -> None:
    """The objects carry exactly alert_rules' groups, with this stack's burst price and budget."""
    burst = config_values(stack)["akiba:burst"]
    budget = BurstBudget(max(burst["spotPriceUsd"].values()), float(burst["monthlyBudgetUsd"]))
    assert planned_groups(plans[stack]) == {g["name"]: g for g in rule_groups(budget)}
    spend = next(
        r for r in planned_groups(plans[stack])["akiba-burst"]["rules"] if r.get("alert") == "BurstSpendOverBudget"
    )
    assert spend["expr"].endswith(f"> {budget.monthly_usd:g}") and spend["labels"]["severity"] == "page"


def test_every_alert_has_a_severity_a_summary_and_what_to_do() -> None:
    for group in rule_groups(BurstBudget(0.25, 300)):
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in ("page", "warn"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_important_alerts_fire_as_expected(plans: dict[str, Plan], tmp_path: Path) -> None:
    """Ceph health, node not ready, GPU XID, a failed golden refresh, burst spend (prod's rules)."""
    promtool = require_promtool()
    assert ALERT_TESTS, "tests/alerts holds promtool unit tests"
    write_groups(plans["prod"], tmp_path)
    for test in ALERT_TESTS:
        shutil.copy(test, tmp_path / test.name)
        run = subprocess.run(
            [promtool, "test", "rules", test.name], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, f"tests/alerts/{test.name}:\n{run.stdout}{run.stderr}"
    tested = "\n".join(t.read_text() for t in ALERT_TESTS)
    for alert in ("CephHealthError", "NodeNotReady", "GpuXidHardwareError", "GoldenRefreshFailed"):
        assert f"alertname: {alert}\n" in tested
    assert "alertname: BurstSpendOverBudget\n" in tested


@pytest.mark.parametrize("stack", STACKS)
def test_without_a_webhook_alerts_go_nowhere_and_nothing_is_mounted(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert WEBHOOK_KEY not in stack_file(stack).config
    # The chart's own config (no receiver); only the pods' priority is ours.
    assert _chart_values(plan)["alertmanager"] == {"alertmanagerSpec": {"priorityClassName": "akiba-platform"}}
    assert WEBHOOK_SECRET not in {r.name for r in plan.by_type("kubernetes:core/v1:Secret")}


def test_a_webhook_url_routes_page_and_warn_from_a_secret(tmp_path: Path) -> None:
    """A stack that sets the URL (and, here, Slack as the receiver) sends page and warn there."""
    sf = stack_file("dev")
    config = {**sf.config, WEBHOOK_KEY: placeholder(WEBHOOK_KEY), "akiba:alerts": json.dumps({"receiver": "slack"})}
    plan = references.plan(StackFile(sf.stack, sf.path, config, [*sf.secret_keys, WEBHOOK_KEY]), ROOT)
    assert plan.resources, "the recorded plan is empty"
    secret = next(r for r in plan.by_type("kubernetes:core/v1:Secret") if r.name == WEBHOOK_SECRET)
    assert secret.inputs["stringData"] == "[secret]"
    am = _chart_values(plan)["alertmanager"]
    assert am["alertmanagerSpec"]["secrets"] == [WEBHOOK_SECRET]
    receivers = {r["name"]: r for r in am["config"]["receivers"]}
    assert receivers["platform"]["slack_configs"][0]["api_url_file"] == WEBHOOK_URL_FILE
    routed = {
        m for route in am["config"]["route"]["routes"] if route["receiver"] == "platform" for m in route["matchers"]
    }
    assert routed == {'severity="page"', 'severity="warn"', 'severity="critical"'}  # the chart's critical too
    for where, text in _everything_written(plan, tmp_path).items():
        assert placeholder(WEBHOOK_KEY) not in text, f"{where} contains the webhook URL"


@pytest.mark.parametrize(
    ("receiver", "field", "url_field"),
    [
        ("webhook", "webhook_configs", "url_file"),
        ("slack", "slack_configs", "api_url_file"),
        ("msteams", "msteamsv2_configs", "webhook_url_file"),
    ],
)
def test_each_receiver_kind_reads_the_url_from_the_mounted_secret(receiver: str, field: str, url_field: str) -> None:
    config = alertmanager_values(receiver)["config"]
    (platform,) = [r for r in config["receivers"] if r["name"] == "platform"]
    assert list(platform) == ["name", field]
    (target,) = platform[field]
    assert target[url_field] == f"/etc/alertmanager/secrets/{WEBHOOK_SECRET}/url" and target["send_resolved"]
    assert not [k for k in target if k in ("url", "api_url", "webhook_url")], "never the URL itself"


def test_an_unknown_receiver_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse(edited("dev", lambda v: v.__setitem__("akiba:alerts", {"receiver": "email"})))
    assert "akiba:alerts.receiver: expected 'webhook', 'slack' or 'msteams'; found 'email'" in str(err.value)


def test_the_dashboard_shows_ceph_and_the_firing_alerts() -> None:
    panels = {p["title"]: p for p in gpu_dashboard(0.25)["panels"]}
    assert panels["Ceph health"]["targets"][0]["expr"] == "max(ceph_health_status)"
    mapped = panels["Ceph health"]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert [mapped[v]["text"] for v in ("0", "1", "2")] == ["HEALTH_OK", "HEALTH_WARN", "HEALTH_ERR"]
    assert {"Ceph capacity used", "Ceph OSDs up", "Ceph OSDs in"} <= set(panels)
    assert panels["Firing alerts"]["targets"][0]["expr"] == 'sort_desc(ALERTS{alertstate="firing"})'


@pytest.mark.parametrize("stack", STACKS)
def test_every_planned_cronjob_pages_when_it_fails(plans: dict[str, Plan], stack: str) -> None:
    """A new CronJob (a backup, a refresh) needs a decision here: its failures page."""
    cronjobs = plans[stack].by_type("kubernetes:batch/v1:CronJob")
    assert cronjobs, "the plan declares CronJobs"
    for cronjob in cronjobs:
        meta = cronjob.raw_inputs["metadata"]
        job = f"{meta['name']}-29390000"  # the Job name a run gets
        golden = meta["namespace"] == GOLDEN_NAMESPACE and job.startswith(GOLDEN_REFRESH)
        assert golden or re.fullmatch(BACKUP_JOBS, job), f"{meta['namespace']}/{meta['name']}: no paging alert"
