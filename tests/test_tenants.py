"""Engineers as tenants, as the cluster would see them: each engineer's namespace, what their
Role lets them do (and not), bindings to exactly their user, a client certificate the cluster CA
signed for their login and nothing else, a quota from the stack file, and the cluster check's
`quota` rule that keeps the platform's own pods inside it."""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockResourceArgs

from components.tenants import rbac
from components.tenants.names import CONSUMER_USER, ENGINEER_LABEL, engineer_namespace
from stacks.problems import ConfigError
from tests import cluster_fixtures as cf
from tests.conftest import ROOT, STACKS, config_values, edited, parse, stack_file
from tools.plan import references, runner
from tools.plan.__main__ import cluster_settings
from tools.plan.cluster import check, quantity
from tools.plan.cluster.quotas import problems as quota_problems
from tools.plan.mocks import AkibaMocks
from tools.plan.runner import Plan
from tools.plan.stackfile import StackFile

ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMITS = "kubernetes:core/v1:LimitRange"
WRITES = {"create", "update", "patch", "delete", "deletecollection", "*"}


def _logins(stack: str) -> list[str]:
    return [e["name"] for e in config_values(stack)["akiba:engineers"]]


def _in(plan: Plan, typ: str, namespace: str) -> list[dict[str, Any]]:
    return [r.raw_inputs for r in plan.by_type(typ) if r.raw_inputs["metadata"].get("namespace") == namespace]


def _engineer_quota(plan: Plan, namespace: str) -> dict[str, Any]:
    """Their share (the other quota, reserved-priorities, is tests/test_tenant_admission.py's)."""
    (quota,) = [q for q in _in(plan, QUOTA, namespace) if q["metadata"]["name"] == "engineer"]
    return quota


def _named(plan: Plan, typ: str, name: str) -> dict[str, Any]:
    (found,) = [r.raw_inputs for r in plan.by_type(typ) if r.raw_inputs["metadata"]["name"] == name]
    return found


def allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    """RBAC's own matching of one request against a role's rules (wildcards included)."""
    return any(
        (group in r.get("apiGroups", ()) or "*" in r.get("apiGroups", ()))
        and (resource in r.get("resources", ()) or "*" in r.get("resources", ()))
        and (verb in r.get("verbs", ()) or "*" in r.get("verbs", ()))
        for r in rules
    )


# --- namespaces and RBAC, both stacks ---------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_each_engineer_has_a_labelled_namespace(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources
    for login in _logins(stack):
        labels = _named(plan, "kubernetes:core/v1:Namespace", f"eng-{login}")["metadata"]["labels"]
        assert labels[ENGINEER_LABEL] == login
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"
        assert labels["app.kubernetes.io/part-of"] == "akiba"
    # Removing an engineer revokes their rights in that same `up` (nothing protected blocks it);
    # in prod their namespace, and the home in it, stay until someone deletes them on purpose.
    for r in plan.by_type("kubernetes:core/v1:Namespace"):
        if r.name.startswith("eng-"):
            assert not r.protect and r.retain_on_delete == (stack == "prod"), r.name
    for r in [*plan.by_type(BINDING), *plan.by_type(CLUSTER_BINDING)]:
        assert not r.protect and not r.retain_on_delete, r.name


@pytest.mark.parametrize("stack", STACKS)
def test_engineer_grants_are_bound_to_exactly_their_user(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    logins = _logins(stack)
    for login in logins:
        (binding,) = [b for b in _in(plan, BINDING, engineer_namespace(login)) if b["metadata"]["name"] == "engineer"]
        user = {"kind": "User", "name": login, "apiGroup": "rbac.authorization.k8s.io"}
        assert binding["subjects"] == [user]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "engineer"}
        assert any(
            r.raw_inputs["roleRef"]["name"] == rbac.CLUSTER_READ_ROLE and r.raw_inputs["subjects"] == [user]
            for r in plan.by_type(CLUSTER_BINDING)
        )
    # One cluster-read binding per engineer: removing one removes exactly their grant.
    reads = [
        r.raw_inputs for r in plan.by_type(CLUSTER_BINDING) if r.raw_inputs["roleRef"]["name"] == rbac.CLUSTER_READ_ROLE
    ]
    assert sorted(b["subjects"][0]["name"] for b in reads) == sorted(logins)
    # An engineer's user is bound nowhere else: not in another namespace, not to another role.
    for r in [*plan.by_type(BINDING), *plan.by_type(CLUSTER_BINDING)]:
        b = r.raw_inputs
        for subject in b.get("subjects") or ():
            if subject["kind"] == "User" and subject["name"] in logins:
                own = (b["metadata"].get("namespace"), b["roleRef"]["name"])
                expected = (
                    (engineer_namespace(subject["name"]), "engineer")
                    if r.type == BINDING
                    else (None, rbac.CLUSTER_READ_ROLE)
                )
                assert own == expected, f"{r.name} grants {subject['name']} {b['roleRef']['name']}"
    # No binding anywhere hands anything to a group an engineer's certificate could claim.
    for r in [*plan.by_type(BINDING), *plan.by_type(CLUSTER_BINDING)]:
        for subject in r.raw_inputs.get("subjects") or ():
            assert subject["name"] not in ("system:authenticated", "system:unauthenticated"), r.name


