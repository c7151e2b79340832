"""The pods each pinned Helm chart creates, as far as the values the program passes decide them.

Helm charts render inside the Kubernetes provider, so offline the plan holds only a chart's name,
version and values. Each model reproduces, for exactly the pinned version, the workloads the
chart's templates make and which values set their placement, resources, ports and images — read
from the chart's own templates and values.yaml at that tag (each module names its sources).
A chart, or a chart version, without a model is itself a problem: nobody could tell where its
pods land. Helm's value semantics apply: maps merge key by key, lists replace, null deletes.

Also modelled: Pulumi's `helm.v4.Chart` renders like `helm template` and skips every resource
annotated `helm.sh/hook` (pulumi/pulumi-kubernetes#3284), so a pod that needs what a hook Job
makes never starts (`Workload.blocked`).

Modules, one per domain: `network` (flannel), `gpus` (nvidia-device-plugin, dcgm-exporter),
`ingress` (traefik), `ceph` (rook-ceph, ceph-csi-drivers), `monitoring` (kube-prometheus-stack),
`burst` (cluster-autoscaler, aws-node-termination-handler); `base` holds what they share. The
snapshot controller, applied from a manifest URL as a ConfigGroup, is modelled here.
"""

from __future__ import annotations

from tools.plan.cluster.charts import burst, ceph, gpus, ingress, monitoring, network
from tools.plan.cluster.charts.base import Model, Pod, container, merge
from tools.plan.cluster.model import Workload
from tools.plan.cluster.workloads import pod_workload
from tools.plan.runner import Plan

__all__ = ["MODELS", "Model", "Pod", "merge", "of_plan", "snapshot_controller"]

CHART = "kubernetes:helm.sh/v4:Chart"
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"

# chart name -> (the version modelled, the model)
MODELS: dict[str, tuple[str, Model]] = {
    "flannel": ("v0.28.9", network.flannel),
    "nvidia-device-plugin": ("0.20.0", gpus.nvidia_device_plugin),
    "traefik": ("41.3.0", ingress.traefik),
    "rook-ceph": ("v1.20.6", ceph.rook_ceph),
    "ceph-csi-drivers": ("1.0.4", ceph.ceph_csi_drivers),
    "kube-prometheus-stack": ("88.5.3", monitoring.kube_prometheus_stack),
    "dcgm-exporter": ("4.8.2", gpus.dcgm_exporter),
    "cluster-autoscaler": ("9.59.0", burst.cluster_autoscaler),
    "aws-node-termination-handler": ("0.27.6", burst.node_termination_handler),
}
# kubernetes-csi/external-snapshotter @ v8.6.0 deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml
SNAPSHOT_CONTROLLER = "external-snapshotter/v8.6.0/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml"


def snapshot_controller() -> Pod:
    """The manifest's Deployment (kube-system, 2 replicas, no placement or requests); the v8.6.0
    tag still runs the v8.5.0 image."""
    return Pod(
        kind="Deployment",
        name="snapshot-controller",
        replicas=2,
        containers=[container("snapshot-controller", "registry.k8s.io/sig-storage/snapshot-controller:v8.5.0")],
    )


def _workload(pod: Pod, namespace: str, source: str) -> Workload:
    template = {
        "spec": {
            "containers": [c for c in pod.containers if not c.get("init")],
            "initContainers": [c for c in pod.containers if c.get("init")],
            "tolerations": pod.tolerations,
            "nodeSelector": pod.node_selector,
            "affinity": pod.affinity,
            "hostNetwork": pod.host_network,
            "priorityClassName": pod.priority,
        }
    }
    return pod_workload(pod.kind, namespace, pod.name, source, template, pod.replicas, **pod.extra)


def of_plan(plan: Plan) -> tuple[list[Workload], list[tuple[str, str]]]:
    """The charts' and config groups' workloads, and (subject, message) for what has no model."""
    found: list[Workload] = []
    problems: list[tuple[str, str]] = []
    for r in plan.by_type(CHART):
        name = str(r.raw_inputs.get("chart", "")).rsplit("/", 1)[-1]
        version = str(r.raw_inputs.get("version", ""))
        namespace = str(r.raw_inputs.get("namespace") or "default")
        model = MODELS.get(name)
        if model is None or model[0] != version:
            known = f"a model of {model[0]}" if model else "no model"
            problems.append(
                (f"chart {name} {version}", f"the cluster check has {known}: where its pods land is unknown")
            )
            continue
        for pod in model[1](r.raw_inputs.get("values") or {}):
            found.append(_workload(pod, namespace, f"chart {name} {version}"))
    for r in plan.by_type(CONFIG_GROUP):
        for url in r.raw_inputs.get("files") or ():
            if str(url).endswith(SNAPSHOT_CONTROLLER):
                found.append(_workload(snapshot_controller(), "kube-system", "external-snapshotter v8.6.0"))
    return found, problems
