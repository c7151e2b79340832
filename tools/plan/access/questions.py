"""The questions the access check asks of each subject's reach; every yes (or, for the positive
checks, every no) is a problem that fails the plan.

Engineer A, against every other engineer B and every platform namespace:
- `other-secrets`: A reads Secrets in eng-B (B's kubeconfig, database password, docker key);
- `other-pods`: A starts or changes a pod in eng-B, execs/attaches/port-forwards into one, or
  reaches one through the API server's proxy (which no NetworkPolicy stops) or reads its logs
  (a pod there mounts B's home and runs as B's ServiceAccounts);
- `other-claims`: A reads or writes PersistentVolumeClaims in eng-B (B's home);
- `platform-write`: A can do anything but read in a platform namespace;
- `platform-secrets`: A reads Secrets or ConfigMaps in a platform namespace;
- `platform-exec`: A execs, attaches, port-forwards or proxies into a platform pod or Service
  (a `get` on pods/exec is a shell: WebSocket upgrades arrive as GET);
- `unclaimed-volume`: a PersistentVolume the plan declares without a claimRef binds to any
  claim naming it, so A could mount it from their own namespace (a static CephFS volume of
  every home, say).
Engineers and the consumer, anywhere:
- `escalate`: escalate or bind roles, impersonate users, groups or (outside their own
  namespace) ServiceAccounts;
- `rbac-write`: create or change a Role, ClusterRole, RoleBinding or ClusterRoleBinding;
- `csr-approve`: approve a CertificateSigningRequest (a certificate for any name or group);
- `token`: mint a ServiceAccount token outside their own namespace;
- `nodes`: the kubelet API through nodes/proxy, or write Nodes;
- `volumes`: write PersistentVolumes (a hostPath volume is the node's disk);
- `admission`: write admission webhooks or policies; `api-extension`: CRDs or APIServices;
- `namespaces`: create, change or delete Namespaces.
The consumer: `consumer-secrets` (any Secret anywhere), `consumer-write` (any write),
`consumer-exec` (exec, attach, port-forward, proxy).
Positive: `cannot-work` (A cannot create pods and Jobs, read Secrets and claims in eng-A),
`consumer-useless` (the consumer cannot list nodes and pods everywhere).
`unknown-role`: a binding reaching a subject names a role neither the plan nor the cluster
defines: what it grants cannot be proved safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tools.plan.access.builtin import CLUSTER_SCOPED, SELF_REVIEWS
from tools.plan.access.evaluator import POD_MAKERS, Reach, Request
from tools.plan.access.model import READ_VERBS, Rule

READS = tuple(sorted(READ_VERBS))
WRITES = ("create", "update", "patch", "delete")
STREAMS = ("pods/exec", "pods/attach", "pods/portforward")
PROXIES = ("pods/proxy", "services/proxy")
RBAC = "rbac.authorization.k8s.io"
ADMISSION = "admissionregistration.k8s.io"
ADMISSION_KINDS = (
    *("mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies"),
    *("validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"),
)


@dataclass(frozen=True)
class Problem:
    rule: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject} {self.message}"


def _requests(verbs: Iterable[str], group: str, resources: Iterable[str], places: Iterable[str]) -> list[Request]:
    return [Request(v, group, r, ns) for r in resources for v in verbs for ns in places]


def _place(namespace: str) -> str:
    return namespace or "the cluster (all namespaces)"


def ask(rule: str, reach: Reach, requests: Iterable[Request]) -> list[Problem]:
    """One problem per resource and granting path, naming its verbs and where they apply."""
    found: dict[tuple[str, str], tuple[set[str], list[str]]] = {}
    for request in requests:
        resource = f"{request.group}/{request.resource}" if request.group else request.resource
        for grant in reach.allowed(request):
            verbs, places = found.setdefault((resource, grant.path), (set(), []))
            verbs.add(request.verb)
            if _place(request.namespace) not in places:
                places.append(_place(request.namespace))
    return [
        Problem(rule, reach.label, f"can {','.join(sorted(verbs))} {resource} in {', '.join(places)}: {path}")
        for (resource, path), (verbs, places) in found.items()
    ]


def namespaced(rule: Rule) -> bool:
    """Whether a rule can name a namespaced resource (an unknown one counts as namespaced)."""
    return any(r == "*" or r not in CLUSTER_SCOPED for r in rule.resources)


def writes_in(rule_id: str, reach: Reach, namespaces: Iterable[str], what: str) -> list[Problem]:
    """Every rule that grants more than reading in one of `namespaces`."""
    found: dict[str, list[str]] = {}
    for ns in namespaces:
        for g in reach.grants:
            if g.applies_in(ns) and g.rule.writes and namespaced(g.rule) and ns not in found.get(g.path, []):
                found.setdefault(g.path, []).append(ns)
    return [
        Problem(rule_id, reach.label, f"can write in {what} {', '.join(places)}: {path}")
        for path, places in found.items()
    ]


def engineer(
    reach: Reach, home: str, others: list[str], platform: list[str], volumes: Mapping[str, str]
) -> list[Problem]:
    """Engineer questions: `home` is their namespace, `others` every other engineer's, `volumes`
    the plan's PersistentVolumes and the claim each is reserved for."""
    problems = ask("other-secrets", reach, _requests(READS, "", ["secrets"], others))
    pods = _requests(("create", "update", "patch"), "", ["pods"], others)
    pods += _requests(("update", "patch"), "", ["pods/ephemeralcontainers"], others)
    pods += _requests(("get", "create"), "", [*STREAMS, *PROXIES], others)
    pods += _requests(("get",), "", ["pods/log"], others)
    pods += [r for g, res in POD_MAKERS[1:] for r in _requests(("create",), g, [res], others)]
    problems += ask("other-pods", reach, pods)
    problems += ask("other-claims", reach, _requests(READS + WRITES, "", ["persistentvolumeclaims"], others))
    problems += writes_in("platform-write", reach, platform, "platform namespace(s)")
    problems += ask("platform-secrets", reach, _requests(READS, "", ["secrets", "configmaps"], platform))
    problems += ask("platform-exec", reach, _requests(("get", "create"), "", [*STREAMS, *PROXIES], platform))
    problems += anyone(reach, home, [*others, *platform])
    for verb, group, resource in (("create", "", "pods"), ("create", "batch", "jobs"), ("get", "", "secrets")):
        if not reach.can(Request(verb, group, resource, home), named_only=False):
            problems.append(
                Problem("cannot-work", reach.label, f"cannot {verb} {resource} in {home}: engineers could not work")
            )
    if reach.can(Request("create", "", "persistentvolumeclaims", home)):
        problems += [
            Problem(
                "unclaimed-volume",
                reach.label,
                f"can bind PersistentVolume {pv} (reserved for no claim) to a claim in {home} by volumeName",
            )
            for pv, claim in volumes.items()
            if not claim
        ]
    if not reach.can(Request("get", "", "persistentvolumeclaims", home), named_only=False):
        problems.append(Problem("cannot-work", reach.label, f"cannot get persistentvolumeclaims in {home}"))
    return problems


