"""Each way around the pack that issue 13 found (networks that cover everything without being
0.0.0.0/0, privilege through a container's name, host namespaces/paths/capabilities, mutable
tags other than latest, credentials in env values/ConfigMaps/annotations, kinds no rule lists,
RBAC that hands out everything) is caught, and its legitimate neighbour stays quiet. Every
case goes through the pack's own policy objects as the engine calls them."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from components.tenants import names
from policy.akiba_policy import context, gate
from policy.akiba_policy.exemptions import EXEMPTIONS
from policy.akiba_policy.images import image_problem
from policy.akiba_policy.k8s import POD_SPEC, containers, pod_spec
from policy.akiba_policy.model import PlannedResource
from policy.akiba_policy.rules import RULES
from tests.conftest import STACKS
from tests.policy_engine import Res, messages, run
from tools.plan import policy_gate
from tools.plan.runner import Plan

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


# --- 1. networks that cover everything ------------------------------------------------------


def _sg(*cidrs: str, v6: tuple[str, ...] = ()) -> Res:
    return Res(
        SG,
        {
            "ingress": [
                {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": list(cidrs), "ipv6CidrBlocks": list(v6)}
            ]
        },
        name="sg",
    )


WORLD_IN_PIECES = {
    "two halves": _sg("0.0.0.0/1", "128.0.0.0/1"),
    "::/1 (holds the IPv4-mapped range)": _sg(v6=("::/1",)),
    "0.0.0.0/00": _sg("0.0.0.0/00"),
    "0/0 (unreadable)": _sg("0/0"),
    "IPv4-mapped IPv6": _sg(v6=("::ffff:0.0.0.0/96",)),
    "NAT64 prefix": _sg(v6=("64:ff9b::/96",)),
    "every public /8": _sg(*(f"{i}.0.0.0/8" for i in range(1, 224) if i not in (10, 127))),
    "a public /16": _sg("198.18.0.0/15"),
}


@pytest.mark.parametrize("sg", WORLD_IN_PIECES.values(), ids=WORLD_IN_PIECES.keys())
def test_security_group_covering_the_world_in_pieces_fires(sg: Res) -> None:
    assert messages("no-open-ingress", sg)


def test_ingress_from_a_prefix_list_fires() -> None:
    """A managed prefix list (com.amazonaws.global.cloudfront...) holds ranges the plan cannot see."""
    assert messages("no-open-ingress", Res(SG, {"ingress": [{"prefixListIds": ["pl-3b927c52"]}]}))
    assert messages("no-open-ingress", Res(SG_INGRESS, {"prefixListId": "pl-3b927c52", "securityGroupId": "sg-1"}))


def test_security_group_for_the_office_and_the_vpc_is_quiet() -> None:
    assert messages("no-open-ingress", _sg("203.0.113.10/32", "10.60.0.0/16", "192.168.10.0/24")) == []
    assert messages("no-open-ingress", _sg("203.0.113.0/24", v6=("::ffff:203.0.113.10/128", "fd00::/8"))) == []


def test_public_space_summed_over_a_group_and_its_separate_rules() -> None:
    """Each piece is under a /24, together they are not: the rules name the group through
    securityGroupId's property dependency, as the engine reports it."""
    group = Res(SG, {"ingress": [{"cidrBlocks": ["198.51.100.0/25"]}]}, name="sg")
    rule = Res(
        SG_RULE,
        {"type": "ingress", "cidrBlocks": ["198.51.100.128/25"], "securityGroupId": "sg-1"},
        name="a",
        deps={"securityGroupId": "sg"},
    )
    vpc_rule = Res(
        SG_INGRESS, {"cidrIpv4": "203.0.113.0/25", "securityGroupId": "sg-1"}, name="b", deps={"securityGroupId": "sg"}
    )
    found = run("no-open-ingress", group, rule, vpc_rule)
    assert {urn.rsplit("::", 1)[-1] for urn, _ in found} == {"sg", "a", "b"}, found
    assert all("384 public IPv4" in m for _, m in found)
    assert run("no-open-ingress", group, rule) == []  # 256 addresses: a /24's worth
    egress = Res(SG_RULE, {"type": "egress", "cidrBlocks": ["0.0.0.0/0"]}, name="e", deps={"securityGroupId": "sg"})
    assert run("no-open-ingress", group, egress) == []


