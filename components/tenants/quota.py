"""An engineer's share of the cluster: the ResourceQuota and LimitRange of their namespace, as
plain manifests from plain values (pure, tested directly)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

GPU = "nvidia.com/gpu"
# The only NodePort an engineer's namespace holds is the platform's ssh Service in front of their
# home; a second one would take a port of the office LAN's range, a LoadBalancer an address.
NODE_PORTS = 1

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
    cpu: str  # cores, requests and limits, e.g. "16" or "500m"
    memory: str  # requests and limits, e.g. "64Gi"
    storage: str  # all their claims together (the home included), e.g. "1Ti"
    claims: int = 10  # PersistentVolumeClaims, the home included


@dataclass(frozen=True)
class ContainerDefaults:
    """Request and limit of a container that states none (the LimitRange's defaults)."""

    cpu: str  # e.g. "1"
    memory: str  # e.g. "4Gi"


def quota_hard(q: TenantQuota) -> dict[str, str]:
    """The ResourceQuota's `spec.hard`. Limits equal requests: memory beyond a request is memory
    another engineer's pod on the node counted on (OOM kills), and CPU limits keep one engineer's
    busy pods from starving another's ssh session."""
    return {
        "requests.cpu": q.cpu,
        "limits.cpu": q.cpu,
        "requests.memory": q.memory,
        "limits.memory": q.memory,
        f"requests.{GPU}": str(q.gpus),
        "requests.storage": q.storage,
        "persistentvolumeclaims": str(q.claims),
        "services.nodeports": str(NODE_PORTS),
        "services.loadbalancers": "0",
    }


def limit_range_limits(d: ContainerDefaults) -> list[dict[str, object]]:
    """The LimitRange's `spec.limits`: a container that states no request or limit gets these
    (with a quota on cpu and memory the API server otherwise refuses such a pod outright)."""
    values = {"cpu": d.cpu, "memory": d.memory}
    return [{"type": "Container", "default": dict(values), "defaultRequest": dict(values)}]
