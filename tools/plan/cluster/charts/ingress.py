"""The ingress controller: Traefik.

Source: traefik/traefik-helm-chart, traefik/ @ v41.3.0 (templates/_podtemplate.tpl, values.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.plan.cluster.charts.base import Pod, container, merge
from tools.plan.cluster.workloads import max_surge


def traefik(v: Mapping[str, Any]) -> list[Pod]:
    """A Deployment (or DaemonSet, `deployment.kind`) with no placement, requests or priority by
    default; its ports are host ports only where `ports.<name>.hostPort` or `hostNetwork` says."""
    d = merge(
        {
            "deployment": {"kind": "Deployment", "replicas": 1},
            # values.yaml: a rolling update adds one pod before it removes one.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "tolerations": [],
            "nodeSelector": {},
            "affinity": {},
            "resources": {},
            "hostNetwork": False,
            "ports": {
                "traefik": {"port": 8080},
                "web": {"port": 8000},
                "websecure": {"port": 8443},
                "metrics": {"port": 9100},
            },
        },
        v,
    )
    ports = [
        {"containerPort": int(p["port"]), **({"hostPort": int(p["hostPort"])} if p.get("hostPort") else {})}
        for p in d["ports"].values()
        if isinstance(p, Mapping) and p.get("port")
    ]
    kind = str(d["deployment"]["kind"])
    replicas = 0 if kind == "DaemonSet" else int(d["deployment"]["replicas"])
    strategy = d["updateStrategy"]
    rolling = kind == "Deployment" and strategy.get("type") == "RollingUpdate"
    surge = max_surge((strategy.get("rollingUpdate") or {}).get("maxSurge", 1), replicas) if rolling else 0
    anti = ((d["affinity"] or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or []
    spread = any(t.get("topologyKey") == "kubernetes.io/hostname" for t in anti)  # pods carry name=traefik
    return [
        Pod(
            kind=kind,
            name="traefik",
            replicas=replicas,
            containers=[{**container("traefik", "docker.io/traefik:v3.7.11", d["resources"]), "ports": ports}],
            tolerations=d["tolerations"],
            node_selector=d["nodeSelector"],
            affinity=d["affinity"],
            host_network=bool(d["hostNetwork"]),
            priority=str(d.get("priorityClassName", "")),
            extra={"one_per_node": spread, "rolling": rolling, "surge": surge},
        )
    ]
