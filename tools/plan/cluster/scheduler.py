"""kube-scheduler's filters, and a placement of every pod the plan asks for.

Filters run per node in the scheduler's order and the first that fails names the node's reason:
TaintToleration (NoSchedule and NoExecute), NodeAffinity (nodeSelector and required node
affinity), NodePorts (hostPort conflicts), NodeResourcesFit (cpu, memory, pods, GPUs). The
wording of a failure is the scheduler's FailedScheduling event, e.g.
`0/6 nodes are available: 5 node(s) had untolerated taint {nvidia.com/gpu: present}, 1 Insufficient cpu.`

Placement follows the scheduler's defaults closely enough to find what would stay Pending:
DaemonSet pods go to every node they select; the rest are placed in priority order, each replica
on a feasible node that holds no replica of it yet if there is one (spreading), else on the
least allocated. Pods that fit no node but fit the burst group's node template are placed on a
burst node the autoscaler adds (as many as the group's maximum).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal

from tools.plan.cluster.model import GPU, Node, Workload


@dataclass
class NodeUse:
    """What is already placed on a node."""

    requests: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    ports: set[tuple[int, str]] = field(default_factory=set)
    pods: list[Workload] = field(default_factory=list)


def untolerated(workload: Workload, node: Node) -> str | None:
    for taint in node.taints:
        if taint.effect not in ("NoSchedule", "NoExecute"):
            continue
        if not any(t.tolerates(taint) for t in workload.tolerations):
            return f"node(s) had untolerated taint {taint}"
    return None


def selects(workload: Workload, node: Node) -> bool:
    """nodeSelector, then required node affinity: any term whose expressions all match. A term
    with no matchExpressions matches no node (matchFields, not modelled, leaves a term empty)."""
    if any(node.labels.get(k) != v for k, v in workload.node_selector.items()):
        return False
    terms = workload.affinity_terms
    return not terms or any(term and all(r.matches(node.labels) for r in term) for term in terms)


def static_reason(workload: Workload, node: Node) -> str | None:
    """Why the pod can never land on this node (taints, selectors); None if it can."""
    if reason := untolerated(workload, node):
        return reason
    if not selects(workload, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def allocatable(node: Node, gpu_served: bool) -> dict[str, Decimal]:
    alloc = dict(node.capacity)
    alloc[GPU] = Decimal(node.gpus if gpu_served else 0)
    return alloc


def fit_reason(workload: Workload, node: Node, use: NodeUse, gpu_served: bool) -> str | None:
    """Why the pod does not fit what is left on the node (ports, then resources)."""
    if workload.host_ports & use.ports:
        return "node(s) didn't have free ports for the requested pod ports"
    if workload.one_per_node and any(p is workload for p in use.pods):
        return "node(s) didn't match pod anti-affinity rules"
    alloc = allocatable(node, gpu_served)
    if len(use.pods) + 1 > alloc.get("pods", Decimal(110)):
        return "Too many pods"
    for resource, amount in sorted(workload.requests.items()):
        if amount <= 0 or resource in ("ephemeral-storage",):
            continue
        if use.requests[resource] + amount > alloc.get(resource, Decimal(0)):
            return f"Insufficient {resource}"
    return None


def event(reasons: list[str], total: int) -> str:
    """The FailedScheduling message: reasons counted, the scheduler's order (alphabetical)."""
    if not total:
        return "no nodes available to schedule pods."
    counts = Counter(reasons)
    parts = [f"{n} {r}" for r, n in sorted(counts.items())]
    return f"0/{total} nodes are available: {', '.join(parts)}."


@dataclass
class Placement:
    workload: Workload
    candidates: list[Node]  # nodes it can land on at all (taints, selectors, an empty node's room)
    placed: list[Node] = field(default_factory=list)  # where the simulation put its pods
    pending: list[str] = field(default_factory=list)  # FailedScheduling messages of pods that stay Pending


