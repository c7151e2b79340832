"""Replacement rules, family by family: a change that the provider replaces is a replacement
(with the inputs that force it), one it updates in place is an update. Each case fires or stays
quiet on one input, the way `pulumi preview` would decide it."""

from __future__ import annotations

from typing import Any

import pytest

from components.machines.libvirt_domain import KIND as DOMAIN_KIND
from components.machines.libvirt_domain import DomainProvider
from components.machines.rbd_image import KIND as RBD_KIND
from components.machines.rbd_image import RbdImageProvider
from tools.plan.replacement import engine
from tools.plan.replacement.critical import category
from tools.plan.replacement.engine import Options, Resource, Step
from tools.plan.replacement.paths import parse, render

SECRET_A = "[secret:aaaa]"
SECRET_B = "[secret:bbbb]"


def resource(typ: str, inputs: dict[str, Any], name: str = "r", **kw: Any) -> Resource:
    return Resource(urn=f"urn:pulumi:t::akiba::{typ}::{name}", type=typ, name=name, inputs=inputs, **kw)


def diff(typ: str, old: dict[str, Any], new: dict[str, Any], **kw: Any) -> Step | None:
    """The step for one resource going from `old` to `new` inputs (options etc. on the new side)."""
    before = resource(typ, old, **{k: v for k, v in kw.items() if k in ("protect", "retain_on_delete")})
    return engine.step(before, resource(typ, new, **kw), {}, {})


def forcing(s: Step | None) -> list[str]:
    assert s is not None and s.action == "replace", s
    return [render(p) for p in s.forcing]


def updates(s: Step | None) -> list[str]:
    assert s is not None and s.action == "update", s
    return [render(p) for p in s.changed]


# --- tls, random (bridged plugin-framework providers) -------------------------------------------

KEY = "tls:index/privateKey:PrivateKey"
CERT = "tls:index/selfSignedCert:SelfSignedCert"


