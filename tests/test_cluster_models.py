"""The cluster check's models of what Kubernetes does with a pod and of what each pinned chart
renders: each case fires where the cluster would refuse or misplace a pod and stays quiet where
it would not, through the same Plan objects `make plan` gives the check."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster_fixtures import chart, container, deployment, machine, node_basics, plan, resource, settings
from tests.conftest import STACKS
from tools.plan.cluster import Problem, Report, charts, check
from tools.plan.cluster.charts import burst, ceph
from tools.plan.cluster.charts.base import NOT_FARGATE, required_node_affinity
from tools.plan.mocks import Recorded
from tools.plan.runner import Plan

ON_LINUX = {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}


def run(*resources: Recorded) -> Report:
    return check(plan(*resources), settings())


def unschedulable(*resources: Recorded) -> list[str]:
    """The FailedScheduling messages of the plan's pending pods."""
    return [p.message for p in run(*resources).problems if p.rule == "unschedulable"]


def problems(*resources: Recorded, rule: str) -> list[Problem]:
    return [p for p in run(*resources).problems if p.rule == rule]


def placed(report: Report, name: str) -> list[str]:
    return [n.name for p in report.placements if p.workload.name == name for n in p.placed]


def cpu(amount: str, *, limits_only: bool = False, name: str = "app") -> dict[str, Any]:
    resources = {"limits": {"cpu": amount}} if limits_only else {"requests": {"cpu": amount}}
    return container(name, resources=resources)


# What a pod requests: the sum of its containers, or its largest init container if that is more
# (the init containers run one at a time, before the others start).
@pytest.mark.parametrize(
    ("containers", "init", "fires"),
    [
        (["3", "3"], "5", False),  # 6: the containers' sum (not 6 + 5)
        (["1", "1"], "7.8", True),  # 7.8: the init container, on an 8-CPU node that runs basics too
        (["4", "4"], "1", True),  # 8: the sum, more than what is left
    ],
)
def test_a_pods_request_is_its_containers_sum_or_its_largest_init_container(
    containers: list[str], init: str, fires: bool
) -> None:
    pod = deployment(
        "job",
        containers=[cpu(c, name=f"c{i}") for i, c in enumerate(containers)],
        initContainers=[cpu(init, name="init")],
    )
    found = unschedulable(machine("node1", "10.0.0.11", cpus=8), *node_basics(), pod)
    assert found == (["0/1 nodes are available: 1 Insufficient cpu."] if fires else [])


def test_limits_alone_are_the_requests() -> None:
    node = machine("node1", "10.0.0.11", cpus=8)
    limits_only = deployment("web", replicas=2, containers=[cpu("5", limits_only=True)])
    assert unschedulable(node, *node_basics(), limits_only) == ["0/1 nodes are available: 1 Insufficient cpu."]
    both = container(resources={"requests": {"cpu": "1"}, "limits": {"cpu": "5"}})
    assert unschedulable(node, *node_basics(), deployment("web", replicas=2, containers=[both])) == []


@pytest.mark.parametrize("host_network", [True, False])
def test_on_the_host_network_container_ports_are_host_ports(host_network: bool) -> None:
    port = container(ports=[{"containerPort": 8080}])
    pods = [deployment(name, containers=[port], hostNetwork=host_network) for name in ("a", "b")]
    found = unschedulable(machine("node1", "10.0.0.11"), *node_basics(), *pods)
    conflict = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    assert found == ([conflict] if host_network else [])


def spread(replicas: int, away_from: str = "db") -> Recorded:
    """A Deployment of pods labelled app=db that must not share a node with pods of `away_from`."""
    anti = [{"labelSelector": {"matchLabels": {"app": away_from}}, "topologyKey": "kubernetes.io/hostname"}]
    spec = {
        "containers": [container()],
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": anti}},
    }
    return resource(
        "kubernetes:apps/v1:Deployment",
        "db",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "db", "namespace": "apps"},
            "spec": {
                "replicas": replicas,
                "strategy": {"type": "Recreate"},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": spec},
            },
        },
    )


