"""What the cluster check reasons about: nodes as the kubelet registers them, and pod templates
as the scheduler sees them. Plain data; `nodes.py` and `workloads.py` build it from the plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from tools.plan.cluster import quantity

NodeKind = Literal["baremetal", "vm", "burst"]
GPU = "nvidia.com/gpu"
# What the kubelet labels every node with, besides what kubeadm passes it.
OS_ARCH = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
# The capabilities containerd gives a container that drops nothing (containerd's defaults).
DEFAULT_CAPS = frozenset(
    {
        *("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID"),
        *("SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"),
    }
)


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str  # NoSchedule, PreferNoSchedule, NoExecute

    def __str__(self) -> str:
        # The scheduler's own wording: {key: value}
        return f"{{{self.key}: {self.value}}}"


@dataclass(frozen=True)
class Toleration:
    key: str  # "" with Exists: every taint
    operator: str  # Equal or Exists
    value: str
    effect: str  # "": every effect

    def tolerates(self, taint: Taint) -> bool:
        """corev1.Toleration.ToleratesTaint."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator in ("Equal", "") and self.value == taint.value

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Toleration:
        return cls(
            str(raw.get("key") or ""),
            str(raw.get("operator") or "Equal"),
            str(raw.get("value") or ""),
            str(raw.get("effect") or ""),
        )


@dataclass(frozen=True)
class Requirement:
    """One matchExpression of a required node affinity term."""

    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist, Gt, Lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "In":
            return value is not None and value in self.values
        if self.operator == "NotIn":
            return value is None or value not in self.values
        if self.operator == "Exists":
            return value is not None
        if self.operator == "DoesNotExist":
            return value is None
        if self.operator in ("Gt", "Lt") and value is not None and value.lstrip("-").isdigit():
            bound = int(self.values[0])
            return int(value) > bound if self.operator == "Gt" else int(value) < bound
        return False


@dataclass(frozen=True)
class HostEntry:
    """One `[host."<url>"]` of a containerd hosts.toml, or its `server`."""

    url: str
    capabilities: tuple[str, ...]
    ca: tuple[str, ...]
    headers: Mapping[str, str]
    override_path: bool = False


@dataclass(frozen=True)
class RegistryHosts:
    """`/etc/containerd/certs.d/<namespace>/hosts.toml`: the mirrors in order, then the server."""

    namespace: str
    hosts: tuple[HostEntry, ...]
    server: HostEntry


@dataclass
class Node:
    name: str
    kind: NodeKind
    source: str  # where the plan declares it, e.g. "MAAS deployment akiba01"
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    capacity: dict[str, Decimal]  # cpu (cores), memory (bytes), pods; GPUs only once a plugin serves them
    gpus: int  # physical GPUs the node has (offered as nvidia.com/gpu only where the device plugin runs)
    address: str  # its IP, or "(own address)" for a template
    registries: dict[str, RegistryHosts] = field(default_factory=dict)
    etc_hosts: dict[str, str] = field(default_factory=dict)  # name -> address
    files: frozenset[str] = frozenset()  # files the node is known to have (CA bundles)
    # Localhost seccomp/AppArmor profiles its configuration installs ("seccomp:<path under the
    # kubelet's seccomp dir>", "apparmor:<profile name>"): a pod naming another does not start there.
    security_profiles: frozenset[str] = frozenset()
    mtu: int | None = None  # its interface MTU (netplan), where the plan sets it
    template: bool = False  # the burst group's node template: a node the autoscaler can add
    max_count: int = 1  # how many of it the autoscaler may add

    @property
    def control_plane(self) -> bool:
        return CONTROL_PLANE in self.labels


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    requests: Mapping[str, Decimal]
    host_ports: tuple[tuple[int, str], ...]  # (port, protocol)
    run_as_user: int | None  # container, else pod securityContext
    run_as_non_root: bool | None
    privileged: bool
    caps_add: frozenset[str]
    caps_drop: frozenset[str]
    init: bool = False
    # Its own limits: what a namespace's LimitRange fills in where absent and its quota counts.
    limits: Mapping[str, Decimal] = field(default_factory=dict)
    # The Localhost profiles it runs under, as Node.security_profiles names them.
    profiles: tuple[str, ...] = ()

    @property
    def capabilities(self) -> frozenset[str]:
        """What the process gets when it runs as root."""
        if self.privileged:
            return frozenset({"ALL"}) | DEFAULT_CAPS
        base = frozenset() if "ALL" in self.caps_drop else DEFAULT_CAPS - self.caps_drop
        return base | self.caps_add


@dataclass
class Workload:
    """One pod template and how many pods of it the cluster runs."""

    kind: str  # Deployment, StatefulSet, DaemonSet, Job, CronJob, static, ...
    namespace: str
    name: str
    source: str  # "Deployment akiba-registry/registry", "chart traefik", "kubeadm add-on"
    replicas: int  # DaemonSets: 0 (one per node it selects)
    node_selector: Mapping[str, str]
    affinity_terms: tuple[tuple[Requirement, ...], ...]  # required; any term may match
    tolerations: tuple[Toleration, ...]
    containers: tuple[Container, ...]
    host_network: bool = False
    claims: tuple[str, ...] = ()  # PVC names in the namespace
    pull_secrets: tuple[str, ...] = ()
    one_per_node: bool = False  # required pod anti-affinity on its own labels (Ceph mons)
    node_local: bool = False  # bound to one node by design (an OSD on that node's disks)
    serves_gpus: bool = False  # the device plugin: nodes offer nvidia.com/gpu where it runs
    every_node: bool = False  # a node without it is not Ready (CNI, kube-proxy)
    priority: int = 0  # higher places first (system-node-critical, system-cluster-critical)
    priority_class: str = ""  # the pod's priorityClassName ("": none named, the global default's)
    rolling: bool = False  # a Deployment's RollingUpdate: the new pod starts before the old stops
    surge: int = 0  # extra pods a rolling update starts before it stops old ones (maxSurge)
    blocked: tuple[str, ...] = ()  # why its pods never start, wherever they land
    csi_node: str = ""  # the node plugin of this CSI driver: volumes of it mount only where it runs
    csi_driver: str = ""  # the controller of this CSI driver: it provisions the driver's volumes
    csi_snapshots: bool = False  # ... and takes its VolumeSnapshots

    @property
    def daemonset(self) -> bool:
        return self.kind == "DaemonSet"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    @property
    def requests(self) -> dict[str, Decimal]:
        """The pod's effective request: the containers' sum, or the largest init container."""
        total: dict[str, Decimal] = {}
        for c in self.containers:
            if not c.init:
                for k, v in c.requests.items():
                    total[k] = total.get(k, Decimal(0)) + v
        for c in self.containers:
            if c.init:
                for k, v in c.requests.items():
                    total[k] = max(total.get(k, Decimal(0)), v)
        return total

    @property
    def gpus(self) -> Decimal:
        return self.requests.get(GPU, Decimal(0))

    @property
    def host_ports(self) -> set[tuple[int, str]]:
        return {p for c in self.containers for p in c.host_ports}


def requests_of(resources: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """A container's requests; where only limits are given, the API server copies them."""
    resources = resources or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    return {k: quantity.parse(v) for k, v in {**limits, **requests}.items()}


def limits_of(resources: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """A container's own limits."""
    return {k: quantity.parse(v) for k, v in ((resources or {}).get("limits") or {}).items()}