@pytest.mark.parametrize("stack", STACKS)
def test_no_role_the_program_declares_uses_a_wildcard(plans: dict[str, Plan], stack: str) -> None:
    roles = [*plans[stack].by_type(ROLE), *plans[stack].by_type(CLUSTER_ROLE)]
    assert roles
    for r in roles:
        for rule in r.raw_inputs.get("rules") or ():
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, ()), f"{r.name}: {key} has a wildcard"


def test_engineer_role_gives_their_work_and_nothing_of_the_platform(plans: dict[str, Plan]) -> None:
    (role,) = [r for r in _in(plans["prod"], ROLE, "eng-tarui") if r["metadata"]["name"] == "engineer"]
    rules = role["rules"]
    for group, resource in [
        ("", "pods"),
        ("", "secrets"),
        ("", "persistentvolumeclaims"),
        ("batch", "jobs"),
        ("apps", "deployments"),
        ("snapshot.storage.k8s.io", "volumesnapshots"),
    ]:
        assert all(allows(rules, group, resource, v) for v in ("get", "list", "create", "delete", "patch"))
    assert allows(rules, "", "pods/exec", "create") and allows(rules, "", "pods/log", "get")
    for group, resource in [
        ("", "resourcequotas"),
        ("", "limitranges"),
        ("networking.k8s.io", "networkpolicies"),
        ("apps", "daemonsets"),  # the platform's home DaemonSet lives here
        ("", "serviceaccounts"),
        ("", "events"),
    ]:
        assert allows(rules, group, resource, "list"), resource
        assert not any(allows(rules, group, resource, v) for v in WRITES), f"{resource} is writable"
    for group, resource in [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("", "namespaces"),
        ("", "serviceaccounts/token"),
    ]:
        assert not any(allows(rules, group, resource, v) for v in ("get", *WRITES, "bind", "escalate")), resource


def test_cluster_read_is_read_only() -> None:
    for rule in rbac.CLUSTER_READ_RULES:
        assert set(rule.verbs) == {"get", "list", "watch"}
    assert {"nodes", "storageclasses", "priorityclasses"} <= {
        r for rule in rbac.CLUSTER_READ_RULES for r in rule.resources
    }


def test_the_consumer_reads_workloads_but_no_secret(plans: dict[str, Plan]) -> None:
    role = _named(plans["prod"], CLUSTER_ROLE, rbac.CONSUMER_ROLE)["rules"]
    assert allows(role, "", "pods", "list") and allows(role, "apps", "deployments", "watch")
    assert allows(role, "", "nodes", "get") and allows(role, "", "persistentvolumes", "list")
    for resource in ("secrets", "configmaps", "pods/log", "pods/exec", "pods/attach", "pods/portforward"):
        assert not any(allows(role, "", resource, v) for v in ("get", "list", "watch", "create")), resource
    assert not any(set(r["verbs"]) & WRITES for r in role)
    binding = _named(plans["prod"], CLUSTER_BINDING, rbac.CONSUMER_ROLE)
    assert binding["subjects"] == [{"kind": "User", "name": CONSUMER_USER, "apiGroup": "rbac.authorization.k8s.io"}]


# --- certificates and kubeconfigs -------------------------------------------------------------