def test_offline_gate_joins_rules_to_their_group_by_id() -> None:
    """Offline the engine's dependencies are the recorded ids (tools/plan/policy_gate.py)."""
    base = "urn:pulumi:prod::akiba::"
    group = PlannedResource(SG, "sg", f"{base}{SG}::sg", {"ingress": [{"cidrBlocks": ["198.51.100.0/25"]}]}, False)
    pieces = [
        PlannedResource(
            SG_INGRESS,
            n,
            f"{base}{SG_INGRESS}::{n}",
            {"cidrIpv4": c, "securityGroupId": "sg-1"},
            False,
            refs={"securityGroupId": group.urn},
        )
        for n, c in (("a", "198.51.100.128/25"), ("b", "203.0.113.0/25"))
    ]
    rule = [r for r in RULES if r.name == "no-open-ingress"]
    assert len(gate.check([group, *pieces], rules=rule)) == 3
    assert gate.check([group, pieces[0]], rules=rule) == []


def _netpol(ingress: list[Any] | None = None, egress: list[Any] | None = None) -> Res:
    spec: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    spec |= {"ingress": ingress} if ingress is not None else {}
    spec |= {"egress": egress} if egress is not None else {}
    return Res(
        NETPOL,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "eng-alice"},
            "spec": spec,
        },
    )


@pytest.mark.parametrize(
    "ingress",
    [
        [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}]}],  # the internet, minus the LAN
        [{"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}]}],
        [{"from": [{"ipBlock": {"cidr": "::/1"}}]}],
        [{"from": [{"ipBlock": {"cidr": "203.0.113.10/32"}}]}],  # any public source
        [{"ports": [{"port": 22}]}],  # no `from`: every source
        [{"from": [{"ipBlock": {"cidr": "0/0"}}]}],
    ],
    ids=["except-private", "halves", "v6-half", "public-host", "no-from", "unreadable"],
)
def test_network_policy_ingress_from_outside_fires(ingress: list[Any]) -> None:
    assert messages("no-open-ingress", _netpol(ingress=ingress))


def test_a_cidr_unknown_in_a_preview_is_left_to_the_engine_not_reported() -> None:
    """An Output not yet known reaches the pack as the SDK's sentinel; reading it raises
    UnknownValueError, which the analyzer reports as "can't run during preview", not a violation."""
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

    with pytest.raises(UnknownValueError):
        run("no-open-ingress", _sg(UNKNOWN_STRING_VALUE))


def test_network_policy_private_ingress_and_internet_egress_are_quiet() -> None:
    office = [{"from": [{"ipBlock": {"cidr": "192.168.10.0/24"}}], "ports": [{"port": 22}]}]
    same_ns: list[Any] = [{"from": [{"podSelector": {}}]}]
    egress = [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}]}]
    assert messages("no-open-ingress", _netpol(ingress=office + same_ns, egress=egress)) == []
    carved = [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}}]}]
    assert messages("no-open-ingress", _netpol(ingress=carved)) == []


