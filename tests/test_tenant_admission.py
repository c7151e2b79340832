"""What the API server refuses in engineers' namespaces (components/tenants/admission.py), and
the quota that keeps the system and platform PriorityClasses out of them.

The policies are taken from the stacks' plans, checked against Kubernetes' schema, and their CEL
is run by a real CEL implementation (cel-python) the way the API server runs a
ValidatingAdmissionPolicy: the request must match the policy's rules and the binding's namespace
selector; the variables are evaluated in order, then each validation; one that is not true, or
that cannot be evaluated (failurePolicy Fail), refuses the request."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import celpy
import pytest
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from components.cluster.priorities import BATCH, BURST, INTERACTIVE, PLATFORM
from components.tenants.admission import (
    OFFBOARDED,
    PLATFORM_LABEL,
    PLATFORM_OBJECTS,
    RESERVED,
    SNAPSHOT_CLASS,
    USER_NAMESPACE,
    offboarded_policy,
)
from components.tenants.names import ENGINEER_LABEL, engineer_namespace, engineer_user
from components.tenants.quota import RESERVED_PRIORITIES
from components.tenants.tenants import RESERVED_PRIORITIES_QUOTA
from tests import cluster_fixtures as cf
from tests.conftest import STACKS, config_values, edited, stack_file
from tests.test_gpu_shell import _pod as gpu_shell_pod
from tools.plan import checkers, references, runner
from tools.plan.__main__ import cluster_settings
from tools.plan.cluster import check
from tools.plan.runner import Plan

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
QUOTA = "kubernetes:core/v1:ResourceQuota"
POLICY_NAMES = {USER_NAMESPACE, PLATFORM_OBJECTS, OFFBOARDED, SNAPSHOT_CLASS}
# The admin kubeconfig's identity (components/cluster/identity.py), as `pulumi up` acts.
DEPLOYER = {"username": "akiba-prod-admin", "groups": ["kubeadm:cluster-admins", "system:authenticated"]}
GC = {"username": "system:serviceaccount:kube-system:generic-garbage-collector", "groups": ["system:serviceaccounts"]}
DS_CONTROLLER = {"username": "system:serviceaccount:kube-system:daemon-set-controller", "groups": []}


def _logins(stack: str) -> list[str]:
    return [e["name"] for e in config_values(stack)["akiba:engineers"]]


def _objects(plan: Plan, typ: str) -> dict[str, dict[str, Any]]:
    return {r.raw_inputs["metadata"]["name"]: r.raw_inputs for r in plan.by_type(typ)}


# --- a ValidatingAdmissionPolicy, as the API server evaluates one --------------------------------


def _user(login: str) -> dict[str, Any]:
    return {"username": engineer_user(login), "groups": ["system:authenticated"]}


def _request(
    operation: str,
    resource: str,
    namespace: str,
    name: str,
    user: Mapping[str, Any],
    sub_resource: str = "",
) -> dict[str, Any]:
    return {
        "operation": operation,
        "resource": {"group": "", "version": "v1", "resource": resource},
        "subResource": sub_resource,
        "namespace": namespace,
        "name": name,
        "userInfo": dict(user),
    }


def _matches(policy: Mapping[str, Any], bound: Mapping[str, Any], request: Mapping[str, Any], labels: Any) -> bool:
    """matchConstraints' resourceRules, and the binding's namespaceSelector (Exists terms)."""
    full = request["resource"]["resource"] + (f"/{request['subResource']}" if request["subResource"] else "")
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    if not any(
        request["resource"]["group"] in r["apiGroups"]
        and full in r["resources"]
        and request["operation"] in r["operations"]
        for r in rules
    ):
        return False
    terms = bound["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert all(t["operator"] == "Exists" for t in terms)
    return all(t["key"] in labels for t in terms)


def _evaluate(expression: str, activation: Mapping[str, Any]) -> Any:
    env = celpy.Environment()
    try:
        return env.program(env.compile(expression)).evaluate(dict(activation))
    except CELEvalError as err:
        return err


def _admission(
    policy: Mapping[str, Any],
    bound: Mapping[str, Any],
    request: Mapping[str, Any],
    obj: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    namespace_labels: Mapping[str, str],
) -> str | None:
    """None when admitted; else the policy's message. An evaluation error fails the test."""
    if not _matches(policy, bound, request, namespace_labels):
        return None
    namespace = {"metadata": {"name": request["namespace"], "labels": dict(namespace_labels)}}
    activation: dict[str, Any] = {
        "object": json_to_cel(dict(obj) if obj is not None else None),
        "oldObject": json_to_cel(dict(old) if old is not None else None),
        "request": json_to_cel(dict(request)),
        "namespaceObject": json_to_cel(namespace),
    }
    variables = celtypes.MapType({})
    for v in policy["spec"].get("variables", []):
        value = _evaluate(v["expression"], activation | {"variables": variables})
        # The API server would refuse (failurePolicy Fail); either way an expression that cannot
        # be evaluated on a request of its own kind is a bug.
        if isinstance(value, CELEvalError):
            pytest.fail(f"{policy['metadata']['name']}: variables.{v['name']} cannot be evaluated: {value}")
        variables[celtypes.StringType(v["name"])] = value
    for check_ in policy["spec"]["validations"]:
        result = _evaluate(check_["expression"], activation | {"variables": variables})
        if isinstance(result, CELEvalError):
            pytest.fail(f"{policy['metadata']['name']}: {check_['expression']} cannot be evaluated: {result}")
        if result is not celtypes.BoolType(True) and result != celtypes.BoolType(True):
            return str(check_["message"])
    return None