def test_tls_key_algorithm_change_replaces_creating_first() -> None:
    s = diff(KEY, {"algorithm": "RSA", "rsaBits": 2048}, {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    assert forcing(s) == ["algorithm", "ecdsaCurve", "rsaBits"]
    assert s is not None and not s.delete_before_replace
    assert "hashicorp/terraform-provider-tls" in s.sources[0]


def test_tls_certificate_early_renewal_updates_but_subject_replaces() -> None:
    cert = {"subject": {"commonName": "akiba-ca"}, "earlyRenewalHours": 0, "privateKeyPem": SECRET_A}
    assert updates(diff(CERT, cert, {**cert, "earlyRenewalHours": 720})) == ["earlyRenewalHours"]
    assert forcing(diff(CERT, cert, {**cert, "subject": {"commonName": "akiba2-ca"}})) == ["subject.commonName"]
    # A new key under the certificate (a secret input, compared by digest) replaces it too.
    s = diff(CERT, cert, {**cert, "privateKeyPem": SECRET_B})
    assert forcing(s) == ["privateKeyPem"] and s is not None and s.keys(s.forcing) == ["privateKeyPem (secret)"]


def test_random_password_length_replaces_unchanged_is_quiet() -> None:
    typ = "random:index/randomPassword:RandomPassword"
    assert forcing(diff(typ, {"length": 32}, {"length": 40})) == ["length"]
    assert diff(typ, {"length": 32}, {"length": 32}) is None


# --- MAAS (pulumi-maas 1.0.3 bridging terraform-provider-maas 1.2.0) ------------------------------

INSTANCE = "maas:index/instance:Instance"


def test_maas_instance_user_data_change_reinstalls_deleting_first() -> None:
    old = {"allocateParams": {"hostname": "akiba01"}, "deployParams": {"userData": SECRET_A}}
    new = {"allocateParams": {"hostname": "akiba01"}, "deployParams": {"userData": SECRET_B}}
    # No Update in the provider: every input forces a new deployment. The provider alone would
    # create first, which MAAS cannot do for the same machine: the diff says so.
    alone = diff(INSTANCE, old, new)
    assert forcing(alone) == ["deployParams.userData"] and alone is not None and not alone.delete_before_replace
    assert any("create-before-delete fails" in n for n in alone.notes)
    # The program's deleteBeforeReplace option decides it: release first, then deploy again.
    s = diff(INSTANCE, old, new, options=Options(delete_before_replace=True))
    assert s is not None and s.delete_before_replace and forcing(s) == ["deployParams.userData"]
    assert not s.notes


def test_maas_machine_updates_in_place() -> None:
    typ = "maas:index/machine:Machine"
    old = {"pxeMacAddress": "d0:50:99:a1:03:01", "powerType": "ipmi", "powerParameters": SECRET_A}
    new = {**old, "pxeMacAddress": "d0:50:99:a1:03:99", "powerParameters": SECRET_B}
    assert updates(diff(typ, old, new)) == ["powerParameters", "pxeMacAddress"]


# --- AWS (pulumi-aws 7 bridging terraform-provider-aws) ---------------------------------------------


def test_ec2_instance_subnet_replaces_tags_update() -> None:
    typ = "aws:ec2/instance:Instance"
    old = {"subnetId": "a", "tags": {"Name": "gw"}, "launchTemplate": {"id": "lt", "version": "$Latest"}}
    assert forcing(diff(typ, old, {**old, "subnetId": "b"})) == ["subnetId"]
    assert updates(diff(typ, old, {**old, "tags": {"Name": "gw2"}})) == ["tags.Name"]
    assert forcing(diff(typ, old, {**old, "launchTemplate": {"id": "lt2", "version": "$Latest"}})) == [
        "launchTemplate.id"
    ]


def test_ec2_instance_on_latest_template_version_is_replaced_when_its_template_updates() -> None:
    typ = "aws:ec2/instance:Instance"
    inputs = {"subnetId": "a", "launchTemplate": {"id": "lt-id", "version": "$Latest"}}
    template = "urn:pulumi:t::akiba::aws:ec2/launchTemplate:LaunchTemplate::gw"
    new = resource(typ, inputs, dependencies=(template,))
    s = engine.step(resource(typ, inputs), new, {template: "update"}, {})
    assert forcing(s) == ["launchTemplate.version"]
    assert engine.step(resource(typ, inputs), new, {}, {}) is None  # the template unchanged: quiet


def test_launch_template_change_is_a_new_version_vpc_cidr_replaces() -> None:
    lt = "aws:ec2/launchTemplate:LaunchTemplate"
    s = diff(lt, {"userData": SECRET_A, "instanceType": "t3.micro"}, {"userData": SECRET_B, "instanceType": "t3.small"})
    assert updates(s) == ["instanceType", "userData"] and s is not None
    assert any("new template version" in n for n in s.notes)
    vpc = "aws:ec2/vpc:Vpc"
    assert forcing(diff(vpc, {"cidrBlock": "10.60.0.0/16"}, {"cidrBlock": "10.61.0.0/16"})) == ["cidrBlock"]
    assert updates(diff(vpc, {"enableDnsHostnames": True}, {"enableDnsHostnames": False})) == ["enableDnsHostnames"]
    subnet = "aws:ec2/subnet:Subnet"
    assert forcing(diff(subnet, {"availabilityZone": "a"}, {"availabilityZone": "c"})) == ["availabilityZone"]


def test_explicitly_named_aws_resource_is_deleted_before_its_replacement() -> None:
    sg = "aws:ec2/securityGroup:SecurityGroup"
    s = diff(sg, {"name": "akiba-burst", "vpcId": "a"}, {"name": "akiba-burst", "vpcId": "b"})
    assert forcing(s) == ["vpcId"] and s is not None and s.delete_before_replace
    # An IAM user is renamed in place (UpdateUser).
    user = "aws:iam/user:User"
    assert updates(diff(user, {"name": "a"}, {"name": "b"})) == ["name"]


def test_ssm_parameter_value_updates_its_name_replaces_deleting_first() -> None:
    """The burst join token's parameter: a rotated token is a new version of the same parameter;
    a new name is a new parameter, the old one deleted first (the name is set explicitly)."""
    typ = "aws:ssm/parameter:Parameter"
    old = {"name": "/akiba/burst/join-token", "type": "SecureString", "value": SECRET_A, "tags": {"Name": "b"}}
    s = diff(typ, old, {**old, "value": SECRET_B, "description": "kubeadm join token"})
    assert updates(s) == ["description", "value"]
    s = diff(typ, old, {**old, "name": "/akiba2/burst/join-token"})
    assert forcing(s) == ["name"] and s is not None and s.delete_before_replace
    assert any("terraform-provider-aws" in src and "internal/service/ssm/parameter.go" in src for src in s.sources)
    assert forcing(diff(typ, old, {**old, "dataType": "aws:ec2:image"})) == ["dataType"]
    # The tier only goes up in place: AWS refuses Advanced -> Standard, so the provider replaces.
    assert updates(diff(typ, {**old, "tier": "Standard"}, {**old, "tier": "Advanced"})) == ["tier"]
    assert forcing(diff(typ, {**old, "tier": "Advanced"}, {**old, "tier": "Standard"})) == ["tier"]


def test_ignore_changes_hides_the_autoscaler_desired_capacity() -> None:
    asg = "aws:autoscaling/group:Group"
    old, new = {"desiredCapacity": 0, "maxSize": 1}, {"desiredCapacity": 3, "maxSize": 1}
    assert updates(diff(asg, old, new)) == ["desiredCapacity"]
    assert diff(asg, old, new, options=Options(ignore_changes=("desiredCapacity",))) is None


# --- Kubernetes (pulumi-kubernetes 4) ---------------------------------------------------------------

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"


def deployment(image: str = "app:1", app: str = "app") -> dict[str, Any]:
    return {
        "metadata": {"name": "app", "namespace": "apps"},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "a", "image": image}]}},
        },
    }