class SigningMocks(AkibaMocks):
    """The stack's mocks, except pulumi-tls does what the provider does: real keys, real CSRs,
    certificates really signed by the CA key they are given."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid, state = super().new_resource(args)
        s = {k: _plain(v) for k, v in args.inputs.items()}
        if args.typ == "tls:index/privateKey:PrivateKey":
            key = _key(args.name, s)
            state["privateKeyPem"] = _pem_key(key)
            state["publicKeyPem"] = (
                key.public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode()
            )
        elif args.typ == "tls:index/certRequest:CertRequest":
            key = _load_key(s["privateKeyPem"])
            builder = x509.CertificateSigningRequestBuilder().subject_name(_subject(s.get("subject") or {}))
            request = builder.sign(key, hashes.SHA256())
            state["certRequestPem"] = request.public_bytes(serialization.Encoding.PEM).decode()
        elif args.typ == "tls:index/selfSignedCert:SelfSignedCert":
            key = _load_key(s["privateKeyPem"])
            name = _subject(s.get("subject") or {})
            state["certPem"] = _sign(name, key.public_key(), name, key, s, ca=bool(s.get("isCaCertificate")))
        elif args.typ == "tls:index/locallySignedCert:LocallySignedCert":
            csr = x509.load_pem_x509_csr(s["certRequestPem"].encode())
            ca = x509.load_pem_x509_certificate(s["caCertPem"].encode())
            ca_key = _load_key(s["caPrivateKeyPem"])
            state["certPem"] = _sign(csr.subject, csr.public_key(), ca.subject, ca_key, s, ca=False)
        return rid, state


def _plain(value: Any) -> Any:
    """An input as the provider sees it: a secret unwrapped."""
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def _key(name: str, s: Mapping[str, Any]) -> Any:
    if s.get("algorithm") == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(s.get("rsaBits", 2048)))
    secret = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big") % (2**255)
    return ec.derive_private_key(secret + 1, ec.SECP256R1())


def _pem_key(key: Any) -> str:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return pem.decode()


def _load_key(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode(), password=None)


def _subject(subject: Mapping[str, Any]) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"])] if subject.get("commonName") else []
    if subject.get("organization"):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    return x509.Name(attrs)


def _sign(subject: x509.Name, public: Any, issuer: x509.Name, key: Any, s: Mapping[str, Any], ca: bool) -> str:
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=int(s["validityPeriodHours"])))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


_SIGNED: dict[str, Plan] = {}


def signed_plan(stack: str) -> Plan:
    """The stack's offline plan with certificates that are really signed."""
    if stack not in _SIGNED:
        sf = stack_file(stack)
        _SIGNED[stack] = runner.run(sf, mocks=SigningMocks(references.resolve(sf, ROOT)))
        assert _SIGNED[stack].resources
    return _SIGNED[stack]


def _kubeconfig(text: str) -> tuple[dict[str, Any], x509.Certificate, Any]:
    doc = yaml.safe_load(text)
    (user,) = doc["users"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["user"]["client-certificate-data"]))
    key = _load_key(base64.b64decode(user["user"]["client-key-data"]).decode())
    return doc, cert, key


def _verify(cert: x509.Certificate, ca: x509.Certificate) -> None:
    """The API server's check: issued by the cluster CA, signed by its key, valid now."""
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)  # raises on a bad signature
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc


@pytest.mark.parametrize("stack", STACKS)
def test_each_engineer_kubeconfig_is_theirs_and_signed_by_the_cluster_ca(stack: str) -> None:
    plan = signed_plan(stack)
    out = plan.raw_outputs
    ca = x509.load_pem_x509_certificate(out["caCertPem"].encode())
    days = config_values(stack)["akiba:tenancy"]["certificateDays"]
    for login in _logins(stack):
        # The kubeconfig their home pod mounts; their output is this, sealed to their ssh keys
        # (tests/test_sealed_kubeconfig.py opens it).
        (secret,) = [
            s for s in _in(plan, "kubernetes:core/v1:Secret", f"eng-{login}") if s["metadata"]["name"] == "kubeconfig"
        ]
        text = secret["stringData"]["config"]
        doc, cert, key = _kubeconfig(text)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == login
        assert not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)  # no groups
        _verify(cert, ca)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=days)
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        assert key.public_key().public_bytes(serialization.Encoding.DER, public) == cert.public_key().public_bytes(
            serialization.Encoding.DER, public
        )
        (context,) = doc["contexts"]
        assert context["context"]["namespace"] == f"eng-{login}" and doc["current-context"] == context["name"]
        (cluster,) = doc["clusters"]
        assert cluster["cluster"]["server"] == out["apiEndpoint"]
        assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]).decode() == out["caCertPem"]
        assert text not in out[f"engineerKubeconfig-{login}"]
    _, consumer, _ = _kubeconfig(out["consumerKubeconfig"])
    assert consumer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CONSUMER_USER
    assert not consumer.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    _verify(consumer, ca)