def test_load_balancer_sources_in_the_annotation_count() -> None:
    def lb(annotation: str | None, ranges: list[str]) -> Res:
        meta: dict[str, Any] = {"name": "lb"}
        if annotation:
            meta["annotations"] = {"service.beta.kubernetes.io/load-balancer-source-ranges": annotation}
        return Res(
            "kubernetes:core/v1:Service",
            {"metadata": meta, "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ranges}},
        )

    assert messages("no-open-ingress", lb("0.0.0.0/1,128.0.0.0/1", []))
    assert messages("no-open-ingress", lb(None, ["192.168.10.0/24"])) == []


# --- 2 and 3. privilege and the host, by namespace ----------------------------------------------


def _ns(name: str, enforce: str, engineer: str | None = None) -> Res:
    labels = {"pod-security.kubernetes.io/enforce": enforce}
    labels |= {names.ENGINEER_LABEL: engineer} if engineer else {}
    return Res(
        NAMESPACE,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        name=f"ns-{name}",
    )


PLATFORM_PRIVILEGED = _ns("rook-ceph", "privileged")
PLATFORM_BASELINE = _ns("akiba-workloads", "baseline")
ENGINEER = _ns("eng-alice", "baseline", engineer="alice")
ENGINEER_MISLABELLED = _ns("team-bob", "privileged", engineer="bob")  # privileged label, but an engineer's
ALL_NAMESPACES = (PLATFORM_PRIVILEGED, PLATFORM_BASELINE, ENGINEER, ENGINEER_MISLABELLED)


def on(rule: str, target: Res, *plan: Res) -> list[str]:
    """What the stack policy reports on `target`, with `plan` (its namespaces) around it."""
    return [m for urn, m in run(rule, *plan, target) if urn == target.urn("prod")]


def _workload(
    kind: str,
    namespace: str,
    pod: Mapping[str, Any] | None = None,
    container: Mapping[str, Any] | None = None,
    field: str = "containers",
) -> Res:
    c = {"name": "dind", "image": "docker.io/library/docker:29.8.1-dind"} | dict(container or {})
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "docker.io/library/busybox:1.37.0"}]} | dict(
        pod or {}
    )
    spec[field] = [*spec.get(field, []), c]
    body: dict[str, Any] = {"metadata": {"annotations": {}}, "spec": spec}
    for key in reversed(POD_SPEC[kind][:-1]):
        body = {key: body}
    api = {
        "Pod": "v1",
        "PodTemplate": "v1",
        "ReplicationController": "v1",
        "Job": "batch/v1",
        "CronJob": "batch/v1",
    }.get(kind, "apps/v1")
    props = {"apiVersion": api, "kind": kind, "metadata": {"name": "w", "namespace": namespace}} | (
        body if kind != "Pod" else {"spec": spec}
    )
    token = api if "/" in api else f"core/{api}"
    return Res(f"kubernetes:{token}:{kind}", props, name="w")


PRIVILEGED = {"securityContext": {"privileged": True}}


@pytest.mark.parametrize("kind", sorted(POD_SPEC))
@pytest.mark.parametrize("field", ["containers", "initContainers", "ephemeralContainers"])
def test_privileged_container_named_dind_fires_in_every_kind_and_container_list(kind: str, field: str) -> None:
    bad = _workload(kind, "akiba-workloads", container=PRIVILEGED, field=field)
    assert on("no-privileged-containers", bad, *ALL_NAMESPACES), "dind by name must not be exempt"
    good = _workload(kind, "rook-ceph", container=PRIVILEGED, field=field)
    assert on("no-privileged-containers", good, *ALL_NAMESPACES) == []


@pytest.mark.parametrize(
    ("namespace", "declared"),
    [("eng-alice", True), ("team-bob", True), ("eng-carol", False), ("rook-ceph", False), ("default", False)],
    ids=["engineer", "engineer-labelled-privileged", "engineer-undeclared", "platform-undeclared", "default"],
)
def test_privileged_fires_outside_declared_privileged_platform_namespaces(namespace: str, declared: bool) -> None:
    plan = ALL_NAMESPACES if declared else (PLATFORM_BASELINE,)
    assert on("no-privileged-containers", _workload("DaemonSet", namespace, container=PRIVILEGED), *plan)


def test_kube_system_is_the_one_listed_exemption() -> None:
    assert messages("no-privileged-containers", _workload("DaemonSet", "kube-system", container=PRIVILEGED)) == []
    assert messages("no-host-access", _workload("DaemonSet", "kube-system", pod={"hostNetwork": True})) == []
    for e in EXEMPTIONS:
        assert e.rule in {r.name for r in RULES} and e.reason
        assert not (e.namespace or "").startswith(names.NAMESPACE_PREFIX)


def test_privilege_escalation_in_an_engineer_namespace_needs_its_own_user_namespace() -> None:
    escalating = {"securityContext": {"allowPrivilegeEscalation": True}}
    assert messages("no-privileged-containers", ENGINEER, _workload("DaemonSet", "eng-alice", container=escalating))
    userns = _workload("DaemonSet", "eng-alice", pod={"hostUsers": False}, container=escalating)
    assert messages("no-privileged-containers", ENGINEER, userns) == []


def test_a_namespace_labelled_privileged_must_be_a_reviewed_one() -> None:
    """Relabelling a namespace (the old akiba-homes, where dind ran) is not a way in."""
    assert messages("no-privileged-containers", _ns("akiba-homes", "privileged"))
    assert messages("no-privileged-containers", PLATFORM_PRIVILEGED, PLATFORM_BASELINE) == []