def test_deployment_selector_replaces_deleting_first_image_updates() -> None:
    s = diff(DEPLOYMENT, deployment(), deployment(app="app2"))
    assert forcing(s) == ["spec.selector.matchLabels.app"]
    assert s is not None and s.delete_before_replace  # explicit metadata.name: the new one needs it
    assert updates(diff(DEPLOYMENT, deployment(), deployment(image="app:2"))) == [
        "spec.template.spec.containers[0].image"
    ]


def pvc(storage: str = "10Gi", storage_class: str = "akiba-rbd") -> dict[str, Any]:
    return {
        "metadata": {"name": "data", "namespace": "db"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": storage}},
        },
    }


def test_pvc_storage_request_grows_in_place_storage_class_replaces() -> None:
    assert updates(diff(PVC, pvc(), pvc(storage="20Gi"))) == ["spec.resources.requests.storage"]
    s = diff(PVC, pvc(), pvc(storage_class="akiba-cephfs"))
    assert forcing(s) == ["spec.storageClassName"] and s is not None and s.delete_before_replace


def test_statefulset_claim_templates_and_job_template_replace() -> None:
    sts = "kubernetes:apps/v1:StatefulSet"
    old = {"metadata": {"name": "db"}, "spec": {"serviceName": "db", "volumeClaimTemplates": [{"x": 1}]}}
    new = {"metadata": {"name": "db"}, "spec": {"serviceName": "db", "volumeClaimTemplates": [{"x": 2}]}}
    assert forcing(diff(sts, old, new)) == ["spec.volumeClaimTemplates[0].x"]
    job = "kubernetes:batch/v1:Job"
    old_job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}}
    new_job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"image": "b"}]}}}}
    assert forcing(diff(job, old_job, new_job)) == ["spec.template.spec.containers[0].image"]
    cron = "kubernetes:batch/v1:CronJob"  # not in the table: a CronJob's template updates in place
    assert updates(diff(cron, {"spec": {"schedule": "0 2 * * *"}}, {"spec": {"schedule": "0 3 * * *"}}))


def test_secret_data_replaces_unless_the_provider_makes_secrets_mutable() -> None:
    secret = "kubernetes:core/v1:Secret"
    old = {"metadata": {"name": "s", "namespace": "n"}, "stringData": SECRET_A}
    new = {"metadata": {"name": "s", "namespace": "n"}, "stringData": SECRET_B}
    assert forcing(diff(secret, old, new)) == ["stringData"]
    mutable = diff(secret, old, new, provider_inputs={"enableSecretMutable": "true"})
    assert updates(mutable) == ["stringData"]
    config_map = "kubernetes:core/v1:ConfigMap"
    assert forcing(diff(config_map, {"data": {"a": "1"}}, {"data": {"a": "2"}})) == ["data.a"]


