"""The platform as one linear sequence: each component's outputs feed the next."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import maas as maas_backend
from components.baremetal_node import BareMetalNode, BareMetalNodeArgs
from components.burst_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.burst_budget import BurstBudget, BurstBudgetArgs
from components.burst_network import BurstNetwork, BurstNetworkArgs
from components.burst_nodes import BurstNodes, BurstNodesArgs
from components.ceph_storage import CephStorage, CephStorageArgs
from components.cluster_addons import ClusterAddons, ClusterAddonsArgs
from components.cluster_identity import ClusterIdentity, ClusterIdentityArgs
from components.context import PlatformContext
from components.gpu_benchmark import GpuBenchmark, GpuBenchmarkArgs
from components.ml_app import MlApp, MlAppArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.node_bootstrap import ClusterJoin, Role
from components.node_termination_handler import NodeTerminationHandler, NodeTerminationHandlerArgs
from components.personal_databases import PersonalDatabases, PersonalDatabasesArgs
from components.platform_namespaces import PlatformNamespaces, PlatformNamespacesArgs
from components.rook_ceph import RookCeph, RookCephArgs
from components.shared_homes import NFS_PSEUDO_PATH, SharedHomes, SharedHomesArgs
from stacks.burst_types import INSTANCE_TYPES
from stacks.config import StackSecrets
from stacks.spec import StackSpec

API_PORT = 6443


def build(spec: StackSpec, secrets: StackSecrets) -> dict[str, Any]:
    """Declare every resource of the stack; return the values of the outputs contract."""
    ctx = PlatformContext(
        stack=spec.stack, cluster_name=spec.cluster.name, protect_stateful=spec.cluster.protect_stateful
    )
    identity = ClusterIdentity("cluster", ClusterIdentityArgs(ctx=ctx, api_endpoint=spec.api_endpoint))
    first_controller = spec.controllers[0]
    cluster = spec.cluster
    join = pulumi.Output.all(identity.bootstrap_token, identity.ca_cert_hash).apply(
        lambda v: ClusterJoin(
            cluster_name=cluster.name,
            kubernetes_version=cluster.kubernetes_version,
            api_host=first_controller.ip,
            api_port=API_PORT,
            token=v[0],
            ca_cert_hash=v[1],
            pod_cidr=cluster.pod_cidr,
            service_cidr=cluster.service_cidr,
            dns_domain=cluster.dns_domain,
        )
    )

    maas = maas_backend.MaasSettings(
        provider=maas_backend.make_provider("maas", spec.maas, secrets.maas_api_key, parent=None), spec=spec.maas
    )
    hypervisor_uris = spec.hypervisor_uris
    init_node: BareMetalNode | None = None
    for node in spec.nodes:
        role: Role = "worker" if node.role == "worker" else "controller-join" if init_node else "controller-init"
        bare = BareMetalNode(
            node.hostname,
            BareMetalNodeArgs(
                node=node,
                role=role,
                join=join,
                identity=identity,
                network=spec.network,
                registry=spec.registry,
                maas=maas,
                power_password=secrets.power_password,
                hypervisor_uris=hypervisor_uris,
                # Joining nodes need a running API server: deploy them after the first controller.
                after=(init_node.instance,) if init_node else (),
            ),
        )
        if role == "controller-init":
            init_node = bare
    assert init_node is not None  # the spec guarantees a controller

    namespaces = PlatformNamespaces(
        "namespaces",
        PlatformNamespacesArgs(
            ctx=ctx,
            provider=identity.provider,
            namespaces={"akiba-system": "privileged", "akiba-workloads": "baseline"},
            depends_on=(init_node.instance,),
        ),
    )

    apps = spec.apps
    addons = ClusterAddons(
        "cluster-addons",
        ClusterAddonsArgs(
            ctx=ctx,
            provider=identity.provider,
            pod_cidr=cluster.pod_cidr,
            mtu=spec.network.bond.mtu,
            ingress_http_port=apps.ingress_http_port,
            ingress_https_port=apps.ingress_https_port,
        ),
        opts=pulumi.ResourceOptions(depends_on=[init_node.instance]),
    )
    storage = declare_storage(spec, ctx, identity, secrets, after=(init_node.instance,))
    burst_node_price = max(spec.burst.spot_price_usd.values()) if spec.burst.enabled else 0.0
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            ctx=ctx,
            provider=identity.provider,
            grafana_host=f"grafana.{apps.domain}",
            ingress_class=addons.ingress_class,
            burst_hourly_usd=burst_node_price,
        ),
        opts=pulumi.ResourceOptions(depends_on=[storage.ceph]),
    )
    app_urls = {
        app.name: MlApp(
            app.name,
            MlAppArgs(
                ctx=ctx,
                provider=identity.provider,
                namespace=namespaces.names["akiba-workloads"],
                image=app.image,
                host=f"{app.name}.{apps.domain}",
                ingress_class=addons.ingress_class,
                gpus=app.gpus,
                replicas=app.replicas,
            ),
        ).url
        + f":{apps.ingress_http_port}"
        for app in apps.apps
    }
    burst = declare_burst(spec, ctx, join, identity) if spec.burst.enabled else None

    bench = spec.gpu_benchmark
    GpuBenchmark(
        "gpu-benchmark",
        GpuBenchmarkArgs(
            ctx=ctx,
            provider=identity.provider,
            namespace=namespaces.names["akiba-workloads"],
            image=bench.image,
            gpu_models=benchmark_models(spec),
            storage_class=bench.storage_class,
            results_size=bench.results_size,
            size=bench.size,
        ),
    )

    return {
        "contractVersion": "1",
        "clusterName": cluster.name,
        "apiEndpoint": spec.api_endpoint,
        "kubeconfig": identity.kubeconfig,
        "caCertPem": identity.ca_cert_pem,
        "podCidr": cluster.pod_cidr,
        "serviceCidr": cluster.service_cidr,
        "nodes": [
            {
                "hostname": n.hostname,
                "role": n.role,
                "ip": n.ip,
                "kind": "baremetal",
                "gpuModel": n.gpu_model,
                "gpuCount": len(n.gpus),
            }
            for n in spec.nodes
        ],
        "gpusByModel": dict(Counter(g.model for n in spec.nodes for g in n.gpus)),
        "maasUrl": spec.maas.url,
        "dashboardUrl": f"http://grafana.{apps.domain}:{apps.ingress_http_port}{monitoring.dashboard_path}",
        "apps": app_urls,
        "ceph": {
            "vmPool": spec.storage.vm_pool,
            "libvirtUser": "client.libvirt",
            "libvirtKeySecret": f"rook-ceph/{storage.ceph.client_secret_names['libvirt']}",
            # Host-networked monitors run on some of these; Ceph clients find the rest from any one.
            "monitorCandidates": [n.ip for n in spec.nodes if n.disks.ceph],
        },
        "nfs": {
            "servers": [n.ip for n in spec.nodes],  # any node: a NodePort, stable across failover
            "port": storage.homes.nfs_port,
            "export": NFS_PSEUDO_PATH,
        },
        "personalDatabases": {
            name: {"host": e.host, "port": e.port, "user": e.user, "database": e.database, "secretName": e.secret_name}
            for name, e in storage.databases.endpoints.items()
        },
        "personalDatabasePasswords": storage.databases.passwords,
        "registryMirror": spec.registry.mirror,
        "burst": {
            "enabled": spec.burst.enabled,
            "region": spec.burst.region,
            "instanceTypes": list(spec.burst.instance_types),
            "maxSize": spec.burst.max_size,
            "expectedHourlyCostUsdAtMax": round(spec.burst.max_hourly_cost_usd, 4) if burst else 0,
            "groupName": burst.nodes.group_name if burst else "",
            # Pulumi drops None from outputs: a disabled burst has no siteLink key at all.
            **(
                {
                    "siteLink": {
                        "gatewayPublicIp": burst.network.gateway_public_ip,
                        "wireguardPublicKey": burst.network.wireguard_public_key,
                        "listenPort": spec.burst.site_link.listen_port,
                    }
                }
                if burst
                else {}
            ),
        },
    }


@dataclass(frozen=True)
class Storage:
    ceph: CephStorage
    homes: SharedHomes
    databases: PersonalDatabases


def declare_storage(
    spec: StackSpec,
    ctx: PlatformContext,
    identity: ClusterIdentity,
    secrets: StackSecrets,
    after: tuple[pulumi.Resource, ...],
) -> Storage:
    """Rook Ceph on the nodes' SSDs, and what lives on it: homes, golden and personal databases."""
    rook = RookCeph(
        "rook-ceph",
        RookCephArgs(ctx=ctx, provider=identity.provider, nodes=spec.nodes, storage=spec.storage),
        opts=pulumi.ResourceOptions(depends_on=list(after)),
    )
    ceph = CephStorage(
        "ceph-storage", CephStorageArgs(ctx=ctx, provider=identity.provider, storage=spec.storage, cluster=rook.cluster)
    )
    homes = SharedHomes(
        "shared-homes",
        SharedHomesArgs(
            ctx=ctx, provider=identity.provider, storage=spec.storage, engineers=spec.engineers, after=(ceph,)
        ),
    )
    databases = PersonalDatabases(
        "personal-databases",
        PersonalDatabasesArgs(
            ctx=ctx,
            provider=identity.provider,
            databases=spec.databases,
            engineers=spec.engineers,
            source_url=secrets.golden_db_source_url,
            after=(ceph,),
        ),
    )
    return Storage(ceph=ceph, homes=homes, databases=databases)