def test_engineer_namespace_must_enforce_baseline_or_restricted() -> None:
    assert messages("no-privileged-containers", _ns("eng-alice", "privileged", engineer="alice"))
    assert messages("no-privileged-containers", _ns("eng-alice", "restricted", engineer="alice")) == []
    assert messages("no-privileged-containers", ENGINEER) == []


HOST_ACCESS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "hostNetwork": ({"hostNetwork": True}, {}),
    "hostPID": ({"hostPID": True}, {}),
    "hostIPC": ({"hostIPC": True}, {}),
    "hostPath": ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, {}),
    "hostPort": ({}, {"ports": [{"containerPort": 2222, "hostPort": 2222}]}),
    "seccomp pod": ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, {}),
    "seccomp container": ({}, {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
    "apparmor field": ({}, {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
    "procMount": ({}, {"securityContext": {"procMount": "Unmasked"}}),
    "sysctl": ({"securityContext": {"sysctls": [{"name": "kernel.core_pattern", "value": "|/x"}]}}, {}),
    "selinux": ({}, {"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}),
    **{
        f"cap {cap}": ({}, {"securityContext": {"capabilities": {"add": [cap]}}})
        for cap in ("SYS_ADMIN", "NET_ADMIN", "ALL", "BPF", "PERFMON", "SYS_PTRACE", "cap_sys_module", "NET_RAW")
    },
}


@pytest.mark.parametrize(("pod", "container"), HOST_ACCESS.values(), ids=HOST_ACCESS.keys())
@pytest.mark.parametrize("namespace", ["eng-alice", "team-bob", "akiba-workloads"])
def test_host_access_fires_outside_privileged_platform_namespaces(
    pod: dict[str, Any], container: dict[str, Any], namespace: str
) -> None:
    assert on("no-host-access", _workload("CronJob", namespace, pod, container), *ALL_NAMESPACES)
    assert on("no-host-access", _workload("CronJob", "rook-ceph", pod, container), *ALL_NAMESPACES) == []


def test_apparmor_annotation_on_the_pod_template_fires() -> None:
    bad = _workload("Deployment", "eng-alice")
    bad.props["spec"]["template"]["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/dind": "unconfined"
    }
    assert messages("no-host-access", ENGINEER, bad)


def test_baseline_pod_is_quiet_in_an_engineer_namespace() -> None:
    pod = {"hostUsers": False, "hostNetwork": False, "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}
    container = {
        "securityContext": {
            "procMount": "Unmasked",
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "NET_BIND_SERVICE"]},
        }
    }
    assert messages("no-host-access", ENGINEER, _workload("DaemonSet", "eng-alice", pod, container)) == []
    assert messages("no-host-access", ENGINEER, _workload("DaemonSet", "eng-alice", {"hostUsers": True})) == []


def test_host_path_volume_handed_to_an_engineer_through_a_persistent_volume_fires() -> None:
    def pv(namespace: str) -> Res:
        spec = {"hostPath": {"path": "/etc/kubernetes/pki"}, "claimRef": {"namespace": namespace, "name": "home"}}
        return Res("kubernetes:core/v1:PersistentVolume", {"metadata": {"name": "pv"}, "spec": spec})

    assert on("no-host-access", pv("eng-alice"), *ALL_NAMESPACES)
    assert on("no-host-access", pv("rook-ceph"), *ALL_NAMESPACES) == []


# --- 4. mutable tags --------------------------------------------------------------------------

MOVING_IMAGES = [
    "docker.io/library/busybox",
    "busybox:latest",
    *(f"registry.akiba.lan:30443/akiba/app:{t}" for t in ("main", "master", "stable", "edge", "nightly", "dev", "lts")),
    "docker.io/library/python:3",
    "ghcr.io/x/y:v1",
    "docker.io/library/python:3-latest",
    "docker.io/library/python:3.12-latest",
    "docker.io/library/python:3.12-dev",
    "docker.io/library/python@sha256:abc",
]
RELEASE_IMAGES = [
    "docker.io/library/busybox:1.37.0",
    "quay.io/ceph/ceph:v19.2.3",
    "docker.io/library/postgres:17.6-bookworm",
    "registry.k8s.io/pause:3.10",
    "registry.akiba.lan:30443/akiba/icachan:2026.11.0",
    "registry.k8s.io/etcd:3.6.9-0",
    "docker.io/library/docker:29.8.1-dind",
    "example.org/nightly-builds/tool:20261101",
    "docker.io/library/busybox:latest@sha256:" + "a" * 64,
]


@pytest.mark.parametrize("image", MOVING_IMAGES)
def test_moving_tag_fires(image: str) -> None:
    assert messages("pinned-versions", _workload("Deployment", "akiba-workloads", container={"image": image}))


@pytest.mark.parametrize("image", RELEASE_IMAGES)
def test_release_tag_is_quiet(image: str) -> None:
    assert messages("pinned-versions", _workload("Deployment", "akiba-workloads", container={"image": image})) == []


def test_chart_image_tag_values_are_held_to_the_same_rule() -> None:
    def chart(tag: str) -> Res:
        return Res(
            "kubernetes:helm.sh/v4:Chart",
            {"chart": "x", "version": "1.2.3", "values": {"controller": {"image": {"tag": tag}}}},
        )

    assert messages("pinned-versions", chart("stable"))
    assert messages("pinned-versions", chart("v1.35.0")) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_image_in_the_plan_is_a_release(plans: dict[str, Plan], stack: str) -> None:
    images = [c["image"] for r in policy_gate.planned(plans[stack]) for c in containers(pod_spec(r))]
    assert images
    assert {i: image_problem(i) for i in images if image_problem(i)} == {}


# --- 5. credentials in plain configuration ------------------------------------------------------

PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
LEAKY_ENV = {
    "DB_PASSWORD": "hunter22",
    "PGPASSWORD": "hunter22",
    "API_KEY": "k-123456",
    "githubToken": "abc123abc123",
    "SSH_KEY": PEM,
    "AWS_ID": "AKIAIOSFODNN7EXAMPLE",
    "AUTH": f"Bearer {JWT}",
    "SESSION": JWT,
    "DATABASE_URL": "postgres://app:hunter22@db:5432/app",
}
QUIET_ENV = {
    "POSTGRES_PASSWORD_FILE": "/run/secrets/password",
    "PGDATA": "/var/lib/postgresql/data/pgdata",
    "DATABASE_URL": "postgresql://postgres:$(POSTGRES_PASSWORD)@golden-postgres:5432/postgres",
    "TOKEN_TTL": "3600",
    "DOCKER_TLS_VERIFY": "1",
}


@pytest.mark.parametrize(("name", "value"), LEAKY_ENV.items(), ids=LEAKY_ENV.keys())
def test_credential_in_an_env_value_fires(name: str, value: str) -> None:
    pod = _workload("Job", "eng-alice", container={"env": [{"name": name, "value": value}]})
    assert messages("no-credentials-in-plain-config", pod)


def test_env_from_secret_and_pointers_are_quiet() -> None:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in QUIET_ENV.items()]
    env.append({"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "database", "key": "password"}}})
    assert messages("no-credentials-in-plain-config", _workload("Job", "eng-alice", container={"env": env})) == []


def test_credential_on_a_command_line_fires() -> None:
    def job(*args: str) -> Res:
        return _workload("Job", "akiba-db", container={"args": list(args)})

    assert messages("no-credentials-in-plain-config", job("--password=hunter22"))
    assert messages("no-credentials-in-plain-config", job("--token", "abcdef123456"))
    assert messages("no-credentials-in-plain-config", job("--password-file=/run/secrets/p", "--key=/etc/pki/k")) == []


def _config_map(
    data: Mapping[str, str] | None = None,
    binary: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Res:
    meta = {"name": "cm", "namespace": "akiba-homes", "annotations": dict(annotations or {})}
    return Res(
        "kubernetes:core/v1:ConfigMap",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": dict(data or {}),
            "binaryData": dict(binary or {}),
        },
    )


@pytest.mark.parametrize(
    "config_map",
    [
        _config_map({"password": "hunter22"}),
        _config_map({"app.yaml": "db:\n  host: db\n  password: hunter22\n"}),
        _config_map({"config.json": '{"user": "app", "apiKey": "k-1234567"}'}),
        _config_map({"shadow": "alice:$6$saltsalt$hashhashhashhash:19000:0:99999:7:::\n"}),
        _config_map({"ceph.conf": "[client.admin]\nkey = AQCW10aVzK9aYCtgWqTZfl3awNJdAtY2egQgag==\n"}),
        _config_map(binary={"id_ed25519": base64.b64encode(PEM.encode()).decode()}),
        _config_map(annotations={"akiba.io/token": "abcdef123456"}),
        _config_map(
            annotations={"kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"hunter22"}}'}
        ),
    ],
    ids=["key", "yaml-file", "json-file", "shadow-hash", "cephx", "binary-pem", "annotation-key", "last-applied"],
)
def test_credential_in_a_config_map_or_annotation_fires(config_map: Res) -> None:
    assert messages("no-credentials-in-plain-config", config_map)


def test_accounts_files_and_ssh_public_keys_are_quiet() -> None:
    data = {
        "passwd": "alice:x:2001:2001::/home/alice:/bin/bash\n",
        "shadow": "alice:*:::::::\n",
        "authorized_keys.alice": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFf2IHfyvhWXvCGBcd alice@akiba\n",
        "sshd_config": "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
    }
    assert (
        messages("no-credentials-in-plain-config", _config_map(data, annotations={"pulumi.com/skipAwait": "true"}))
        == []
    )


def test_credential_in_a_plain_ssm_parameter_fires() -> None:
    def parameter(name: str, typ: str, value: str = "abcdef.0123456789abcdef") -> Res:
        return Res("aws:ssm/parameter:Parameter", {"name": name, "type": typ, "value": value})

    assert messages("no-credentials-in-plain-config", parameter("/akiba/burst/join-token", "String"))
    assert messages("no-credentials-in-plain-config", parameter("/akiba/burst/blob", "String", PEM))
    assert messages("no-credentials-in-plain-config", parameter("/akiba/burst/join-token", "SecureString")) == []
    assert messages("no-credentials-in-plain-config", parameter("/akiba/burst/wireguard-public-key", "String")) == []


# --- 6. kinds no rule lists, and RBAC ------------------------------------------------------------


@pytest.mark.parametrize(
    "res",
    [
        Res("aws:ec2/networkAcl:NetworkAcl", {}),
        Res("kubernetes:example.com/v1:Widget", {"apiVersion": "example.com/v1", "kind": "Widget"}),
        Res("kubernetes:apps/v1:DeploymentPatch", {"metadata": {"name": "coredns", "namespace": "kube-system"}}),
        Res("kubernetes:core/v1:ConfigMap", {"apiVersion": "apps/v1", "kind": "DaemonSet"}),  # disguised
        Res(
            "pulumi-python:dynamic:Resource",
            {
                "__provider": base64.b64encode(
                    b"\x80\x04\x95\x10\x8c\x0bevil.module\x94\x8c\x04Evil\x94\x93\x94"
                ).decode()
            },
        ),
        Res(
            "kubernetes:yaml/v2:ConfigGroup",
            {"objs": [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}]},
        ),
    ],
    ids=["aws-type", "custom-resource", "patch", "disguised", "dynamic-provider", "config-group-child"],
)
def test_unreviewed_type_fires(res: Res) -> None:
    assert messages("reviewed-types", res)


def test_reviewed_types_are_quiet() -> None:
    provider = base64.b64encode(
        b"\x80\x04\x95E\x00\x8c\x1dcomponents.machines.rbd_image\x94\x8c\x10RbdImageProvider\x94\x93\x94)"
    ).decode()
    quiet = [
        Res("kubernetes:core/v1:Service", {"apiVersion": "v1", "kind": "Service"}),
        Res("akiba:tenants:Tenant", {}),
        Res("pulumi-python:dynamic:Resource", {"__provider": provider, "kind": "rbd-image"}),
        Res(
            "kubernetes:yaml/v2:ConfigGroup",
            {"objs": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]},
        ),
    ]
    assert messages("reviewed-types", *quiet) == []


def test_config_group_inline_objects_are_judged_like_declared_ones() -> None:
    group = Res(
        "kubernetes:yaml/v2:ConfigGroup",
        {
            "yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: eng-alice}\nspec:\n  containers: [{name: x, image: 'busybox:1.37.0', securityContext: {privileged: true}}]\n"
        },
    )
    assert on("no-privileged-containers", group, ENGINEER)
    assert on("no-privileged-containers", group, ENGINEER)[0].startswith("Pod ")


def _binding(kind: str, role: tuple[str, str], *subjects: tuple[str, str]) -> Res:
    props = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "b", "namespace": "eng-alice"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role[0], "name": role[1]},
        "subjects": [{"kind": k, "name": n, "apiGroup": "rbac.authorization.k8s.io"} for k, n in subjects],
    }
    return Res(f"kubernetes:rbac.authorization.k8s.io/v1:{kind}", props)


@pytest.mark.parametrize(
    "binding",
    [
        _binding("ClusterRoleBinding", ("ClusterRole", "cluster-admin"), ("User", "alice")),
        _binding("RoleBinding", ("ClusterRole", "cluster-admin"), ("User", "alice")),
        _binding("ClusterRoleBinding", ("ClusterRole", "admin"), ("User", "alice")),
        _binding("RoleBinding", ("ClusterRole", "view"), ("Group", "system:authenticated")),
        _binding("ClusterRoleBinding", ("ClusterRole", "view"), ("Group", "system:unauthenticated")),
        _binding("RoleBinding", ("Role", "reader"), ("User", "system:anonymous")),
    ],
    ids=["crb-cluster-admin", "rb-cluster-admin", "crb-admin", "authenticated", "unauthenticated", "anonymous"],
)
def test_binding_to_everything_or_everyone_fires(binding: Res) -> None:
    assert messages("rbac-no-cluster-admin", binding)
    chart_child = Res(binding.type, binding.props, parents=("akiba:x:Y", "kubernetes:helm.sh/v4:Chart"))
    assert messages("rbac-no-cluster-admin", chart_child), "no chart may bind cluster-admin either"


def test_binding_a_named_engineer_to_admin_in_their_namespace_is_quiet() -> None:
    assert messages("rbac-no-cluster-admin", _binding("RoleBinding", ("ClusterRole", "admin"), ("User", "alice"))) == []


def _role(*rules: dict[str, list[str]], parents: tuple[str, ...] = ()) -> Res:
    props = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "r"},
        "rules": list(rules),
    }
    return Res("kubernetes:rbac.authorization.k8s.io/v1:Role", props, parents=parents)