def test_service_cluster_ip_replaces_ports_update_custom_resources_update() -> None:
    svc = "kubernetes:core/v1:Service"
    assert forcing(diff(svc, {"spec": {"clusterIP": "10.96.0.10"}}, {"spec": {"clusterIP": "10.96.0.11"}}))
    assert updates(diff(svc, {"spec": {"ports": [{"port": 80}]}}, {"spec": {"ports": [{"port": 8080}]}}))
    ceph = "kubernetes:ceph.rook.io/v1:CephCluster"
    old = {"metadata": {"name": "rook-ceph"}, "spec": {"storage": {"nodes": [{"name": "a"}]}}}
    new = {"metadata": {"name": "rook-ceph"}, "spec": {"storage": {"nodes": [{"name": "a"}, {"name": "b"}]}}}
    assert updates(diff(ceph, old, new)) == ["spec.storage.nodes[1]"]
    assert forcing(diff(ceph, old, {**old, "metadata": {"name": "ceph"}})) == ["metadata.name"]


def test_helm_release_version_updates_name_replaces() -> None:
    release = "kubernetes:helm.sh/v3:Release"
    old = {"name": "traefik", "namespace": "traefik", "version": "37.0.0"}
    assert updates(diff(release, old, {**old, "version": "37.1.0"})) == ["version"]
    assert forcing(diff(release, old, {**old, "name": "ingress"})) == ["name"]


def test_kubernetes_provider_is_replaced_by_a_new_kubeconfig_unless_its_cluster_identifier_holds() -> None:
    typ = "pulumi:providers:kubernetes"
    assert forcing(diff(typ, {"kubeconfig": SECRET_A}, {"kubeconfig": SECRET_B})) == ["kubeconfig"]
    same_id = {"kubeconfig": SECRET_A, "clusterIdentifier": "akiba"}
    assert updates(diff(typ, same_id, {**same_id, "kubeconfig": SECRET_B})) == ["kubeconfig"]


def test_a_replaced_provider_replaces_what_it_manages() -> None:
    provider = "urn:pulumi:t::akiba::pulumi:providers:kubernetes::k"
    ns = resource("kubernetes:core/v1:Namespace", {"metadata": {"name": "a"}}, provider=provider)
    s = engine.step(ns, ns, {}, {provider: "provider:kubernetes:k"})
    assert forcing(s) == ["provider"] and s is not None and s.caused_by == ["provider:kubernetes:k"]


# --- pulumi-command, pulumi-docker-build ------------------------------------------------------------

COMMAND = "command:remote:Command"


def test_command_triggers_replace_other_inputs_update() -> None:
    old = {"create": "converge v1", "triggers": ["a"], "connection": SECRET_A}
    assert forcing(diff(COMMAND, old, {**old, "triggers": ["b"]})) == ["triggers[0]"]
    assert updates(diff(COMMAND, old, {**old, "create": "converge v2"})) == ["create"]
    # The SDK's own replace_on_changes=["triggers[*]"] agrees with the provider.
    s = diff(COMMAND, old, {**old, "triggers": ["a", "c"]}, options=Options(replace_on_changes=("triggers[*]",)))
    assert forcing(s) == ["triggers[1]"]


def test_docker_build_image_rebuilds_in_place() -> None:
    image = "docker-build:index:Image"
    assert updates(diff(image, {"tags": ["r/a:1"]}, {"tags": ["r/a:2"]})) == ["tags[0]"]


# --- the program's dynamic providers: their own diff ----------------------------------------------

DYNAMIC = "pulumi-python:dynamic:Resource"


def rbd(**changes: Any) -> dict[str, Any]:
    return {
        "kind": RBD_KIND,
        "pool": "vm-disks",
        "image": "vm01-boot",
        "sizeBytes": 40 << 30,
        "monHost": "10.0.0.1:6789",
        "user": "libvirt",
        "key": SECRET_A,
        "cloneFrom": None,
    } | changes


def test_rbd_image_pool_change_replaces_a_disk() -> None:
    s = diff(DYNAMIC, rbd(), rbd(pool="vm-disks2"), dynamic_provider=RbdImageProvider())
    assert forcing(s) == ["pool"] and s is not None and s.resource.category == "disk"


