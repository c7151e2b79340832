"""Pods nobody declares as objects but every cluster runs: kubeadm's own add-ons (CoreDNS,
kube-proxy) and control-plane static pods, and the Ceph daemons Rook's operator creates from
the CephCluster, CephFilesystem and CephNFS the plan declares.

Sources, at the versions the platform pins:
- kubeadm v1.36, cmd/kubeadm/app/phases/addons/dns/manifests.go and proxy/manifests.go;
  cmd/kubeadm/app/phases/controlplane/manifests.go and etcd/local.go (static pods' requests).
- kube-vip: the static pod the program writes on each controller when the API has a virtual IP
  (components/cluster/kube_vip.py), read from that node's configuration in the plan.
- Rook v1.20: mons one per node unless `mon.allowMultiplePerNode` (host networking binds
  3300 and 6789 on the node), OSDs pinned to the node of their disks, an MDS pair for an
  active-standby filesystem, one NFS server per `server.active`; every daemon takes the
  CephCluster's `placement.all` and its own placement, and no requests unless `resources` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from components.cluster import kube_vip as kube_vip_pod
from tools.plan.artifacts import CLOUD_CONFIG, user_data_of
from tools.plan.cluster import quantity
from tools.plan.cluster.model import CONTROL_PLANE, Container, Toleration, Workload, requests_of
from tools.plan.cluster.workloads import PRIORITIES, affinity_terms, pod_workload
from tools.plan.runner import Plan

COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.12.1"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
# kubeadm's static pods ask for this much of every control-plane node.
STATIC_PODS = {
    "kube-apiserver": {"cpu": "250m"},
    "kube-controller-manager": {"cpu": "200m"},
    "kube-scheduler": {"cpu": "100m"},
    "etcd": {"cpu": "100m", "memory": "100Mi"},
}


def _container(
    name: str, image: str, requests: Mapping[str, str] | None = None, ports: tuple[int, ...] = ()
) -> Container:
    return Container(
        name=name,
        image=image,
        command=(),
        args=(),
        requests={k: quantity.parse(v) for k, v in (requests or {}).items()},
        host_ports=tuple((p, "TCP") for p in ports),
        run_as_user=None,
        run_as_non_root=None,
        privileged=False,
        caps_add=frozenset(),
        caps_drop=frozenset(),
    )


def kubeadm(kubernetes_version: str) -> list[Workload]:
    everything = (Toleration("", "Exists", "", ""),)
    linux = {"kubernetes.io/os": "linux"}

    def system(kind: str, name: str, replicas: int, containers: tuple[Container, ...], **extra: Any) -> Workload:
        return Workload(
            kind=kind,
            namespace="kube-system",
            name=name,
            source="kubeadm",
            replicas=replicas,
            node_selector=extra.pop("node_selector", linux),
            affinity_terms=(),
            tolerations=extra.pop("tolerations", everything),
            containers=containers,
            priority=PRIORITIES[extra.pop("priority", "system-node-critical")],
            **extra,
        )

    return [
        # Static pods are not scheduled (taints do not apply), but they take their share of the node.
        system(
            "static pods",
            "control-plane",
            0,
            tuple(_container(n, f"registry.k8s.io/{n}:v{kubernetes_version}", r) for n, r in STATIC_PODS.items()),
            node_selector={CONTROL_PLANE: ""},
            host_network=True,
        ),
        system(
            "DaemonSet",
            "kube-proxy",
            0,
            (_container("kube-proxy", f"registry.k8s.io/kube-proxy:v{kubernetes_version}"),),
            host_network=True,
            every_node=True,
        ),
        system(
            "Deployment",
            "coredns",
            2,
            (_container("coredns", COREDNS_IMAGE, {"cpu": "100m", "memory": "70Mi"}),),
            tolerations=(
                Toleration("CriticalAddonsOnly", "Exists", "", ""),
                Toleration(CONTROL_PLANE, "Equal", "", "NoSchedule"),
            ),
            priority="system-cluster-critical",
        ),
    ]


def kube_vip(plan: Plan) -> list[Workload]:
    """kube-vip's static pod on every node whose configuration writes its manifest: pinned to
    that node (static pods are not scheduled), host-networked, taking its share of the node."""
    found: dict[str, Workload] = {}
    for r in plan.resources:
        text = user_data_of(r.type, r.raw_inputs)
        if text is None or kube_vip_pod.STAGED not in text:
            continue
        doc = yaml.load(text.removeprefix(CLOUD_CONFIG), Loader=yaml.CSafeLoader) or {}
        files = {str(f.get("path")): f for f in doc.get("write_files") or ()}
        staged, hostname = files.get(kube_vip_pod.STAGED), doc.get("hostname")
        if staged is None or not hostname:
            continue
        pod = yaml.safe_load(staged["content"])
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "kube-system")), f"{meta.get('name', 'kube-vip')}@{hostname}"
        # The kubelet runs it whatever the node's taints: a static pod is never scheduled.
        pinned = {"nodeSelector": {"kubernetes.io/hostname": str(hostname)}, "tolerations": [{"operator": "Exists"}]}
        template = {**pod, "spec": {**pod["spec"], **pinned}}
        found[str(hostname)] = pod_workload(
            "static pods", namespace, name, f"static pod on {hostname}", template, 1, node_local=True
        )
    return list(found.values())


UNREACHABLE_5S = Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute")


def merged_placement(placement: Mapping[str, Any], role: str) -> dict[str, Any]:
    """A daemon's placement from a CephCluster's: `all` and the daemon's own tolerations are
    appended; its own nodeAffinity replaces `all`'s (placement.go Merge)."""
    everyone, own = placement.get("all") or {}, placement.get(role) or {}
    return {
        "tolerations": [*(everyone.get("tolerations") or ()), *(own.get("tolerations") or ())],
        "nodeAffinity": own.get("nodeAffinity") or everyone.get("nodeAffinity") or {},
    }