@pytest.mark.parametrize(
    "rule",
    [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"]},
        {"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]},
        {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
    ],
    ids=["verbs", "resources", "subresources", "escalate", "bind", "impersonate", "nodes-proxy"],
)
def test_role_granting_everything_or_escalation_fires(rule: dict[str, list[str]]) -> None:
    assert messages("rbac-least-privilege", _role(rule))
    # A pinned chart's own operator role is the listed exemption.
    assert (
        messages("rbac-least-privilege", _role(rule, parents=("akiba:storage:RookCeph", "kubernetes:helm.sh/v4:Chart")))
        == []
    )


def test_a_role_that_names_its_verbs_and_resources_is_quiet() -> None:
    rule = {
        "apiGroups": ["", "apps", "batch"],
        "resources": ["pods", "pods/log", "jobs", "secrets"],
        "verbs": ["get", "list", "create", "delete"],
    }
    assert messages("rbac-least-privilege", _role(rule)) == []


# --- the pack itself -------------------------------------------------------------------------


def test_the_pack_reads_the_tenancy_names_the_program_uses() -> None:
    """The pack cannot import the program (it runs from policy/ in its own venv): its copies agree."""
    assert (context.ENGINEER_LABEL, context.NAMESPACE_PREFIX) == (names.ENGINEER_LABEL, names.NAMESPACE_PREFIX)
    assert names.engineer_namespace("alice").startswith(context.NAMESPACE_PREFIX)


def test_the_pack_loads_on_its_own() -> None:
    """`pulumi preview --policy-pack policy` runs policy/ alone: the pack imports nothing of the program."""
    import subprocess
    import sys
    from pathlib import Path

    probe = (
        "import sys; import akiba_policy.pack as p; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('components', 'stacks', 'tools')]; "
        "print(len(p.POLICIES))"
    )
    policy_dir = Path(__file__).resolve().parents[1] / "policy"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=policy_dir, env={}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(RULES)


def test_every_rule_is_a_policy_with_a_fire_test() -> None:
    """A rule added later without a bypass/fire test here or in test_policies.py is noticed."""
    import inspect
    import sys

    from tests import test_policies

    text = inspect.getsource(test_policies) + inspect.getsource(sys.modules[__name__])
    missing = [r.name for r in RULES if f'"{r.name}"' not in text]
    assert missing == []
