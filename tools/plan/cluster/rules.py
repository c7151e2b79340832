"""The problems the cluster check reports, each a rule with a name, over one placement of the plan.

- `node`: a node the check cannot read (no hardware floor, no kubeadm registration);
- `burst-template`: the autoscaler's model of the burst group disagrees with what its nodes register;
- `unschedulable`: a pod stays Pending (the scheduler's FailedScheduling message);
- `not-on-every-node`: a node without its CNI or kube-proxy pod never becomes Ready;
- `gpus-not-offered`: a GPU node where the device plugin does not run offers no nvidia.com/gpu;
- `no-failover`: (prod) a platform service that fits only one node;
- `burst-only`: a pod that asks for no GPU but fits only paid burst capacity;
- `claim`: a claim no object declares, or a ReadWriteOnce claim used from several nodes at once;
- `pull`: an image the node that runs it cannot pull; `cache-unused`: a configured cache of the
  platform containerd cannot use (it silently falls back to upstream);
- `not-built`: an image of this repository (images/<name>/) the plan pulls but never builds;
- `start`: a container of a built image that would not start as the user the pod grants, or a pod
  that needs what never gets made (a Secret only a skipped Helm hook creates);
- `storage`: a claim whose CSI driver does not run, a pod on a node without its node plugin;
- `mtu`: the pod network's packets do not fit a path they cross (office bond, WireGuard tunnel);
- `rollout`: a one-pod-per-node Deployment whose rolling update needs more nodes than fit it;
- `ceph-on-itself`: a Ceph daemon that can land on a VM whose disks live in that Ceph;
- `priority`: a pod naming a PriorityClass that will not exist (admission refuses it), or a
  class the API server refuses;
- `quota`: a namespace's ResourceQuota smaller than what the plan itself puts there (an engineer's
  home pods, their home claim, their ssh Service), or a pod its quota and LimitRange refuse;
- `service`: a NodePort Service with externalTrafficPolicy Local whose pods run on no node, or
  whose named targetPort none of its pods declares;
- `security-profile`: a container under a Localhost seccomp/AppArmor profile that can land on a
  node whose configuration does not install it (the kubelet refuses to start it);
- `chart`: a chart (or version) the check has no model of.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from components.cluster.placement import BOOTS_FROM_CLUSTER_CEPH
from tools.plan.cluster import (
    addons,
    charts,
    network,
    nodes,
    priorities,
    profiles,
    pulls,
    quotas,
    services,
    start,
    workloads,
)
from tools.plan.cluster.model import Node, Workload
from tools.plan.cluster.scheduler import Cluster, Placement
from tools.plan.runner import Plan

DOCKER_BUILD = "docker-build:index:Image"


@dataclass(frozen=True)
class Settings:
    """What the check needs to know beyond the plan."""

    kubernetes_version: str  # for kubeadm's add-on images
    platform_registries: tuple[pulls.PlatformRegistry, ...]
    require_failover: bool  # prod: a platform service must fit two nodes
    instance_types: Mapping[str, tuple[int, float]]  # EC2 type -> (vCPUs, GiB): burst node size
    root: Path  # the repository: built images' Dockerfiles, images/<name>/


@dataclass(frozen=True)
class Problem:
    rule: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.message}"


@dataclass
class Report:
    nodes: list[Node]
    placements: list[Placement]
    problems: list[Problem] = field(default_factory=list)
    built: dict[str, str] = field(default_factory=dict)  # repository -> Dockerfile
    requested: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # node -> what its pods request
    origin: dict[str, str] = field(default_factory=dict)  # burst node the autoscaler added -> its template
    # Images on the platform registry the plan neither builds nor has a Dockerfile for: their
    # teams push them (repository -> workloads pulling it); listed for the reviewer.
    external: dict[str, list[str]] = field(default_factory=dict)


def _order(all_workloads: list[Workload]) -> list[Workload]:
    """Static pods and DaemonSets first, then the rest, higher priority first, then by name: the
    program registers resources in no fixed order, and the same plan must give the same answer."""

    def key(w: Workload) -> tuple[int, int, str, str, str]:
        return (0 if w.replicas == 0 else 1, -w.priority, w.kind, w.namespace, w.name)

    return sorted(all_workloads, key=key)


def _built_images(plan: Plan, root: Path) -> dict[str, start.ImageFacts]:
    built: dict[str, start.ImageFacts] = {}
    for r in plan.by_type(DOCKER_BUILD):
        dockerfile = root / str((r.raw_inputs.get("dockerfile") or {}).get("location", ""))
        args = {str(k): str(v) for k, v in (r.raw_inputs.get("buildArgs") or {}).items()}
        for tag in r.raw_inputs.get("tags") or ():
            repo = pulls.repository_of(str(tag))
            built[repo] = start.image_facts(repo, dockerfile, built, args)
    return built


def _pull_secret_hosts(plan: Plan) -> dict[tuple[str, str], frozenset[str]]:
    found = {}
    for r in plan.by_type("kubernetes:core/v1:Secret"):
        raw = r.raw_inputs
        if raw.get("type") != "kubernetes.io/dockerconfigjson":
            continue
        data = (raw.get("stringData") or {}).get(".dockerconfigjson")
        if data:
            meta = raw.get("metadata") or {}
            key = (str(meta.get("namespace", "default")), str(meta.get("name")))
            found[key] = frozenset(json.loads(data).get("auths", {}))
    return found


def _claims(plan: Plan) -> dict[tuple[str, str], tuple[str, ...]]:
    found = {}
    for r in plan.by_type("kubernetes:core/v1:PersistentVolumeClaim"):
        meta = r.raw_inputs.get("metadata") or {}
        modes = tuple((r.raw_inputs.get("spec") or {}).get("accessModes") or ())
        found[(str(meta.get("namespace", "default")), str(meta.get("name")))] = modes
    return found


def check(plan: Plan, settings: Settings) -> Report:
    problems: list[Problem] = []
    kubelet = nodes.cluster_kubelet(plan)
    if kubelet is None:
        problems.append(Problem("node", "cluster", "no node runs `kubeadm init`: nothing would ever start"))
    machine_nodes, node_problems = nodes.machine_nodes(plan, kubelet or {})
    templates, template_problems = nodes.burst_templates(plan, settings.instance_types, kubelet or {})
    problems += [Problem("node", subject, message) for subject, message in node_problems]
    problems += [Problem("burst-template", subject, message) for subject, message in template_problems]
    chart_workloads, chart_problems = charts.of_plan(plan)
    problems += [Problem("chart", subject, message) for subject, message in chart_problems]
    everything = [*addons.kubeadm(settings.kubernetes_version), *workloads.of_plan(plan), *chart_workloads]
    everything += addons.rook(plan) + addons.kube_vip(plan)
    cluster = Cluster([*machine_nodes, *templates])
    placements = [
        cluster.place_daemonset(w) if w.replicas == 0 else cluster.place_replicas(w) for w in _order(everything)
    ]
    report = Report(nodes=[*machine_nodes, *templates], placements=placements, problems=problems)
    report.requested = {name: dict(use.requests) for name, use in cluster.use.items()}
    report.origin = dict(cluster.origin)
    _scheduling(report, cluster, settings)
    _claim_rules(report, plan)
    _storage_rules(report, plan)
    report.problems += [Problem("mtu", subject, message) for subject, message in network.problems(plan, report.nodes)]
    report.problems += [Problem("priority", subject, message) for subject, message in priorities.problems(plan)]
    report.problems += [Problem("quota", s, m) for s, m in quotas.problems(plan, report.placements)]
    report.problems += [Problem("security-profile", s, m) for s, m in profiles.problems(report.placements)]
    report.problems += [Problem("service", s, m) for s, m in services.problems(plan, report.placements)]
    built = _built_images(plan, settings.root)
    report.built = {repo: facts.dockerfile for repo, facts in built.items()}
    _pull_rules(report, plan, settings, machine_nodes)
    _image_rules(report, settings, built)
    report.problems.sort(key=lambda p: (p.rule, p.subject, p.message))
    return report


def _scheduling(report: Report, cluster: Cluster, settings: Settings) -> None:
    add = report.problems.append
    real = [n for n in report.nodes if not n.template]
    for p in report.placements:
        w = p.workload
        for message, count in Counter(p.pending).items():
            add(Problem("unschedulable", w.label, f"{count} pods: {message}" if count > 1 else message))
        on_prem = [n for n in p.candidates if not n.template]
        if w.every_node:
            missing = [n.name for n in real if n not in p.placed]
            if missing:
                add(Problem("not-on-every-node", w.label, f"no pod on {', '.join(missing)}: those nodes stay NotReady"))
        if w.daemonset or w.kind == "static pods" or w.node_local:
            continue
        if w.gpus <= 0 and p.candidates and not on_prem:
            names = ", ".join(n.name for n in p.candidates)
            add(Problem("burst-only", w.label, f"asks for no GPU yet fits only burst capacity ({names})"))
        if w.one_per_node and w.surge and len(p.candidates) < w.replicas + w.surge:
            add(
                Problem(
                    "rollout",
                    w.label,
                    f"an update starts {w.surge} new pod(s) before stopping an old one, one pod per node, "
                    f"but only {len(p.candidates)} node(s) fit {w.replicas + w.surge}: the rollout never finishes",
                )
            )
        if w.kind == "Ceph daemon" and (own := [n.name for n in p.candidates if n.labels.get(BOOTS_FROM_CLUSTER_CEPH)]):
            add(
                Problem(
                    "ceph-on-itself",
                    w.label,
                    f"can land on {', '.join(own)}, whose disks are images in this Ceph: it stalls with the "
                    "Ceph it serves and, after a power cut, cannot start until Ceph is back",
                )
            )
        if settings.require_failover and w.gpus <= 0 and len(on_prem) == 1:
            add(
                Problem(
                    "no-failover",
                    w.label,
                    f"fits only {on_prem[0].name}: when that node is down it stays Pending (no failover)",
                )
            )
    for node in real:
        if node.gpus and node.name not in cluster.gpu_served:
            add(
                Problem(
                    "gpus-not-offered",
                    node.name,
                    f"has {node.gpus} GPU(s) but no device-plugin pod runs there: it offers 0 nvidia.com/gpu",
                )
            )


def _claim_rules(report: Report, plan: Plan) -> None:
    declared = _claims(plan)
    users: dict[tuple[str, str], list[Placement]] = defaultdict(list)
    for p in report.placements:
        for claim in p.workload.claims:
            users[(p.workload.namespace, claim)].append(p)
    for (ns, claim), placements in sorted(users.items()):
        labels = ", ".join(p.workload.label for p in placements)
        if (ns, claim) not in declared:
            report.problems.append(
                Problem("claim", f"{ns}/{claim}", f"no such PersistentVolumeClaim; {labels} stay Pending")
            )
            continue
        modes = declared[(ns, claim)]
        if "ReadWriteMany" in modes or "ReadOnlyMany" in modes:
            continue
        pods = sum(len(p.placed) if p.workload.daemonset else p.workload.replicas for p in placements)
        rolling = any(p.workload.rolling for p in placements)
        if pods > 1 or rolling:
            why = "a rolling update starts the new pod before the old one stops" if pods <= 1 else f"{pods} pods use it"
            report.problems.append(
                Problem(
                    "claim",
                    f"{ns}/{claim}",
                    f"{'/'.join(modes)} but {why} ({labels}): on another node that is a Multi-Attach error",
                )
            )


def _pull_rules(report: Report, plan: Plan, settings: Settings, machine_nodes: list[Node]) -> None:
    platform = {r.host: r for r in settings.platform_registries}
    addresses = frozenset(n.address for n in machine_nodes)
    secrets = _pull_secret_hosts(plan)
    failures: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for p in report.placements:
        w = p.workload
        hosts = frozenset(h for s in w.pull_secrets for h in secrets.get((w.namespace, s), ()))
        runs_on = (
            p.placed if w.daemonset or w.node_local else list({id(n): n for n in [*p.candidates, *p.placed]}.values())
        )
        for node in runs_on:
            for image in sorted({c.image for c in w.containers}):
                result = pulls.pull(node, image, platform, addresses, hosts)
                if result.source is None:
                    failures[("pull", w.label, image, "; ".join(result.problems))].append(node.name)
                else:
                    for problem in result.problems:
                        failures[
                            ("cache-unused", w.label, image, f"{problem}; containerd falls back to {result.source}")
                        ].append(node.name)
    for (rule, label, image, why), node_names in failures.items():
        verb = "cannot pull" if rule == "pull" else "pulls"
        report.problems.append(Problem(rule, label, f"{verb} {image} on {', '.join(sorted(set(node_names)))}: {why}"))


def _storage_rules(report: Report, plan: Plan) -> None:
    """Volumes are made by a CSI driver's controller and mounted by its node plugin: a claim of a
    class whose driver does not run stays Pending; a pod on a node without the node plugin does
    not start (`driver name ... not found in the list of registered CSI drivers`)."""
    add = report.problems.append
    classes = {
        str(r.raw_inputs["metadata"]["name"]): r.raw_inputs
        for r in plan.by_type("kubernetes:storage.k8s.io/v1:StorageClass")
    }
    default = next(
        (
            n
            for n, c in classes.items()
            if (c["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
        ),
        None,
    )
    controllers = {p.workload.csi_driver: p for p in report.placements if p.workload.csi_driver and p.placed}
    node_plugins: dict[str, set[str]] = defaultdict(set)
    for p in report.placements:
        if p.workload.csi_node:
            node_plugins[p.workload.csi_node] |= {n.name for n in p.placed}
    for name, sc in sorted(classes.items()):
        if sc.get("provisioner") not in controllers:
            add(
                Problem(
                    "storage",
                    f"StorageClass {name}",
                    f"no controller of CSI driver {sc.get('provisioner')} runs: its claims stay Pending",
                )
            )
    for r in plan.by_type("kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshotClass"):
        driver = r.raw_inputs.get("driver")
        ctrl = controllers.get(str(driver))
        if ctrl is None or not ctrl.workload.csi_snapshots:
            add(
                Problem(
                    "storage",
                    f"VolumeSnapshotClass {r.raw_inputs['metadata']['name']}",
                    f"CSI driver {driver} runs no snapshotter: its VolumeSnapshots never become ready",
                )
            )
    claim_class = {
        (str(r.raw_inputs["metadata"].get("namespace", "default")), str(r.raw_inputs["metadata"]["name"])): (
            r.raw_inputs.get("spec") or {}
        ).get("storageClassName", default)
        for r in plan.by_type("kubernetes:core/v1:PersistentVolumeClaim")
    }
    for p in report.placements:
        for claim in p.workload.claims:
            used = classes.get(str(claim_class.get((p.workload.namespace, claim))))
            if used is None:
                continue
            driver = str(used.get("provisioner"))
            # A burst node the autoscaler adds runs what its template's DaemonSets select.
            missing = sorted({report.origin.get(n.name, n.name) for n in p.placed} - node_plugins[driver])
            if missing:
                add(
                    Problem(
                        "storage",
                        p.workload.label,
                        f"mounts {claim} ({driver}) on {', '.join(missing)}, "
                        "where that driver's node plugin does not run",
                    )
                )


def _image_rules(report: Report, settings: Settings, built: Mapping[str, start.ImageFacts]) -> None:
    own = {r.host for r in settings.platform_registries}
    seen: set[tuple[str, str]] = set()
    for p in report.placements:
        w = p.workload
        for reason in w.blocked:
            report.problems.append(Problem("start", w.label, reason))
        for c in w.containers:
            repo = pulls.repository_of(c.image)
            namespace, _, path = repo.partition("/")
            name = path.rsplit("/", 1)[-1]
            if namespace in own and repo not in built and (w.label, repo) not in seen:
                seen.add((w.label, repo))
                if (settings.root / "images" / name).is_dir():
                    message = f"pulls {repo}, built from images/{name}, which the plan never builds"
                    report.problems.append(Problem("not-built", w.label, message))
                else:
                    report.external.setdefault(repo, []).append(w.label)
            facts = built.get(repo)
            if facts is not None:
                for problem in start.start_problems(c, facts):
                    report.problems.append(Problem("start", f"{w.label} container {c.name}", problem))