def anyone(reach: Reach, home: str, elsewhere: list[str]) -> list[Problem]:
    """What neither an engineer nor the consumer may do; `home` is their own namespace ("": none)."""
    everywhere = ["", home, *elsewhere] if home else ["", *elsewhere]
    problems = ask("escalate", reach, _requests(("escalate", "bind"), RBAC, ["roles", "clusterroles"], everywhere))
    problems += ask("escalate", reach, _requests(("impersonate",), "", ["users", "groups"], [""]))
    problems += ask(
        "escalate", reach, _requests(("impersonate",), "authentication.k8s.io", ["uids", "userextras"], [""])
    )
    problems += ask("escalate", reach, _requests(("impersonate",), "", ["serviceaccounts"], ["", *elsewhere]))
    problems += ask("rbac-write", reach, _requests(WRITES, RBAC, ["roles", "rolebindings"], everywhere))
    problems += ask("rbac-write", reach, _requests(WRITES, RBAC, ["clusterroles", "clusterrolebindings"], [""]))
    problems += ask(
        "csr-approve",
        reach,
        _requests(("update", "patch"), "certificates.k8s.io", ["certificatesigningrequests/approval"], [""])
        + _requests(("approve",), "certificates.k8s.io", ["signers"], [""]),
    )
    problems += ask("token", reach, _requests(("create",), "", ["serviceaccounts/token"], ["", *elsewhere]))
    problems += ask(
        "nodes",
        reach,
        _requests(("get", "create"), "", ["nodes/proxy"], [""])
        + _requests(WRITES, "", ["nodes", "nodes/status"], [""]),
    )
    problems += ask("volumes", reach, _requests(("create", "update", "patch"), "", ["persistentvolumes"], [""]))
    problems += ask("admission", reach, _requests(WRITES, ADMISSION, ADMISSION_KINDS, [""]))
    problems += ask(
        "api-extension",
        reach,
        _requests(WRITES, "apiextensions.k8s.io", ["customresourcedefinitions"], [""])
        + _requests(WRITES, "apiregistration.k8s.io", ["apiservices"], [""]),
    )
    problems += ask("namespaces", reach, _requests(WRITES, "", ["namespaces"], [""]))
    return problems


def consumer(reach: Reach, namespaces: list[str]) -> list[Problem]:
    everywhere = ["", *namespaces]
    problems = ask("consumer-secrets", reach, _requests(READS, "", ["secrets"], everywhere))
    writes = [g for g in reach.grants if g.rule.writes and g.rule.resources and not g.rule.resources <= SELF_REVIEWS]
    problems += [
        Problem(
            "consumer-write",
            reach.label,
            f"can {','.join(sorted(g.rule.writes))} {','.join(sorted(g.rule.resources))} ({_scope(g.scope)}): {g.path}",
        )
        for g in writes
    ]
    problems += ask(
        "consumer-exec",
        reach,
        _requests(("get", "create"), "", [*STREAMS, *PROXIES], everywhere)
        + _requests(("get", "create"), "", ["nodes/proxy"], [""]),
    )
    problems += anyone(reach, "", namespaces)
    for resource, where in (("nodes", ""), ("pods", " in every namespace")):
        if not reach.can(Request("list", "", resource, ""), named_only=False):
            problems.append(
                Problem("consumer-useless", reach.label, f"cannot list {resource}{where}: the contract is useless")
            )
    return problems


def _scope(scope: str) -> str:
    return "every namespace and the cluster" if scope == "*" else f"in {scope}"


def unknown(reach: Reach) -> list[Problem]:
    return [Problem("unknown-role", reach.label, f"is bound to a role nobody defines: {u}") for u in reach.unknown]
