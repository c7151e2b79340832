"""The cluster's plumbing: flannel (VXLAN pod network), kube-router's firewall enforcing
NetworkPolicy beside it (components/cluster/network_policies.py), the NVIDIA device plugin with GPU
feature discovery, and Traefik as the ingress for the ML web apps; pinned charts and images."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import network_policies
from components.cluster.bootstrap import CONTROL_PLANE_TAINT, GPU_TAINT
from components.cluster.helm import pinned_chart
from components.cluster.namespaces import PodSecurity, declare_namespace
from components.cluster.priorities import PLATFORM
from components.context import PlatformContext

FLANNEL_VERSION = "v0.28.9"
DEVICE_PLUGIN_VERSION = "0.20.0"
TRAEFIK_VERSION = "41.3.0"  # Traefik v3.7.11
INGRESS_NAMESPACE = "traefik"
INGRESS_POD_PORTS = (8000, 8443)  # the chart's ports.web.port and ports.websecure.port (its defaults)
ALL_NODES = [
    {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]},
    {"key": CONTROL_PLANE_TAINT["key"], "operator": "Exists", "effect": CONTROL_PLANE_TAINT["effect"]},
]


@dataclass(frozen=True)
class ClusterAddonsArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    pod_cidr: str
    service_cidr: str  # e.g. 10.96.0.0/12: the policy engine tells Service addresses from others
    # The underlay MTU the pod network's VXLAN packets must fit, e.g. 1500: the bond's, or less
    # where they cross a tunnel. flannel subtracts the 50 bytes of VXLAN itself.
    mtu: int
    ingress_http_port: int
    ingress_https_port: int
    ca_cert_pem: pulumi.Output[str]  # Traefik trusts in-cluster HTTPS backends (the registry) by it


class ClusterAddons(pulumi.ComponentResource):
    ingress_class: str

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:k8s:ClusterAddons", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)

        def namespace(ns: str, level: PodSecurity) -> k8s.core.v1.Namespace:
            return declare_namespace(ns, level, args.ctx, on_cluster)

        pinned_chart(
            "flannel",
            chart="flannel",
            version=FLANNEL_VERSION,
            repo="https://flannel-io.github.io/flannel/",
            namespace=namespace("kube-flannel", "privileged").metadata.name,
            values={
                "podCidr": args.pod_cidr,
                # flannel's Backend.MTU is the outgoing packets' (the underlay's); flannel.1 and the
                # pods get it minus the VXLAN overhead (flannel Documentation/backends.md).
                "flannel": {"backend": "vxlan", "mtu": args.mtu},
            },
            opts=on_cluster,
        )
        self._network_policies(args, on_cluster)
        pinned_chart(
            "nvidia-device-plugin",
            chart="nvidia-device-plugin",
            version=DEVICE_PLUGIN_VERSION,
            repo="https://nvidia.github.io/k8s-device-plugin",
            namespace=namespace("nvidia-device-plugin", "privileged").metadata.name,
            values={
                # GPU feature discovery labels nodes with nvidia.com/gpu.product, memory, compute capability.
                "gfd": {"enabled": True},
                # The allocated GPUs reach a container as mounts the toolkit reads, and only those: with
                # the nodes' toolkit ignoring NVIDIA_VISIBLE_DEVICES in unprivileged containers
                # (components/cluster/node_security.py), a GPU is had through the scheduler alone.
                # The chart then gives the plugin CAP_SYS_ADMIN (templates/_helpers.tpl,
                # requiresCapSysAdmin), which the toolkit counts as privileged for its own GPUs.
                "deviceListStrategy": "volume-mounts",
                # node-feature-discovery (master, worker, gc): the GPU labels every GPU pod selects on.
                "nfd": {"priorityClassName": PLATFORM},
                "nodeSelector": {"nvidia.com/gpu.present": "true"},
                "tolerations": ALL_NODES,
                "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}},
            },
            opts=on_cluster,
        )
        # No load balancer on-prem: Traefik listens on fixed node ports of every node.
        self.ingress_class = "traefik"
        traefik_ns = namespace(INGRESS_NAMESPACE, "baseline")
        ca = k8s.core.v1.Secret(
            "traefik-akiba-ca",
            metadata={"name": "akiba-ca", "namespace": INGRESS_NAMESPACE, "labels": args.ctx.labels},
            string_data=args.ca_cert_pem.apply(lambda pem: {"ca.crt": pem}),
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[traefik_ns])),
        )
        pinned_chart(
            "traefik",
            chart="traefik",
            version=TRAEFIK_VERSION,
            repo="https://traefik.github.io/charts",
            namespace=traefik_ns.metadata.name,
            values={
                # Two, spread over nodes: the registry and every app are reached through it. Platform
                # priority: no engineer's pod may preempt the ingress.
                "deployment": {"replicas": 2},
                "priorityClassName": PLATFORM,
                "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
                # One pod per node: an update replaces a pod in place (the chart's surge of one
                # would need a third node that dev does not have).
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "affinity": {
                    "podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
                                "topologyKey": "kubernetes.io/hostname",
                            }
                        ]
                    }
                },
                "service": {"type": "NodePort"},
                "ports": {
                    "web": {"nodePort": args.ingress_http_port},
                    "websecure": {"nodePort": args.ingress_https_port},
                },
                "ingressClass": {"enabled": True, "isDefaultClass": True, "name": self.ingress_class},
                "additionalArguments": ["--serverstransport.rootcas=/etc/akiba-ca/ca.crt"],
                "volumes": [{"name": "akiba-ca", "mountPath": "/etc/akiba-ca", "type": "secret"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
            },
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[ca])),
        )
        self.register_outputs({"ingressClass": self.ingress_class})

    def _network_policies(self, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions) -> None:
        """kube-router's firewall on every node, reading policies and pods; nothing else."""
        name, ns, labels = network_policies.NAME, network_policies.NAMESPACE, args.ctx.labels
        account = k8s.core.v1.ServiceAccount(
            "network-policies", metadata={"name": name, "namespace": ns, "labels": labels}, opts=opts
        )
        role = k8s.rbac.v1.ClusterRole(
            "network-policies",
            metadata={"name": f"akiba:{name}", "labels": labels},
            rules=network_policies.cluster_role_rules(),
            opts=opts,
        )
        binding = k8s.rbac.v1.ClusterRoleBinding(
            "network-policies",
            metadata={"name": f"akiba:{name}", "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"akiba:{name}"},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role])),
        )
        k8s.apps.v1.DaemonSet(
            "network-policies",
            metadata={"name": name, "namespace": ns, "labels": labels},
            spec=network_policies.daemonset_spec(args.service_cidr, labels),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[account, binding])),
        )