@pytest.fixture(scope="module")
def prod(plans: dict[str, Plan]) -> Plan:
    assert plans["prod"].resources
    return plans["prod"]


def _judge(
    plan: Plan,
    name: str,
    request: dict[str, Any],
    obj: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None = None,
    login: str = "tarui",
) -> str | None:
    policy, bound = _objects(plan, POLICY)[name], _objects(plan, BINDING)[name]
    return _admission(policy, bound, request, obj, old, {ENGINEER_LABEL: login, "kubernetes.io/metadata.name": "x"})


# --- declared, schema-valid, before the namespaces -----------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_policies_are_bound_to_every_engineer_namespace_and_valid(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources
    policies, bindings = _objects(plan, POLICY), _objects(plan, BINDING)
    assert set(policies) == set(bindings) == POLICY_NAMES
    utils = checkers._kubernetes_validate()
    version = config_values(stack)["akiba:cluster"]["kubernetesVersion"]
    for name in POLICY_NAMES:
        assert checkers._validate_resource(utils, policies[name], name, version) is None
        assert checkers._validate_resource(utils, bindings[name], name, version) is None
        assert policies[name]["spec"]["failurePolicy"] == "Fail"
        spec = bindings[name]["spec"]
        assert spec["policyName"] == name and "Deny" in spec["validationActions"]
        assert spec["matchResources"]["namespaceSelector"] == {
            "matchExpressions": [{"key": ENGINEER_LABEL, "operator": "Exists"}]
        }
    # Every engineer namespace carries the label the bindings select, and waits for the policies.
    for r in plan.by_type("kubernetes:core/v1:Namespace"):
        if r.raw_inputs["metadata"]["name"] in {engineer_namespace(x) for x in _logins(stack)}:
            assert ENGINEER_LABEL in r.raw_inputs["metadata"]["labels"]
            waits = {d.rsplit("::", 1)[1] for d in r.dependencies if "TenantAdmission" in d}
            assert waits >= POLICY_NAMES


# --- S1: the rootless Docker profiles only in a user namespace -----------------------------------


def _home_pod(plan: Plan, login: str = "tarui") -> dict[str, Any]:
    (ds,) = [
        r.raw_inputs
        for r in plan.by_type("kubernetes:apps/v1:DaemonSet")
        if r.raw_inputs["metadata"]["namespace"] == engineer_namespace(login)
    ]
    template = copy.deepcopy(ds["spec"]["template"])
    template["metadata"]["namespace"] = engineer_namespace(login)
    return {"apiVersion": "v1", "kind": "Pod", **template}