def test_certificates_renew_in_their_last_week(plans: dict[str, Plan]) -> None:
    signed = plans["prod"].by_type("tls:index/locallySignedCert:LocallySignedCert")
    certs = [r for r in signed if "akiba:tenants:Tenants$" in r.urn]
    assert len(certs) == len(_logins("prod")) + 1  # each engineer's and the consumer's
    for cert in certs:
        assert cert.inputs["validityPeriodHours"] == 30 * 24
        assert cert.inputs["earlyRenewalHours"] == 7 * 24
        assert set(cert.inputs["allowedUses"]) == {"client_auth", "digital_signature"}


# --- quotas from config -----------------------------------------------------------------------


def _plan_of(sf: StackFile) -> Plan:
    plan = runner.run(sf, stack_references=references.resolve(sf, ROOT))
    assert plan.resources
    return plan


def test_quota_follows_the_stack_file_and_each_override() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:engineers"][1]["quota"] = {"gpus": 8, "memory": "96Gi"}  # yuta

    plan = _plan_of(edited("prod", edit))
    hard = {ns: _engineer_quota(plan, ns)["spec"]["hard"] for ns in ("eng-tarui", "eng-yuta")}
    assert hard["eng-tarui"] == {
        "requests.cpu": "16",
        "requests.memory": "64Gi",
        "requests.nvidia.com/gpu": "4",
        "requests.ephemeral-storage": "200Gi",
        "requests.storage": "1Ti",
        "persistentvolumeclaims": "10",
        "akiba-cephfs.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "akiba-rbd.storageclass.storage.k8s.io/persistentvolumeclaims": "0",
        "count/volumesnapshots.snapshot.storage.k8s.io": "20",
        "services.nodeports": "1",
        "services.loadbalancers": "0",
    }
    assert hard["eng-yuta"] == hard["eng-tarui"] | {
        "requests.nvidia.com/gpu": "8",
        "requests.memory": "96Gi",
    }
    (limits,) = _in(plan, LIMITS, "eng-yuta")
    assert limits["spec"]["limits"] == [
        {
            "type": "Container",
            "default": {"cpu": "1", "memory": "4Gi", "ephemeral-storage": "60Gi"},
            "defaultRequest": {"cpu": "1", "memory": "4Gi", "ephemeral-storage": "1Gi"},
            # Each container's most is their own quota's (override included).
            "max": {"cpu": "16", "memory": "96Gi", "ephemeral-storage": "100Gi"},
        }
    ]


def _home_containers(plan: Plan, namespace: str) -> dict[str, dict[str, Any]]:
    (home,) = [
        r.raw_inputs
        for r in plan.by_type("kubernetes:apps/v1:DaemonSet")
        if r.raw_inputs["metadata"].get("namespace") == namespace and r.raw_inputs["metadata"]["name"] == "home"
    ]
    return {c["name"]: c for c in home["spec"]["template"]["spec"]["containers"]}


@pytest.mark.parametrize(("stack", "cpu", "memory"), [("prod", "16", "64Gi"), ("dev", "4", "8Gi")])
def test_a_login_may_use_a_node_while_holding_back_almost_nothing(
    plans: dict[str, Plan], stack: str, cpu: str, memory: str
) -> None:
    """The home shell's limits are tenancy.home's (a whole prod node's 16 CPUs); its requests,
    held on every node for every engineer, stay an idle sshd's; the quota counts no limit."""
    plan = plans[stack]
    assert plan.resources
    report = check(plan, cluster_settings(stack_file(stack).config))
    assert [str(p) for p in report.problems if p.rule == "quota"] == []
    for login in _logins(stack):
        ns = engineer_namespace(login)
        containers = _home_containers(plan, ns)
        shell = containers["home"]["resources"]
        assert shell["limits"] == {"cpu": cpu, "memory": memory}
        assert shell["requests"] == {"cpu": "25m", "memory": "64Mi"}
        # The Docker daemon builds with the same ceiling.
        assert {c["resources"]["limits"]["cpu"] for c in containers.values()} == {cpu}
        quota = _engineer_quota(plan, ns)
        assert not [k for k in quota["spec"]["hard"] if k.startswith("limits.")]
        (limit_range,) = _in(plan, LIMITS, ns)
        most = limit_range["spec"]["limits"][0]["max"]
        assert most == {
            "cpu": quota["spec"]["hard"]["requests.cpu"],
            "memory": quota["spec"]["hard"]["requests.memory"],
            "ephemeral-storage": "100Gi",
        }


