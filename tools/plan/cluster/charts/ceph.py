"""Storage: the Rook operator and the Ceph CSI drivers.

Sources:
- rook/rook, deploy/charts/rook-ceph @ v1.20.6 (templates/deployment.yaml, values.yaml), and the
  ceph-csi-operator subchart it installs: ceph/ceph-csi-operator, deploy/charts/ceph-csi-operator @ v1.0.4.
- ceph/ceph-csi-operator, deploy/charts/ceph-csi-drivers @ v1.0.4 (commit 29a66b683aa8;
  templates/driver.yaml, templates/operatorConfig.yaml, values.yaml), and what the operator at that
  tag makes of a Driver: internal/controller/driver_controller.go (`mergeDriverSpecs`), defaults.go.

Rook 1.20 no longer runs the CSI drivers itself: the ceph-csi-drivers chart declares them (Driver
CRs) and ceph-csi-operator runs each. The operator fills only the fields a Driver leaves unset (nil)
from the OperatorConfig's `driverSpecDefaults`. The chart renders a driver's `tolerations` always
(a list, [] by default), so the defaults' tolerations never reach a driver it declares; its
`priorityClassName` and `affinity` only when set, so those do come from the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.plan.cluster.charts.base import Pod, container, merge

# The operator's own toleration (`unreachableNodeTolerationSeconds`, 5 by default).
UNREACHABLE_5S = {
    "key": "node.kubernetes.io/unreachable",
    "operator": "Exists",
    "effect": "NoExecute",
    "tolerationSeconds": 5,
}
# Rook 1.20.6's CSI image set (csi.* in its values, the ConfigMap the drivers' imageSet names):
# container -> (image, its key under the plugin's `resources` in a Driver).
NODE_CONTAINERS = {
    "csi-plugin": ("quay.io/cephcsi/cephcsi:v3.17.0", "plugin"),
    "driver-registrar": ("registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0", "registrar"),
}
CTRL_CONTAINERS = {
    "csi-plugin": ("quay.io/cephcsi/cephcsi:v3.17.0", "plugin"),
    "csi-provisioner": ("registry.k8s.io/sig-storage/csi-provisioner:v6.2.0", "provisioner"),
    "csi-attacher": ("registry.k8s.io/sig-storage/csi-attacher:v4.12.0", "attacher"),
    "csi-resizer": ("registry.k8s.io/sig-storage/csi-resizer:v2.1.0", "resizer"),
    "csi-snapshotter": ("registry.k8s.io/sig-storage/csi-snapshotter:v8.5.0", "snapshotter"),
}

# ceph-csi-drivers values.yaml: all four drivers enabled, each plugin with empty placement.
_PLUGINS = {
    "nodePlugin": {"priorityClassName": "", "affinity": {}, "tolerations": []},
    "controllerPlugin": {"replicas": 1, "tolerations": []},
}
DRIVER_DEFAULTS = {
    key: {"name": f"{key}.csi.ceph.com", "enabled": True, "snapshotPolicy": policy, **_PLUGINS}
    for key, policy in (("rbd", "none"), ("nvmeof", "none"), ("cephfs", "volumeSnapshot"), ("nfs", "volumeSnapshot"))
}
OPERATOR_CONFIG_DEFAULTS = {
    "create": True,
    "driverSpecDefaults": {
        "snapshotPolicy": "none",
        "nodePlugin": {"priorityClassName": "", "affinity": {}, "tolerations": []},
        "controllerPlugin": {"replicas": 1, "affinity": {}, "tolerations": []},
    },
}


def rook_ceph(v: Mapping[str, Any]) -> list[Pod]:
    """The operator Deployment, and ceph-csi-operator's controller unless `csi.installCsiOperator`
    is off. Rook's `tolerations` do not reach the subchart."""
    d = merge(
        {
            "tolerations": [],
            "nodeSelector": {},
            "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        },
        v,
    )
    pods = [
        Pod(
            kind="Deployment",
            name="rook-ceph-operator",
            replicas=1,
            containers=[container("rook-ceph-operator", "docker.io/rook/ceph:v1.20.6", d["resources"])],
            tolerations=[UNREACHABLE_5S, *d["tolerations"]],
            node_selector=d["nodeSelector"],
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
                kind="Deployment",
                name="ceph-csi-controller-manager",
                replicas=int(cm["replicas"]),
                containers=[
                    container("manager", "quay.io/cephcsi/ceph-csi-operator:v1.0.4", cm["manager"]["resources"])
                ],
                tolerations=cm["tolerations"],
                node_selector=cm["nodeSelector"],
            )
        )
    return pods


def _plugin_spec(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A nodePlugin or controllerPlugin as the operator runs it: the fields driver.yaml (or
    operatorConfig.yaml, the same way) renders from the values, and for every field it leaves
    out (nil) the OperatorConfig's default (`mergeDriverSpecs`)."""
    rendered: dict[str, Any] = {}
    if values:  # `{{- if $driver.nodePlugin }}`: otherwise every field is nil
        # Rendered only when non-empty:
        rendered |= {k: values[k] for k in ("priorityClassName", "affinity", "resources") if values.get(k)}
        # Always rendered: a list, `[]` by default, which is not nil (Helm's null removes the key).
        if "tolerations" in values:
            rendered["tolerations"] = list(values["tolerations"] or [])
        rendered["replicas"] = values.get("replicas") or 2  # `{{ .replicas | default 2 }}`
    return {**defaults, **rendered}


def _containers(spec: Mapping[str, Any], images: Mapping[str, tuple[str, str]]) -> list[dict[str, Any]]:
    resources = spec.get("resources") or {}
    return [container(name, image, resources.get(key)) for name, (image, key) in images.items()]


def ceph_csi_drivers(v: Mapping[str, Any]) -> list[Pod]:
    """Per enabled driver: a node-plugin DaemonSet on the host network and a controller Deployment
    with required anti-affinity per hostname (one pod a node)."""
    config = merge(OPERATOR_CONFIG_DEFAULTS, v.get("operatorConfig") or {})
    spec_defaults = (config.get("driverSpecDefaults") or {}) if config.get("create") else {}
    node_defaults = _plugin_spec(spec_defaults.get("nodePlugin") or {}, {})
    ctrl_defaults = _plugin_spec(spec_defaults.get("controllerPlugin") or {}, {})
    pods = []
    for key, driver in merge(DRIVER_DEFAULTS, v.get("drivers") or {}).items():
        if not driver.get("enabled"):
            continue
        name = str(driver.get("name") or key)
        node = _plugin_spec(driver.get("nodePlugin") or {}, node_defaults)
        ctrl = _plugin_spec(driver.get("controllerPlugin") or {}, ctrl_defaults)
        policy = driver.get("snapshotPolicy") or spec_defaults.get("snapshotPolicy")
        pods += [
            Pod(
                kind="DaemonSet",
                name=f"{name}-nodeplugin",
                replicas=0,
                containers=_containers(node, NODE_CONTAINERS),
                tolerations=node.get("tolerations") or [],
                affinity=node.get("affinity") or {},
                host_network=True,
                priority=str(node.get("priorityClassName") or ""),
                extra={"csi_node": name},
            ),
            Pod(
                kind="Deployment",
                name=f"{name}-ctrlplugin",
                replicas=int(ctrl.get("replicas") or 2),
                containers=_containers(ctrl, CTRL_CONTAINERS),
                tolerations=ctrl.get("tolerations") or [],
                affinity=ctrl.get("affinity") or {},
                priority=str(ctrl.get("priorityClassName") or ""),
                extra={"one_per_node": True, "csi_driver": name, "csi_snapshots": policy == "volumeSnapshot"},
            ),
        ]
    return pods