def _pod_create(pod: Mapping[str, Any], user: Mapping[str, Any] = DS_CONTROLLER) -> dict[str, Any]:
    return _request("CREATE", "pods", "eng-tarui", str(pod["metadata"].get("name", "p")), user)


def _root_pod(**security: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "docker.io/library/busybox:1.37.0", "securityContext": {"runAsUser": 0}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}}


def test_the_platforms_home_pod_passes(prod: Plan) -> None:
    pod = _home_pod(prod)
    # It is what the rule is about: the Docker daemon runs under the Localhost profiles.
    assert any(
        c["securityContext"].get("seccompProfile", {}).get("type") == "Localhost" for c in pod["spec"]["containers"]
    )
    assert _judge(prod, USER_NAMESPACE, _pod_create(pod), pod) is None


def test_the_home_pod_without_its_user_namespace_is_refused(prod: Plan) -> None:
    pod = _home_pod(prod)
    del pod["spec"]["hostUsers"]
    found = _judge(prod, USER_NAMESPACE, _pod_create(pod), pod)
    assert found is not None and "hostUsers: false" in found
    pod["spec"]["hostUsers"] = True
    assert _judge(prod, USER_NAMESPACE, _pod_create(pod), pod) is not None


def _localhost(kind: str) -> dict[str, str]:
    return {"type": "Localhost", "localhostProfile": "profiles/akiba-rootless-docker.json"}


def _pod_seccomp(pod: dict[str, Any]) -> None:
    pod["spec"]["securityContext"] = {"seccompProfile": _localhost("seccomp")}


def _pod_apparmor(pod: dict[str, Any]) -> None:
    pod["spec"]["securityContext"] = {
        "appArmorProfile": {"type": "Localhost", "localhostProfile": "akiba-rootless-docker"}
    }


