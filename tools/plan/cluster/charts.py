"""The pods each pinned Helm chart creates, as far as the values the program passes decide them.

Helm charts render inside the Kubernetes provider, so offline the plan holds only a chart's name,
version and values. Each model below reproduces, for exactly the pinned version, the workloads
the chart's templates make and which values set their placement, resources, ports and images —
read from the chart's own templates and values.yaml at that tag (the source is named on each).
A chart, or a chart version, without a model is itself a problem: nobody could tell where its
pods land. Helm's value semantics apply: maps merge key by key, lists replace, null deletes.

Also modelled: Pulumi's `helm.v4.Chart` renders like `helm template` and skips every resource
annotated `helm.sh/hook` (pulumi/pulumi-kubernetes#3284), so a pod that needs what a hook Job
makes never starts (`Workload.blocked`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.plan.cluster.model import Workload
from tools.plan.cluster.workloads import pod_workload
from tools.plan.runner import Plan

CHART = "kubernetes:helm.sh/v4:Chart"
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
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


@dataclass(frozen=True)
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


def _container(name: str, image: str, resources: Any = None, ports: tuple[int, ...] = ()) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image, "resources": resources or {}}
    if ports:
        c["ports"] = [{"containerPort": p} for p in ports]
    return c


def _required(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
            }
        }
    }


def flannel(v: Mapping[str, Any]) -> list[Pod]:
    """flannel-io/flannel chart/kube-flannel @ v0.28.9: templates/daemonset.yaml, values.yaml."""
    f = merge(
        {
            "tolerations": [{"effect": "NoExecute", "operator": "Exists"}, EXISTS_NO_SCHEDULE],
            "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
            "healthz": {"port": 8081},
            "nodeSelector": {},
        },
        v.get("flannel") or {},
    )
    ports = (int(f["healthz"]["port"]),) if f["healthz"].get("port") else ()
    return [
        Pod(
            "DaemonSet",
            "kube-flannel-ds",
            0,
            [
                _container("kube-flannel", "ghcr.io/flannel-io/flannel:v0.28.9", f["resources"], ports),
                {
                    **_container("install-cni-plugin", "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3"),
                    "init": True,
                },
            ],
            f["tolerations"],
            f["nodeSelector"],
            _required([{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]),
            host_network=True,
            priority="system-node-critical",
            extra={"every_node": True},
        )
    ]


def nvidia_device_plugin(v: Mapping[str, Any]) -> list[Pod]:
    """NVIDIA/k8s-device-plugin deployments/helm/nvidia-device-plugin @ v0.20.0 (and its vendored
    node-feature-discovery 0.19.0, on when gfd.enabled)."""
    defaults = {
        "tolerations": [
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        ],
        "nodeSelector": {},
        "affinity": _required(
            [{"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In", "values": ["true"]}],
            [{"key": "feature.node.kubernetes.io/cpu-model.vendor_id", "operator": "In", "values": ["NVIDIA"]}],
            [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}],
        ),
        "resources": {},
        "gfd": {"enabled": False},
        "nfd": {},
    }
    d = merge(defaults, v)
    image = "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"

    def plugin_ds(name: str, selector: Mapping[str, Any] | None = None, **extra: Any) -> Pod:
        return Pod(
            "DaemonSet",
            name,
            0,
            [_container(name, image, d["resources"])],
            d["tolerations"],
            {**d["nodeSelector"], **(selector or {})},
            d["affinity"],
            priority="system-node-critical",
            extra=extra,
        )

    pods = [
        plugin_ds("nvidia-device-plugin", serves_gpus=True),
        plugin_ds("nvidia-device-plugin-mps-control-daemon", {"nvidia.com/mps.capable": "true"}),
    ]
    if d["gfd"].get("enabled"):
        pods.append(plugin_ds("nvidia-device-plugin-gpu-feature-discovery"))
    nfd_on = d["nfd"].get("enabled", d["gfd"].get("enabled"))
    if nfd_on:
        nfd = merge(
            {
                "master": {
                    "tolerations": [
                        {
                            "key": "node-role.kubernetes.io/control-plane",
                            "operator": "Equal",
                            "value": "",
                            "effect": "NoSchedule",
                        }
                    ],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "4Gi"}},
                    "nodeSelector": {},
                },
                "worker": {
                    "tolerations": [
                        {
                            "key": "node-role.kubernetes.io/master",
                            "operator": "Equal",
                            "value": "",
                            "effect": "NoSchedule",
                        },
                        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
                    ],
                    "resources": {"requests": {"cpu": "5m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                    "nodeSelector": {},
                },
                "gc": {
                    "tolerations": [],
                    "resources": {"requests": {"cpu": "10m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                    "nodeSelector": {},
                },
            },
            d["nfd"],
        )
        nfd_image = "registry.k8s.io/nfd/node-feature-discovery:v0.19.0"
        for part, kind in (("master", "Deployment"), ("worker", "DaemonSet"), ("gc", "Deployment")):
            p = nfd[part]
            pods.append(
                Pod(
                    kind,
                    f"nvidia-device-plugin-node-feature-discovery-{part}",
                    0 if kind == "DaemonSet" else int(p.get("replicaCount", 1)),
                    [_container(part, nfd_image, p["resources"])],
                    p["tolerations"],
                    p["nodeSelector"],
                )
            )
    return pods


def traefik(v: Mapping[str, Any]) -> list[Pod]:
    """traefik/traefik-helm-chart traefik/ @ v41.3.0: templates/_podtemplate.tpl, values.yaml."""
    d = merge(
        {
            "deployment": {"kind": "Deployment", "replicas": 1},
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
    anti = ((d["affinity"] or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or []
    spread = any(t.get("topologyKey") == "kubernetes.io/hostname" for t in anti)  # pods carry name=traefik
    return [
        Pod(
            kind,
            "traefik",
            0 if kind == "DaemonSet" else int(d["deployment"]["replicas"]),
            [{**_container("traefik", "docker.io/traefik:v3.7.11", d["resources"]), "ports": ports}],
            d["tolerations"],
            d["nodeSelector"],
            d["affinity"],
            host_network=bool(d["hostNetwork"]),
            priority=str(d.get("priorityClassName", "")),
            extra={"one_per_node": spread},
        )
    ]


def rook_ceph(v: Mapping[str, Any]) -> list[Pod]:
    """rook/rook deploy/charts/rook-ceph @ v1.20.6 (operator) and its ceph-csi-operator 1.0.4 subchart.
    Rook 1.20 no longer runs the CSI drivers itself: the ceph-csi-drivers chart does."""
    d = merge(
        {
            "tolerations": [],
            "nodeSelector": {},
            "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        },
        v,
    )
    operator_tolerations = [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        *d["tolerations"],
    ]
    pods = [
        Pod(
            "Deployment",
            "rook-ceph-operator",
            1,
            [_container("rook-ceph-operator", "docker.io/rook/ceph:v1.20.6", d["resources"])],
            operator_tolerations,
            d["nodeSelector"],
        )
    ]
    if (d.get("csi") or {}).get("installCsiOperator", True):
        cm = merge(
            {
                "tolerations": [],
                "nodeSelector": {},
                "replicas": 1,
                "manager": {
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "64Mi"},
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                    }
                },
            },
            (d.get("ceph-csi-operator") or {}).get("controllerManager") or {},
        )
        pods.append(
            Pod(
                "Deployment",
                "ceph-csi-controller-manager",
                int(cm["replicas"]),
                [_container("manager", "quay.io/cephcsi/ceph-csi-operator:v1.0.4", cm["manager"]["resources"])],
                cm["tolerations"],
                cm["nodeSelector"],
            )
        )
    return pods


CSI_IMAGES = ("quay.io/cephcsi/cephcsi:v3.17.0", "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0")
CSI_CTRL_IMAGES = (
    "quay.io/cephcsi/cephcsi:v3.17.0",
    "registry.k8s.io/sig-storage/csi-provisioner:v6.2.0",
    "registry.k8s.io/sig-storage/csi-attacher:v4.12.0",
    "registry.k8s.io/sig-storage/csi-resizer:v2.1.0",
    "registry.k8s.io/sig-storage/csi-snapshotter:v8.5.0",
)


def ceph_csi_drivers(v: Mapping[str, Any]) -> list[Pod]:
    """ceph/ceph-csi-operator deploy/charts/ceph-csi-drivers @ v1.0.4: one Driver per enabled
    driver, which ceph-csi-operator v1.0.4 (internal/controller/driver_controller.go) runs as a
    node-plugin DaemonSet (host network) and a controller Deployment with required
    anti-affinity per hostname. Images: Rook 1.20.6's CSI image set."""
    defaults = (v.get("operatorConfig") or {}).get("driverSpecDefaults") or {}
    pods = []
    for key, raw in (v.get("drivers") or {}).items():
        if not raw.get("enabled", key in ("rbd", "cephfs")):
            continue
        driver = merge(
            {
                "nodePlugin": defaults.get("nodePlugin") or {},
                "controllerPlugin": defaults.get("controllerPlugin") or {},
            },
            raw,
        )
        name, node, ctrl = str(driver["name"]), driver["nodePlugin"], driver["controllerPlugin"]
        csi = {"csi_driver": name, "csi_snapshots": driver.get("snapshotPolicy", "none") == "volumeSnapshot"}
        pods.append(
            Pod(
                "DaemonSet",
                f"{name}-nodeplugin",
                0,
                [_container(f"plugin-{i}", img) for i, img in enumerate(CSI_IMAGES)],
                list(node.get("tolerations") or []),
                {},
                node.get("affinity") or {},
                host_network=True,
                priority=str(node.get("priorityClassName", "")),
                extra={"csi_node": name},
            )
        )
        pods.append(
            Pod(
                "Deployment",
                f"{name}-ctrlplugin",
                int(ctrl.get("replicas", 1)),
                [_container(f"ctrl-{i}", img, ctrl.get("resources")) for i, img in enumerate(CSI_CTRL_IMAGES)],
                list(ctrl.get("tolerations") or []),
                {},
                ctrl.get("affinity") or {},
                priority=str(ctrl.get("priorityClassName", "")),
                extra={"one_per_node": True, **csi},
            )
        )
    return pods


