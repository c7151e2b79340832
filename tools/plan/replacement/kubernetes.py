"""pulumi-kubernetes 4.x: which changes replace an object, and when it is deleted first.

The force-new paths are the provider's table (pulumi/pulumi-kubernetes provider/pkg/provider/diff.go
`forceNew`, `forceNewProperties`), matched the way its Diff matches them against the patch
(provider/pkg/provider/provider.go Diff / convertPatchToDiff). An object with an explicit
metadata.name that keeps its name and namespace is deleted before it is recreated: the new one
needs the name (same Diff, `deleteBeforeReplace`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from tools.plan.replacement.model import SECRET_TOKEN, Change, Source, Verdict
from tools.plan.replacement.paths import Path, parse, touches

REPO = "pulumi/pulumi-kubernetes"
DIFF = Source(REPO, "provider/pkg/provider/diff.go")
HELM = Source(REPO, "provider/pkg/provider/helm_release.go")
CONFIG = Source(REPO, "provider/pkg/provider/provider.go DiffConfig")
RELEASE = "kubernetes:helm.sh/v3:Release"

_SELECTOR = (".spec.selector", *(f".spec.selector.{k}" for k in ("matchExpressions", "matchLabels")))
_CONTAINER_FIELDS = [
    "args",
    "command",
    "env",
    "image",
    "imagePullPolicy",
    "lifecycle",
    "livenessProbe",
    "ports",
    "readinessProbe",
    "resources",
    "securityContext",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
]
_POD = (
    *(
        f".spec.{f}"
        for f in [
            "affinity",
            "automountServiceAccountToken",
            "dnsConfig",
            "dnsPolicy",
            "enableServiceLinks",
            "hostAliases",
            "hostIPC",
            "hostNetwork",
            "hostPID",
            "hostname",
            "imagePullSecrets",
            "nodeName",
            "nodeSelector",
            "overhead",
            "preemptionPolicy",
            "priority",
            "priorityClassName",
            "readinessGates",
            "restartPolicy",
            "runtimeClassName",
            "schedulerName",
            "securityContext",
            "serviceAccount",
            "serviceAccountName",
            "shareProcessNamespace",
            "subdomain",
            "terminationGracePeriodSeconds",
            "volumes",
        ]
    ),
    *(f".spec.{c}[*].{f}" for c in ("containers", "initContainers") for f in _CONTAINER_FIELDS),
)
_PV_SOURCES = [
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
]
_WORKLOAD = {"DaemonSet": _SELECTOR, "Deployment": _SELECTOR}
_STATEFUL_SET = (
    ".spec.podManagementPolicy",
    ".spec.revisionHistoryLimit",
    ".spec.serviceName",
    ".spec.volumeClaimTemplates",
    *_SELECTOR,
)
_JOB = (".spec.completions", ".spec.parallelism", ".spec.template", *_SELECTOR)
_CORE = {
    "PersistentVolume": tuple(f".spec.{s}" for s in _PV_SOURCES),
    "PersistentVolumeClaim": (
        ".spec.accessModes",
        ".spec.storageClassName",
        ".spec.volumeName",
        *_SELECTOR,
    ),
    "Pod": _POD,
    "ResourceQuota": (".spec.scopes",),
    "Secret": (".type",),
    "Service": (".spec.clusterIP",),
}
# group -> version -> kind -> force-new paths (diff.go `forceNew`)
FORCE_NEW: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "apps": {
        "v1beta1": {"StatefulSet": _STATEFUL_SET},
        "v1beta2": {**_WORKLOAD, "StatefulSet": _STATEFUL_SET},
        "v1": {**_WORKLOAD, "StatefulSet": _STATEFUL_SET},
    },
    "core": {"v1": _CORE},
    "policy": {"v1beta1": {"PodDisruptionBudget": (".spec",)}},
    "rbac.authorization.k8s.io": {
        v: {"ClusterRoleBinding": (".roleRef",), "RoleBinding": (".roleRef",)} for v in ("v1alpha1", "v1beta1", "v1")
    },
    "storage.k8s.io": {"v1": {"StorageClass": (".parameters", ".provisioner")}},
    "batch": {v: {"Job": _JOB} for v in ("v1beta1", "v1", "v2alpha1")},
}
_IDENTITY = (".metadata.name", ".metadata.namespace")


def gvk(typ: str) -> tuple[str, str, str]:
    """`kubernetes:apps/v1:Deployment` -> ("apps", "v1", "Deployment")."""
    _, group_version, kind = typ.split(":", 2)
    group, _, version = group_version.rpartition("/")
    return group, version, kind


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def force_new_paths(typ: str, news: Mapping[str, Any], provider_inputs: Mapping[str, Any]) -> tuple[str, ...]:
    """diff.go forceNewProperties: identity, then a Secret's or ConfigMap's content unless the
    provider makes them mutable (and the object is not `immutable`), else the kind's table."""
    group, version, kind = gvk(typ)
    if kind.endswith("Patch"):  # Patch resources update everything but the identity in place
        return _IDENTITY
    kinds = FORCE_NEW.get(group, {}).get(version)
    if kinds is None:
        return _IDENTITY
    immutable = news.get("immutable") is True
    if kind == "Secret" and group == "core" and (not _flag(provider_inputs.get("enableSecretMutable")) or immutable):
        return (*_IDENTITY, ".type", ".stringData", ".data")
    if kind in kinds:
        return (*_IDENTITY, *kinds[kind])
    mutable_config_maps = _flag(provider_inputs.get("enableConfigMapMutable")) and not immutable
    if kind == "ConfigMap" and group == "core" and not mutable_config_maps:
        return (*_IDENTITY, ".binaryData", ".data")
    return _IDENTITY


