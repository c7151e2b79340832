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
from components.home_containers import HomeContainers, HomeContainersArgs
from components.libvirt_ceph_secret import LibvirtCephSecret, LibvirtCephSecretArgs, secret_uuid
from components.libvirt_vm import LibvirtVm, LibvirtVmArgs, VmCephAccess
from components.ml_app import MlApp, MlAppArgs
from components.ml_runtime_image import MlRuntimeImage, MlRuntimeImageArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.node_bootstrap import ClusterJoin, Role
from components.node_termination_handler import NodeTerminationHandler, NodeTerminationHandlerArgs
from components.personal_databases import PersonalDatabases, PersonalDatabasesArgs
from components.platform_namespaces import PlatformNamespaces, PlatformNamespacesArgs
from components.registry import PUSH_USER, Registry, RegistryArgs
from components.rook_ceph import RookCeph, RookCephArgs
from components.shared_homes import NAMESPACE as HOMES_NAMESPACE
from components.shared_homes import NFS_PSEUDO_PATH, SharedHomes, SharedHomesArgs
from stacks.burst_types import INSTANCE_TYPES
from stacks.config import StackSecrets
from stacks.spec import NodeSpec, StackSpec, VirshPower

API_PORT = 6443
CEPH_MON_PORT = 6789  # msgr v1: what qemu's librbd and the hypervisors' rbd CLI both speak


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
    nodes = NodeDeployer(spec, identity, join, maas, secrets)
    # VMs on another stack's Ceph (dev on prod's) come first: even the controller may be one.
    # VMs on this stack's Ceph wait for it, and so do their MAAS deployments.
    external_ceph = spec.libvirt.ceph_stack is not None
    vms = declare_vms(spec, ctx, external_ceph_access(spec)) if external_ceph else {}
    for node in spec.nodes:
        if external_ceph or node.power.type != "virsh":
            nodes.deploy(node, vms.get(node.hostname))
    init_node = nodes.init_node
    assert init_node is not None  # the spec guarantees a controller, and never a VM on own Ceph

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
            ca_cert_pem=identity.ca_cert_pem,
        ),
        opts=pulumi.ResourceOptions(depends_on=[init_node.instance]),
    )
    storage = declare_storage(spec, ctx, identity, secrets, after=(init_node.instance,))
    if not external_ceph:
        vms = declare_vms(spec, ctx, own_ceph_access(spec, storage.ceph))
        for node in spec.nodes:
            if node.power.type == "virsh":
                nodes.deploy(node, vms[node.hostname])
    registry = Registry(
        "registry",
        RegistryArgs(
            ctx=ctx,
            provider=identity.provider,
            host=spec.registry.host,
            upstreams=tuple(spec.registry.upstreams),
            ca_cert_pem=identity.ca_cert_pem,
            ca_key_pem=identity.ca_key_pem,
            ingress_class=addons.ingress_class,
        ),
        opts=pulumi.ResourceOptions(depends_on=[storage.ceph, addons]),
    )
    ml_image = MlRuntimeImage(
        "ml-runtime-image",
        MlRuntimeImageArgs(
            registry=spec.registry.mirror,
            tag=spec.registry.ml_runtime_tag,
            push_password=registry.push_password,
            after=(registry,),
        ),
    )
    HomeContainers(
        "home-containers",
        HomeContainersArgs(
            ctx=ctx,
            provider=identity.provider,
            namespace=HOMES_NAMESPACE,
            image=ml_image.ref,
            engineers=spec.engineers,
            claims=storage.homes.claims,
            after=(storage.homes,),
        ),
    )
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
                "kind": "vm" if n.power.type == "virsh" else "baremetal",
                "gpuModel": n.gpu_model,
                "gpuCount": len(n.gpus),
            }
            for n in spec.nodes
        ],
        "gpusByModel": dict(Counter(g.model for n in spec.nodes for g in n.gpus)),
        "maasUrl": spec.maas.url,
        "registry": {"host": spec.registry.mirror, "pushUser": PUSH_USER, "mlRuntimeImage": ml_image.ref},
        "registryPushPassword": registry.push_password,
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
        "cephLibvirtKey": storage.ceph.libvirt_key,
        "vms": {
            vm.domain_name: {
                "hypervisor": vm.hypervisor,
                "disks": vm.disks,
                "gpus": vm.gpus,
            }
            for vm in vms.values()
        },
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


