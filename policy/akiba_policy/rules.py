"""The rules. Each is a pure function of one planned resource (and, for `stack` rules, what the
plan says about its namespace or security group); `RULES` lists them with their enforcement
level. Mandatory rules stop a plan or a preview; advisory ones only warn. The rules on
networks, pods, images, credentials, RBAC and reviewed types live in their own modules."""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .context import PlanContext
from .credentials import no_credentials_in_plain_config
from .images import pinned_versions
from .k8s import containers as pod_containers
from .k8s import get as _get
from .k8s import kind as k8s_kind
from .k8s import pod_spec
from .model import Level, PlannedResource, PolicyConfig, walk
from .networks import no_open_ingress
from .pods import no_host_access, no_privileged_containers
from .rbac import rbac_least_privilege, rbac_no_cluster_admin
from .reviewed import reviewed_types

__all__ = ["RULES", "PolicyConfig", "Rule", "secret_looking"]

SECRET_WORDS = {"password", "pass", "secret", "token", "kubeconfig"}  # not "passwd": /etc/passwd holds none
NOT_THE_VALUE = {"algorithm", "type", "file", "path", "name", "ref", "id", "length", "size"}
SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key")}
# What holds data: deleting one of these by mistake loses it.
STATEFUL_K8S_KINDS = {
    "PersistentVolumeClaim",
    "PersistentVolume",
    "CephCluster",
    "CephBlockPool",
    "CephFilesystem",
    "CephFilesystemSubVolumeGroup",
    "CephObjectStore",
    "CephNFS",
}
STATEFUL_TYPES = {"aws:ebs/volume:Volume", "aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"}
GPU_LABEL = "nvidia.com/gpu.present=true"
GPU_TAINT_KEY = "nvidia.com/gpu"
# libyaml's safe loader where PyYAML has it: user-data parsing was most of the gate's time.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


Check = Callable[[PlannedResource, PolicyConfig, PlanContext], Iterable[str]]


@dataclass(frozen=True)
class Rule:
    name: str
    level: Level
    description: str
    check: Check = field(repr=False)
    # Reads other resources of the plan (its Namespaces, a security group's other rules): a
    # StackValidationPolicy in the pack, which the engine gives every resource at once.
    stack: bool = False