def benchmark_models(spec: StackSpec) -> tuple[str, ...]:
    """Every on-prem GPU model, and the burst group's modelled type: a Job pending on that
    type's label makes the cluster-autoscaler start a spot node for it. Kepler (g2) is left
    out: current PyTorch has no kernels for it, the Job could only fail."""
    models: list[str] = sorted({g.model for n in spec.nodes for g in n.gpus})
    if spec.burst.enabled:
        first = INSTANCE_TYPES[spec.burst.instance_types[0]]
        if first.generation != "kepler":
            models.append(first.gpu_model)
    return tuple(models)


@dataclass(frozen=True)
class Burst:
    network: BurstNetwork
    nodes: BurstNodes


def declare_burst(
    spec: StackSpec, ctx: PlatformContext, join: pulumi.Output[ClusterJoin], identity: ClusterIdentity
) -> Burst:
    """AWS spot GPU capacity that joins the office cluster, and what scales and drains it."""
    burst = spec.burst
    aws_provider = aws.Provider("aws", region=burst.region, default_tags={"tags": ctx.tags})
    network = BurstNetwork(
        "burst-network",
        BurstNetworkArgs(ctx=ctx, burst=burst, office_lan=spec.network.office_lan, provider=aws_provider),
    )
    nodes = BurstNodes(
        "burst-nodes",
        BurstNodesArgs(
            ctx=ctx,
            burst=burst,
            registry=spec.registry,
            join=join,
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.node_security_group_id,
            provider=aws_provider,
        ),
    )
    ClusterAutoscaler(
        "cluster-autoscaler",
        ClusterAutoscalerArgs(
            ctx=ctx,
            region=burst.region,
            group_arn=nodes.group_arn,
            aws_provider=aws_provider,
            k8s_provider=identity.provider,
        ),
    )
    NodeTerminationHandler(
        "node-termination-handler", NodeTerminationHandlerArgs(ctx=ctx, k8s_provider=identity.provider)
    )
    BurstBudget(
        "burst-budget",
        BurstBudgetArgs(
            ctx=ctx, monthly_usd=burst.monthly_budget_usd, notify_email=burst.notify_email, provider=aws_provider
        ),
    )
    return Burst(network=network, nodes=nodes)