def _jsonpath(path: str) -> Path:
    return parse(path.removeprefix("."))


def _metadata(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    md = inputs.get("metadata")
    return md if isinstance(md, Mapping) else {}


def diff(change: Change) -> Verdict | None:
    if change.type == RELEASE:
        patterns = [parse("name"), parse("namespace")]
        replaces = [p for p in change.paths if any(touches(f, p, change.olds, change.news) for f in patterns)]
        return Verdict(replaces=replaces, delete_before_replace=False, source=HELM)  # "TODO: revisit this."
    if change.type == "pulumi:providers:kubernetes":
        return diff_config(change)
    if not change.type.startswith("kubernetes:"):
        return None
    patterns = [_jsonpath(p) for p in force_new_paths(change.type, change.news, change.provider_inputs)]
    replaces = [p for p in change.paths if any(touches(f, p, change.olds, change.news) for f in patterns)]
    old_md, new_md = _metadata(change.olds), _metadata(change.news)
    named = isinstance(new_md.get("name"), str) and "pulumi.com/autonamed" not in (new_md.get("annotations") or {})
    dbr = (
        bool(replaces)
        and named
        and new_md.get("name") == old_md.get("name")
        and new_md.get("namespace") == old_md.get("namespace")
    )
    notes = ["metadata.name is explicit: the old object is deleted first"] if dbr else []
    return Verdict(replaces=replaces, delete_before_replace=dbr, source=DIFF, notes=notes)


def _active_cluster(kubeconfig: Any, context: Any, cluster: Any) -> Any:
    try:
        doc = yaml.safe_load(kubeconfig) if isinstance(kubeconfig, str) else kubeconfig
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    ctx_name = context or doc.get("current-context")
    ctx: dict[str, Any] = next(
        (c.get("context", {}) for c in doc.get("contexts") or [] if c.get("name") == ctx_name), {}
    )
    name = cluster or ctx.get("cluster")
    return next((c.get("cluster") for c in doc.get("clusters") or [] if c.get("name") == name), None)


def diff_config(change: Change) -> Verdict:
    """The kubernetes provider's DiffConfig: a changed `clusterIdentifier` replaces it; an unchanged
    one never does; otherwise it is replaced (with every object it manages) when the kubeconfig's
    active cluster changes or is unknown."""
    olds, news = change.olds, change.news
    changed = {p[0] for p in change.paths if p}
    if "clusterIdentifier" in news and olds.get("clusterIdentifier") == news.get("clusterIdentifier"):
        return Verdict(source=CONFIG)
    if "clusterIdentifier" in changed and "clusterIdentifier" in olds:
        return Verdict(replaces=[("clusterIdentifier",)], source=CONFIG)
    replaces: list[Path] = [("renderYamlToDirectory",)] if "renderYamlToDirectory" in changed else []
    keys = [k for k in ("kubeconfig", "context", "cluster") if k in changed]
    if keys:
        values = [olds.get("kubeconfig"), news.get("kubeconfig")]
        if any(isinstance(v, str) and v.startswith(SECRET_TOKEN) for v in values):
            return Verdict(
                replaces=[*replaces, *((k,) for k in keys)],
                source=CONFIG,
                notes=[
                    "the kubeconfig is secret: offline the plan cannot tell whether its cluster changed, so it "
                    "counts as a replacement (pulumi-kubernetes replaces when the active cluster changes, or is "
                    "unknown at preview: after a CA or the admin certificate is replaced). Setting the provider's "
                    "clusterIdentifier keeps the objects"
                ],
            )
        old_cluster = _active_cluster(olds.get("kubeconfig"), olds.get("context"), olds.get("cluster"))
        new_cluster = _active_cluster(news.get("kubeconfig"), news.get("context"), news.get("cluster"))
        if old_cluster != new_cluster:
            replaces += [(k,) for k in keys]
    return Verdict(replaces=replaces, source=CONFIG)
