"""Engineers as tenants: per engineer a namespace, a Role there, read of what they need elsewhere,
a ResourceQuota and LimitRange, and a client certificate with its kubeconfig; and one read-only
identity for other teams.

Every grant names one user (no groups), so removing an engineer from the stack file deletes
their bindings and with them every right they had, in the same `pulumi up`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.namespaces import declare_namespace
from components.context import PlatformContext
from components.tenants import rbac, sealed
from components.tenants.credentials import ClusterAccess, client_kubeconfig
from components.tenants.names import (
    CONSUMER_USER,
    ENGINEER_LABEL,
    KUBECONFIG_SECRET,
    engineer_namespace,
    engineer_user,
)
from components.tenants.quota import (
    ContainerDefaults,
    TenantQuota,
    limit_range_limits,
    quota_hard,
    reserved_priority_quota,
)

RBAC_GROUP = "rbac.authorization.k8s.io"
KUBECONFIG_KEY = "config"  # the key of Secret `kubeconfig` the home pod mounts
RESERVED_PRIORITIES_QUOTA = "reserved-priorities"  # pods: 0 of the system and platform classes


@dataclass(frozen=True)
class Tenant:
    login: str  # e.g. tarui: their namespace is eng-tarui, their Kubernetes user tarui
    quota: TenantQuota
    ssh_keys: tuple[str, ...] = ()  # their public keys: their output's kubeconfig is sealed to these


@dataclass(frozen=True)
class TenantsArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    access: ClusterAccess  # the API endpoint, the CA that signs the client certificates
    tenants: tuple[Tenant, ...]
    container_defaults: ContainerDefaults
    after: tuple[pulumi.Resource, ...] = ()  # e.g. the first controller's deployment


def _user(name: str) -> k8s.rbac.v1.SubjectArgs:
    return k8s.rbac.v1.SubjectArgs(kind="User", name=name, api_group=RBAC_GROUP)


class Tenants(pulumi.ComponentResource):
    """`namespaces[login]` for what goes into an engineer's namespace (home pod, policies, claims);
    `sealed_kubeconfigs[login]` (their kubeconfig, age-encrypted to their own ssh keys; none for
    an engineer without an ssh-ed25519 or ssh-rsa key) and `consumer_kubeconfig` (secrets) for
    the outputs."""

    namespaces: dict[str, k8s.core.v1.Namespace]
    sealed_kubeconfigs: dict[str, pulumi.Output[str]]
    consumer_kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: TenantsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:tenants:Tenants", name, None, opts)
        self._args = args
        self._k8s = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        labels = args.ctx.labels
        cluster_read = k8s.rbac.v1.ClusterRole(
            "engineer-cluster-read",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=rbac.CLUSTER_READ_ROLE, labels=labels),
            rules=rbac.manifests(rbac.CLUSTER_READ_RULES),  # type: ignore[arg-type]
            opts=self._k8s,
        )
        self.namespaces = {}
        self.sealed_kubeconfigs = {}
        for tenant in args.tenants:
            self._tenant(tenant, cluster_read)
        self.consumer_kubeconfig = self._consumer()
        self.register_outputs({"namespaces": {login: ns.metadata.name for login, ns in self.namespaces.items()}})

    def _tenant(self, tenant: Tenant, cluster_read: k8s.rbac.v1.ClusterRole) -> None:
        args, login = self._args, tenant.login
        ns_name, user = engineer_namespace(login), engineer_user(login)
        labels = args.ctx.labels
        namespace = declare_namespace(
            ns_name,
            "baseline",
            args.ctx,
            # Retained, not protected, in prod: removing an engineer must revoke their access in
            # that same `up` (a protected resource would fail it), while the namespace and the
            # home claim in it stay until someone deletes them on purpose.
            pulumi.ResourceOptions.merge(self._k8s, pulumi.ResourceOptions(retain_on_delete=args.ctx.protect_stateful)),
            warn="restricted",
            labels={ENGINEER_LABEL: login},
        )
        self.namespaces[login] = namespace
        inside = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[namespace])

        def meta(name: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=ns_name, labels=labels)

        role = k8s.rbac.v1.Role(
            f"{ns_name}-engineer",
            metadata=meta(rbac.ENGINEER_ROLE),
            rules=rbac.manifests(rbac.ENGINEER_RULES),  # type: ignore[arg-type]
            opts=inside,
        )
        k8s.rbac.v1.RoleBinding(
            f"{ns_name}-engineer",
            metadata=meta(rbac.ENGINEER_ROLE),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group=RBAC_GROUP, kind="Role", name=rbac.ENGINEER_ROLE),
            subjects=[_user(user)],
            opts=pulumi.ResourceOptions.merge(inside, pulumi.ResourceOptions(depends_on=[role])),
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"engineer-cluster-read-{login}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{rbac.CLUSTER_READ_ROLE}:{login}", labels=labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group=RBAC_GROUP, kind="ClusterRole", name=rbac.CLUSTER_READ_ROLE),
            subjects=[_user(user)],
            opts=pulumi.ResourceOptions.merge(self._k8s, pulumi.ResourceOptions(depends_on=[cluster_read])),
        )
        # Both quotas stay with a retained namespace when the engineer leaves the stack: their
        # workloads still running there stay inside them (components/tenants/admission.py
        # refuses new pods there).
        retained = pulumi.ResourceOptions.merge(
            inside, pulumi.ResourceOptions(retain_on_delete=args.ctx.protect_stateful)
        )
        k8s.core.v1.ResourceQuota(
            f"{ns_name}-quota",
            metadata=meta("engineer"),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(hard=quota_hard(tenant.quota)),
            opts=retained,
        )
        k8s.core.v1.ResourceQuota(
            f"{ns_name}-reserved-priorities",
            metadata=meta(RESERVED_PRIORITIES_QUOTA),
            spec=reserved_priority_quota(),  # type: ignore[arg-type]
            opts=retained,
        )
        k8s.core.v1.LimitRange(
            f"{ns_name}-defaults",
            metadata=meta("container-defaults"),
            spec=k8s.core.v1.LimitRangeSpecArgs(limits=limit_range_limits(args.container_defaults, tenant.quota)),  # type: ignore[arg-type]
            opts=inside,
        )
        kubeconfig = client_kubeconfig(f"engineer-{login}", user, ns_name, args.access, self)
        self._seal(tenant, kubeconfig)
        # Their home pod mounts it: kubectl in their ssh session is them, nobody else.
        k8s.core.v1.Secret(
            f"{ns_name}-kubeconfig",
            metadata=meta(KUBECONFIG_SECRET),
            type="Opaque",
            string_data={KUBECONFIG_KEY: kubeconfig},
            opts=inside,
        )

    def _seal(self, tenant: Tenant, kubeconfig: pulumi.Output[str]) -> None:
        """Their output: the kubeconfig only their own private key opens. Anyone who reads the
        stack decrypts every secret output (Pulumi has no per-output access), so a plain one would
        be everyone's. age encrypts afresh on every run: the output's text changes on every
        `pulumi up`, the kubeconfig inside only when the certificate does (an output, nothing is
        replaced)."""
        keys = sealed.sealable_keys(tenant.ssh_keys)
        if not keys:
            pulumi.log.warn(
                f"{tenant.login}: no key in akiba:engineers[].sshKeys that age can seal a kubeconfig to (ssh-ed25519, "
                f"ssh-rsa of 2048 bits or more), so no engineerKubeconfig-{tenant.login} output: they copy theirs "
                "from their home pod over ssh",
                resource=self,
            )
            return
        self.sealed_kubeconfigs[tenant.login] = pulumi.Output.secret(kubeconfig.apply(lambda v: sealed.seal(v, keys)))

    def _consumer(self) -> pulumi.Output[str]:
        args = self._args
        role = k8s.rbac.v1.ClusterRole(
            "consumer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=rbac.CONSUMER_ROLE, labels=args.ctx.labels),
            rules=rbac.manifests(rbac.CONSUMER_RULES),  # type: ignore[arg-type]
            opts=self._k8s,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            "consumer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=rbac.CONSUMER_ROLE, labels=args.ctx.labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group=RBAC_GROUP, kind="ClusterRole", name=rbac.CONSUMER_ROLE),
            subjects=[_user(CONSUMER_USER)],
            opts=pulumi.ResourceOptions.merge(self._k8s, pulumi.ResourceOptions(depends_on=[role])),
        )
        return client_kubeconfig(CONSUMER_USER, CONSUMER_USER, None, args.access, self)
