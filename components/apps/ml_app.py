"""One ML web app (the article's ICACHAN, MICANCNN, TACOCNN), usable by non-engineers through
the ingress: a Deployment on GPU nodes when it needs GPUs, a Service and an Ingress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.bootstrap import GPU_TAINT
from components.cluster.priorities import INTERACTIVE
from components.context import PlatformContext


@dataclass(frozen=True)
class MlAppArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    namespace: pulumi.Input[str]
    image: str  # pinned
    host: str
    ingress_class: str
    gpus: int = 0
    replicas: int = 1
    port: int = 8080
    health_path: str = "/healthz"
    cpu: str = "2"
    memory: str = "4Gi"
    after: tuple[pulumi.Resource, ...] = ()  # the PriorityClasses its pods name


def app_pod(name: str, args: MlAppArgs, labels: dict[str, str]) -> dict[str, Any]:
    limits: dict[str, str] = {"cpu": args.cpu, "memory": args.memory}
    if args.gpus:
        limits["nvidia.com/gpu"] = str(args.gpus)
    probe = {"httpGet": {"path": args.health_path, "port": "http"}, "periodSeconds": 10}
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        # People wait on it, like a home container: it may take a GPU from a batch Job, but never
        # from the platform (an app must not evict the registry every node pulls from).
        "priorityClassName": INTERACTIVE,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": name,
                "image": args.image,
                "ports": [{"name": "http", "containerPort": args.port}],
                "readinessProbe": probe,
                # Loading a model takes a while: do not kill the pod before it could answer.
                "startupProbe": {**probe, "failureThreshold": 30},
                "livenessProbe": probe,
                "resources": {"requests": dict(limits), "limits": limits},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
    }
    if args.gpus:
        spec["tolerations"] = [{**GPU_TAINT, "operator": "Equal"}]
    return {"metadata": {"labels": labels}, "spec": spec}


class MlApp(pulumi.ComponentResource):
    url: str

    def __init__(self, name: str, args: MlAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:apps:MlApp", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        labels = {**args.ctx.labels, "app.kubernetes.io/name": name}
        meta = {"name": name, "namespace": args.namespace, "labels": labels}
        k8s.apps.v1.Deployment(
            name,
            metadata=meta,
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": app_pod(name, args, labels),
            },
            opts=on_cluster,
        )
        k8s.core.v1.Service(
            name,
            metadata=meta,
            spec={
                "selector": {"app.kubernetes.io/name": name},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
            opts=on_cluster,
        )
        k8s.networking.v1.Ingress(
            name,
            metadata=meta,
            spec={
                "ingressClassName": args.ingress_class,
                "rules": [
                    {
                        "host": args.host,
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": name, "port": {"name": "http"}}},
                                }
                            ]
                        },
                    }
                ],
            },
            opts=on_cluster,
        )
        self.url = f"http://{args.host}"
        self.register_outputs({"url": self.url})
