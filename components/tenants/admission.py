"""What the API server itself refuses in engineers' namespaces, beyond RBAC and Pod Security:
ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1, GA in 1.30), CEL evaluated in the
API server, so there is no webhook service to run, to keep up, or to fail open.

Each policy is bound to the namespaces labelled `akiba.io/engineer` (names.ENGINEER_LABEL): only
the platform sets that label, and engineers cannot write namespaces (rbac.py).

- `akiba-tenant-user-namespace`: a pod that uses a Localhost seccomp or AppArmor profile (the
  rootless Docker ones allow unshare and mount), allowPrivilegeEscalation: true or an unmasked
  /proc must run in its own user namespace (`hostUsers: false`). Without one it would be the
  node's real uid 0 with a wider kernel surface than the runtime's default.
- `akiba-tenant-platform-objects`: the engineer may not create, change or delete the platform's
  objects in their namespace (their sshd config and authorized_keys, kubeconfig, database and
  registry Secrets, Docker TLS, the ssh Service, the home claim): by name, or by the platform's
  label on the old or the new object (so they cannot take the label off one either). Only the
  engineer's own user is refused: `pulumi up` (the admin identity), the garbage collector and the
  namespace controller are never locked out.
- `akiba-tenant-offboarded`: no new pod in the namespace of an engineer who is no longer in the
  stack (prod retains the namespace and their home): their Deployments and CronJobs cannot start
  pods again. A cluster admin's own `kubectl run` still may (to copy a home out).

Pure manifests here (tests evaluate the CEL with a real CEL implementation); TenantAdmission
declares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.node_security import PROFILE_NAME, SECCOMP_LOCALHOST
from components.context import PlatformContext
from components.engineers.rootless_docker import ACCOUNTS_CONFIGMAP, SERVER_TLS_SECRET, TLS_SECRET
from components.storage.ceph_storage import RBD_SCRATCH_SNAPSHOT_CLASS
from components.tenants.names import (
    DATABASE_SECRET,
    ENGINEER_LABEL,
    HOME_CLAIM,
    KUBECONFIG_SECRET,
    REGISTRY_SECRET,
)

API_VERSION = "admissionregistration.k8s.io/v1"
USER_NAMESPACE = "akiba-tenant-user-namespace"
PLATFORM_OBJECTS = "akiba-tenant-platform-objects"
OFFBOARDED = "akiba-tenant-offboarded"
SNAPSHOT_CLASS = "akiba-tenant-snapshot-class"
# The label every object the platform creates carries (PlatformContext.labels); its value there.
PLATFORM_LABEL = "app.kubernetes.io/part-of"
# Groups of the admin kubeconfig (components/cluster/identity.py) and kubeadm's break-glass one.
ADMIN_GROUPS = ("kubeadm:cluster-admins", "system:masters")

# What the platform puts in each engineer's namespace that the engineer's Role could otherwise
# write (configmaps, secrets, services, claims: rbac.ENGINEER_RULES), by resource. The home's
# names are components/engineers/home_containers.py's; tests hold this list to the plan.
RESERVED: Mapping[str, tuple[str, ...]] = {
    "configmaps": ("home-accounts", ACCOUNTS_CONFIGMAP),
    "secrets": (
        KUBECONFIG_SECRET,
        DATABASE_SECRET,
        REGISTRY_SECRET,
        TLS_SECRET,
        SERVER_TLS_SECRET,
        "home-host-key",
    ),
    "services": ("ssh",),
    "persistentvolumeclaims": (HOME_CLAIM,),
}

# Legacy annotations the kubelet or API server still read as a profile (AppArmor's until the
# field replaced it; seccomp's are ignored from 1.27 but cost nothing to refuse).
_PROFILE_ANNOTATIONS = (
    "container.apparmor.security.beta.kubernetes.io/",
    "container.seccomp.security.alpha.kubernetes.io/",
)
_POD_SECCOMP_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"


def _localhost(sc: str) -> str:
    """CEL: this securityContext names a Localhost seccomp or AppArmor profile."""
    return (
        f"(has({sc}.seccompProfile) && {sc}.seccompProfile.type == 'Localhost') || "
        f"(has({sc}.appArmorProfile) && {sc}.appArmorProfile.type == 'Localhost')"
    )


def _container_widens(c: str) -> str:
    sc = f"{c}.securityContext"
    return (
        f"has({sc}) && ({_localhost(sc)} || "
        f"(has({sc}.allowPrivilegeEscalation) && {sc}.allowPrivilegeEscalation) || "
        f"(has({sc}.procMount) && {sc}.procMount == 'Unmasked'))"
    )


def _widened() -> str:
    """CEL: the pod asks for more of the kernel than the runtime's default gives."""
    # One clause per list: containers, init and ephemeral containers are different CEL types.
    lists = [f"object.spec.containers.exists(c, {_container_widens('c')})"]
    for field in ("initContainers", "ephemeralContainers"):
        lists.append(f"(has(object.spec.{field}) && object.spec.{field}.exists(c, {_container_widens('c')}))")
    prefixes = " || ".join(f"k.startsWith('{p}')" for p in _PROFILE_ANNOTATIONS)
    annotations = (
        "(has(object.metadata.annotations) && object.metadata.annotations.exists(k, "
        f"({prefixes} || k == '{_POD_SECCOMP_ANNOTATION}') && "
        "object.metadata.annotations[k].startsWith('localhost/')))"
    )
    pod = f"(has(object.spec.securityContext) && ({_localhost('object.spec.securityContext')}))"
    return " || ".join([pod, *lists, annotations])