def test_dev_quota_is_smaller_than_prod(plans: dict[str, Plan]) -> None:
    dev = _engineer_quota(plans["dev"], "eng-dev-tester")
    assert dev["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    assert dev["spec"]["hard"]["requests.cpu"] == "4"


@pytest.mark.parametrize(
    ("where", "value", "path", "words"),
    [
        (["akiba:tenancy", "quota", "cpu"], "lots", "akiba:tenancy.quota.cpu", "a CPU quantity"),
        (["akiba:tenancy", "quota", "cpu"], "16Gi", "akiba:tenancy.quota.cpu", "a CPU quantity"),
        (["akiba:tenancy", "quota", "memory"], "64GB", "akiba:tenancy.quota.memory", "a byte quantity"),
        (["akiba:tenancy", "quota", "storage"], "0", "akiba:tenancy.quota.storage", "at least 1Mi"),
        (["akiba:engineers", 0, "quota"], {"memory": "big"}, "akiba:engineers[0].quota.memory", "a byte quantity"),
        (["akiba:engineers", 0, "quota"], {"gpu": 2}, "akiba:engineers[0].quota.gpu", "did you mean 'gpus'"),
        (["akiba:tenancy", "certificateDays"], 3, "akiba:tenancy.certificateDays", "greater than or equal to 8"),
    ],
)
def test_bad_tenancy_config_is_refused_with_its_key(where: list[str | int], value: Any, path: str, words: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        target: Any = cfg
        for part in where[:-1]:
            target = target[part]
        target[where[-1]] = value

    with pytest.raises(ConfigError) as err:
        parse(edited("prod", edit))
    (line,) = [str(p) for p in err.value.problems if p.path == path]
    assert words in line


def test_home_limits_above_the_quota_are_refused() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:tenancy"]["home"] = {"cpu": "32", "memory": "64Gi"}

    with pytest.raises(
        ConfigError, match=r"akiba:tenancy: expected home \(32 cpu, 64Gi\) within quota \(16 cpu, 64Gi\)"
    ):
        parse(edited("prod", edit))


def test_an_engineer_quota_below_the_home_limits_is_refused_at_its_key() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:engineers"][1]["quota"] = {"cpu": "8", "memory": "32Gi"}

    with pytest.raises(ConfigError) as err:
        parse(edited("prod", edit))
    found = {p.path: str(p) for p in err.value.problems}
    assert set(found) == {"akiba:engineers[1].quota.cpu", "akiba:engineers[1].quota.memory"}
    assert "at least 16, the home shell's limit (akiba:tenancy.home.cpu)" in found["akiba:engineers[1].quota.cpu"]
    assert "LimitRange's max" in found["akiba:engineers[1].quota.memory"]


def test_container_defaults_above_the_quota_are_refused() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:tenancy"]["containerDefaults"] = {"cpu": "32", "memory": "1Gi"}

    with pytest.raises(ConfigError, match=r"akiba:tenancy: expected containerDefaults \(32 cpu, 1Gi\) within quota"):
        parse(edited("prod", edit))


# --- the cluster check's quota rule -----------------------------------------------------------


def _quota(namespace: str, **hard: str) -> Any:
    inputs = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "engineer", "namespace": namespace}}
    return cf.resource(QUOTA, f"{namespace}-quota", inputs | {"spec": {"hard": hard}})


def _limit_range(namespace: str, cpu: str, memory: str) -> Any:
    values = {"cpu": cpu, "memory": memory}
    item = {"type": "Container", "default": values, "defaultRequest": values}
    inputs = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "d", "namespace": namespace}}
    return cf.resource(LIMITS, f"{namespace}-limits", inputs | {"spec": {"limits": [item]}})


