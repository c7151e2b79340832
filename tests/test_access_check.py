"""The access check, question by question: each fires on RBAC that lets an engineer into another's
namespace, the platform's or the cluster's keys (or the consumer at a secret), and stays quiet on
a correct tenancy; then the real plans of both stacks, where each engineer reaches only their own
namespace. Fixtures go through the same Plan objects `make plan` gives the check."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from components.tenants.names import CONSUMER_USER, ENGINEER_LABEL, engineer_namespace
from tests.cluster_fixtures import plan, resource
from tests.conftest import STACKS, edited, stack_file
from tools.plan import references
from tools.plan.access import CERT_REQUEST, Report, check, engineers_of
from tools.plan.access.report import render, write
from tools.plan.runner import ROOT, Plan

ENGINEERS = ("alice", "bob")
RBAC_API = "rbac.authorization.k8s.io/v1"
FULL = ["get", "list", "watch", "create", "update", "patch", "delete"]


def obj(kind: str, name: str, namespace: str = "", api: str = RBAC_API, **body: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if "labels" in body:
        meta["labels"] = body.pop("labels")
    return {"apiVersion": api, "kind": kind, "metadata": meta, **body}


def rule(resources: list[str], verbs: list[str], group: str = "", **more: Any) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs, **more}


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def account(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def role(namespace: str, name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return obj("Role", name, namespace, rules=list(rules))


def cluster_role(name: str, *rules: dict[str, Any], **body: Any) -> dict[str, Any]:
    return obj("ClusterRole", name, rules=list(rules), **body)


def binding(namespace: str, name: str, kind: str, role_name: str, *subjects: dict[str, str]) -> dict[str, Any]:
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role_name}
    return obj("RoleBinding", name, namespace, roleRef=ref, subjects=list(subjects))


def cluster_binding(name: str, role_name: str, *subjects: dict[str, str]) -> dict[str, Any]:
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name}
    return obj("ClusterRoleBinding", name, roleRef=ref, subjects=list(subjects))


def namespace(name: str, login: str = "") -> dict[str, Any]:
    return obj("Namespace", name, api="v1", labels={ENGINEER_LABEL: login} if login else {})


def tenancy() -> list[dict[str, Any]]:
    """A correct setup: each engineer full in their namespace and reading nodes; the consumer
    reading pods and nodes everywhere; a platform namespace whose own account reads its secrets."""
    objects = [
        namespace("akiba-db"),
        obj("ServiceAccount", "operator", "akiba-db", api="v1"),
        role("akiba-db", "operator", rule(["secrets", "pods"], FULL)),
        binding("akiba-db", "operator", "Role", "operator", account("akiba-db", "operator")),
        cluster_role("akiba:engineer-cluster-read", rule(["nodes"], ["get", "list", "watch"])),
        cluster_role("akiba:consumer", rule(["pods", "nodes", "namespaces"], ["get", "list", "watch"])),
        cluster_binding("akiba:consumer", "akiba:consumer", user(CONSUMER_USER)),
    ]
    for login in ENGINEERS:
        ns = engineer_namespace(login)
        objects += [
            namespace(ns, login),
            obj("ServiceAccount", "runner", ns, api="v1"),
            role(
                ns,
                "engineer",
                rule(["pods", "secrets", "configmaps", "persistentvolumeclaims", "services"], FULL),
                rule(["pods/exec", "pods/attach", "pods/portforward"], ["get", "create"]),
                rule(["jobs", "cronjobs"], FULL, "batch"),
            ),
            binding(ns, "engineer", "Role", "engineer", user(login)),
            cluster_binding(f"akiba:engineer-cluster-read:{login}", "akiba:engineer-cluster-read", user(login)),
        ]
    return objects


def pulumi_type(manifest: dict[str, Any]) -> str:
    """kubernetes:<group>/<version>:<Kind>, the core group as `core`."""
    api = manifest["apiVersion"]
    return f"kubernetes:{'core/' + api if '/' not in api else api}:{manifest['kind']}"


def plan_of(objects: list[dict[str, Any]], cert_orgs: dict[str, str] | None = None) -> Plan:
    resources = [resource(pulumi_type(o), f"r{i}", o) for i, o in enumerate(objects)]
    for cn, org in (cert_orgs or {}).items():
        resources.append(resource(CERT_REQUEST, f"cert-{cn}", {"subject": {"commonName": cn, "organization": org}}))
    return plan(*resources)


def run(objects: list[dict[str, Any]], **kw: Any) -> Report:
    return check(plan_of(objects, **kw), list(ENGINEERS))


def rules_for(report: Report, subject: str) -> set[str]:
    return {p.rule for p in report.problems if p.subject.split(" ")[0] == subject}


def row(report: Report, subject: str) -> tuple[str, str, str, str]:
    r = next(r for r in report.rows if r.subject.split(" ")[0] == subject)
    return (r.own, r.others, r.platform, r.cluster)


def test_correct_tenancy_is_quiet_and_each_engineer_reaches_only_their_namespace() -> None:
    report = run(tenancy())
    assert report.problems == []
    for login in ENGINEERS:
        assert row(report, login) == ("full", "none", "none", "read")
    assert row(report, CONSUMER_USER) == ("-", "read (no secrets)", "read (no secrets)", "read")
    text = "\n".join(render(report))
    assert "access check: 0 problem(s)" in text
    # Acting as their own namespace's accounts is part of their reach, shown to the reviewer.
    assert "alice also acts as: ServiceAccount eng-alice/default, ServiceAccount eng-alice/runner" in text


def test_a_rolebinding_into_another_engineers_namespace_fails_naming_the_path() -> None:
    objects = [*tenancy(), binding("eng-bob", "helper", "Role", "engineer", user("alice"))]
    report = run(objects)
    assert {"other-secrets", "other-pods", "other-claims"} <= rules_for(report, "alice")
    assert rules_for(report, "bob") == set()
    secrets = next(p for p in report.problems if p.rule == "other-secrets")
    assert str(secrets).startswith("[other-secrets] alice can get,list,watch secrets in eng-bob: ")
    assert "RoleBinding eng-bob/helper -> Role eng-bob/engineer -> rule 'create,delete,get,list,patch,update" in str(
        secrets
    )
    assert row(report, "alice")[1] == "full"


def test_a_wildcard_cluster_role_fails_everything_it_reaches() -> None:
    star = cluster_role("oops", {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
    only_used = obj("ConfigMap", "settings", "akiba-registry", api="v1")  # no Namespace object for it
    report = run([*tenancy(), star, cluster_binding("oops", "oops", user("alice")), only_used])
    found = rules_for(report, "alice")
    expected = {"other-secrets", "other-pods", "other-claims", "platform-write", "platform-secrets", "platform-exec"}
    expected |= {"escalate", "rbac-write", "csr-approve", "token", "nodes", "volumes", "admission"}
    expected |= {"api-extension", "namespaces"}
    assert expected <= found
    assert row(report, "alice") == ("full", "full", "full", "full")
    platform = next(p for p in report.problems if p.rule == "platform-write")
    assert "akiba-db" in platform.message and "akiba-registry" in platform.message
    assert "kube-system" in platform.message  # kubeadm's, not in the plan


def test_a_binding_to_every_authenticated_user_reaches_engineers_and_the_consumer() -> None:
    reader = cluster_role("secret-reader", rule(["secrets"], ["get", "list"]))
    report = run([*tenancy(), reader, cluster_binding("everyone", "secret-reader", group("system:authenticated"))])
    assert "other-secrets" in rules_for(report, "alice")
    assert "platform-secrets" in rules_for(report, "bob")
    assert "consumer-secrets" in rules_for(report, CONSUMER_USER)
    assert next(r for r in report.rows if r.subject == "any client certificate").others == "read + secrets"


def test_aggregation_pulls_secrets_into_a_role_by_label() -> None:
    # A ClusterRole that aggregates by label, and another that carries the label and secrets.
    aggregated = cluster_role(
        "akiba:engineer-cluster-read",
        aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"akiba.io/engineer-read": "true"}}]},
    )
    extra = cluster_role("sneaky", rule(["secrets"], ["get"]), labels={"akiba.io/engineer-read": "true"})
    objects = [
        o for o in tenancy() if o["metadata"]["name"] != "akiba:engineer-cluster-read" or o["kind"] != "ClusterRole"
    ]
    report = run([*objects, aggregated, extra])
    problem = next(p for p in report.problems if p.rule == "other-secrets" and p.subject == "alice")
    assert (
        "ClusterRole akiba:engineer-cluster-read <- ClusterRole sneaky -> rule 'get secrets (core)'" in problem.message
    )


def test_a_built_in_aggregated_role_gets_what_the_plan_labels_into_it() -> None:
    """view is built in and empty: the plan's ClusterRole labelled aggregate-to-view fills it."""
    leak = cluster_role(
        "leak", rule(["secrets"], ["list"]), labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"}
    )
    report = run([*tenancy(), leak, cluster_binding("consumer-view", "view", user(CONSUMER_USER))])
    problem = next(p for p in report.problems if p.rule == "consumer-secrets")
    assert "ClusterRole view <- ClusterRole leak" in problem.message
    # edit aggregates view, admin aggregates edit: the built-in edit grants exec and writes.
    report = run([*tenancy(), cluster_binding("consumer-admin", "admin", user(CONSUMER_USER))])
    assert {"consumer-write", "consumer-exec", "consumer-secrets", "rbac-write", "escalate"} <= rules_for(
        report, CONSUMER_USER
    )