@pytest.mark.parametrize(
    ("workload", "pending"),
    [
        (spread(3), ["0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."]),
        (spread(2), []),
        (spread(3, away_from="cache"), []),  # away from other pods only: they may share a node
    ],
)
def test_required_anti_affinity_on_its_own_labels_puts_one_pod_on_a_node(
    workload: Recorded, pending: list[str]
) -> None:
    nodes = [machine("node1", "10.0.0.11"), machine("node2", "10.0.0.12")]
    assert unschedulable(*nodes, *node_basics(), workload) == pending


@pytest.mark.parametrize(
    ("terms", "fires"),
    [
        ([{}], True),  # an empty term matches no node
        ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node1"]}]}], True),
        ([{}, ON_LINUX], False),  # terms are ORed: the other one matches
        ([ON_LINUX], False),
    ],
)
def test_an_empty_node_selector_term_matches_no_node(terms: list[dict[str, Any]], fires: bool) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}
    found = unschedulable(machine("node1", "10.0.0.11"), *node_basics(), deployment("web", affinity=affinity))
    assert found == (["0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."] if fires else [])


# aws-node-termination-handler 0.27.6 picks `default .Values.daemonsetX (default .Values.X .Values.linuxX)`:
# linuxX, else X, else daemonsetX.
SPOT = {"node.kubernetes.io/lifecycle": "spot"}
OFFICE = {"akiba.io/site": "office"}


@pytest.mark.parametrize(
    ("values", "selector"),
    [
        ({}, {}),
        ({"daemonsetNodeSelector": SPOT}, SPOT),
        ({"daemonsetNodeSelector": SPOT, "nodeSelector": OFFICE}, OFFICE),
        ({"daemonsetNodeSelector": SPOT, "linuxNodeSelector": OFFICE}, OFFICE),
        ({"nodeSelector": SPOT, "linuxNodeSelector": OFFICE}, OFFICE),
    ],
)
def test_the_termination_handlers_node_selector_precedence(values: dict[str, Any], selector: dict[str, str]) -> None:
    (pod,) = burst.node_termination_handler(values)
    assert pod.node_selector == {"kubernetes.io/os": "linux", **selector}


def test_the_termination_handler_tolerates_everything_unless_told_otherwise() -> None:
    (default,) = burst.node_termination_handler({})
    assert default.tolerations == [{"operator": "Exists"}]
    assert default.affinity == required_node_affinity([NOT_FARGATE])
    mine = [{"key": "dedicated", "operator": "Exists"}]
    linux = [{"key": "linux-only", "operator": "Exists"}]
    assert burst.node_termination_handler({"tolerations": mine})[0].tolerations == mine
    assert burst.node_termination_handler({"tolerations": mine, "linuxTolerations": linux})[0].tolerations == linux
    theirs = {"nodeAffinity": {}, "podAffinity": {"x": 1}}
    assert burst.node_termination_handler({"affinity": theirs})[0].affinity == theirs


def test_the_termination_handler_runs_where_linux_node_selector_says() -> None:
    nodes = [machine("office", "10.0.0.11", labels=OFFICE), machine("spot", "10.0.0.12", labels=SPOT)]
    values = {"daemonsetNodeSelector": SPOT}
    nth = chart("aws-node-termination-handler", "0.27.6", values)
    assert placed(run(*nodes, *node_basics(), nth), "aws-node-termination-handler") == ["spot"]
    nth = chart("aws-node-termination-handler", "0.27.6", {**values, "linuxNodeSelector": OFFICE})
    assert placed(run(*nodes, *node_basics(), nth), "aws-node-termination-handler") == ["office"]


def test_the_device_plugin_stays_off_a_node_not_labelled_as_having_a_gpu() -> None:
    unlabelled = machine("gpu1", "10.0.0.11", labels={"akiba.io/gpu-count": "1"})
    found = problems(unlabelled, *node_basics(), rule="gpus-not-offered")
    assert [f.subject for f in found] == ["gpu1"], found
    assert placed(run(unlabelled, *node_basics()), "nvidia-device-plugin") == []
    labelled = machine("gpu1", "10.0.0.11", gpus=1)  # nvidia.com/gpu.present=true
    assert problems(labelled, *node_basics(), rule="gpus-not-offered") == []
    assert placed(run(labelled, *node_basics()), "nvidia-device-plugin") == ["gpu1"]