def _home(namespace: str, cpu: str, memory: str = "1Gi") -> Any:
    resources = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}
    return cf.daemonset("home", namespace, containers=[cf.container("sshd", resources=resources)])


def _quota_rule(*objects: Any) -> list[str]:
    nodes = [cf.machine(f"n{i}", f"10.0.0.{i}", cpus=8) for i in range(1, 4)]
    report = check(cf.plan(*nodes, *cf.node_basics(), *objects), cf.settings())
    return [p.message for p in report.problems if p.rule == "quota"]


def test_quota_rule_fires_when_the_home_pods_do_not_fit() -> None:
    # Three nodes, one home pod each at 2 cpu: 6 cpu in a namespace that may hold 4.
    found = _quota_rule(_home("eng-a", "2"), _quota("eng-a", **{"requests.cpu": "4", "limits.cpu": "8"}))
    (message,) = found
    assert "requests.cpu" in message and "eng-a" in message
    assert "need 6" in message and "allows 4" in message and "DaemonSet eng-a/home: 3 pod(s)" in message


def test_quota_rule_is_quiet_when_they_fit() -> None:
    assert _quota_rule(_home("eng-a", "1"), _quota("eng-a", **{"requests.cpu": "4", "limits.memory": "8Gi"})) == []


def test_quota_rule_counts_the_limit_range_defaults_and_claims() -> None:
    bare = cf.daemonset("home", "eng-b", containers=[cf.container("sshd", resources={})])
    home_claim = cf.claim("home", namespace="eng-b")
    home_claim.raw_inputs["spec"]["resources"]["requests"]["storage"] = "200Gi"
    hard = {"limits.memory": "2Gi", "requests.storage": "100Gi"}
    found = _quota_rule(bare, home_claim, _limit_range("eng-b", "500m", "1Gi"), _quota("eng-b", **hard))
    assert any("limits.memory" in m and "need 3Gi" in m and "allows 2Gi" in m for m in found), found
    assert any("requests.storage" in m and "need 200Gi" in m and "allows 100Gi" in m for m in found), found


def test_quota_rule_refuses_a_pod_without_the_limits_the_quota_tracks() -> None:
    bare = cf.daemonset("home", "eng-c", containers=[cf.container("sshd", resources={})])
    (message,) = _quota_rule(bare, _quota("eng-c", **{"limits.cpu": "4"}))
    assert "must specify limits.cpu" in message


def test_quota_rule_on_a_real_plan_names_the_namespace_and_amounts() -> None:
    """A real stack with a quota too small for a home DaemonSet in the engineer's namespace."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:tenancy"]["quota"]["cpu"] = "1"
        cfg["akiba:tenancy"]["containerDefaults"]["cpu"] = "1"
        cfg["akiba:tenancy"]["home"]["cpu"] = "1"

    sf = edited("dev", edit)
    plan = _plan_of(sf)
    plan.resources.append(_home("eng-dev-tester", "1"))  # one pod per node, two nodes
    report = check(plan, cluster_settings(sf.config))
    found = [p for p in report.problems if p.rule == "quota"]
    assert any(
        p.subject == "ResourceQuota eng-dev-tester/engineer"
        and "requests.cpu" in p.message
        and "need 2" in p.message
        and "allows 1" in p.message
        for p in found
    ), found


def test_quota_rule_fires_when_the_real_home_pods_request_more_than_the_quota() -> None:
    """The real dev plan, its quota's memory below what its own home DaemonSet requests (an idle
    sshd and Docker daemon, 192Mi a pod, one pod on each of the two nodes): the rule fails.
    The home shell's 256Mi limit, on each of them, would fit: limits are not counted."""

    def edit(cfg: dict[str, Any]) -> None:
        tenancy = cfg["akiba:tenancy"]
        tenancy["quota"]["memory"] = "256Mi"
        tenancy["containerDefaults"]["memory"] = "128Mi"
        tenancy["home"]["memory"] = "256Mi"

    sf = edited("dev", edit)
    plan = _plan_of(sf)
    report = check(plan, cluster_settings(sf.config))
    found = [p for p in report.problems if p.rule == "quota"]
    assert any(
        p.subject == "ResourceQuota eng-dev-tester/engineer"
        and p.message.startswith("requests.memory:")
        and "allows 256Mi" in p.message
        and "DaemonSet eng-dev-tester/home: 2 pod(s)" in p.message
        for p in found
    ), found


