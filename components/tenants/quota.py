"""An engineer's share of the cluster: the ResourceQuota and LimitRange of their namespace, as
plain manifests from plain values (pure, tested directly)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from components.cluster.priorities import PLATFORM
from components.storage.ceph_storage import CEPHFS_CLASS, RBD_CLASS

GPU = "nvidia.com/gpu"
# The only NodePort an engineer's namespace holds is the platform's ssh Service in front of their
# home; a second one would take a port of the office LAN's range, a LoadBalancer an address.
NODE_PORTS = 1

# PriorityClasses an engineer's pod may not name: the built-in system ones (usable in any
# namespace since 1.17) and the platform's own. With any of them a pod would preempt the others'
# home pods and Jobs, or the platform's services. The home pods and akiba-gpu-shell are
# akiba-interactive, Jobs akiba-batch (the default) or akiba-burst.
RESERVED_PRIORITIES = ("system-node-critical", "system-cluster-critical", PLATFORM)

# Claims of the Retain classes an engineer's namespace may hold: one CephFS (their home, which the
# platform makes and protects) and no RBD. A Retain volume outlives its claim, and the quota
# counts live claims only: create-and-delete would pile Released volumes up in Ceph until it is
# full. Their own claims take the Delete classes, akiba-cephfs-scratch and akiba-rbd-scratch
# (components/storage/ceph_storage.py).
RETAINED_CLAIMS = {CEPHFS_CLASS: 1, RBD_CLASS: 0}


def class_claims(storage_class: str) -> str:
    """The quota's name for the claims of one StorageClass."""
    return f"{storage_class}.storageclass.storage.k8s.io/persistentvolumeclaims"


SNAPSHOTS = "count/volumesnapshots.snapshot.storage.k8s.io"

# Node disk (writable layers, logs, emptyDirs) one container may use at most: above it the kubelet
# evicts its pod. A pod's own bound is the sum of its containers' limits, emptyDirs included, so
# the home pod (shell + Docker at the default, components.engineers.rootless_docker's 100Gi state
# emptyDir) needs the default at half of that and some (tests/test_tenants.py checks it fits).
EPHEMERAL_MAX = "100Gi"
# What a container that states none holds back on its node (and the quota counts); its use above
# this is what the kubelet evicts first when a node runs short of disk.
EPHEMERAL_REQUEST = "1Gi"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6}
_DECIMAL |= {"G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18}
# k8s.io/apimachinery resource.Quantity, less the forms nobody writes in a stack file (exponents).
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE])?$")


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity's value (cores, bytes); ValueError if it is not one."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


@dataclass(frozen=True)
class TenantQuota:
    """What one engineer's namespace may hold in all, e.g. 4 GPUs, 16 CPU, 64Gi, 1Ti."""

    gpus: int  # nvidia.com/gpu requested by all their pods together
    cpu: str  # cores all their pods request together, and one container's most, e.g. "16" or "500m"
    memory: str  # what all their pods request together, and one container's most, e.g. "64Gi"
    storage: str  # all their claims together (the home included), e.g. "1Ti"
    claims: int = 10  # PersistentVolumeClaims, the home included
    snapshots: int = 20  # VolumeSnapshots at once (a snapshot holds its data in Ceph, uncounted by storage)
    # Node disk all their containers request together (1Gi each that states none), e.g. "200Gi".
    ephemeral_storage: str = "200Gi"


@dataclass(frozen=True)
class ContainerDefaults:
    """Request and limit of a container that states none (the LimitRange's defaults)."""

    cpu: str  # e.g. "1"
    memory: str  # e.g. "4Gi"
    ephemeral_storage: str = "60Gi"  # the limit on node disk (layer, logs, emptyDirs), up to EPHEMERAL_MAX


def quota_hard(q: TenantQuota) -> dict[str, str]:
    """The ResourceQuota's `spec.hard`: requests only, of cpu and memory. Limits are not in the
    quota: the home pod is a DaemonSet, and its limits once per node would count one engineer's
    idle sshd on every node as if every node were busy at once (prod: 5 x 16 CPU against 16),
    leaving a login's shell a sliver of a node. Requests are what the scheduler holds back for a
    pod, so they are what one engineer takes from the others; the LimitRange's `max` bounds each
    container (limit_range_limits). Node disk likewise: requests in the quota, a limit on each
    container (the LimitRange's default and max), which the kubelet enforces by eviction."""
    return {
        "requests.cpu": q.cpu,
        "requests.memory": q.memory,
        f"requests.{GPU}": str(q.gpus),
        "requests.ephemeral-storage": q.ephemeral_storage,
        "requests.storage": q.storage,
        "persistentvolumeclaims": str(q.claims),
        **{class_claims(name): str(count) for name, count in RETAINED_CLAIMS.items()},
        SNAPSHOTS: str(q.snapshots),
        "services.nodeports": str(NODE_PORTS),
        "services.loadbalancers": "0",
    }


def limit_range_limits(d: ContainerDefaults, q: TenantQuota) -> list[dict[str, object]]:
    """The LimitRange's `spec.limits`: a container that states no request or limit gets the
    defaults (the quota tracks requests, and a pod without one would take none from it), and no
    container may ask for more than the engineer's whole quota (`max`, on limits and requests).
    Node disk: every container gets a limit (a pod without one could fill its node's disk), and
    a small default request, as the kubelet ranks a full node's pods by use above request."""
    values = {"cpu": d.cpu, "memory": d.memory}
    most = {"cpu": q.cpu, "memory": q.memory, "ephemeral-storage": EPHEMERAL_MAX}
    return [
        {
            "type": "Container",
            "default": values | {"ephemeral-storage": d.ephemeral_storage},
            "defaultRequest": values | {"ephemeral-storage": EPHEMERAL_REQUEST},
            "max": most,
        }
    ]


def reserved_priority_quota() -> dict[str, object]:
    """A second ResourceQuota's `spec`: no pod of a reserved class (Kubernetes' "Limit Priority
    Class consumption by default" pattern: the quota admission plugin counts only the pods its
    scope selects, and refuses the first one against `pods: 0`)."""
    scope = {"scopeName": "PriorityClass", "operator": "In", "values": list(RESERVED_PRIORITIES)}
    return {"hard": {"pods": "0"}, "scopeSelector": {"matchExpressions": [scope]}}
