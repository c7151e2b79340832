"""The stack's addresses as the engineers' network policies need them."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.addons import INGRESS_NAMESPACE, INGRESS_POD_PORTS
from components.context import PlatformContext
from components.engineers.home_sshd import HOME_PORT
from components.storage.personal_databases import NAMESPACE as DATABASE_NAMESPACE
from components.storage.personal_databases import database_pods
from components.tenants.network import (
    ClusterPlaces,
    EngineerNetwork,
    EngineerNetworkPolicies,
    EngineerNetworkPoliciesArgs,
)
from stacks.spec import StackSpec

API_PORT = 6443


def cluster_places(spec: StackSpec) -> ClusterPlaces:
    burst = spec.burst
    return ClusterPlaces(
        pod_cidr=spec.cluster.pod_cidr,
        service_cidr=spec.cluster.service_cidr,
        office_lan=spec.network.office_lan,
        # Burst nodes and the tunnel to them are the platform's too, not the internet.
        private=(burst.vpc_cidr, burst.site_link.tunnel_cidr) if burst.enabled else (),
        api_addresses=tuple(dict.fromkeys([*(n.ip for n in spec.controllers), *filter(None, [spec.cluster.api_vip])])),
        api_port=API_PORT,
        node_addresses=tuple(n.ip for n in spec.nodes),
        ingress_node_ports=(spec.apps.ingress_http_port, spec.apps.ingress_https_port),
        ingress_namespace=INGRESS_NAMESPACE,
        ingress_pod_ports=INGRESS_POD_PORTS,
        database_namespace=DATABASE_NAMESPACE,
    )


def declare_engineer_network(
    spec: StackSpec, ctx: PlatformContext, provider: k8s.Provider, namespaces: Mapping[str, pulumi.Resource]
) -> EngineerNetworkPolicies:
    """Default deny and the explicit allows in every engineer's namespace."""
    engineers = tuple(
        EngineerNetwork(
            login=e.name,
            database_pods=database_pods(e.name) if e.personal_database else None,
            ssh_port=HOME_PORT,
        )
        for e in spec.engineers
    )
    return EngineerNetworkPolicies(
        "engineer-network",
        EngineerNetworkPoliciesArgs(
            ctx=ctx, provider=provider, places=cluster_places(spec), engineers=engineers, namespaces=namespaces
        ),
    )