def _limit_range_max(namespace: str, cpu: str, memory: str) -> Any:
    item = {"type": "Container", "default": {"cpu": "1", "memory": "1Gi"}, "max": {"cpu": cpu, "memory": memory}}
    inputs = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "d", "namespace": namespace}}
    return cf.resource(LIMITS, f"{namespace}-limits", inputs | {"spec": {"limits": [item]}})


def test_quota_rule_refuses_a_container_above_the_limit_range_max() -> None:
    # Limits are not in the quota, so 3 pods x 8 cpu of limits are fine; 8 cpu above a max of 4 is not.
    big = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "8", "memory": "1Gi"}}
    home = cf.daemonset("home", "eng-d", containers=[cf.container("sshd", resources=big)])
    hard = {"requests.cpu": "4", "requests.memory": "4Gi"}
    (message,) = _quota_rule(home, _limit_range_max("eng-d", "4", "8Gi"), _quota("eng-d", **hard))
    assert "container sshd limits 8 cpu, above the LimitRange's max of 4 per container" in message
    assert _quota_rule(home, _limit_range_max("eng-d", "8", "8Gi"), _quota("eng-d", **hard)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_quota_rule_is_quiet_on_the_stack_files(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    report = check(plan, cluster_settings(stack_file(stack).config))
    assert [str(p) for p in report.problems if p.rule == "quota"] == []
    # ... and it did look: every engineer namespace has its quota, and whatever the plan puts
    # there (home pods, claims, the ssh Service) is counted against it.
    assert {q.raw_inputs["metadata"]["namespace"] for q in plan.by_type(QUOTA)} >= {f"eng-{x}" for x in _logins(stack)}
    assert quota_problems(plan, report.placements) == []


CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
CEPHFS_CLAIMS = "akiba-cephfs.storageclass.storage.k8s.io/persistentvolumeclaims"
RBD_CLAIMS = "akiba-rbd.storageclass.storage.k8s.io/persistentvolumeclaims"


@pytest.mark.parametrize("stack", STACKS)
def test_an_engineer_holds_no_retained_claim_but_their_home(plans: dict[str, Plan], stack: str) -> None:
    """The Retain classes outlive a deleted claim; an engineer's quota admits their home only."""
    plan = plans[stack]
    for login in _logins(stack):
        ns = engineer_namespace(login)
        hard = _engineer_quota(plan, ns)["spec"]["hard"]
        assert hard[CEPHFS_CLAIMS] == "1" and hard[RBD_CLAIMS] == "0"
        assert hard["count/volumesnapshots.snapshot.storage.k8s.io"] == "20"
        claims = {c["metadata"]["name"]: c["spec"]["storageClassName"] for c in _in(plan, CLAIM, ns)}
        assert claims == {"home": "akiba-cephfs"}
    # The personal databases' claims (RBD, Retain in prod) live in the platform's namespace.
    db_claims = [r.raw_inputs for r in plan.by_type(CLAIM) if r.raw_inputs["metadata"].get("namespace") == "akiba-db"]
    assert db_claims and all(c["spec"]["storageClassName"] == "akiba-rbd" for c in db_claims)


def _cephfs_quota(namespace: str, claims: str) -> Any:
    return _quota(namespace, **{CEPHFS_CLAIMS: claims, RBD_CLAIMS: "0"})


def test_quota_rule_fires_when_the_home_claim_exceeds_its_class_quota() -> None:
    home_claim = cf.claim("home", "ReadWriteMany", namespace="eng-e", storage_class="akiba-cephfs")
    (message,) = _quota_rule(home_claim, _cephfs_quota("eng-e", "0"))
    assert CEPHFS_CLAIMS in message and "PersistentVolumeClaim eng-e/home" in message and "allows 0" in message
    assert _quota_rule(home_claim, _cephfs_quota("eng-e", "1")) == []


def test_quota_rule_gives_a_claim_without_a_class_the_default_one() -> None:
    default = cf.resource(
        "kubernetes:storage.k8s.io/v1:StorageClass",
        "akiba-rbd",
        {"metadata": {"name": "akiba-rbd", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}},
    )
    bare = cf.claim("scratch", namespace="eng-f")
    (message,) = _quota_rule(default, bare, _cephfs_quota("eng-f", "1"))
    assert RBD_CLAIMS in message and "PersistentVolumeClaim eng-f/scratch" in message
    scratch = cf.claim("scratch", namespace="eng-f", storage_class="akiba-rbd-scratch")
    assert _quota_rule(default, scratch, _cephfs_quota("eng-f", "1")) == []


def _bytes(text: str) -> int:
    return int(quantity.parse(text))


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_has_a_disk_limit_and_the_home_pod_holds_dockers_state(
    plans: dict[str, Plan], stack: str
) -> None:
    """The kubelet evicts a pod whose disk use (layers, logs, emptyDirs on disk) passes the sum of
    its containers' ephemeral-storage limits: the home pod's must exceed Docker's state emptyDir,
    or the engineer's session would be evicted before Docker's own size limit bites."""
    plan = plans[stack]
    for login in _logins(stack):
        ns = engineer_namespace(login)
        (limit_range,) = _in(plan, LIMITS, ns)
        (item,) = limit_range["spec"]["limits"]
        assert item["default"]["ephemeral-storage"] == "60Gi" and item["max"]["ephemeral-storage"] == "100Gi"
        assert item["defaultRequest"]["ephemeral-storage"] == "1Gi"
        assert _engineer_quota(plan, ns)["spec"]["hard"]["requests.ephemeral-storage"] == "200Gi"
        (home,) = [d for d in _in(plan, "kubernetes:apps/v1:DaemonSet", ns) if d["metadata"]["name"] == "home"]
        pod = home["spec"]["template"]["spec"]
        limit = sum(
            _bytes(
                ((c.get("resources") or {}).get("limits") or {}).get(
                    "ephemeral-storage", item["default"]["ephemeral-storage"]
                )
            )
            for c in pod["containers"]
        )
        on_disk = sum(
            _bytes(v["emptyDir"]["sizeLimit"])
            for v in pod["volumes"]
            if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory"
        )
        assert on_disk == _bytes("100Gi")  # Docker's state
        assert limit - on_disk >= _bytes("20Gi"), (limit, on_disk)


def _disk_limit_range(namespace: str) -> Any:
    item = {
        "type": "Container",
        "default": {"ephemeral-storage": "60Gi"},
        "defaultRequest": {"ephemeral-storage": "1Gi"},
        "max": {"ephemeral-storage": "100Gi"},
    }
    inputs = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "d", "namespace": namespace}}
    return cf.resource(LIMITS, f"{namespace}-limits", inputs | {"spec": {"limits": [item]}})