def test_a_service_account_an_engineer_can_run_as_carries_its_rights_to_them() -> None:
    # eng-alice/runner may read bob's secrets; alice can start a pod as runner in her namespace.
    reader = role("eng-bob", "read-secrets", rule(["secrets"], ["get"]))
    objects = [*tenancy(), reader, binding("eng-bob", "runner", "Role", "read-secrets", account("eng-alice", "runner"))]
    report = run(objects)
    problem = next(p for p in report.problems if p.rule == "other-secrets")
    assert problem.subject == "alice"
    assert (
        "=> as ServiceAccount eng-alice/runner: RoleBinding eng-bob/runner -> Role eng-bob/read-secrets"
        in problem.message
    )
    assert "RoleBinding eng-alice/engineer -> Role eng-alice/engineer" in problem.message  # how she gets runner
    assert rules_for(report, "bob") == set()


def test_reading_a_namespaces_secrets_gives_its_accounts_tokens() -> None:
    # alice may read secrets in akiba-db: she has the operator's token, and with it its pods.
    objects = [*tenancy(), binding("akiba-db", "peek", "Role", "operator", user("alice"))]
    objects[2] = role("akiba-db", "operator", rule(["secrets"], ["get"]), rule(["pods"], ["create"]))
    report = run(objects)
    assert "platform-secrets" in rules_for(report, "alice")
    assert "ServiceAccount akiba-db/operator" in next(r for r in report.rows if r.subject == "alice").acts_as