def kube_prometheus_stack(v: Mapping[str, Any]) -> list[Pod]:
    """prometheus-community/helm-charts charts/kube-prometheus-stack @ 88.5.3 with its
    kube-state-metrics 8.4.0, prometheus-node-exporter 4.56.1 and grafana 12.11.1 subcharts."""
    po = merge(
        {
            "tolerations": [],
            "nodeSelector": {},
            "resources": {},
            "admissionWebhooks": {"enabled": True, "certManager": {"enabled": False}},
            "tls": {"enabled": True},
        },
        v.get("prometheusOperator") or {},
    )
    blocked = []
    # templates/prometheus-operator/deployment.yaml: with tls.enabled the operator mounts the Secret
    # <fullname>-admission, which cert-manager or the admission webhook's hook Jobs create.
    if po["tls"].get("enabled") and not po["admissionWebhooks"]["certManager"].get("enabled"):
        blocked.append(
            "mounts the Secret kube-prometheus-stack-admission, which only the chart's hook Jobs create; "
            "Pulumi's helm.v4.Chart skips hooks, so the pod never starts"
        )
    prom = merge(
        {"tolerations": [], "nodeSelector": {}, "replicas": 1, "resources": {}},
        (v.get("prometheus") or {}).get("prometheusSpec") or {},
    )
    am = merge(
        {"tolerations": [], "nodeSelector": {}, "replicas": 1, "resources": {}},
        (v.get("alertmanager") or {}).get("alertmanagerSpec") or {},
    )
    graf = merge({"tolerations": [], "nodeSelector": {}, "replicas": 1, "resources": {}}, v.get("grafana") or {})
    ksm = merge(
        {"tolerations": [], "nodeSelector": {}, "replicas": 1, "resources": {}}, v.get("kube-state-metrics") or {}
    )
    ne = merge(
        {
            "tolerations": [EXISTS_NO_SCHEDULE],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "resources": {},
            "hostNetwork": True,
            "service": {"port": 9100},
        },
        v.get("prometheus-node-exporter") or {},
    )
    return [
        Pod(
            "Deployment",
            "kube-prometheus-stack-operator",
            1,
            [_container("operator", "quay.io/prometheus-operator/prometheus-operator:v0.93.1", po["resources"])],
            po["tolerations"],
            po["nodeSelector"],
            extra={"blocked": tuple(blocked)},
        ),
        Pod(
            "StatefulSet",
            "prometheus",
            int(prom["replicas"]),
            [
                _container("prometheus", "quay.io/prometheus/prometheus:v3.14.0-distroless", prom["resources"]),
                _container("config-reloader", "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1"),
            ],
            prom["tolerations"],
            prom["nodeSelector"],
        ),
        Pod(
            "StatefulSet",
            "alertmanager",
            int(am["replicas"]),
            [_container("alertmanager", "quay.io/prometheus/alertmanager:v0.34.0", am["resources"])],
            am["tolerations"],
            am["nodeSelector"],
        ),
        Pod(
            "Deployment",
            "grafana",
            int(graf["replicas"]),
            [
                _container("grafana", "docker.io/grafana/grafana:13.2.0", graf["resources"]),
                _container("sidecar", "quay.io/kiwigrid/k8s-sidecar:2.10.1"),
            ],
            graf["tolerations"],
            graf["nodeSelector"],
        ),
        Pod(
            "Deployment",
            "kube-state-metrics",
            int(ksm["replicas"]),
            [
                _container(
                    "kube-state-metrics",
                    "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
                    ksm["resources"],
                )
            ],
            ksm["tolerations"],
            ksm["nodeSelector"],
        ),
        Pod(
            "DaemonSet",
            "prometheus-node-exporter",
            0,
            [
                _container(
                    "node-exporter",
                    "quay.io/prometheus/node-exporter:v1.12.1-distroless",
                    ne["resources"],
                    (int(ne["service"]["port"]),),
                )
            ],
            ne["tolerations"],
            ne["nodeSelector"],
            _required([NOT_FARGATE, {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]),
            host_network=bool(ne["hostNetwork"]),
        ),
    ]


def dcgm_exporter(v: Mapping[str, Any]) -> list[Pod]:
    """NVIDIA/dcgm-exporter deployment/ @ 4.5.3-4.8.2 (chart 4.8.2)."""
    d = merge(
        {
            "tolerations": [
                {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "nodeSelector": {},
            "affinity": {},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}},
            "image": {"repository": "nvcr.io/nvidia/k8s/dcgm-exporter", "tag": "4.5.3-4.8.2-distroless"},
        },
        v,
    )
    image = f"{d['image']['repository']}:{d['image']['tag']}"
    return [
        Pod(
            "DaemonSet",
            "dcgm-exporter",
            0,
            [_container("exporter", image, d["resources"])],
            d["tolerations"],
            d["nodeSelector"],
            d["affinity"],
            priority="system-node-critical",
        )
    ]


def cluster_autoscaler(v: Mapping[str, Any]) -> list[Pod]:
    """kubernetes/autoscaler cluster-autoscaler/charts/cluster-autoscaler @ chart 9.59.0."""
    d = merge(
        {
            "replicaCount": 1,
            "tolerations": [],
            "nodeSelector": {},
            "affinity": {},
            "resources": {},
            "image": {"repository": "registry.k8s.io/autoscaling/cluster-autoscaler", "tag": "v1.35.0"},
        },
        v,
    )
    image = f"{d['image']['repository']}:{d['image']['tag']}"
    return [
        Pod(
            "Deployment",
            "cluster-autoscaler",
            int(d["replicaCount"]),
            [_container("cluster-autoscaler", image, d["resources"])],
            d["tolerations"],
            d["nodeSelector"],
            d["affinity"],
            priority="system-cluster-critical",
        )
    ]


def node_termination_handler(v: Mapping[str, Any]) -> list[Pod]:
    """aws/aws-node-termination-handler config/helm/aws-node-termination-handler @ 0.27.6, IMDS
    mode: the first non-empty of daemonset*/linux*/plain values wins for each field."""

    def first(*keys: str, default: Any) -> Any:
        return next((v[k] for k in keys if v.get(k)), default)

    image = f"public.ecr.aws/aws-ec2/aws-node-termination-handler:{(v.get('image') or {}).get('tag', 'v1.25.6')}"
    return [
        Pod(
            "DaemonSet",
            "aws-node-termination-handler",
            0,
            [_container("aws-node-termination-handler", image, v.get("resources"))],
            first("daemonsetTolerations", "linuxTolerations", "tolerations", default=[{"operator": "Exists"}]),
            {
                "kubernetes.io/os": "linux",
                **first("daemonsetNodeSelector", "linuxNodeSelector", "nodeSelector", default={}),
            },
            first("daemonsetAffinity", "linuxAffinity", "affinity", default=_required([NOT_FARGATE])),
            host_network=True,
            priority="system-node-critical",
        )
    ]


# chart name -> (the version modelled, the model)
MODELS: dict[str, tuple[str, Callable[[Mapping[str, Any]], list[Pod]]]] = {
    "flannel": ("v0.28.9", flannel),
    "nvidia-device-plugin": ("0.20.0", nvidia_device_plugin),
    "traefik": ("41.3.0", traefik),
    "rook-ceph": ("v1.20.6", rook_ceph),
    "ceph-csi-drivers": ("1.0.4", ceph_csi_drivers),
    "kube-prometheus-stack": ("88.5.3", kube_prometheus_stack),
    "dcgm-exporter": ("4.8.2", dcgm_exporter),
    "cluster-autoscaler": ("9.59.0", cluster_autoscaler),
    "aws-node-termination-handler": ("0.27.6", node_termination_handler),
}
# kubernetes-csi/external-snapshotter @ v8.6.0 deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml
SNAPSHOT_CONTROLLER = "external-snapshotter/v8.6.0/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml"


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


def of_plan(plan: Plan) -> tuple[list[Workload], list[str]]:
    """The charts' and config groups' workloads, and what could not be modelled."""
    found: list[Workload] = []
    problems: list[str] = []
    for r in plan.by_type(CHART):
        name = str(r.raw_inputs.get("chart", "")).rsplit("/", 1)[-1]
        version = str(r.raw_inputs.get("version", ""))
        namespace = str(r.raw_inputs.get("namespace") or "default")
        model = MODELS.get(name)
        if model is None or model[0] != version:
            known = f"a model of {model[0]}" if model else "no model"
            problems.append(f"chart {name} {version}: the cluster check has {known}: where its pods land is unknown")
            continue
        for pod in model[1](r.raw_inputs.get("values") or {}):
            found.append(_workload(pod, namespace, f"chart {name} {version}"))
    for r in plan.by_type(CONFIG_GROUP):
        for url in r.raw_inputs.get("files") or ():
            if str(url).endswith(SNAPSHOT_CONTROLLER):
                pod = Pod(
                    "Deployment",
                    "snapshot-controller",
                    2,
                    [_container("snapshot-controller", "registry.k8s.io/sig-storage/snapshot-controller:v8.5.0")],
                )
                found.append(_workload(pod, "kube-system", "external-snapshotter v8.6.0"))
    return found, problems
