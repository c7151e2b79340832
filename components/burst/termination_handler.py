"""aws-node-termination-handler on the spot nodes only: on an interruption notice (two
minutes' warning) or a rebalance recommendation it cordons and drains the node, so pods
checkpoint and move before AWS takes the instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.helm import pinned_chart
from components.context import PlatformContext

CHART = "oci://public.ecr.aws/aws-ec2/helm/aws-node-termination-handler"
CHART_VERSION = "0.27.6"  # appVersion 1.25.6
IMAGE_TAG = "v1.25.6"


def chart_values() -> dict[str, Any]:
    return {
        "image": {"tag": IMAGE_TAG},
        # IMDS mode: a DaemonSet on the spot nodes themselves, no queue, no AWS credentials.
        "daemonsetNodeSelector": {"node.kubernetes.io/lifecycle": "spot"},
        "enableSpotInterruptionDraining": True,
        "enableRebalanceMonitoring": True,
        "enableRebalanceDraining": True,
        "enableScheduledEventDraining": True,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
    }


@dataclass(frozen=True)
class NodeTerminationHandlerArgs:
    ctx: PlatformContext
    k8s_provider: k8s.Provider


class NodeTerminationHandler(pulumi.ComponentResource):
    def __init__(self, name: str, args: NodeTerminationHandlerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:burst:NodeTerminationHandler", name, None, opts)
        pinned_chart(
            "aws-node-termination-handler",
            chart=CHART,
            version=CHART_VERSION,
            namespace="kube-system",
            values=chart_values(),
            opts=pulumi.ResourceOptions(parent=self, provider=args.k8s_provider),
        )
        self.register_outputs({})