def test_a_rolebinding_never_grants_cluster_scoped_objects() -> None:
    """As the API server: a ClusterRole about nodes and volumes, bound inside a namespace, grants
    nothing about them; bound cluster-wide, it does."""
    writer = cluster_role("node-writer", rule(["nodes", "persistentvolumes"], ["create", "patch"]))
    inside = binding("eng-alice", "nodes", "ClusterRole", "node-writer", user("alice"))
    assert run([*tenancy(), writer, inside]).problems == []
    everywhere = cluster_binding("nodes", "node-writer", user("alice"))
    assert {"nodes", "volumes"} <= rules_for(run([*tenancy(), writer, everywhere]), "alice")


def test_a_volume_reserved_for_no_claim_can_be_claimed_by_any_engineer() -> None:
    def volume(claim_ref: dict[str, str] | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"csi": {"driver": "cephfs", "volumeHandle": "all-homes"}, "storageClassName": ""}
        return obj(
            "PersistentVolume", "all-homes", api="v1", spec=spec | ({"claimRef": claim_ref} if claim_ref else {})
        )

    report = run([*tenancy(), volume(None)])
    assert rules_for(report, "alice") == rules_for(report, "bob") == {"unclaimed-volume"}
    assert "can bind PersistentVolume all-homes (reserved for no claim) to a claim in eng-alice" in str(
        report.problems[0]
    )
    assert run([*tenancy(), volume({"namespace": "akiba-db", "name": "backup"})]).problems == []