def secret_looking(key: str) -> bool:
    """`adminPassword`, `api_key`, `secretAccessKey`, `caPrivateKeyPem` are; `envFromSecret`,
    `tokenFile`, `secretName`, `existingSecret` are not (they name or point at a secret)."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)]
    if not words or words[-1] in NOT_THE_VALUE:
        return False
    if words[-1] in SECRET_WORDS:
        return len(words) < 2 or words[-2] not in ("from", "ref", "existing")  # envFromSecret names one
    return any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


def _from_launch_template(res: PlannedResource, setting: str) -> bool:
    """An instance that takes a setting from its launch template (checked there)."""
    return res.props.get("launchTemplate") is not None and res.props.get(setting) is None


def encrypted_volumes(res: PlannedResource, _: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    if res.type == "aws:ec2/launchTemplate:LaunchTemplate":
        for i, mapping in enumerate(res.props.get("blockDeviceMappings") or []):
            ebs = mapping.get("ebs") or {}
            if ebs and str(ebs.get("encrypted")).lower() != "true":
                yield f"blockDeviceMappings[{i}].ebs is not encrypted"
    elif res.type == "aws:ebs/volume:Volume" and not res.props.get("encrypted"):
        yield "EBS volume is not encrypted"
    elif (
        res.type == "aws:ec2/instance:Instance"
        and not _from_launch_template(res, "rootBlockDevice")
        and not _get(res.props, "rootBlockDevice", "encrypted")
    ):
        yield "root block device is not encrypted"


def imdsv2_required(res: PlannedResource, _: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    instance_like = res.type == "aws:ec2/launchTemplate:LaunchTemplate" or (
        res.type == "aws:ec2/instance:Instance" and not _from_launch_template(res, "metadataOptions")
    )
    if instance_like and _get(res.props, "metadataOptions", "httpTokens") != "required":
        yield "metadataOptions.httpTokens must be 'required' (IMDSv2 only)"


def spot_group_max_size(res: PlannedResource, config: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    if res.type == "aws:autoscaling/group:Group" and not isinstance(res.props.get("maxSize"), int | float):
        yield "auto-scaling group without maxSize: spot capacity would be unbounded"


def burst_size(res: PlannedResource, config: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    size = res.props.get("maxSize") if res.type == "aws:autoscaling/group:Group" else None
    if isinstance(size, int | float) and size > config.max_burst_size:
        yield f"maxSize {int(size)} is above {config.max_burst_size}: check the budget"


def no_plaintext_secrets(res: PlannedResource, _: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    if res.secret_paths is None:
        return  # the engine did not say which inputs are secret (the policy SDK unwraps them)

    def secret(path: str) -> bool:
        return any(path == s or path.startswith((f"{s}.", f"{s}[")) for s in res.secret_paths or ())

    for path, value in walk(res.props):
        key = re.split(r"[.\[]", path)[-1]
        if isinstance(value, str) and value and secret_looking(key) and not secret(path):
            yield f"input {path} looks like a secret but is not a Pulumi secret"
    if k8s_kind(res) == "Secret":
        for key in ("data", "stringData"):
            if res.props.get(key) and not secret(key):
                yield f"Secret {key} is not a Pulumi secret"


def stateful_protected(res: PlannedResource, config: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    stateful = (
        res.type in STATEFUL_TYPES
        or k8s_kind(res) in STATEFUL_K8S_KINDS
        or (res.type == "pulumi-python:dynamic:Resource" and res.props.get("kind") == "rbd-image")
    )
    if stateful and res.stack in config.protected_stacks and not res.protect:
        yield f"holds data in stack {res.stack!r} but is not protect=True"


def resource_limits(res: PlannedResource, _: PolicyConfig, __: PlanContext) -> Iterator[str]:
    for c in pod_containers(pod_spec(res), ("initContainers", "containers")):
        limits = _get(c, "resources", "limits") or {}
        missing = [k for k in ("cpu", "memory") if k not in limits]
        if missing:
            yield f"container {c.get('name')!r} has no {' and '.join(missing)} limit"


def burst_gpu_taint(res: PlannedResource, _: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    """A spot GPU node without the taint takes any pending pod, so paid capacity starts (and
    keeps running) for pods that need no GPU. Office nodes carry no taint on purpose: all of them
    have GPUs, which the nvidia.com/gpu resource already guards."""
    if res.type != "aws:ec2/launchTemplate:LaunchTemplate":
        return
    encoded = res.props.get("userData")
    if not isinstance(encoded, str):
        return  # unknown during a preview
    try:
        user_data = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return
    for reg in _node_registrations(user_data):
        labels = next(
            (a.get("value", "") for a in reg.get("kubeletExtraArgs", []) if a.get("name") == "node-labels"), ""
        )
        if GPU_LABEL in labels.split(","):
            taints = reg.get("taints") or []
            if not any(t.get("key") == GPU_TAINT_KEY and t.get("effect") == "NoSchedule" for t in taints):
                yield f"burst GPU node {reg.get('name')!r} joins without the {GPU_TAINT_KEY}:NoSchedule taint"


def _node_registrations(user_data: str) -> Iterator[Mapping[str, Any]]:
    try:
        doc = yaml.load(user_data, Loader=YAML_LOADER)  # noqa: S506 (CSafeLoader or SafeLoader)
    except yaml.YAMLError:
        return
    for f in (doc or {}).get("write_files") or []:
        if f.get("path") == "/etc/kubernetes/kubeadm.yaml":
            for part in yaml.load_all(f.get("content") or "", Loader=YAML_LOADER):
                reg = (part or {}).get("nodeRegistration")
                if isinstance(reg, Mapping):
                    yield reg


def namespace_pod_security(res: PlannedResource, _: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    if k8s_kind(res) == "Namespace":
        labels = _get(res.props, "metadata", "labels") or {}
        if "pod-security.kubernetes.io/enforce" not in labels:
            yield "namespace without an enforced Pod Security level"


def platform_labels(res: PlannedResource, _: PolicyConfig, ___: PlanContext) -> Iterator[str]:
    if k8s_kind(res) and _get(res.props, "metadata", "labels", "app.kubernetes.io/part-of") != "akiba":
        yield "Kubernetes object without app.kubernetes.io/part-of=akiba"


RULES: tuple[Rule, ...] = (
    Rule(
        "no-open-ingress",
        "mandatory",
        "Ingress is not the internet in any spelling: a security group admits at most a /24 (IPv6 /56) of "
        "public space over all its rules; Kubernetes ingress (NetworkPolicy ipBlock, LoadBalancer sources) "
        "private ranges only, and every ingress rule names its sources. Unreadable CIDRs fail.",
        no_open_ingress,
        stack=True,
    ),
    Rule(
        "encrypted-volumes", "mandatory", "Every EBS volume and launch-template disk is encrypted.", encrypted_volumes
    ),
    Rule("imdsv2-required", "mandatory", "Instances require IMDSv2 (httpTokens=required).", imdsv2_required),
    Rule("spot-group-max-size", "mandatory", "Every auto-scaling group has a maxSize.", spot_group_max_size),
    Rule("no-plaintext-secrets", "mandatory", "Secret-looking inputs are Pulumi secrets.", no_plaintext_secrets),
    Rule("stateful-protected", "mandatory", "Resources that hold data are protected in prod.", stateful_protected),
    Rule(
        "no-privileged-containers",
        "mandatory",
        "Privileged containers only in platform namespaces the plan labels pod-security enforce=privileged; "
        "never in an engineer namespace, which itself enforces baseline or restricted and allows privilege "
        "escalation only with hostUsers: false.",
        no_privileged_containers,
        stack=True,
    ),
    Rule(
        "no-host-access",
        "mandatory",
        "Outside privileged platform namespaces (never for engineers): no hostNetwork/PID/IPC, hostPath, "
        "hostPort, capabilities beyond baseline, Unconfined seccomp/AppArmor, unsafe sysctls, or Unmasked "
        "/proc without hostUsers: false; no hostPath/local PersistentVolume for them.",
        no_host_access,
        stack=True,
    ),
    Rule(
        "pinned-versions",
        "mandatory",
        "Images by digest or by a release tag (at least major.minor, or a date; no latest/main/stable/"
        "nightly/...-latest parts); chart image tags alike; charts an exact version.",
        pinned_versions,
    ),
    Rule(
        "no-credentials-in-plain-config",
        "mandatory",
        "No credential in env values, command lines, ConfigMaps or annotations (secretKeyRef instead).",
        no_credentials_in_plain_config,
    ),
    Rule(
        "reviewed-types",
        "mandatory",
        "Every resource type and Kubernetes kind is on the reviewed list (policy/akiba_policy/reviewed.py).",
        reviewed_types,
    ),
    Rule(
        "rbac-no-cluster-admin",
        "mandatory",
        "No binding to cluster-admin, no cluster-wide admin/edit, no binding to every user or service account.",
        rbac_no_cluster_admin,
    ),
    Rule(
        "rbac-least-privilege",
        "mandatory",
        "Roles grant no wildcard, escalate, bind, impersonate or nodes/proxy.",
        rbac_least_privilege,
    ),
    Rule("resource-limits", "mandatory", "Every container has CPU and memory limits.", resource_limits),
    Rule(
        "burst-gpu-taint",
        "mandatory",
        "Spot GPU (burst) nodes join with the nvidia.com/gpu:NoSchedule taint.",
        burst_gpu_taint,
    ),
    Rule("burst-size", "advisory", "Burst groups stay small unless the budget says otherwise.", burst_size),
    Rule("namespace-pod-security", "advisory", "Namespaces enforce a Pod Security level.", namespace_pod_security),
    Rule("platform-labels", "advisory", "Kubernetes objects carry the platform labels.", platform_labels),
)
