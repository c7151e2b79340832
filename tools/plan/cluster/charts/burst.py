"""The burst group's controllers: the cluster-autoscaler that adds spot nodes, and the termination
handler that drains them before AWS takes them back.

Sources:
- kubernetes/autoscaler, cluster-autoscaler/charts/cluster-autoscaler @ cluster-autoscaler-chart-9.59.0
  (templates/deployment.yaml, values.yaml);
- aws/aws-node-termination-handler, config/helm/aws-node-termination-handler @ v1.25.6 (the commit
  that made chart 0.27.6; templates/daemonset.linux.yaml, templates/_helpers.tpl, values.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.plan.cluster.charts.base import NOT_FARGATE, Pod, container, merge, required_node_affinity


def cluster_autoscaler(v: Mapping[str, Any]) -> list[Pod]:
    """One Deployment; placement and resources verbatim from the values, none by default."""
    d = merge(
        {
            "replicaCount": 1,
            "tolerations": [],
            "nodeSelector": {},
            "affinity": {},
            "resources": {},
            "priorityClassName": "system-cluster-critical",  # rendered only when non-empty
            "image": {"repository": "registry.k8s.io/autoscaling/cluster-autoscaler", "tag": "v1.35.0"},
        },
        v,
    )
    return [
        Pod(
            kind="Deployment",
            name="cluster-autoscaler",
            replicas=int(d["replicaCount"]),
            containers=[
                container("cluster-autoscaler", f"{d['image']['repository']}:{d['image']['tag']}", d["resources"])
            ],
            tolerations=d["tolerations"],
            node_selector=d["nodeSelector"],
            affinity=d["affinity"],
            priority=str(d.get("priorityClassName") or ""),
        )
    ]


def helm_default(fallback: Any, given: Any) -> Any:
    """Sprig's `default FALLBACK GIVEN`: GIVEN unless it is empty (nil, {}, [], "", 0, false)."""
    return given if given else fallback


def node_termination_handler(v: Mapping[str, Any]) -> list[Pod]:
    """IMDS mode (`enableSqsTerminationDraining: false`): the Linux DaemonSet on the host network.

    The template picks each placement field with
    `default .Values.daemonsetX (default .Values.X .Values.linuxX)`, so linuxX beats X beats
    daemonsetX, whichever is non-empty; daemonsetTolerations ([{operator: Exists}]) and
    daemonsetAffinity (not on Fargate) are non-empty by default."""
    d = merge(
        {
            "image": {"repository": "public.ecr.aws/aws-ec2/aws-node-termination-handler", "tag": ""},
            "resources": {},
            "useHostNetwork": True,
            "daemonsetPriorityClassName": "system-node-critical",
            "nodeSelector": {},
            "daemonsetNodeSelector": {},
            "linuxNodeSelector": {},
            "affinity": {},
            "daemonsetAffinity": required_node_affinity([NOT_FARGATE]),
            "linuxAffinity": {},
            "tolerations": [],
            "daemonsetTolerations": [{"operator": "Exists"}],
            "linuxTolerations": [],
        },
        v,
    )

    def pick(daemonset: str, plain: str, linux: str) -> Any:
        return helm_default(d.get(daemonset), helm_default(d.get(plain), d.get(linux)))

    image = f"{d['image']['repository']}:{helm_default('v1.25.6', d['image'].get('tag'))}"  # "v" + appVersion
    return [
        Pod(
            kind="DaemonSet",
            name="aws-node-termination-handler",
            replicas=0,
            containers=[container("aws-node-termination-handler", image, d["resources"])],
            tolerations=pick("daemonsetTolerations", "tolerations", "linuxTolerations") or [],
            node_selector={
                "kubernetes.io/os": "linux",
                **(pick("daemonsetNodeSelector", "nodeSelector", "linuxNodeSelector") or {}),
            },
            affinity=pick("daemonsetAffinity", "affinity", "linuxAffinity") or {},
            host_network=bool(d["useHostNetwork"]),
            priority=str(d.get("daemonsetPriorityClassName") or ""),
        )
    ]
