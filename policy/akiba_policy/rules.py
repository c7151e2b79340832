"""The rules. Each is a pure function of one planned resource; `RULES` lists them with their
enforcement level. Mandatory rules stop a plan or a preview; advisory ones only warn."""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .model import Level, PlannedResource, walk

OPEN = {"0.0.0.0/0", "::/0"}
SECRET_WORDS = {"password", "pass", "secret", "token", "kubeconfig"}  # not "passwd": /etc/passwd holds none
NOT_THE_VALUE = {"algorithm", "type", "file", "path", "name", "ref", "id", "length", "size"}
SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key")}
WORKLOAD_POD_SPEC: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
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


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the pack (policy config in `pulumi preview --policy-pack-config`)."""

    protected_stacks: tuple[str, ...] = ("prod",)
    privileged_allowed: tuple[str, ...] = ("dind",)  # container names: Docker-in-Kubernetes sidecar
    max_burst_size: int = 20


Check = Callable[[PlannedResource, PolicyConfig], Iterable[str]]


@dataclass(frozen=True)
class Rule:
    name: str
    level: Level
    description: str
    check: Check = field(repr=False)


def secret_looking(key: str) -> bool:
    """`adminPassword`, `api_key`, `secretAccessKey`, `caPrivateKeyPem` are; `envFromSecret`,
    `tokenFile`, `secretName`, `existingSecret` are not (they name or point at a secret)."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)]
    if not words or words[-1] in NOT_THE_VALUE:
        return False
    if words[-1] in SECRET_WORDS:
        return len(words) < 2 or words[-2] not in ("from", "ref", "existing")  # envFromSecret names one
    return any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def k8s_kind(res: PlannedResource) -> str | None:
    if not res.type.startswith("kubernetes:") or res.type.startswith(("kubernetes:helm", "kubernetes:yaml")):
        return None
    return res.type.rsplit(":", 1)[-1]


def containers(res: PlannedResource) -> Iterator[Mapping[str, Any]]:
    """Every container (init ones too) of a Kubernetes workload."""
    path = WORKLOAD_POD_SPEC.get(k8s_kind(res) or "")
    spec = _get(res.props, *path) if path else None
    if not isinstance(spec, Mapping):
        return
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, Mapping):
                yield container


