"""What every chart model shares: Helm's coalescing of values over a chart's defaults, and the
pieces of a pod template a model fills in."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NOT_FARGATE = {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}
EXISTS_NO_SCHEDULE = {"operator": "Exists", "effect": "NoSchedule"}


def merge(defaults: Any, values: Any) -> Any:
    """Helm's coalescing of user values over a chart's defaults."""
    if isinstance(defaults, Mapping) and isinstance(values, Mapping):
        out = dict(defaults)
        for key, value in values.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(defaults.get(key), value)
        return out
    return copy.deepcopy(values if values is not None else defaults)


@dataclass(frozen=True, kw_only=True)
class Pod:
    """One workload a chart renders: its kind, name, replicas and pod template pieces."""

    kind: str
    name: str
    replicas: int  # DaemonSet: 0
    containers: list[dict[str, Any]]
    tolerations: list[Any] = field(default_factory=list)
    node_selector: Mapping[str, Any] = field(default_factory=dict)
    affinity: Mapping[str, Any] = field(default_factory=dict)
    host_network: bool = False
    priority: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # Workload fields (serves_gpus, blocked...)


# A chart model: the values passed -> the workloads the chart renders.
Model = Callable[[Mapping[str, Any]], list[Pod]]


def container(
    name: str, image: str, resources: Any = None, ports: tuple[int, ...] = (), *, init: bool = False
) -> dict[str, Any]:
    """A container of a pod template; `init` marks an init container."""
    c: dict[str, Any] = {"name": name, "image": image, "resources": resources or {}}
    if ports:
        c["ports"] = [{"containerPort": p} for p in ports]
    if init:
        c["init"] = True
    return c


def required_node_affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    """A required node affinity: each argument one nodeSelectorTerm's matchExpressions (ORed)."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
            }
        }
    }
