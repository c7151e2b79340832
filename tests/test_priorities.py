"""Preemption: the PriorityClasses (components/cluster/priorities.py), who gets which, and the
cluster check's `priority` rule (a pod naming a class that will not exist is never admitted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster import priorities as classes
from tests.cluster_fixtures import chart, deployment, plan, resource
from tests.conftest import STACKS, require_tool
from tools.plan import checkers
from tools.plan.cluster import priorities as rule
from tools.plan.runner import Plan

PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
LEVELS = {level.name: level for level in classes.LEVELS}


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def workloads(p: Plan, typ: str, urn_part: str) -> list[dict[str, Any]]:
    found = [r.raw_inputs for r in p.by_type(typ) if urn_part in r.urn]
    assert found, f"no {typ} with {urn_part} in the plan"
    return found


def test_platform_preempts_interactive_preempts_batch_preempts_burst() -> None:
    order = [classes.PLATFORM, classes.INTERACTIVE, classes.BATCH, classes.BURST]
    values = [LEVELS[n].value for n in order]
    assert values == sorted(values, reverse=True) and len(set(values)) == 4
    # Above every user class are the system ones (2e9): user classes must stay at or below 1e9.
    assert all(0 < v <= 1_000_000_000 for v in values)
    assert not any(n.startswith("system-") for n in LEVELS)


def test_a_pod_naming_no_class_is_batch_and_burst_never_evicts_anyone() -> None:
    assert [n for n, level in LEVELS.items() if level.global_default] == [classes.BATCH]
    assert LEVELS[classes.BURST].preemption == "Never"
    assert all(level.preemption == "PreemptLowerPriority" for n, level in LEVELS.items() if n != classes.BURST)


@pytest.mark.checker
def test_the_classes_are_valid_for_the_clusters_kubernetes(tmp_path: Path) -> None:
    require_tool("kubernetes-validate", "pip install kubernetes-validate")
    paths = []
    for level in classes.LEVELS:
        paths.append(tmp_path / f"{level.name}.yaml")
        paths[-1].write_text(
            yaml.safe_dump(classes.priority_class_manifest(level, {"app.kubernetes.io/part-of": "akiba"}))
        )
    assert checkers.kubernetes(paths, "1.36.4") == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_plan_declares_the_classes_and_every_pod_names_one_that_exists(plans: dict[str, Plan], stack: str) -> None:
    p = plans[stack]
    declared = rule.declared(p)
    assert set(declared) == set(LEVELS)
    assert {n: c["value"] for n, c in declared.items()} == {n: level.value for n, level in LEVELS.items()}
    named = dict(rule.pod_classes(p))
    assert named, "no pod in the plan names a PriorityClass"
    assert rule.problems(p) == []


@pytest.mark.parametrize("stack", STACKS)
def test_who_is_preempted_for_whom(plans: dict[str, Plan], stack: str) -> None:
    p = plans[stack]
    homes = [
        m for m in workloads(p, "kubernetes:apps/v1:DaemonSet", "HomeContainer") if m["metadata"]["name"] == "home"
    ]
    assert homes and all(pod_spec(home)["priorityClassName"] == classes.INTERACTIVE for home in homes)
    for app in workloads(p, "kubernetes:apps/v1:Deployment", "akiba:apps:MlApp"):
        assert pod_spec(app)["priorityClassName"] == classes.INTERACTIVE
    for registry in workloads(p, "kubernetes:apps/v1:Deployment", "akiba:registry:Registry"):
        assert pod_spec(registry)["priorityClassName"] == classes.PLATFORM
    for job in workloads(p, "kubernetes:batch/v1:Job", "GpuBenchmark"):
        assert pod_spec(job)["priorityClassName"] == classes.BATCH
        # Preempted for an interactive pod, the benchmark is retried without using up backoffLimit.
        assert pod_spec(job)["restartPolicy"] == "Never"
        assert job["spec"]["podFailurePolicy"] == classes.RETRY_DISRUPTED


@pytest.mark.parametrize("stack", STACKS)
def test_pods_naming_a_class_wait_for_it(plans: dict[str, Plan], stack: str) -> None:
    """Created before its class, a pod is refused by admission: the objects depend on the classes."""
    p = plans[stack]
    urns = {r.raw_inputs["metadata"]["name"]: r.urn for r in p.by_type(PRIORITY_CLASS)}
    checked = 0
    for r in p.resources:
        if r.type in ("kubernetes:apps/v1:DaemonSet", "kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"):
            name = (r.raw_inputs["spec"]["template"].get("spec") or {}).get("priorityClassName")
            if name in urns and "Registry" not in r.urn:  # the registry waits through its parent's depends_on
                assert urns[name] in r.dependencies, f"{r.urn} does not wait for PriorityClass {name}"
                checked += 1
    assert checked


def klass(name: str, value: int = 1000, *, default: bool = False) -> Any:
    manifest = classes.priority_class_manifest(classes.PriorityLevel(name, value, "Never", "", default), {})
    return resource(PRIORITY_CLASS, name, manifest)


def test_a_pod_naming_a_missing_class_is_a_problem() -> None:
    found = rule.problems(plan(deployment("web", priorityClassName="akiba-missing")))
    assert found == [
        (
            "Deployment apps/web",
            "priorityClassName akiba-missing: no such PriorityClass in the plan, so admission refuses its pods "
            "(no PriorityClass with name akiba-missing was found)",
        )
    ]


def test_a_chart_pod_naming_a_missing_class_is_a_problem() -> None:
    traefik = chart("traefik", "41.3.0", {"priorityClassName": "akiba-platform"}, namespace="traefik")
    assert [s for s, _ in rule.problems(plan(traefik))] == ["Deployment traefik/traefik"]
    assert rule.problems(plan(traefik, klass("akiba-platform"))) == []


@pytest.mark.parametrize("name", ["akiba-batch", "system-node-critical", "system-cluster-critical", ""])
def test_a_declared_or_built_in_class_or_none_is_quiet(name: str) -> None:
    pod: dict[str, Any] = {"priorityClassName": name} if name else {}
    assert rule.problems(plan(deployment("web", **pod), klass("akiba-batch"))) == []


def test_the_check_reports_the_rule_by_name() -> None:
    from tests.cluster_fixtures import settings
    from tools.plan.cluster import check

    found = check(plan(deployment("web", priorityClassName="akiba-missing")), settings()).problems
    assert [(f.rule, f.subject) for f in found if f.rule == "priority"] == [("priority", "Deployment apps/web")]


def test_classes_the_api_server_refuses_are_problems() -> None:
    found = rule.problems(plan(klass("system-mine"), klass("a", default=True), klass("b", default=True)))
    assert [s for s, _ in found] == ["PriorityClass system-mine", "PriorityClass a, b"]


CHART = "kubernetes:helm.sh/v4:Chart"


# Each platform chart's pods, by the values key its pinned version reads (checked in the chart
# templates; see components/cluster/addons.py and components/monitoring/monitoring.py).
PLATFORM_CHART_KEYS: dict[str, list[tuple[str, ...]]] = {
    "traefik": [("priorityClassName",)],
    "nvidia-device-plugin": [("nfd", "priorityClassName")],
    "kube-prometheus-stack": [
        ("grafana", "priorityClassName"),
        ("kube-state-metrics", "priorityClassName"),
        ("prometheus-node-exporter", "priorityClassName"),
        ("prometheusOperator", "priorityClassName"),
        ("prometheus", "prometheusSpec", "priorityClassName"),
        ("alertmanager", "alertmanagerSpec", "priorityClassName"),
    ],
}


@pytest.mark.parametrize("stack", STACKS)
def test_no_engineer_pod_can_preempt_the_platforms_charts(plans: dict[str, Plan], stack: str) -> None:
    """Unset, a chart's pods get the default (batch), below interactive: an engineer's home
    container could then evict the ingress or Prometheus."""
    charts = {r.raw_inputs.get("chart"): r.raw_inputs.get("values") or {} for r in plans[stack].by_type(CHART)}
    assert set(PLATFORM_CHART_KEYS) <= set(charts)
    for name, paths in PLATFORM_CHART_KEYS.items():
        for path in paths:
            value: Any = charts[name]
            for key in path:
                value = value.get(key, {})
            assert value == classes.PLATFORM, f"{name}: {'.'.join(path)}"


@pytest.mark.parametrize("stack", STACKS)
def test_storage_pods_have_the_class_their_users_need(plans: dict[str, Plan], stack: str) -> None:
    """Ceph's daemons above everything; the golden database and the homes' plumbing at platform;
    a personal database as interactive as its engineer; the nightly refresh batch, retried
    rather than failed when preempted."""
    plan = plans[stack]

    def pod_class(typ: str, name: str) -> Any:
        (r,) = [r for r in plan.by_type(typ) if r.raw_inputs["metadata"]["name"] == name]
        spec = r.raw_inputs["spec"]
        spec = spec.get("jobTemplate", {}).get("spec", spec)
        return spec["template"]["spec"].get("priorityClassName"), spec

    assert pod_class("kubernetes:apps/v1:Deployment", "golden-postgres")[0] == classes.PLATFORM
    personal = [
        r for r in plan.by_type("kubernetes:apps/v1:Deployment") if r.raw_inputs["metadata"]["name"].startswith("db-")
    ]
    assert personal and all(
        r.raw_inputs["spec"]["template"]["spec"]["priorityClassName"] == classes.INTERACTIVE for r in personal
    )
    refresh, spec = pod_class("kubernetes:batch/v1:CronJob", "golden-refresh")
    assert refresh == classes.BATCH and spec["podFailurePolicy"] == classes.RETRY_DISRUPTED
    (cluster,) = [r for r in plan.resources if r.raw_inputs.get("kind") == "CephCluster"]
    assert cluster.raw_inputs["spec"]["priorityClassNames"]["osd"] == "system-node-critical"