def _foreign_sc(sc: str) -> str:
    """CEL: this securityContext names a Localhost profile that is not rootless Docker's: nodes
    may carry others (Ubuntu loads AppArmor profiles that are unconfined by design)."""
    return (
        f"(has({sc}.seccompProfile) && {sc}.seccompProfile.type == 'Localhost' && "
        f"(!has({sc}.seccompProfile.localhostProfile) || "
        f"{sc}.seccompProfile.localhostProfile != '{SECCOMP_LOCALHOST}'))"
        f" || (has({sc}.appArmorProfile) && {sc}.appArmorProfile.type == 'Localhost' && "
        f"(!has({sc}.appArmorProfile.localhostProfile) || {sc}.appArmorProfile.localhostProfile != '{PROFILE_NAME}'))"
    )


def _foreign() -> str:
    """CEL: the pod names a Localhost profile other than the platform's, by field or annotation."""

    def container(c: str) -> str:
        return f"has({c}.securityContext) && ({_foreign_sc(f'{c}.securityContext')})"

    lists = [f"object.spec.containers.exists(c, {container('c')})"]
    for field in ("initContainers", "ephemeralContainers"):
        lists.append(f"(has(object.spec.{field}) && object.spec.{field}.exists(c, {container('c')}))")
    prefixes = " || ".join(f"k.startsWith('{p}')" for p in _PROFILE_ANNOTATIONS)
    ours = _cel_list([f"localhost/{PROFILE_NAME}", f"localhost/{SECCOMP_LOCALHOST}"])
    annotations = (
        "(has(object.metadata.annotations) && object.metadata.annotations.exists(k, "
        f"({prefixes} || k == '{_POD_SECCOMP_ANNOTATION}') && "
        f"object.metadata.annotations[k].startsWith('localhost/') && !(object.metadata.annotations[k] in {ours})))"
    )
    pod = f"(has(object.spec.securityContext) && ({_foreign_sc('object.spec.securityContext')}))"
    return " || ".join([pod, *lists, annotations])


def _cel_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def _marked(obj: str, value: str) -> str:
    """CEL: `object` (not on DELETE, where it is null) or `oldObject` (not on CREATE) carries the
    platform's label. The operation, not a comparison with null, says which one is there."""
    absent = {"object": "DELETE", "oldObject": "CREATE"}[obj]
    labels = f"{obj}.metadata.labels"
    return (
        f"(request.operation != '{absent}' && has({labels}) && '{PLATFORM_LABEL}' in {labels} && "
        f"{labels}['{PLATFORM_LABEL}'] == '{value}')"
    )


def _engineer_label() -> str:
    return f"namespaceObject.metadata.labels['{ENGINEER_LABEL}']"


def _policy(name: str, labels: Mapping[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(labels)},
        # An expression that cannot be evaluated refuses the request rather than admit it.
        "spec": {"failurePolicy": "Fail", **spec},
    }


def _rules(group: str, resources: list[str], operations: list[str]) -> dict[str, Any]:
    return {
        "resourceRules": [
            {"apiGroups": [group], "apiVersions": ["v1"], "operations": operations, "resources": resources}
        ]
    }