def _container_seccomp(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["securityContext"]["seccompProfile"] = _localhost("seccomp")


def _container_apparmor(pod: dict[str, Any]) -> None:
    profile = {"type": "Localhost", "localhostProfile": "akiba-rootless-docker"}
    pod["spec"]["containers"][0]["securityContext"]["appArmorProfile"] = profile


def _legacy_apparmor(pod: dict[str, Any]) -> None:
    key = "container.apparmor.security.beta.kubernetes.io/c"
    pod["metadata"]["annotations"] = {key: "localhost/akiba-rootless-docker"}


def _legacy_seccomp(pod: dict[str, Any]) -> None:
    key = "seccomp.security.alpha.kubernetes.io/pod"
    pod["metadata"]["annotations"] = {key: "localhost/profiles/akiba-rootless-docker.json"}


def _escalation(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


def _unmasked_init(pod: dict[str, Any]) -> None:
    init = {"name": "i", "image": "docker.io/library/busybox:1.37.0", "securityContext": {"procMount": "Unmasked"}}
    pod["spec"]["initContainers"] = [init]


WIDENINGS = {
    "pod seccomp": _pod_seccomp,
    "pod apparmor": _pod_apparmor,
    "container seccomp": _container_seccomp,
    "container apparmor": _container_apparmor,
    "legacy apparmor annotation": _legacy_apparmor,
    "legacy seccomp annotation": _legacy_seccomp,
    "allowPrivilegeEscalation": _escalation,
    "unmasked proc in an init container": _unmasked_init,
}


@pytest.mark.parametrize("widening", sorted(WIDENINGS))
def test_a_root_pod_that_widens_the_kernel_surface_needs_its_own_user_namespace(prod: Plan, widening: str) -> None:
    pod = _root_pod()
    WIDENINGS[widening](pod)
    found = _judge(prod, USER_NAMESPACE, _pod_create(pod, _user("tarui")), pod)
    assert found is not None and "hostUsers: false" in found, widening
    pod["spec"]["hostUsers"] = False
    assert _judge(prod, USER_NAMESPACE, _pod_create(pod, _user("tarui")), pod) is None, widening


def test_an_ephemeral_container_cannot_bring_escalation_into_a_host_users_pod(prod: Plan) -> None:
    old = _root_pod()
    pod = copy.deepcopy(old)
    debug = {"name": "debug", "image": "docker.io/library/busybox:1.37.0"}
    pod["spec"]["ephemeralContainers"] = [debug | {"securityContext": {"allowPrivilegeEscalation": True}}]
    request = _request("UPDATE", "pods", "eng-tarui", "p", _user("tarui"), sub_resource="ephemeralcontainers")
    assert _judge(prod, USER_NAMESPACE, request, pod, old) is not None
    pod["spec"]["ephemeralContainers"] = [debug]
    assert _judge(prod, USER_NAMESPACE, request, pod, old) is None


def test_ordinary_pods_pass(prod: Plan) -> None:
    """A plain Job pod, a root one under the runtime's default profile (the home-owner Job), and
    akiba-gpu-shell's pod: nothing for the rule to say."""
    (owner,) = [
        r.raw_inputs
        for r in prod.by_type("kubernetes:batch/v1:Job")
        if r.raw_inputs["metadata"]["namespace"] == "eng-tarui"
    ]
    owner_pod = {"apiVersion": "v1", "kind": "Pod", **copy.deepcopy(owner["spec"]["template"])}
    assert owner_pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 0
    shell = gpu_shell_pod(login="tarui")
    for pod in (_root_pod(), owner_pod, shell):
        assert _judge(prod, USER_NAMESPACE, _pod_create(pod, _user("tarui")), pod) is None


# --- S6: the platform's objects in an engineer's namespace ---------------------------------------


def _configmap(name: str, labels: Mapping[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "eng-tarui"}
    if labels is not None:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def _platform_configmap(prod: Plan, name: str = "home-accounts") -> dict[str, Any]:
    (found,) = [
        r.raw_inputs
        for r in prod.by_type("kubernetes:core/v1:ConfigMap")
        if r.raw_inputs["metadata"] == r.raw_inputs["metadata"] | {"name": name, "namespace": "eng-tarui"}
    ]
    return copy.deepcopy(found)


def test_an_engineer_cannot_rewrite_their_sshd_config_or_keys(prod: Plan) -> None:
    old = _platform_configmap(prod)
    new = copy.deepcopy(old)
    new["data"]["authorized_keys"] = "ssh-ed25519 AAAA... someone-else"
    update = _request("UPDATE", "configmaps", "eng-tarui", "home-accounts", _user("tarui"))
    found = _judge(prod, PLATFORM_OBJECTS, update, new, old)
    assert found is not None and "platform" in found
    delete = _request("DELETE", "configmaps", "eng-tarui", "home-accounts", _user("tarui"))
    assert _judge(prod, PLATFORM_OBJECTS, delete, None, old) is not None


def test_the_deployer_and_the_controllers_still_may(prod: Plan) -> None:
    old = _platform_configmap(prod)
    new = copy.deepcopy(old)
    new["data"]["authorized_keys"] = "ssh-ed25519 AAAA... tarui-new-laptop"
    for user in (DEPLOYER, GC):
        update = _request("UPDATE", "configmaps", "eng-tarui", "home-accounts", user)
        assert _judge(prod, PLATFORM_OBJECTS, update, new, old) is None
        delete = _request("DELETE", "configmaps", "eng-tarui", "home-accounts", user)
        assert _judge(prod, PLATFORM_OBJECTS, delete, None, old) is None


def test_an_engineer_keeps_their_own_objects(prod: Plan) -> None:
    mine = _configmap("train-settings", {"app": "train"}, lr="0.001")
    changed = _configmap("train-settings", {"app": "train"}, lr="0.01")
    for op, obj, old in (("CREATE", mine, None), ("UPDATE", changed, mine), ("DELETE", None, changed)):
        request = _request(op, "configmaps", "eng-tarui", "train-settings", _user("tarui"))
        assert _judge(prod, PLATFORM_OBJECTS, request, obj, old) is None, op


def test_an_engineer_can_neither_take_the_label_off_nor_put_it_on(prod: Plan) -> None:
    """The label guards a platform object whatever its name (one RESERVED does not list yet)."""
    old = _platform_configmap(prod, "docker-accounts")
    old["metadata"]["name"] = "platform-extra"
    stripped = copy.deepcopy(old)
    del stripped["metadata"]["labels"][PLATFORM_LABEL]
    update = _request("UPDATE", "configmaps", "eng-tarui", "platform-extra", _user("tarui"))
    assert _judge(prod, PLATFORM_OBJECTS, update, stripped, old) is not None
    delete = _request("DELETE", "configmaps", "eng-tarui", "platform-extra", _user("tarui"))
    assert _judge(prod, PLATFORM_OBJECTS, delete, None, old) is not None
    fake = _configmap("looks-official", {PLATFORM_LABEL: "akiba"})
    create = _request("CREATE", "configmaps", "eng-tarui", "looks-official", _user("tarui"))
    assert _judge(prod, PLATFORM_OBJECTS, create, fake, None) is not None


def test_an_engineer_cannot_take_a_platform_name_first(prod: Plan) -> None:
    """Before `pulumi up` writes it (or after someone deleted it), the name is still the platform's."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kubeconfig", "namespace": "eng-tarui"}}
    create = _request("CREATE", "secrets", "eng-tarui", "kubeconfig", _user("tarui"))
    assert _judge(prod, PLATFORM_OBJECTS, create, secret, None) is not None
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "home", "namespace": "eng-tarui"},
    }
    delete = _request("DELETE", "persistentvolumeclaims", "eng-tarui", "home", _user("tarui"))
    assert _judge(prod, PLATFORM_OBJECTS, delete, None, claim) is not None


@pytest.mark.parametrize("stack", STACKS)
def test_every_platform_object_an_engineer_could_write_is_guarded(plans: dict[str, Plan], stack: str) -> None:
    """Each ConfigMap, Secret, Service and claim the plan puts in an engineer's namespace: by
    name (RESERVED, so even before it exists) and by label; and RESERVED names nothing stale."""
    plan = plans[stack]
    assert plan.resources
    kinds = {"ConfigMap": "configmaps", "Secret": "secrets", "Service": "services"}
    kinds |= {"PersistentVolumeClaim": "persistentvolumeclaims"}
    seen: dict[str, set[str]] = {resource: set() for resource in RESERVED}
    for login in _logins(stack):
        ns = engineer_namespace(login)
        for r in plan.resources:
            raw = r.raw_inputs
            if raw.get("kind") not in kinds or (raw.get("metadata") or {}).get("namespace") != ns:
                continue
            resource, name = kinds[raw["kind"]], raw["metadata"]["name"]
            seen[resource].add(name)
            assert name in RESERVED[resource], f"{raw['kind']} {ns}/{name} is not in admission.RESERVED"
            request = _request("UPDATE", resource, ns, name, _user(login))
            policy, bound = _objects(plan, POLICY)[PLATFORM_OBJECTS], _objects(plan, BINDING)[PLATFORM_OBJECTS]
            labels = {ENGINEER_LABEL: login}
            assert _admission(policy, bound, request, raw, raw, labels) is not None, f"{ns}/{name}"
            unlabelled = copy.deepcopy(raw)
            unlabelled["metadata"].pop("labels", None)
            assert _admission(policy, bound, request, unlabelled, unlabelled, labels) is not None, f"{ns}/{name}"
    everything = {n for names in RESERVED.values() for n in names}
    if stack == "prod":  # prod's engineers have every kind of object (a database, Docker, the registry)
        assert {n for names in seen.values() for n in names} == everything


# --- S4: an engineer who leaves the stack --------------------------------------------------------


def test_no_new_pod_in_the_namespace_of_an_engineer_who_left(prod: Plan) -> None:
    pod = _root_pod()
    for login in _logins("prod"):
        assert _judge(prod, OFFBOARDED, _pod_create(pod), pod, login=login) is None
    found = _judge(prod, OFFBOARDED, _pod_create(pod), pod, login="gone")
    assert found is not None and "no longer in the stack" in found
    # A cluster admin may still start one by hand (to copy the home out).
    assert _judge(prod, OFFBOARDED, _pod_create(pod, DEPLOYER), pod, login="gone") is None


def test_removing_an_engineer_fences_their_namespace_in_the_same_up() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:engineers"] = [e for e in cfg["akiba:engineers"] if e["name"] != "yuta"]

    sf = edited("prod", edit)
    plan = runner.run(sf, stack_references=references.resolve(sf, cf.ROOT))
    assert plan.resources
    pod = _root_pod()
    assert _judge(plan, OFFBOARDED, _pod_create(pod), pod, login="yuta") is not None
    assert _judge(plan, OFFBOARDED, _pod_create(pod), pod, login="tarui") is None
    assert "eng-yuta" not in {r.raw_inputs["metadata"]["name"] for r in plan.by_type("kubernetes:core/v1:Namespace")}


@pytest.mark.parametrize("stack", STACKS)
def test_the_deny_and_the_quotas_stay_with_a_retained_namespace(plans: dict[str, Plan], stack: str) -> None:
    """prod retains an engineer's namespace when they leave: its default deny and both quotas
    stay with it (their allows go); dev deletes the namespace, and everything in it."""
    plan = plans[stack]
    assert plan.resources
    prod = stack == "prod"
    for login in _logins(stack):
        ns = engineer_namespace(login)
        inside = [r for r in plan.resources if (r.raw_inputs.get("metadata") or {}).get("namespace") == ns]
        policies = {r.raw_inputs["metadata"]["name"]: r for r in inside if r.raw_inputs.get("kind") == "NetworkPolicy"}
        assert policies["default-deny"].retain_on_delete is prod
        assert not [n for n, r in policies.items() if n != "default-deny" and r.retain_on_delete]
        quotas = {r.raw_inputs["metadata"]["name"]: r for r in inside if r.type == QUOTA}
        assert set(quotas) == {"engineer", RESERVED_PRIORITIES_QUOTA}
        assert all(q.retain_on_delete is prod for q in quotas.values())


# --- S2: no system or platform priority for an engineer's pods -----------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_each_engineer_namespace_admits_no_pod_of_a_reserved_class(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources
    for login in _logins(stack):
        (quota,) = [
            r.raw_inputs
            for r in plan.by_type(QUOTA)
            if r.raw_inputs["metadata"] == r.raw_inputs["metadata"] | {"namespace": engineer_namespace(login)}
            and r.raw_inputs["metadata"]["name"] == RESERVED_PRIORITIES_QUOTA
        ]
        assert quota["spec"]["hard"] == {"pods": "0"}
        (scope,) = quota["spec"]["scopeSelector"]["matchExpressions"]
        assert scope["scopeName"] == "PriorityClass" and scope["operator"] == "In"
        assert set(scope["values"]) == {"system-node-critical", "system-cluster-critical", PLATFORM}
    assert not {INTERACTIVE, BATCH, BURST} & set(RESERVED_PRIORITIES)


def _pod_resource(name: str, priority: str | None, namespace: str = "eng-tarui") -> Any:
    spec: dict[str, Any] = {"containers": [cf.container(resources={"requests": {"cpu": "100m", "memory": "64Mi"}})]}
    if priority is not None:
        spec["priorityClassName"] = priority
    inputs = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    return cf.resource("kubernetes:core/v1:Pod", name, inputs)


def _quota_problems(plan: Plan, *extra: Any) -> list[str]:
    grown = dataclasses.replace(plan, resources=[*plan.resources, *extra])
    report = check(grown, cluster_settings(stack_file("prod").config))
    return [str(p) for p in report.problems if p.rule == "quota"]


def test_the_cluster_check_counts_a_pod_of_a_reserved_class_against_the_zero(prod: Plan) -> None:
    assert _quota_problems(prod) == []  # the home pods (interactive) and home-owner Jobs
    for priority in ("system-node-critical", PLATFORM):
        (found,) = _quota_problems(prod, _pod_resource("greedy", priority))
        assert f"eng-tarui/{RESERVED_PRIORITIES_QUOTA}" in found and "pods" in found
        assert "Pod eng-tarui/greedy: 1 pod(s)" in found and "allows 0" in found


def test_the_cluster_check_lets_the_engineers_own_classes_through(prod: Plan) -> None:
    shell = gpu_shell_pod(login="tarui")
    shell.pop("status", None)
    gpu_shell = cf.resource("kubernetes:core/v1:Pod", "gpu-shell", shell)
    ordinary = [_pod_resource(f"job-{p or 'default'}", p) for p in (BATCH, BURST, INTERACTIVE, None)]
    assert _quota_problems(prod, gpu_shell, *ordinary) == []


def test_the_quota_rule_counts_only_what_a_scope_selects() -> None:
    scoped = cf.resource(
        QUOTA,
        "q",
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "eng-a"},
            "spec": {
                "hard": {"pods": "1"},
                "scopeSelector": {
                    "matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]
                },
            },
        },
    )
    nodes = [cf.machine(f"n{i}", f"10.0.0.{i}", cpus=8) for i in range(1, 3)]

    def problems(*objects: Any) -> list[str]:
        report = check(cf.plan(*nodes, *cf.node_basics(), scoped, *objects), cf.settings())
        return [p.message for p in report.problems if p.rule == "quota"]

    low = [cf.deployment(f"low{i}", namespace="eng-a") for i in range(3)]
    assert problems(*low) == []  # three pods, none of the class
    high = cf.deployment("high", namespace="eng-a", replicas=2, priorityClassName="high")
    (message,) = problems(*low, high)
    assert "need 2" in message and "allows 1" in message and "eng-a/low" not in message
    unknown = copy.deepcopy(scoped)
    unknown.raw_inputs["spec"] = {"hard": {"pods": "5"}, "scopes": ["BestEffort"]}
    check_report = check(cf.plan(*nodes, *cf.node_basics(), unknown), cf.settings())
    assert any("scope BestEffort" in p.message for p in check_report.problems if p.rule == "quota")


def test_offboarded_policy_lists_exactly_the_stacks_engineers() -> None:
    policy = offboarded_policy({PLATFORM_LABEL: "akiba"}, ("a", "b"))
    (validation,) = policy["spec"]["validations"]
    assert "['a', 'b']" in validation["expression"]
    assert engineer_user("a") == "a"  # the platform-objects rule compares the user with the label


def test_an_engineers_snapshot_names_a_class_that_deletes_it(prod: Plan) -> None:
    """Under the Retain class a deleted snapshot would leave its data in Ceph, outside the quota."""

    def snapshot(cls: str | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": "data"}}
        if cls is not None:
            spec["volumeSnapshotClassName"] = cls
        return {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "spec": spec}

    def create(obj: dict[str, Any]) -> dict[str, Any]:
        request = _request("CREATE", "volumesnapshots", "eng-tarui", "s1", _user("tarui"))
        request["resource"]["group"] = "snapshot.storage.k8s.io"
        return request

    ok = snapshot("akiba-rbd-scratch")
    assert _judge(prod, SNAPSHOT_CLASS, create(ok), ok) is None
    for bad in (snapshot("akiba-rbd"), snapshot(None)):
        found = _judge(prod, SNAPSHOT_CLASS, create(bad), bad)
        assert found is not None and "akiba-rbd-scratch" in found


@pytest.mark.parametrize(
    ("where", "profile"),
    [
        ("seccomp", "profiles/other.json"),
        ("apparmor", "runc"),  # Ubuntu loads AppArmor profiles that are unconfined by design
        ("annotation", "localhost/unconfined"),
    ],
)
def test_only_rootless_dockers_localhost_profiles_even_in_a_user_namespace(
    prod: Plan, where: str, profile: str
) -> None:
    pod = _home_pod(prod)
    assert _judge(prod, USER_NAMESPACE, _pod_create(pod), pod) is None
    docker = next(c for c in pod["spec"]["containers"] if "seccompProfile" in c.get("securityContext", {}))
    if where == "seccomp":
        docker["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": profile}
    elif where == "apparmor":
        docker["securityContext"]["appArmorProfile"] = {"type": "Localhost", "localhostProfile": profile}
    else:
        annotations = pod["metadata"].setdefault("annotations", {})
        annotations[f"container.apparmor.security.beta.kubernetes.io/{docker['name']}"] = profile
    found = _judge(prod, USER_NAMESPACE, _pod_create(pod), pod)
    assert found is not None and "only Localhost profiles" in found