# ceph-csi-drivers 1.0.4: a driver's tolerations are always its own (the chart renders `[]`, which
# the operator's mergeDriverSpecs does not fill); priorityClassName and affinity, rendered only when
# set, come from operatorConfig.driverSpecDefaults otherwise.
ANYWHERE = [{"operator": "Exists"}]
ON_OFFICE = required_node_affinity([{"key": "akiba.io/site", "operator": "In", "values": ["office"]}])


def csi_pods(drivers: dict[str, Any], defaults: dict[str, Any]) -> dict[str, charts.Pod]:
    values = {"operatorConfig": {"driverSpecDefaults": defaults}, "drivers": drivers}
    return {p.name: p for p in ceph.ceph_csi_drivers(values)}


def test_csi_driver_tolerations_never_come_from_the_operator_defaults() -> None:
    defaults = {"nodePlugin": {"tolerations": ANYWHERE}, "controllerPlugin": {"tolerations": ANYWHERE}}
    pods = csi_pods({"rbd": {"name": "r"}, "cephfs": {"enabled": False}, "nfs": None, "nvmeof": None}, defaults)
    assert sorted(pods) == ["r-ctrlplugin", "r-nodeplugin"]
    assert pods["r-nodeplugin"].tolerations == [] and pods["r-ctrlplugin"].tolerations == []
    own = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    pods = csi_pods({"rbd": {"name": "r", "nodePlugin": {"tolerations": own}}}, defaults)
    assert pods["r-nodeplugin"].tolerations == own


def test_csi_driver_priority_and_affinity_come_from_the_defaults_where_the_driver_sets_none() -> None:
    defaults = {
        "nodePlugin": {"priorityClassName": "system-node-critical", "affinity": ON_OFFICE},
        "controllerPlugin": {"priorityClassName": "system-cluster-critical"},
    }
    pods = csi_pods(
        {"rbd": {"name": "r"}, "cephfs": {"name": "f", "nodePlugin": {"priorityClassName": "mine"}}}, defaults
    )
    assert pods["r-nodeplugin"].priority == "system-node-critical" and pods["r-nodeplugin"].affinity == ON_OFFICE
    assert pods["r-ctrlplugin"].priority == "system-cluster-critical"
    assert pods["f-nodeplugin"].priority == "mine"
    assert csi_pods({"rbd": {"name": "r"}}, {})["r-nodeplugin"].priority == ""


def test_cluster_autoscaler_priority_comes_from_its_values() -> None:
    assert burst.cluster_autoscaler({})[0].priority == "system-cluster-critical"
    assert burst.cluster_autoscaler({"priorityClassName": "burst"})[0].priority == "burst"
    assert burst.cluster_autoscaler({"priorityClassName": ""})[0].priority == ""


def rendered(values_by_chart: dict[str, dict[str, Any]]) -> tuple[list[Any], list[tuple[str, str]]]:
    resources = [chart(name, charts.MODELS[name][0], values) for name, values in values_by_chart.items()]
    return charts.of_plan(plan(*resources))


@pytest.mark.parametrize("name", sorted(charts.MODELS))
def test_every_chart_model_renders_from_its_defaults(name: str) -> None:
    workloads, unknown = rendered({name: {}})
    assert unknown == [] and workloads, name
    for w in workloads:
        assert w.containers and all(":" in c.image.rsplit("/", 1)[-1] for c in w.containers), w.label


@pytest.mark.parametrize("stack", STACKS)
def test_every_chart_model_renders_from_the_values_the_stacks_pass(plans: dict[str, Plan], stack: str) -> None:
    passed = plans[stack].by_type(charts.CHART)
    assert passed, f"{stack}: no charts in the plan"
    for r in passed:
        name = str(r.raw_inputs["chart"]).rsplit("/", 1)[-1]
        assert charts.MODELS[name][0] == r.raw_inputs["version"], f"{stack}: {name} {r.raw_inputs['version']}"
        workloads, unknown = rendered({name: r.raw_inputs.get("values") or {}})
        assert unknown == [] and workloads, f"{stack}: {name}"