def user_namespace_policy(labels: Mapping[str, str]) -> dict[str, Any]:
    return _policy(
        USER_NAMESPACE,
        labels,
        {
            # Pod updates too: ephemeral containers arrive as an update of pods/ephemeralcontainers.
            "matchConstraints": _rules("", ["pods", "pods/ephemeralcontainers"], ["CREATE", "UPDATE"]),
            "variables": [
                {"name": "widened", "expression": _widened()},
                {"name": "foreign", "expression": _foreign()},
            ],
            "validations": [
                {
                    "expression": "!variables.foreign",
                    "message": (
                        f"the only Localhost profiles in an engineer's namespace are rootless Docker's "
                        f"(seccomp {SECCOMP_LOCALHOST}, AppArmor {PROFILE_NAME})"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": "!variables.widened || "
                    "(has(object.spec.hostUsers) && object.spec.hostUsers == false)",
                    "message": (
                        "a pod with a Localhost seccomp or AppArmor profile, allowPrivilegeEscalation: true or "
                        "procMount: Unmasked must set hostUsers: false in an engineer's namespace (those settings "
                        "are for rootless Docker in its own user namespace, never as the node's root)"
                    ),
                    "reason": "Forbidden",
                },
            ],
        },
    )


def platform_objects_policy(labels: Mapping[str, str]) -> dict[str, Any]:
    value = labels[PLATFORM_LABEL]
    reserved = " || ".join(
        f"(request.resource.resource == '{resource}' && request.name in {_cel_list(names)})"
        for resource, names in RESERVED.items()
    )
    return _policy(
        PLATFORM_OBJECTS,
        labels,
        {
            "matchConstraints": _rules("", list(RESERVED), ["CREATE", "UPDATE", "DELETE"]),
            "variables": [
                # The engineer's Kubernetes user is their login (names.engineer_user), the label's value.
                {"name": "engineer", "expression": f"request.userInfo.username == {_engineer_label()}"},
                {"name": "reserved", "expression": reserved},
                {"name": "platform", "expression": f"{_marked('object', value)} || {_marked('oldObject', value)}"},
            ],
            "validations": [
                {
                    "expression": "!variables.engineer || !(variables.reserved || variables.platform)",
                    "message": (
                        f"this object is the platform's (name reserved or label {PLATFORM_LABEL}={value}): "
                        "`pulumi up` writes it; ask a platform engineer to change it"
                    ),
                    "reason": "Forbidden",
                }
            ],
        },
    )


def offboarded_policy(labels: Mapping[str, str], logins: tuple[str, ...]) -> dict[str, Any]:
    admin = " || ".join(f"'{g}' in request.userInfo.groups" for g in ADMIN_GROUPS)
    return _policy(
        OFFBOARDED,
        labels,
        {
            "matchConstraints": _rules("", ["pods"], ["CREATE"]),
            "validations": [
                {
                    "expression": (
                        f"{_engineer_label()} in {_cel_list(list(logins))} || "
                        f"(has(request.userInfo.groups) && ({admin}))"
                    ),
                    "message": (
                        "this namespace's engineer is no longer in the stack: no new pods (a platform engineer "
                        "deletes its workloads, or the namespace once the data can go)"
                    ),
                    "reason": "Forbidden",
                }
            ],
        },
    )


def snapshot_class_policy(labels: Mapping[str, str], classes: tuple[str, ...]) -> dict[str, Any]:
    """An engineer's VolumeSnapshots name a class that deletes its content with them: under a
    Retain class a deleted snapshot leaves its data in Ceph, outside every quota, until Ceph is full."""
    return _policy(
        SNAPSHOT_CLASS,
        labels,
        {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["snapshot.storage.k8s.io"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["volumesnapshots"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "has(object.spec.volumeSnapshotClassName) && "
                    f"object.spec.volumeSnapshotClassName in {_cel_list(list(classes))}",
                    "message": f"a VolumeSnapshot here names its class, one of {', '.join(classes)} (deleted with it)",
                    "reason": "Forbidden",
                }
            ],
        },
    )


def binding(policy: Mapping[str, Any]) -> dict[str, Any]:
    """Binds a policy to every engineer's namespace: refused, and written to the audit log."""
    name = policy["metadata"]["name"]
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(policy["metadata"]["labels"])},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny", "Audit"],
            "matchResources": {
                "namespaceSelector": {"matchExpressions": [{"key": ENGINEER_LABEL, "operator": "Exists"}]}
            },
        },
    }


def policies(labels: Mapping[str, str], logins: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        user_namespace_policy(labels),
        platform_objects_policy(labels),
        offboarded_policy(labels, logins),
        snapshot_class_policy(labels, (RBD_SCRATCH_SNAPSHOT_CLASS,)),
    ]


@dataclass(frozen=True)
class TenantAdmissionArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    logins: tuple[str, ...]  # the stack's engineers: any other engineer namespace is offboarded
    after: tuple[pulumi.Resource, ...] = ()  # the API server


class TenantAdmission(pulumi.ComponentResource):
    """The policies and their bindings. Pass the component as a dependency of the engineers'
    namespaces: a new engineer's pods are then never judged by a list without them."""

    def __init__(self, name: str, args: TenantAdmissionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:tenants:TenantAdmission", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        names = []
        for manifest in policies(args.ctx.labels, args.logins):
            name_ = manifest["metadata"]["name"]
            policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
                name_, metadata=manifest["metadata"], spec=manifest["spec"], opts=on_cluster
            )
            bound = binding(manifest)
            k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
                name_,
                metadata=bound["metadata"],
                spec=bound["spec"],
                opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[policy])),
            )
            names.append(name_)
        self.register_outputs({"policies": names})
