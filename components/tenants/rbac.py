"""What each identity may do, as explicit RBAC rules: no wildcard verb, resource or group, so a
new resource type the API server grows never becomes reachable by default, and a reviewer (or the
offline access check) reads every grant here.

Pure data: the Tenants component renders it; tools and tests read it.
"""

from __future__ import annotations

from dataclasses import dataclass

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
FULL = READ + WRITE
# Streaming subresources. `create` is what kubectl's SPDY requests need; WebSocket upgrades arrive
# as GET, which the API server (AuthorizePodWebsocketUpgradeCreatePermission, on from 1.35) also
# checks against `create`, while older ones asked for `get`: both are given.
STREAM = ("get", "create")

ENGINEER_ROLE = "engineer"
CLUSTER_READ_ROLE = "akiba:engineer-cluster-read"
CONSUMER_ROLE = "akiba:consumer"


@dataclass(frozen=True)
class Rule:
    """One PolicyRule: these verbs on these resources of one API group."""

    group: str  # "" is the core group
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def manifest(self) -> dict[str, list[str]]:
        return {"apiGroups": [self.group], "resources": list(self.resources), "verbs": list(self.verbs)}


# The Role each engineer holds in their own namespace (eng-<login>).
ENGINEER_RULES: tuple[Rule, ...] = (
    # Their work: pods (Jobs' pods, debugging pods), Services in front of them, config and their
    # own Secrets (kubeconfig, database, docker TLS material are theirs anyway), their claims.
    # Pod Security (baseline enforced on the namespace) keeps these pods off the node: no
    # privileged, no host namespaces, no hostPath.
    Rule("", ("pods", "services", "configmaps", "secrets", "persistentvolumeclaims"), FULL),
    Rule("", ("pods/log",), READ),
    Rule("", ("pods/exec", "pods/attach", "pods/portforward"), STREAM),
    Rule("batch", ("jobs", "cronjobs"), FULL),
    Rule("apps", ("deployments", "statefulsets", "replicasets"), FULL),
    Rule("apps", ("deployments/scale", "statefulsets/scale", "replicasets/scale"), ("get", "update", "patch")),
    Rule("snapshot.storage.k8s.io", ("volumesnapshots",), FULL),
    Rule("policy", ("poddisruptionbudgets",), FULL),
    # Read-only, each for a reason:
    # - events: what happened to their pods; written by the control plane only.
    # - resourcequotas, limitranges: their share of the cluster is the platform's decision; an
    #   engineer who could edit them could take every GPU.
    # - networkpolicies: the default deny and the database allow are what keep namespaces apart;
    #   an engineer who could write one could open their pods to anyone or undo the deny.
    # - daemonsets: the platform's home DaemonSet lives here (sshd as them); editing it would be
    #   editing what the platform runs for them (and on every node), so no DaemonSet of their own.
    # - serviceaccounts: they see which exist; creating one is creating an identity, and tokens
    #   for it are the control plane's to mint.
    Rule("", ("events", "resourcequotas", "limitranges", "serviceaccounts"), READ),
    Rule("events.k8s.io", ("events",), READ),
    Rule("networking.k8s.io", ("networkpolicies",), READ),
    Rule("apps", ("daemonsets",), READ),
    # Not granted at all:
    # - roles, rolebindings: who may do what in the namespace is the platform's; with them an
    #   engineer could hand their namespace (their home, their database password) to anyone.
    # - the namespace itself: its labels carry the Pod Security level and the engineer label the
    #   network policies select on.
    # - serviceaccounts/token, pods/ephemeralcontainers, everything else: not needed for the work.
)

# Cluster-wide reads an engineer needs to choose where and how their pods run, bound per engineer.
CLUSTER_READ_RULES: tuple[Rule, ...] = (
    Rule("", ("nodes",), READ),  # which GPUs are free, on which node
    Rule("storage.k8s.io", ("storageclasses",), READ),
    Rule("scheduling.k8s.io", ("priorityclasses",), READ),  # interactive vs batch
    Rule("node.k8s.io", ("runtimeclasses",), READ),
    Rule("networking.k8s.io", ("ingressclasses",), READ),
    Rule("snapshot.storage.k8s.io", ("volumesnapshotclasses",), READ),
)

# Other teams' read-only identity: what runs where, never a credential. No secrets (every
# password and key), no configmaps (the platform's configs carry addresses and settings a
# consumer has no use for, and a chart may have put a credential in one), no pods/log (logs
# print what programs were given), no pods/exec or attach (a shell is a write).
CONSUMER_RULES: tuple[Rule, ...] = (
    Rule(
        "",
        (
            "nodes",
            "namespaces",
            "pods",
            "services",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumes",
            "events",
        ),
        READ,
    ),
    Rule("events.k8s.io", ("events",), READ),
    Rule("apps", ("deployments", "statefulsets", "daemonsets"), READ),
    Rule("batch", ("jobs", "cronjobs"), READ),
    Rule("networking.k8s.io", ("ingresses",), READ),
    Rule("storage.k8s.io", ("storageclasses",), READ),
)


def manifests(rules: tuple[Rule, ...]) -> list[dict[str, list[str]]]:
    return [r.manifest() for r in rules]