def test_rbd_image_grows_and_follows_new_monitors_in_place() -> None:
    provider = RbdImageProvider()
    assert updates(diff(DYNAMIC, rbd(), rbd(sizeBytes=50 << 30), dynamic_provider=provider)) == ["sizeBytes"]
    # Adding a Ceph node adds a monitor: the image's identity is cluster, pool and name.
    assert updates(diff(DYNAMIC, rbd(), rbd(monHost="10.0.0.1:6789,10.0.0.2:6789"), dynamic_provider=provider))


def test_libvirt_domain_xml_updates_name_replaces() -> None:
    old = {"kind": DOMAIN_KIND, "uri": "qemu:///system", "name": "vm01", "providerXml": "<a/>", "xslt": "<x/>"}
    provider = DomainProvider()
    assert updates(diff(DYNAMIC, old, {**old, "xslt": "<y/>"}, dynamic_provider=provider)) == ["xslt"]
    assert forcing(diff(DYNAMIC, old, {**old, "name": "vm02"}, dynamic_provider=provider)) == ["name"]


# --- the engine's own layer ------------------------------------------------------------------------


def test_replace_on_changes_option_turns_an_update_into_a_replacement() -> None:
    typ = "kubernetes:core/v1:ConfigMap"
    old = {"metadata": {"name": "c"}, "immutable": False, "binaryData": None}
    new = {**old, "metadata": {"name": "c", "labels": {"a": "b"}}}
    assert updates(diff(typ, old, new)) == ["metadata.labels"]
    assert forcing(diff(typ, old, new, options=Options(replace_on_changes=("metadata.labels",)))) == ["metadata.labels"]


def test_protected_resource_cannot_be_replaced() -> None:
    s = diff(PVC, pvc(), pvc(storage_class="x"), protect=True)
    assert s is not None and s.action == "replace" and "protected" in s.engine_error


@pytest.mark.parametrize(
    ("typ", "inputs", "expected"),
    [
        ("maas:index/instance:Instance", {}, "machine"),
        ("aws:ec2/instance:Instance", {}, "machine"),
        (DYNAMIC, {"kind": RBD_KIND}, "disk"),
        (DYNAMIC, {"kind": DOMAIN_KIND}, "machine"),
        ("kubernetes:core/v1:PersistentVolumeClaim", {}, "volume"),
        ("kubernetes:ceph.rook.io/v1:CephCluster", {}, "volume"),
        ("tls:index/privateKey:PrivateKey", {}, "identity"),
        ("random:index/randomBytes:RandomBytes", {}, "identity"),
        ("random:index/randomPassword:RandomPassword", {}, None),
        ("tls:index/locallySignedCert:LocallySignedCert", {"isCaCertificate": True}, "identity"),
        ("tls:index/locallySignedCert:LocallySignedCert", {}, None),
        ("kubernetes:apps/v1:Deployment", {}, None),
        (DYNAMIC, {}, None),
    ],
)
def test_what_the_gate_counts_as_stateful_or_critical(typ: str, inputs: dict[str, Any], expected: str | None) -> None:
    assert category(typ, inputs) == expected


@pytest.mark.parametrize(
    "text", ["spec.template.spec.containers[0].image", 'metadata.annotations["pulumi.com/x"]', "triggers[*]"]
)
def test_property_paths_round_trip(text: str) -> None:
    assert render(parse(text)) == text


def test_an_aliased_move_is_the_same_resource_not_a_delete_and_create() -> None:
    typ = "random:index/randomPassword:RandomPassword"
    old = resource(typ, {"length": 32}, name="push")
    moved = Resource(
        urn="urn:pulumi:t::akiba::akiba:registry:RegistryCredentials$" + typ + "::push",
        type=typ,
        name="push",
        inputs={"length": 32},
        aliases=frozenset({old.urn}),
    )
    assert engine.compare({old.urn: old}, {moved.urn: moved}) == {}
    unaliased = Resource(urn=moved.urn, type=typ, name="push", inputs={"length": 32})
    steps = engine.compare({old.urn: old}, {moved.urn: unaliased})
    assert sorted(s.action for s in steps.values()) == ["create", "delete"]