def test_an_unknown_role_cannot_be_proved_safe() -> None:
    report = run([*tenancy(), cluster_binding("mystery", "made-up-role", user("bob"))])
    problem = next(p for p in report.problems if p.rule == "unknown-role")
    assert problem.subject == "bob"
    assert "ClusterRoleBinding mystery -> ClusterRole made-up-role" in problem.message


def test_a_group_in_an_engineers_certificate_brings_its_bindings() -> None:
    report = run(tenancy(), cert_orgs={"alice": "system:masters"})
    assert "ClusterRoleBinding cluster-admin -> ClusterRole cluster-admin" in " ".join(
        p.message for p in report.problems if p.subject == "alice"
    )


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        (rule(["clusterroles"], ["escalate"], "rbac.authorization.k8s.io"), "escalate"),
        (rule(["roles"], ["bind"], "rbac.authorization.k8s.io"), "escalate"),
        (rule(["users"], ["impersonate"]), "escalate"),
        (rule(["rolebindings"], ["create"], "rbac.authorization.k8s.io"), "rbac-write"),
        (rule(["certificatesigningrequests/approval"], ["update"], "certificates.k8s.io"), "csr-approve"),
        (
            rule(
                ["signers"], ["approve"], "certificates.k8s.io", resourceNames=["kubernetes.io/kube-apiserver-client"]
            ),
            "csr-approve",
        ),
        (rule(["serviceaccounts/token"], ["create"]), "token"),
        (rule(["nodes/proxy"], ["get"]), "nodes"),
        (rule(["nodes"], ["patch"]), "nodes"),
        (rule(["persistentvolumes"], ["create"]), "volumes"),
        (rule(["mutatingwebhookconfigurations"], ["create"], "admissionregistration.k8s.io"), "admission"),
        (rule(["customresourcedefinitions"], ["update"], "apiextensions.k8s.io"), "api-extension"),
        (rule(["namespaces"], ["delete"]), "namespaces"),
        (rule(["configmaps"], ["list"]), "platform-secrets"),
        (rule(["deployments"], ["create"], "apps"), "platform-write"),
        (rule(["pods/exec"], ["create"]), "other-pods"),
        (rule(["pods/ephemeralcontainers"], ["patch"]), "other-pods"),
        (rule(["services/proxy"], ["get"]), "other-pods"),
        (rule(["pods/log"], ["get"]), "other-pods"),
        (rule(["pods/exec"], ["get"]), "platform-exec"),
        (rule(["jobs"], ["create"], "batch"), "other-pods"),
        (rule(["persistentvolumeclaims"], ["get"]), "other-claims"),
        (rule(["secrets"], ["watch"], resourceNames=["database"]), "other-secrets"),
    ],
)
def test_each_question_fires_on_one_rule(grant: dict[str, Any], expected: str) -> None:
    objects = [*tenancy(), cluster_role("one", grant), cluster_binding("one", "one", user("alice"))]
    assert expected in rules_for(run(objects), "alice")


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        (rule(["secrets"], ["get"]), "consumer-secrets"),
        (rule(["configmaps"], ["create"]), "consumer-write"),
        (rule(["pods/exec"], ["get"]), "consumer-exec"),
        (rule(["pods/portforward"], ["create"]), "consumer-exec"),
        (rule(["roles"], ["bind"], "rbac.authorization.k8s.io"), "escalate"),
    ],
)
def test_each_consumer_question_fires(grant: dict[str, Any], expected: str) -> None:
    objects = [*tenancy(), cluster_role("one", grant), cluster_binding("one", "one", user(CONSUMER_USER))]
    assert expected in rules_for(run(objects), CONSUMER_USER)


def test_engineers_must_be_able_to_work_and_the_consumer_to_see() -> None:
    bare = [o for o in tenancy() if o["kind"] not in ("RoleBinding", "ClusterRoleBinding")]
    report = run(bare)
    assert rules_for(report, "alice") == {"cannot-work"}
    assert rules_for(report, CONSUMER_USER) == {"consumer-useless"}
    assert row(report, "alice") == ("none", "none", "none", "none")