class Cluster:
    """The nodes, what runs on them, and the burst nodes the autoscaler added so far."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = [n for n in nodes if not n.template]  # grows by the burst nodes added
        self.templates = [n for n in nodes if n.template]
        # A template's use is what its DaemonSet pods take on every node made from it.
        self.use: dict[str, NodeUse] = {n.name: NodeUse() for n in nodes}
        self.origin: dict[str, str] = {}  # burst node -> its template
        self.gpu_served: set[str] = set()  # nodes (and templates) where the device plugin runs

    def served(self, node: Node) -> bool:
        return node.name in self.gpu_served or self.origin.get(node.name, "") in self.gpu_served

    def place(self, workload: Workload, node: Node) -> None:
        use = self.use[node.name]
        for resource, amount in workload.requests.items():
            use.requests[resource] += amount
        use.ports |= workload.host_ports
        use.pods.append(workload)

    def reason(self, workload: Workload, node: Node) -> str | None:
        """The first filter that fails on this node as it is now."""
        return static_reason(workload, node) or fit_reason(workload, node, self.use[node.name], self.served(node))

    def candidates(self, workload: Workload) -> list[Node]:
        """Nodes (templates included) the pod could land on if it had them to itself."""
        empty = NodeUse()
        return [
            n
            for n in [*self.nodes, *self.templates]
            if n.name not in self.origin
            and static_reason(workload, n) is None
            and fit_reason(workload, n, empty, self.served(n)) is None
        ]

    def place_daemonset(self, workload: Workload) -> Placement:
        placement = Placement(workload, self.candidates(workload))
        for node in [*self.nodes, *self.templates]:
            if static_reason(workload, node) is not None:
                continue  # the DaemonSet controller makes no pod for a node it does not select
            reason = fit_reason(workload, node, self.use[node.name], self.served(node))
            if reason is not None:
                placement.pending.append(f"its pod for {node.name}: {event([reason], 1)}")
                continue
            self.place(workload, node)
            placement.placed.append(node)
            if workload.serves_gpus:
                self.gpu_served.add(node.name)
        return placement

    def place_replicas(self, workload: Workload) -> Placement:
        placement = Placement(workload, self.candidates(workload))
        for _ in range(workload.replicas):
            node = self._choose(workload) or self._scale_up(workload)
            if node is None:
                message = event([self.reason(workload, n) or "" for n in self.nodes], len(self.nodes))
                placement.pending.append(message + self._no_scale_up(workload))
                continue
            self.place(workload, node)
            placement.placed.append(node)
        return placement

    def _choose(self, workload: Workload) -> Node | None:
        feasible = [n for n in self.nodes if self.reason(workload, n) is None]
        if not feasible:
            return None

        def score(n: Node) -> tuple[int, Decimal]:
            # Spread replicas first (the default topology spreading), then the least allocated.
            use = self.use[n.name]
            alloc = allocatable(n, self.served(n))
            used = sum(
                (use.requests[r] / alloc[r] for r in ("cpu", "memory") if alloc.get(r, Decimal(0)) > 0), Decimal(0)
            )
            return (sum(1 for p in use.pods if p is workload), used)

        return min(feasible, key=score)

    def _no_scale_up(self, workload: Workload) -> str:
        """Why the cluster-autoscaler adds no node for the pod (its NotTriggerScaleUp event)."""
        reasons = []
        for template in self.templates:
            added = sum(1 for t in self.origin.values() if t == template.name)
            why = "the group is at its maximum size" if added >= template.max_count else self.reason(workload, template)
            reasons.append(f"{template.name}: {why}")
        return f" Burst: pod didn't trigger scale-up: {'; '.join(reasons)}." if reasons else ""

    def _scale_up(self, workload: Workload) -> Node | None:
        """The cluster-autoscaler adds a node from a template the pending pod fits, if it may."""
        for template in self.templates:
            added = [n for n, t in self.origin.items() if t == template.name]
            if len(added) >= template.max_count or self.reason(workload, template) is not None:
                continue
            node = replace(template, name=f"{template.name}-{len(added) + 1}", template=False, max_count=1)
            self.nodes.append(node)
            self.origin[node.name] = template.name
            seed = self.use[template.name]
            self.use[node.name] = NodeUse(defaultdict(Decimal, seed.requests), set(seed.ports), list(seed.pods))
            return node
        return None
