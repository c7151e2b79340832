"""The roles and bindings every kubeadm cluster has without the plan declaring them, as far as they
can reach an engineer or the consumer.

Source: kubernetes plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, whose rendered
output is checked in as .../bootstrappolicy/testdata/cluster-roles.yaml and
cluster-role-bindings.yaml (the API server creates these at start); kubeadm's
cmd/kubeadm/app/phases/kubeconfig (ClusterRoleBinding kubeadm:cluster-admins, 1.29+).

Kept: cluster-admin and the user-facing aggregated roles (admin, edit, view, with the
system:aggregate-to-* roles that feed them), so a plan binding any of them is evaluated with
their real rules; and every binding whose subjects an engineer or the consumer holds:
system:authenticated (every client certificate) and system:serviceaccounts (every pod an
engineer starts). Left out: the control plane's own roles (system:node, system:kube-scheduler,
the controllers'...), bound to system:nodes, system:bootstrappers:*, system:masters and the
components' users, which no engineer or consumer certificate carries (CN only, no O). A plan
binding one of them to an engineer names a role this module does not know, and the check
refuses it as unknown.
"""

from __future__ import annotations

from tools.plan.access.model import AUTHENTICATED, SERVICE_ACCOUNTS, Binding, Role, Rule, Selector, Subject

SOURCE = "built-in (kubernetes bootstrappolicy)"
KUBEADM = "built-in (kubeadm)"
READ = frozenset({"get", "list", "watch"})
WRITE = frozenset({"create", "delete", "deletecollection", "patch", "update"})
ADMIN, EDIT, VIEW = (f"rbac.authorization.k8s.io/aggregate-to-{r}" for r in ("admin", "edit", "view"))


def _rule(verbs: frozenset[str], group: str, *resources: str) -> Rule:
    return Rule(verbs=verbs, groups=frozenset({group}), resources=frozenset(resources))


def _urls(*urls: str) -> Rule:
    return Rule(verbs=frozenset({"get"}), urls=frozenset(urls))


def _role(name: str, *rules: Rule, labels: dict[str, str] | None = None, aggregate: str = "") -> Role:
    return Role(
        kind="ClusterRole",
        namespace="",
        name=name,
        rules=rules,
        labels=labels or {},
        aggregation=(Selector(((aggregate, "true"),)),) if aggregate else None,
        source=SOURCE,
    )