def test_engineers_follow_the_stack_file() -> None:
    report = check(plan_of(tenancy()), ["alice", "bob", "carol"])
    assert [str(p) for p in report.problems] == [
        f"[engineer-namespace] carol is in the stack file but no namespace is labelled {ENGINEER_LABEL}"
    ]
    report = check(plan_of([*tenancy(), namespace("team-x", "carol")]), ["alice", "bob", "carol"])
    assert "[engineer-namespace] carol is labelled on namespace team-x, expected eng-carol" in map(str, report.problems)


def test_the_report_is_written_beside_the_others(tmp_path: Path) -> None:
    report = run([*tenancy(), binding("eng-bob", "helper", "Role", "engineer", user("alice"))])
    path = write(report, tmp_path)
    assert path.name == "access.txt" and "[other-secrets] alice" in path.read_text()
    doc = json.loads((tmp_path / "access.json").read_text())
    assert {p["rule"] for p in doc["problems"]} >= {"other-secrets"}
    assert doc["table"][0]["subject"] == "alice"


@pytest.mark.parametrize("stack", STACKS)
def test_each_engineer_reaches_only_their_own_namespace_in_the_real_plan(stack: str, plans: dict[str, Plan]) -> None:
    plan_ = plans[stack]
    assert plan_.resources, f"{stack}: the recorded plan is empty"
    engineers = engineers_of(stack_file(stack).config) or []
    assert engineers, f"{stack}: no engineers in the stack file"
    started = time.perf_counter()
    report = check(plan_, engineers)
    elapsed = time.perf_counter() - started
    assert [str(p) for p in report.problems] == []
    assert report.engineers == sorted(engineers)
    others = "none" if len(engineers) > 1 else "-"  # dev has one (see the two-engineer test below)
    for login in engineers:
        assert row(report, login) == ("full", others, "none", "read"), login
    assert row(report, CONSUMER_USER)[1:3] == ("read (no secrets)", "read (no secrets)")
    assert elapsed < 5, f"the access check took {elapsed:.1f} s"


def test_two_engineers_in_dev_reach_only_their_own_namespaces() -> None:
    """dev declares one engineer; with a second one its plan keeps them apart too."""

    def second(values: dict[str, Any]) -> None:
        first = values["akiba:engineers"][0]
        values["akiba:engineers"].append(first | {"name": "dev-second", "uid": first["uid"] + 1})

    stack = edited("dev", second)
    plan_ = references.plan(stack, ROOT)
    assert plan_.resources, "dev: the recorded plan is empty"
    report = check(plan_, engineers_of(stack.config))
    assert [str(p) for p in report.problems] == []
    assert report.engineers == ["dev-second", "dev-tester"]
    for login in report.engineers:
        assert row(report, login) == ("full", "none", "none", "read"), login


def test_make_plan_fails_on_an_access_problem_and_prints_it(
    plans: dict[str, Plan], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m tools.plan plan --stack dev` with one binding too many: the consumer reading
    every secret. The artifact checkers are skipped (their own tests run them)."""
    from tools.plan import __main__ as plan_main

    real = plans["dev"]
    assert real.resources, "dev: the recorded plan is empty"
    leak = [
        cluster_role("leak", rule(["secrets"], ["list"])),
        cluster_binding("leak", "leak", user(CONSUMER_USER)),
    ]
    leaky = Plan(
        real.stack,
        [*real.resources, *(resource(pulumi_type(o), f"leak{i}", o) for i, o in enumerate(leak))],
        real.outputs,
        real.secret_outputs,
        real.secret_values,
    )
    monkeypatch.setattr(plan_main, "plan_stack", lambda *_: leaky)
    monkeypatch.setattr(plan_main, "check_artifacts", lambda *_: 0)
    assert plan_main.plan_command("dev", tmp_path, check=True) == 1
    out = capsys.readouterr().out
    assert "access check: 0 problem(s)" not in out
    assert "[consumer-secrets] akiba-consumer (consumer) can list secrets in the cluster (all namespaces)" in out
    # Reading every Secret is holding every ServiceAccount's token: their writes are the consumer's.
    assert "[consumer-write] akiba-consumer (consumer) can " in out
    assert "ClusterRoleBinding leak -> ClusterRole leak -> rule 'list secrets (core)'" in out
    assert "consumer-secrets" in (tmp_path / "dev" / "access.txt").read_text()