def no_open_ingress(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
    if res.type == "aws:ec2/securityGroup:SecurityGroup":
        for i, rule in enumerate(res.props.get("ingress") or []):
            cidrs = set(rule.get("cidrBlocks") or []) | set(rule.get("ipv6CidrBlocks") or [])
            if cidrs & OPEN:
                yield f"ingress[{i}] is open to {sorted(cidrs & OPEN)}"
    elif res.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        if {res.props.get("cidrIpv4"), res.props.get("cidrIpv6")} & OPEN:
            yield "ingress rule open to the whole internet"
    elif res.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and res.props.get("type") == "ingress":
        if set(res.props.get("cidrBlocks") or []) & OPEN:
            yield "ingress rule open to the whole internet"
    elif k8s_kind(res) == "Service" and _get(res.props, "spec", "type") == "LoadBalancer":
        ranges = set(_get(res.props, "spec", "loadBalancerSourceRanges") or [])
        if not ranges or ranges & OPEN:
            yield "LoadBalancer Service without loadBalancerSourceRanges limited to known networks"
    elif k8s_kind(res) == "NetworkPolicy":
        for path, value in walk(_get(res.props, "spec", "ingress") or []):
            if path.endswith("ipBlock.cidr") and value in OPEN:
                yield f"NetworkPolicy admits {value}"


def _from_launch_template(res: PlannedResource, setting: str) -> bool:
    """An instance that takes a setting from its launch template (checked there)."""
    return res.props.get("launchTemplate") is not None and res.props.get(setting) is None


def encrypted_volumes(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
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


def imdsv2_required(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
    instance_like = res.type == "aws:ec2/launchTemplate:LaunchTemplate" or (
        res.type == "aws:ec2/instance:Instance" and not _from_launch_template(res, "metadataOptions")
    )
    if instance_like and _get(res.props, "metadataOptions", "httpTokens") != "required":
        yield "metadataOptions.httpTokens must be 'required' (IMDSv2 only)"


def spot_group_max_size(res: PlannedResource, config: PolicyConfig) -> Iterator[str]:
    if res.type == "aws:autoscaling/group:Group" and not isinstance(res.props.get("maxSize"), int | float):
        yield "auto-scaling group without maxSize: spot capacity would be unbounded"


def burst_size(res: PlannedResource, config: PolicyConfig) -> Iterator[str]:
    size = res.props.get("maxSize") if res.type == "aws:autoscaling/group:Group" else None
    if isinstance(size, int | float) and size > config.max_burst_size:
        yield f"maxSize {int(size)} is above {config.max_burst_size}: check the budget"


def no_plaintext_secrets(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
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


def stateful_protected(res: PlannedResource, config: PolicyConfig) -> Iterator[str]:
    stateful = (
        res.type in STATEFUL_TYPES
        or k8s_kind(res) in STATEFUL_K8S_KINDS
        or (res.type == "pulumi-python:dynamic:Resource" and res.props.get("kind") == "rbd-image")
    )
    if stateful and res.stack in config.protected_stacks and not res.protect:
        yield f"holds data in stack {res.stack!r} but is not protect=True"


def no_privileged_containers(res: PlannedResource, config: PolicyConfig) -> Iterator[str]:
    for c in containers(res):
        if _get(c, "securityContext", "privileged") is True and c.get("name") not in config.privileged_allowed:
            yield f"container {c.get('name')!r} runs privileged (only {', '.join(config.privileged_allowed)} may)"


def pinned_versions(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
    for c in containers(res):
        image = str(c.get("image") or "")
        last = image.rsplit("/", 1)[-1]
        if "@sha256:" not in image and (":" not in last or last.endswith(":latest")):
            yield f"container {c.get('name')!r} image {image!r} has no pinned tag or digest"
    if res.type.startswith("kubernetes:helm.sh/"):
        version = str(res.props.get("version") or "")
        if not re.fullmatch(r"v?\d+\.\d+\.\d+([-+][\w.]+)?", version):
            yield f"Helm chart {res.props.get('chart')!r} version {version!r} is not an exact version"


def resource_limits(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
    for c in containers(res):
        limits = _get(c, "resources", "limits") or {}
        missing = [k for k in ("cpu", "memory") if k not in limits]
        if missing:
            yield f"container {c.get('name')!r} has no {' and '.join(missing)} limit"


def burst_gpu_taint(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
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
        doc = yaml.safe_load(user_data)
    except yaml.YAMLError:
        return
    for f in (doc or {}).get("write_files") or []:
        if f.get("path") == "/etc/kubernetes/kubeadm.yaml":
            for part in yaml.safe_load_all(f.get("content") or ""):
                reg = (part or {}).get("nodeRegistration")
                if isinstance(reg, Mapping):
                    yield reg


def namespace_pod_security(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
    if k8s_kind(res) == "Namespace":
        labels = _get(res.props, "metadata", "labels") or {}
        if "pod-security.kubernetes.io/enforce" not in labels:
            yield "namespace without an enforced Pod Security level"


def platform_labels(res: PlannedResource, _: PolicyConfig) -> Iterator[str]:
    if k8s_kind(res) and _get(res.props, "metadata", "labels", "app.kubernetes.io/part-of") != "akiba":
        yield "Kubernetes object without app.kubernetes.io/part-of=akiba"


RULES: tuple[Rule, ...] = (
    Rule("no-open-ingress", "mandatory", "No ingress from 0.0.0.0/0 or ::/0.", no_open_ingress),
    Rule(
        "encrypted-volumes", "mandatory", "Every EBS volume and launch-template disk is encrypted.", encrypted_volumes
    ),
    Rule("imdsv2-required", "mandatory", "Instances require IMDSv2 (httpTokens=required).", imdsv2_required),
    Rule("spot-group-max-size", "mandatory", "Every auto-scaling group has a maxSize.", spot_group_max_size),
    Rule("no-plaintext-secrets", "mandatory", "Secret-looking inputs are Pulumi secrets.", no_plaintext_secrets),
    Rule("stateful-protected", "mandatory", "Resources that hold data are protected in prod.", stateful_protected),
    Rule("no-privileged-containers", "mandatory", "Only the dind sidecar runs privileged.", no_privileged_containers),
    Rule(
        "pinned-versions",
        "mandatory",
        "Images have a tag or digest (not latest); charts an exact version.",
        pinned_versions,
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
