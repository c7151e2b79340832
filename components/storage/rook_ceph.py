"""Rook runs Ceph on the bare-metal nodes' SSDs: the operator (Helm chart, pinned to the CRDs
the tests validate against) and one CephCluster whose OSDs are exactly the disks each node
declares. Host networking, so libvirt hypervisors outside Kubernetes reach the monitors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.bootstrap import CONTROL_PLANE_TAINT, GPU_TAINT
from components.cluster.helm import pinned_chart
from components.cluster.namespaces import declare_namespace
from components.context import PlatformContext

NAMESPACE = "rook-ceph"
ROOK_CHART_VERSION = "v1.20.6"  # ../shared/crds/rook-ceph-v1.20.6.crds.yaml
ROOK_REPO = "https://charts.rook.io/release"
CEPH_IMAGE = "quay.io/ceph/ceph:v19.2.3"  # Squid
CLUSTER_NAME = "rook-ceph"
# Every node is a GPU node (tainted), the first is also the controller: Ceph runs on all of them.
TOLERATIONS = [
    {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]},
    {"key": CONTROL_PLANE_TAINT["key"], "operator": "Exists", "effect": CONTROL_PLANE_TAINT["effect"]},
]


@dataclass(frozen=True)
class CephHost:
    """A node Ceph runs on, with the disks it hands to OSDs."""

    hostname: str  # the Kubernetes node name, e.g. "akiba01"
    devices: tuple[str, ...]  # whole disks for OSDs, stable paths; never the boot disk; may be empty


def ceph_cluster_spec(nodes: tuple[CephHost, ...], mons: Literal[1, 3, 5]) -> dict[str, Any]:
    """The CephCluster spec: OSDs on exactly the declared SSDs (never the USB boot disk)."""
    return {
        "cephVersion": {"image": CEPH_IMAGE, "allowUnsupported": False},
        "dataDirHostPath": "/var/lib/rook",
        "mon": {"count": mons, "allowMultiplePerNode": mons > len(nodes)},
        "mgr": {"count": 2 if len(nodes) > 1 else 1, "modules": [{"name": "rook", "enabled": True}]},
        "dashboard": {"enabled": True, "ssl": True},
        "network": {"provider": "host"},
        "crashCollector": {"disable": False},
        "placement": {"all": {"tolerations": TOLERATIONS}},
        "storage": {
            "useAllNodes": False,
            "useAllDevices": False,
            "nodes": [
                {"name": n.hostname, "devices": [{"name": disk} for disk in n.devices]} for n in nodes if n.devices
            ],
        },
        "disruptionManagement": {"managePodBudgets": True},
    }


@dataclass(frozen=True)
class RookCephArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    nodes: tuple[CephHost, ...]  # every node (Ceph's daemons may run on any), with its OSD disks
    mons: Literal[1, 3, 5]  # Ceph monitors; 3 in prod


class RookCeph(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    cluster: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: RookCephArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:RookCeph", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ns = declare_namespace(NAMESPACE, "privileged", args.ctx, on_cluster)  # OSDs: raw devices, host network
        operator = pinned_chart(
            "rook-ceph",
            chart="rook-ceph",
            version=ROOK_CHART_VERSION,
            repo=ROOK_REPO,
            namespace=ns.metadata.name,
            values={
                "crds": {"enabled": True},
                "csi": {
                    "enableRbdDriver": True,
                    "enableCephfsDriver": True,
                    "provisionerTolerations": TOLERATIONS,
                    "pluginTolerations": TOLERATIONS,
                },
                "tolerations": TOLERATIONS,
                "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            },
            opts=on_cluster,
        )
        self.cluster = k8s.apiextensions.CustomResource(
            CLUSTER_NAME,
            api_version="ceph.rook.io/v1",
            kind="CephCluster",
            metadata={"name": CLUSTER_NAME, "namespace": NAMESPACE, "labels": args.ctx.labels},
            spec=ceph_cluster_spec(args.nodes, args.mons),
            opts=args.ctx.stateful(self, provider=args.provider, depends_on=[operator]),
        )
        self.namespace = ns.metadata.name
        self.register_outputs({"namespace": self.namespace})
