"""The access check: the plan's Roles and Bindings read the way the API server's RBAC authorizer
will, asked whether engineer A can reach engineer B's namespace (Secrets, pods, home claim) or the
platform's, whether anyone can widen their own rights, and whether the consumer can read any
secret or write anything. Every yes is a problem that fails the plan, as is a no to "can an
engineer work in their own namespace" and "can the consumer see nodes and pods".

`make plan` runs it after the cluster check, prints the access table (subject x own namespace,
other engineers' namespaces, platform namespaces, cluster-scoped) and writes it to
build/plan/<stack>/access.txt (and .json).

Modules: `model` (rules, roles, bindings, identities from manifests), `builtin` (what kubeadm
and the API server create), `evaluator` (the authorizer, aggregation, acting as ServiceAccounts),
`questions` (the problems), `report` (the table). Helm charts and the snapshot controller's
manifest are not rendered offline: their RBAC binds only their own ServiceAccounts in platform
namespaces, which an engineer could use only by running a pod there (`platform-write`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from components.tenants.names import CONSUMER_USER, ENGINEER_LABEL, NAMESPACE_PREFIX, engineer_namespace
from tools.plan.access import questions
from tools.plan.access.evaluator import Authorizer, Reach
from tools.plan.access.model import AUTHENTICATED, Identity, Objects
from tools.plan.access.questions import Problem
from tools.plan.access.report import Report, Row, row
from tools.plan.artifacts import is_manifest, manifest_of
from tools.plan.runner import Plan

__all__ = ["Problem", "Report", "check", "engineers_of", "objects_of"]

CERT_REQUEST = "tls:index/certRequest:CertRequest"


def engineers_of(config: Mapping[str, str]) -> list[str] | None:
    """The logins under `akiba:engineers` in the stack file's config (None when it has none)."""
    raw = config.get("akiba:engineers")
    value = json.loads(raw) if raw else None
    return [str(e.get("name")) for e in value if isinstance(e, dict)] if isinstance(value, list) else None


def objects_of(plan: Plan) -> Objects:
    """The RBAC objects, ServiceAccounts and Namespaces the plan declares."""
    objects = Objects()
    for r in plan.resources:
        if is_manifest(r.type):
            objects.add(manifest_of(r.raw_inputs))
        elif r.type.startswith("kubernetes:helm") and r.raw_inputs.get("namespace"):
            objects.used.add(str(r.raw_inputs["namespace"]))
    return objects


def certificate_groups(plan: Plan) -> dict[str, frozenset[str]]:
    """CN -> the groups (O entries) of every client certificate the plan signs: a group in an
    engineer's certificate would bring every binding to that group with it."""
    groups: dict[str, set[str]] = {}
    for r in plan.by_type(CERT_REQUEST):
        subject = r.raw_inputs.get("subject") or {}
        cn = str(subject.get("commonName", ""))
        org = subject.get("organization")
        groups.setdefault(cn, set()).update([org] if isinstance(org, str) else [str(o) for o in org or ()])
    return {cn: frozenset(g) for cn, g in groups.items()}


def check(plan: Plan, engineers: Sequence[str] | None = None) -> Report:
    """Every subject's reach and the problems in it. `engineers` (the stack file's logins), when
    given, must match the namespaces the plan labels as engineers'."""
    return evaluate(objects_of(plan), engineers, certificate_groups(plan))


def evaluate(
    objects: Objects, engineers: Sequence[str] | None = None, cert_groups: dict[str, frozenset[str]] | None = None
) -> Report:
    problems: list[Problem] = []
    homes: dict[str, str] = {}
    for ns, labels in sorted(objects.namespaces.items()):
        login = labels.get(ENGINEER_LABEL)
        if login is None:
            continue
        if ns != engineer_namespace(login):
            problems.append(
                Problem(
                    "engineer-namespace", login, f"is labelled on namespace {ns}, expected {engineer_namespace(login)}"
                )
            )
        homes[login] = ns
    for login in engineers or ():
        if login not in homes:
            problems.append(
                Problem(
                    "engineer-namespace", login, f"is in the stack file but no namespace is labelled {ENGINEER_LABEL}"
                )
            )
    for login in sorted(set(homes) - set(engineers if engineers is not None else homes)):
        problems.append(
            Problem("engineer-namespace", login, f"has namespace {homes[login]} but is not in the stack file")
        )
    authorizer = Authorizer(objects)
    groups = cert_groups or {}
    namespaces = sorted(authorizer.namespaces)
    platform = [ns for ns in namespaces if not ns.startswith(NAMESPACE_PREFIX)]
    rows: list[Row] = []
    reaches: list[Reach] = []
    for login, home in sorted(homes.items()):
        reach = authorizer.reach(_identity(login, login, groups))
        others = [ns for ns in namespaces if ns.startswith(NAMESPACE_PREFIX) and ns != home]
        problems += questions.unknown(reach) + questions.engineer(reach, home, others, platform, objects.volumes)
        rows.append(row(reach, home, others, platform))
        reaches.append(reach)
    consumer = authorizer.reach(_identity(CONSUMER_USER, f"{CONSUMER_USER} (consumer)", groups))
    problems += questions.unknown(consumer) + questions.consumer(consumer, namespaces)
    engineer_spaces = [ns for ns in namespaces if ns.startswith(NAMESPACE_PREFIX)]
    rows.append(row(consumer, "", engineer_spaces, platform))
    everyone = authorizer.reach(Identity("", frozenset({AUTHENTICATED}), "any client certificate"))
    rows.append(row(everyone, "", engineer_spaces, platform))
    return Report(
        engineers=sorted(homes), rows=rows, reaches=[*reaches, consumer], problems=problems, platform=platform
    )


def _identity(user: str, label: str, cert_groups: dict[str, frozenset[str]]) -> Identity:
    base = Identity.user_named(user, label)
    return Identity(base.user, base.groups | cert_groups.get(user, frozenset()), base.label)