class NodeDeployer:
    """Deploys nodes through MAAS one by one; the first controller inits the cluster and every
    other node joins after it."""

    def __init__(
        self,
        spec: StackSpec,
        identity: ClusterIdentity,
        join: pulumi.Output[ClusterJoin],
        maas: maas_backend.MaasSettings,
        secrets: StackSecrets,
    ) -> None:
        self.spec, self.identity, self.join, self.maas, self.secrets = spec, identity, join, maas, secrets
        self.init_node: BareMetalNode | None = None

    def deploy(self, node: NodeSpec, vm: LibvirtVm | None) -> BareMetalNode:
        init = self.init_node
        role: Role = "worker" if node.role == "worker" else "controller-join" if init else "controller-init"
        after: list[pulumi.Resource] = [init.instance] if init else []
        if vm is not None:
            after.append(vm.domain)  # MAAS powers the VM on through virsh: it must exist
        bare = BareMetalNode(
            node.hostname,
            BareMetalNodeArgs(
                node=node,
                role=role,
                join=self.join,
                identity=self.identity,
                network=self.spec.network,
                registry=self.spec.registry,
                maas=self.maas,
                power_password=self.secrets.power_password,
                hypervisor_uris=self.spec.hypervisor_uris,
                after=tuple(after),
            ),
        )
        if role == "controller-init":
            self.init_node = bare
        return bare


def external_ceph_access(spec: StackSpec) -> VmCephAccess:
    """Another stack's Ceph (dev keeps its VM disks on prod's), through its outputs contract."""
    assert spec.libvirt.ceph_stack is not None
    ref = pulumi.StackReference(spec.libvirt.ceph_stack)
    ceph = ref.require_output("ceph")
    return VmCephAccess(
        monitors=ceph.apply(lambda c: [f"{ip}:{CEPH_MON_PORT}" for ip in c["monitorCandidates"]]),
        pool=ceph.apply(lambda c: str(c["vmPool"])),
        user=ceph.apply(lambda c: str(c["libvirtUser"]).removeprefix("client.")),
        key=pulumi.Output.secret(ref.require_output("cephLibvirtKey")),
    )


def own_ceph_access(spec: StackSpec, ceph: CephStorage) -> VmCephAccess:
    mons = [f"{n.ip}:{CEPH_MON_PORT}" for n in spec.nodes if n.disks.ceph]
    return VmCephAccess(
        monitors=pulumi.Output.from_input(mons), pool=spec.storage.vm_pool, user="libvirt", key=ceph.libvirt_key
    )


def declare_vms(spec: StackSpec, ctx: PlatformContext, ceph: VmCephAccess) -> dict[str, LibvirtVm]:
    """A VM for every node MAAS powers with virsh, and each hypervisor's libvirt ceph secret."""
    hypervisors: dict[str, tuple[str, LibvirtCephSecret, str]] = {}
    vms: dict[str, LibvirtVm] = {}
    for node in spec.nodes:
        power = node.power
        if not isinstance(power, VirshPower):
            continue
        if power.hypervisor not in hypervisors:
            uri = spec.hypervisor_uris[power.hypervisor]
            uuid = secret_uuid(ctx.cluster_name, power.hypervisor)
            secret = LibvirtCephSecret(
                f"ceph-secret-{power.hypervisor}",
                LibvirtCephSecretArgs(uri=uri, uuid=uuid, user=ceph.user, key=ceph.key),
            )
            hypervisors[power.hypervisor] = (uri, secret, uuid)
        uri, secret, uuid = hypervisors[power.hypervisor]
        vms[node.hostname] = LibvirtVm(
            power.domain,
            LibvirtVmArgs(
                node=node,
                pool=ceph.pool,
                ceph=ceph,
                secret_uuid=uuid,
                uri=uri,
                protect=ctx.protect_stateful,
                after=(secret,),
            ),
        )
    return vms


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