@dataclass(frozen=True)
class _CephCluster:
    """What every daemon of one CephCluster shares."""

    namespace: str
    source: str
    image: str
    host_network: bool

    def daemon(
        self,
        name: str,
        replicas: int,
        placement: Mapping[str, Any],
        requests: Mapping[str, Any] | None,
        ports: tuple[int, ...] = (),
        node_selector: Mapping[str, str] | None = None,
        extra_tolerations: tuple[Toleration, ...] = (),
        **extra: Any,
    ) -> Workload:
        container = replace(
            _container(name.split("@")[0], self.image, ports=ports if self.host_network else ()),
            requests=requests_of(requests),
        )
        return Workload(
            kind="Ceph daemon",
            namespace=self.namespace,
            name=name,
            source=self.source,
            replicas=replicas,
            node_selector=dict(node_selector or {}),
            affinity_terms=affinity_terms({"affinity": {"nodeAffinity": placement.get("nodeAffinity") or {}}}),
            tolerations=(*(Toleration.of(t) for t in placement.get("tolerations") or ()), *extra_tolerations),
            containers=(container,),
            host_network=self.host_network,
            **extra,
        )


def _cluster_daemons(c: _CephCluster, spec: Mapping[str, Any]) -> list[Workload]:
    placement, resources = spec.get("placement") or {}, spec.get("resources") or {}
    mon, mgr = spec.get("mon") or {}, spec.get("mgr") or {}
    dashboard = spec.get("dashboard") or {}
    mgr_ports = (6800, 9283, int(dashboard.get("port") or (8443 if dashboard.get("ssl") else 7000)))
    mgr_count = int(mgr.get("count", 1))
    found = [
        # mon.go: required anti-affinity per host with host networking, or unless allowMultiplePerNode.
        c.daemon(
            "mon",
            int(mon.get("count", 3)),
            merged_placement(placement, "mon"),
            resources.get("mon"),
            (3300, 6789),
            one_per_node=c.host_network or not mon.get("allowMultiplePerNode"),
        ),
        c.daemon(
            "mgr",
            mgr_count,
            merged_placement(placement, "mgr"),
            resources.get("mgr"),
            mgr_ports,
            extra_tolerations=(UNREACHABLE_5S,),
            one_per_node=mgr_count > 1 and not mgr.get("allowMultiplePerNode"),
        ),
    ]
    for node in (spec.get("storage") or {}).get("nodes") or ():
        pinned = {"kubernetes.io/hostname": str(node["name"])}
        osd_placement = merged_placement(placement, "osd")
        found.append(
            c.daemon(
                f"osd@{node['name']}",
                len(node.get("devices") or ()),
                osd_placement,
                resources.get("osd"),
                node_selector=pinned,
                node_local=True,
            )
        )
        # One exporter (and crash collector) on every node that runs Ceph daemons.
        found.append(
            c.daemon(
                f"exporter@{node['name']}",
                1,
                osd_placement,
                resources.get("exporter"),
                (9926,),
                pinned,
                node_local=True,
            )
        )
    return found


def rook(plan: Plan) -> list[Workload]:
    """The Ceph daemons Rook's operator runs for what the plan declares."""
    found: list[Workload] = []
    for r in plan.by_type("kubernetes:ceph.rook.io/v1:CephCluster"):
        spec, meta = r.raw_inputs.get("spec") or {}, r.raw_inputs["metadata"]
        cluster = _CephCluster(
            namespace=str(meta["namespace"]),
            source=f"Rook, from CephCluster {meta['namespace']}/{meta['name']}",
            image=str((spec.get("cephVersion") or {}).get("image", "")),
            host_network=(spec.get("network") or {}).get("provider") == "host",
        )
        found += _cluster_daemons(cluster, spec)
        # MDS and NFS servers take their own placement and resources, not the cluster's.
        for fs in plan.by_type("kubernetes:ceph.rook.io/v1:CephFilesystem"):
            mds = (fs.raw_inputs.get("spec") or {}).get("metadataServer") or {}
            count = int(mds.get("activeCount", 1)) * (2 if mds.get("activeStandby") else 1)
            name = f"mds-{fs.raw_inputs['metadata']['name']}"
            found.append(
                cluster.daemon(
                    name, count, mds.get("placement") or {}, mds.get("resources"), extra_tolerations=(UNREACHABLE_5S,)
                )
            )
        for nfs in plan.by_type("kubernetes:ceph.rook.io/v1:CephNFS"):
            server = (nfs.raw_inputs.get("spec") or {}).get("server") or {}
            name = f"nfs-{nfs.raw_inputs['metadata']['name']}"
            found.append(
                cluster.daemon(
                    name,
                    int(server.get("active", 1)),
                    server.get("placement") or {},
                    server.get("resources"),
                    extra_tolerations=(UNREACHABLE_5S,),
                )
            )
    return found