ROLES: tuple[Role, ...] = (
    _role(
        "cluster-admin",
        Rule(verbs=frozenset({"*"}), groups=frozenset({"*"}), resources=frozenset({"*"})),
        Rule(verbs=frozenset({"*"}), urls=frozenset({"*"})),
    ),
    _role("admin", aggregate=ADMIN),
    _role("edit", labels={ADMIN: "true"}, aggregate=EDIT),
    _role("view", labels={EDIT: "true"}, aggregate=VIEW),
    _role(
        "system:aggregate-to-admin",
        _rule(frozenset({"create"}), "authorization.k8s.io", "localsubjectaccessreviews"),
        _rule(READ | WRITE, "rbac.authorization.k8s.io", "rolebindings", "roles"),
        labels={ADMIN: "true"},
    ),
    _role(
        "system:aggregate-to-edit",
        _rule(READ, "", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
        _rule(frozenset({"impersonate"}), "", "serviceaccounts"),
        _rule(WRITE, "", "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
        _rule(frozenset({"create"}), "", "pods/eviction"),
        _rule(
            WRITE,
            "",
            *("configmaps", "events", "persistentvolumeclaims", "replicationcontrollers"),
            *("replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"),
        ),
        _rule(frozenset({"create"}), "", "serviceaccounts/token"),
        _rule(
            WRITE,
            "apps",
            *("daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets"),
            *("replicasets/scale", "statefulsets", "statefulsets/scale"),
        ),
        _rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
        _rule(WRITE, "batch", "cronjobs", "jobs"),
        _rule(
            WRITE,
            "extensions",
            *("daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses"),
            *("networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"),
        ),
        _rule(WRITE, "policy", "poddisruptionbudgets"),
        _rule(WRITE, "networking.k8s.io", "ingresses", "networkpolicies"),
        _rule(READ | WRITE, "coordination.k8s.io", "leases"),
        labels={EDIT: "true"},
    ),
    _role(
        "system:aggregate-to-view",
        _rule(
            READ,
            "",
            *("configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods"),
            *("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services"),
            *("services/status", "bindings", "events", "limitranges", "namespaces/status", "pods/log"),
            *("pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"),
            "namespaces",
        ),
        _rule(READ, "discovery.k8s.io", "endpointslices"),
        _rule(
            READ,
            "apps",
            *("controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale"),
            *("deployments/status", "replicasets", "replicasets/scale", "replicasets/status"),
            *("statefulsets", "statefulsets/scale", "statefulsets/status"),
        ),
        _rule(READ, "autoscaling", "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
        _rule(READ, "batch", "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
        _rule(
            READ,
            "extensions",
            *("daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status"),
            *("ingresses", "ingresses/status", "networkpolicies", "replicasets", "replicasets/scale"),
            *("replicasets/status", "replicationcontrollers/scale"),
        ),
        _rule(READ, "policy", "poddisruptionbudgets", "poddisruptionbudgets/status"),
        _rule(READ, "networking.k8s.io", "ingresses", "ingresses/status", "networkpolicies"),
        labels={VIEW: "true"},
    ),
    _role(
        "system:basic-user",
        _rule(frozenset({"create"}), "authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
        _rule(frozenset({"create"}), "authentication.k8s.io", "selfsubjectreviews"),
    ),
    _role(
        "system:discovery",
        _urls(*("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*")),
        _urls("/readyz", "/version", "/version/"),
    ),
    _role("system:public-info-viewer", _urls("/healthz", "/livez", "/readyz", "/version", "/version/")),
    _role("system:service-account-issuer-discovery", _urls("/.well-known/openid-configuration", "/openid/v1/jwks")),
)


def _binding(name: str, role: str, *groups: str, source: str = SOURCE) -> Binding:
    return Binding(
        kind="ClusterRoleBinding",
        namespace="",
        name=name,
        role_kind="ClusterRole",
        role_name=role,
        subjects=tuple(Subject("Group", g) for g in groups),
        source=source,
    )


BINDINGS: tuple[Binding, ...] = (
    _binding("cluster-admin", "cluster-admin", "system:masters"),
    # kubeadm's admin.conf carries O=kubeadm:cluster-admins (system:masters only in super-admin.conf).
    _binding("kubeadm:cluster-admins", "cluster-admin", "kubeadm:cluster-admins", source=KUBEADM),
    _binding("system:basic-user", "system:basic-user", AUTHENTICATED),
    _binding("system:discovery", "system:discovery", AUTHENTICATED),
    _binding("system:public-info-viewer", "system:public-info-viewer", AUTHENTICATED, "system:unauthenticated"),
    _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery", SERVICE_ACCOUNTS),
)

# Namespaces every kubeadm cluster has: platform namespaces whether or not the plan names them.
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# Resources that are not namespaced (a RoleBinding never grants them), from the API server's own
# types; a resource not listed counts as namespaced, the side that can reach into a namespace.
CLUSTER_SCOPED = frozenset(
    {
        *("nodes", "nodes/status", "nodes/proxy", "nodes/log", "nodes/metrics", "nodes/stats"),
        *("namespaces", "namespaces/status", "namespaces/finalize", "persistentvolumes", "persistentvolumes/status"),
        *("componentstatuses", "clusterroles", "clusterrolebindings", "customresourcedefinitions"),
        *("customresourcedefinitions/status", "apiservices", "apiservices/status", "storageclasses"),
        *("csidrivers", "csinodes", "volumeattachments", "volumeattachments/status", "priorityclasses"),
        *("runtimeclasses", "ingressclasses", "mutatingwebhookconfigurations", "validatingwebhookconfigurations"),
        *("validatingadmissionpolicies", "validatingadmissionpolicies/status", "validatingadmissionpolicybindings"),
        *("mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "certificatesigningrequests"),
        *("certificatesigningrequests/approval", "certificatesigningrequests/status", "signers"),
        *("tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
        *("selfsubjectreviews", "flowschemas", "prioritylevelconfigurations", "volumesnapshotclasses"),
        *("volumesnapshotcontents", "ipaddresses", "servicecidrs", "deviceclasses", "clustertrustbundles"),
        "users",
        "groups",
        "uids",
        "userextras",
    }
)
# What system:basic-user gives everyone: asking the API server about oneself, not a write.
SELF_REVIEWS = frozenset({"selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"})