def test_quota_rule_counts_the_default_disk_requests_of_the_home_pods() -> None:
    # Three nodes, a home pod each with two containers stating no disk: 1Gi each by default.
    containers = [cf.container("sshd", resources={}), cf.container("docker", resources={})]
    home = cf.daemonset("home", "eng-g", containers=containers)
    (message,) = _quota_rule(home, _disk_limit_range("eng-g"), _quota("eng-g", **{"requests.ephemeral-storage": "4Gi"}))
    assert "requests.ephemeral-storage" in message and "need 6Gi" in message and "allows 4Gi" in message
    assert _quota_rule(home, _disk_limit_range("eng-g"), _quota("eng-g", **{"requests.ephemeral-storage": "6Gi"})) == []


def test_quota_rule_refuses_a_container_above_the_disk_max() -> None:
    big = {"limits": {"ephemeral-storage": "200Gi"}}
    home = cf.daemonset("home", "eng-h", containers=[cf.container("docker", resources=big)])
    found = _quota_rule(home, _disk_limit_range("eng-h"), _quota("eng-h", **{"requests.ephemeral-storage": "1Ti"}))
    # The limit, and the request the API server copies from it.
    assert any("limits 200Gi ephemeral-storage, above the LimitRange's max of 100Gi" in m for m in found), found
    assert any("requests 200Gi ephemeral-storage" in m for m in found), found


def test_container_disk_default_above_the_max_is_refused() -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["akiba:tenancy"]["containerDefaults"] = {"cpu": "1", "memory": "1Gi", "ephemeralStorage": "200Gi"}

    with pytest.raises(
        ConfigError, match=r"akiba:tenancy: expected containerDefaults.ephemeralStorage \(200Gi\) within 100Gi"
    ):
        parse(edited("prod", edit))
