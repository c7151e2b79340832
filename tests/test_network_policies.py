"""Who can reach what, read from the NetworkPolicies each stack's plan declares (tests/netpol.py
evaluates them), and the add-on that enforces them beside flannel on every node."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from components.cluster import network_policies
from components.storage.personal_databases import NAMESPACE as DB_NAMESPACE
from tests.conftest import STACKS, config_values, stack_file
from tests.netpol import NAME_LABEL as NAME
from tests.netpol import Cluster, Endpoint, host, pod
from tools.plan.__main__ import cluster_settings
from tools.plan.cluster import check
from tools.plan.runner import Plan

POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _cluster(plan: Plan) -> Cluster:
    found = [(r.raw_inputs["metadata"]["namespace"], r.raw_inputs["spec"]) for r in plan.by_type(POLICY)]
    assert found, "the plan declares no NetworkPolicy"
    return Cluster(tuple(found))


class Places:
    """Pods and machines of one stack, at addresses in its own networks."""

    def __init__(self, stack: str) -> None:
        cfg = config_values(stack)
        self.pods = ipaddress.ip_network(cfg["akiba:cluster"]["podCidr"])
        self.lan = ipaddress.ip_network(cfg["akiba:network"]["officeLan"])
        self.nodes = [n["ip"] for n in cfg["akiba:nodes"]]
        self.controllers = [n["ip"] for n in cfg["akiba:nodes"] if n["role"] == "controller"]
        self.vip = cfg["akiba:cluster"].get("apiVip")
        self.apps = cfg["akiba:apps"]
        self.engineers = cfg["akiba:engineers"]
        self._next = 10

    def pod(self, namespace: str, **labels: str) -> Endpoint:
        self._next += 1
        return pod(namespace, str(self.pods.network_address + self._next), **labels)

    def office_machine(self) -> Endpoint:
        taken = set(self.nodes) | {self.vip}
        return host(next(str(a) for a in self.lan.hosts() if str(a) not in taken and int(a) % 256 > 40))


def _with_databases(stack: str) -> list[str]:
    return [e["name"] for e in config_values(stack)["akiba:engineers"] if e.get("personalDatabase")]


@pytest.mark.parametrize("stack", STACKS)
def test_every_engineer_and_the_database_namespace_deny_by_default(plans: dict[str, Plan], stack: str) -> None:
    cluster = _cluster(plans[stack])
    namespaces = [f"eng-{e['name']}" for e in config_values(stack)["akiba:engineers"]] + [DB_NAMESPACE]
    assert [ns for ns in namespaces if not cluster.denies_by_default(ns)] == []


def test_an_engineer_reaches_their_own_database_and_no_one_elses(plans: dict[str, Plan]) -> None:
    cluster, at = _cluster(plans["prod"]), Places("prod")
    a, b = _with_databases("prod")[:2]
    a_pod, b_pod = at.pod(f"eng-{a}", app="notebook"), at.pod(f"eng-{b}", app="notebook")
    a_db = at.pod(DB_NAMESPACE, **{"app.kubernetes.io/name": f"db-{a}", "akiba.io/engineer": a})
    b_db = at.pod(DB_NAMESPACE, **{"app.kubernetes.io/name": f"db-{b}", "akiba.io/engineer": b})
    assert cluster.allows(a_pod, a_db, 5432) and cluster.allows(b_pod, b_db, 5432)
    assert not cluster.allows(a_pod, b_db, 5432) and not cluster.allows(b_pod, a_db, 5432)
    # Setting B's label on a pod of A's (the old policy's hole) admits nothing.
    forged = at.pod(f"eng-{a}", **{"akiba.io/engineer": b, "app.kubernetes.io/name": f"db-{b}"})
    assert not cluster.allows(forged, b_db, 5432)
    # B's database itself admits no pod of A's even where A's egress would let it out.
    b_only = Cluster(tuple((ns, s) for ns, s in cluster.policies if ns == DB_NAMESPACE))
    assert not b_only.allows(a_pod, b_db, 5432) and b_only.allows(b_pod, b_db, 5432)
    # Nor a pod of a platform namespace, nor one of an engineer without a database.
    assert not cluster.allows(at.pod("akiba-workloads", app="x"), a_db, 5432)
    others = [e["name"] for e in at.engineers if not e.get("personalDatabase")]
    assert others and not cluster.allows(at.pod(f"eng-{others[0]}"), a_db, 5432)


@pytest.mark.parametrize("stack", STACKS)
def test_an_engineers_pods_reach_what_they_need_and_nothing_inside(plans: dict[str, Plan], stack: str) -> None:
    cluster, at = _cluster(plans[stack]), Places(stack)
    login = at.engineers[0]["name"]
    mine, also_mine = at.pod(f"eng-{login}", app="job"), at.pod(f"eng-{login}", app="home")
    dns = at.pod("kube-system", **{"k8s-app": "kube-dns"})
    ingress = at.pod("traefik", **{"app.kubernetes.io/name": "traefik"})
    assert cluster.allows(mine, also_mine, 8888) and cluster.allows(also_mine, mine, 6006)
    assert cluster.allows(mine, dns, 53, "UDP") and cluster.allows(mine, dns, 53, "TCP")
    for api in [*at.controllers, *filter(None, [at.vip])]:
        assert cluster.allows(mine, host(api), 6443), api
    https = at.apps["ingressHttpsPort"]
    assert all(cluster.allows(mine, host(n), https) for n in at.nodes)  # the registry, on any node
    assert cluster.allows(mine, ingress, 8443)
    assert cluster.allows(mine, host("151.101.0.223"), 443)  # the internet (PyPI)
    # Inside: the office's machines, the nodes' other ports, other namespaces' pods, the cloud metadata.
    assert not cluster.allows(mine, at.office_machine(), 22)
    assert not any(cluster.allows(mine, host(n), 10250) for n in at.nodes)
    assert not cluster.allows(mine, at.pod("monitoring", app="prometheus"), 9090)
    assert not cluster.allows(mine, at.pod("rook-ceph", app="rook-ceph-mon"), 6789)
    assert not cluster.allows(mine, host("169.254.169.254"), 80)
    # Nor the other stack's LAN (routed to this one: dev's MAAS powers VMs on prod's desktop), a
    # home router or carrier-grade NAT: no private address is "the internet".
    other_lan = "192.168.20.2" if stack == "prod" else "192.168.10.5"
    for private in (other_lan, "10.1.2.3", "172.20.0.1", "100.64.0.1"):
        assert not cluster.allows(mine, host(private), 443), private


def test_engineers_cannot_reach_each_others_pods(plans: dict[str, Plan]) -> None:
    cluster, at = _cluster(plans["prod"]), Places("prod")
    logins = [e["name"] for e in at.engineers]
    for a in logins:
        for b in logins:
            if a != b:
                assert not cluster.allows(at.pod(f"eng-{a}"), at.pod(f"eng-{b}", app="home"), 2222), (a, b)


@pytest.mark.parametrize("stack", STACKS)
def test_ssh_reaches_the_home_pod_from_the_office_only(plans: dict[str, Plan], stack: str) -> None:
    cluster, at = _cluster(plans[stack]), Places(stack)
    home = at.pod(f"eng-{at.engineers[0]['name']}", app="home")
    assert cluster.allows(at.office_machine(), home, 2222)
    assert not cluster.allows(host("203.0.113.99"), home, 2222)
    assert not cluster.allows(at.office_machine(), home, 5432)  # only sshd's port


@pytest.mark.parametrize("stack", STACKS)
def test_the_golden_refresh_keeps_its_way(plans: dict[str, Plan], stack: str) -> None:
    cluster, at = _cluster(plans[stack]), Places(stack)
    refresh = at.pod(DB_NAMESPACE, **{"app.kubernetes.io/name": "golden-refresh"})
    golden = at.pod(DB_NAMESPACE, **{"app.kubernetes.io/name": "golden-postgres"})
    dns = at.pod("kube-system", **{"k8s-app": "kube-dns"})
    assert cluster.allows(refresh, golden, 5432) and cluster.allows(refresh, dns, 53, "UDP")
    assert cluster.allows(refresh, host("192.0.2.50"), 5432)  # the production source
    assert all(cluster.allows(refresh, host(c), 6443) for c in at.controllers)  # snapshots through the API
    login = _with_databases(stack)[0]
    assert not cluster.allows(at.pod(f"eng-{login}"), golden, 5432)


def _enforcer(plan: Plan) -> dict[str, Any]:
    (ds,) = [
        r.raw_inputs
        for r in plan.by_type("kubernetes:apps/v1:DaemonSet")
        if r.raw_inputs["metadata"]["name"] == network_policies.NAME
    ]
    return ds


@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_enforcer_is_pinned_and_runs_on_every_node(plans: dict[str, Plan], stack: str) -> None:
    ds = _enforcer(plans[stack])
    pod_spec = ds["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["image"] == "docker.io/cloudnativelabs/kube-router:v2.11.1"
    args = container["args"]
    assert {"--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false"} <= set(args)
    service_cidr = config_values(stack)["akiba:cluster"]["serviceCidr"]
    assert f"--service-cluster-ip-range={service_cidr}" in args
    assert container["securityContext"]["privileged"] is False
    # Every node: the placement the cluster check computes for the DaemonSet.
    report = check(plans[stack], cluster_settings(stack_file(stack).config))
    (placed,) = [p for p in report.placements if p.workload.name == network_policies.NAME]
    every = sorted(n.name for n in report.nodes)
    assert any(n.template for n in report.nodes), "a burst node (its template) is among them"
    assert sorted(n.name for n in placed.placed) == every
    assert not [p for p in report.problems if network_policies.NAME in p.subject]


def test_the_evaluator_finds_the_old_database_policys_hole() -> None:
    """The policy this replaced admitted any pod, in any namespace, that set the owner's label on
    itself: the evaluator says so (so the tests above can fail), and the new one's peer does not."""
    old = {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "db-b"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"akiba.io/engineer": "b"}}, "namespaceSelector": {}}]}],
    }
    db = pod(DB_NAMESPACE, "10.244.9.9", **{"app.kubernetes.io/name": "db-b"})
    forged = pod("eng-a", "10.244.1.1", **{"akiba.io/engineer": "b"})
    assert Cluster(((DB_NAMESPACE, old),)).allows(forged, db, 5432)
    new = {**old, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {NAME: "eng-b"}}}]}]}
    assert not Cluster(((DB_NAMESPACE, new),)).allows(forged, db, 5432)
    assert Cluster(((DB_NAMESPACE, new),)).allows(pod("eng-b", "10.244.2.2"), db, 5432)
    # No policy at all: everything open (what flannel alone gives).
    assert Cluster(()).allows(forged, db, 5432)
