"""The platform as one linear sequence: each component's outputs feed the next."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pulumi

from components.apps.gpu_benchmark import GpuBenchmark, GpuBenchmarkArgs
from components.apps.ml_app import MlApp, MlAppArgs
from components.cluster.addons import ClusterAddons, ClusterAddonsArgs
from components.cluster.bootstrap import ClusterJoin
from components.cluster.etcd_backup import CLAIM as ETCD_CLAIM
from components.cluster.etcd_backup import EtcdBackup, EtcdBackupArgs
from components.cluster.identity import ClusterIdentity, ClusterIdentityArgs
from components.cluster.namespaces import PlatformNamespaces, PlatformNamespacesArgs
from components.cluster.priorities import PriorityClasses, PriorityClassesArgs
from components.cluster.secrets_rewrite import SecretsRewrite, SecretsRewriteArgs
from components.context import PlatformContext
from components.engineers.home_containers import HomeContainer, HomeContainerArgs
from components.engineers.home_docker import home_docker
from components.engineers.image_prepull import ImagePrepull, ImagePrepullArgs
from components.engineers.rootless_docker import DockerTls, DockerTlsArgs
from components.machines import maas as maas_backend
from components.machines.dns import OfficeDns, OfficeDnsArgs
from components.monitoring.alert_rules import BurstBudget
from components.monitoring.monitoring import Monitoring, MonitoringArgs
from components.registry.credentials import PUSH_USER, RegistryCredentials, RegistryCredentialsArgs
from components.registry.engineer_login import RegistryLogin, RegistryLoginArgs, with_registry
from components.registry.images import ContainerImage, ContainerImageArgs
from components.registry.registry import Registry, RegistryArgs
from components.storage.homes_nfs import NFS_PSEUDO_PATH
from components.tenants.admission import TenantAdmission, TenantAdmissionArgs
from components.tenants.credentials import ClusterAccess
from components.tenants.names import HOME_CLAIM, engineer_namespace
from components.tenants.tenants import Tenants, TenantsArgs
from stacks import args
from stacks.burst import benchmark_models, declare_burst, public_key_command
from stacks.config import StackSecrets
from stacks.nodes import NodeDeployer, declare_vms, external_ceph_access, own_ceph_access
from stacks.spec import NodeSpec, StackSpec
from stacks.storage import declare_offsite, declare_storage
from stacks.tenant_network import declare_engineer_network

API_PORT = 6443


def rollout_order(spec: StackSpec) -> list[NodeSpec]:
    """The order nodes are configured in, and a day-2 change rolls: the controllers first (the
    first of them inits the cluster; an upgrade must reach every API server before any kubelet,
    kubeadm's version-skew rule), then the workers, each group as the stack file lists it."""
    return sorted(spec.nodes, key=lambda n: n.role != "controller")


def build(spec: StackSpec, secrets: StackSecrets) -> dict[str, Any]:
    """Declare every resource of the stack; return the values of the outputs contract."""
    ctx = PlatformContext(
        stack=spec.stack, cluster_name=spec.cluster.name, protect_stateful=spec.cluster.protect_stateful
    )
    identity = ClusterIdentity(
        "cluster",
        ClusterIdentityArgs(
            ctx=ctx,
            api_endpoint=spec.api_endpoint,
            join_token_rotation_days=spec.cluster.join_token_rotation_days,
            encryption_key_generations=tuple(spec.cluster.secrets_encryption_keys),
        ),
    )
    cluster = spec.cluster
    controller_names = tuple(x for n in spec.controllers for x in (n.ip, n.hostname))
    if spec.cluster.api_vip:  # its name on the office DNS (args.office_dns_records) is in the certificate too
        controller_names += (f"api.{spec.apps.domain}",)
    join = pulumi.Output.all(identity.bootstrap_token, identity.ca_cert_hash).apply(
        lambda v: ClusterJoin(
            cluster_name=cluster.name,
            kubernetes_version=cluster.kubernetes_version,
            api_host=spec.api_host,
            api_port=API_PORT,
            token=v[0],
            ca_cert_hash=v[1],
            pod_cidr=cluster.pod_cidr,
            service_cidr=cluster.service_cidr,
            dns_domain=cluster.dns_domain,
            api_vip=cluster.api_vip,
            controller_names=controller_names,
            token_ttl_hours=identity.join_token.ttl_hours,
        )
    )

    maas = maas_backend.MaasSettings(
        provider=maas_backend.make_provider("maas", spec.maas.url, secrets.maas_api_key, parent=None),
        target=args.maas_target(spec.maas),
    )
    # The registry's accounts come before the nodes: every node's containerd pulls as akiba-pull.
    registry_credentials = RegistryCredentials(
        "registry-credentials",
        # The push password used to be the Registry component's child: keep it, don't replace it.
        RegistryCredentialsArgs(
            push_password_parent_urn=pulumi.create_urn("registry", "akiba:registry:Registry"),
            engineers=tuple(e.name for e in spec.engineers),  # an account each: pushes are theirs
        ),
    )
    nodes = NodeDeployer(spec, identity, join, maas, secrets, registry_credentials.pull_authorization)
    # VMs on another stack's Ceph (dev on prod's) come first: even the controller may be one.
    # VMs on this stack's Ceph wait for it, and so do their MAAS deployments.
    external_ceph = spec.libvirt.ceph_stack is not None
    vms = declare_vms(spec, ctx, external_ceph_access(spec)) if external_ceph else {}
    for node in rollout_order(spec):
        if external_ceph or node.power.type != "virsh":
            nodes.deploy(node, vms.get(node.hostname))
    init_node = nodes.init_node
    assert init_node is not None  # the spec guarantees a controller, and never a VM on own Ceph
    # Secrets written before encryption at rest (or under an older key) are rewritten once every
    # controller so far has the key (the chain's last step: controllers roll first).
    assert nodes.previous is not None
    SecretsRewrite(
        "secrets-rewrite",
        SecretsRewriteArgs(
            key_name=identity.encryption_key_name, kubeconfig=identity.kubeconfig, after=(nodes.previous,)
        ),
    )

    namespaces = PlatformNamespaces(
        "namespaces",
        PlatformNamespacesArgs(
            ctx=ctx,
            provider=identity.provider,
            namespaces={"akiba-system": "privileged", "akiba-workloads": "baseline"},
            depends_on=(init_node.last,),
        ),
    )
    # Right after the API server, before any pod: a pod naming a missing class is rejected, and
    # one created before the default class exists keeps priority 0 (components/cluster/priorities.py).
    priorities = PriorityClasses(
        "priorities", PriorityClassesArgs(ctx=ctx, provider=identity.provider, after=(init_node.last,))
    )
    # What the API server refuses in engineers' namespaces (components/tenants/admission.py):
    # before the namespaces, so no pod of a new engineer meets a policy that does not know them.
    admission = TenantAdmission(
        "tenant-admission",
        TenantAdmissionArgs(
            ctx=ctx, provider=identity.provider, logins=tuple(e.name for e in spec.engineers), after=(init_node.last,)
        ),
    )
    # Engineers' namespaces, rights, quotas and certificates: what goes into an engineer's
    # namespace (home pods, network policies, claims) depends on tenants.namespaces[login].
    tenants = Tenants(
        "tenants",
        TenantsArgs(
            ctx=ctx,
            provider=identity.provider,
            access=ClusterAccess(
                cluster_name=cluster.name,
                api_endpoint=spec.api_endpoint,
                ca_cert_pem=identity.ca_cert_pem,
                ca_key_pem=identity.ca_key_pem,
                certificate_days=spec.tenancy.certificate_days,
            ),
            tenants=args.tenants(spec),
            container_defaults=args.container_defaults(spec.tenancy),
            after=(init_node.last, admission),
        ),
    )
    declare_engineer_network(spec, ctx, identity.provider, tenants.namespaces)

    apps = spec.apps
    addons = ClusterAddons(
        "cluster-addons",
        ClusterAddonsArgs(
            ctx=ctx,
            provider=identity.provider,
            pod_cidr=cluster.pod_cidr,
            service_cidr=cluster.service_cidr,
            mtu=args.pod_network_mtu(spec),
            ingress_http_port=apps.ingress_http_port,
            ingress_https_port=apps.ingress_https_port,
            ca_cert_pem=identity.ca_cert_pem,
        ),
        opts=pulumi.ResourceOptions(depends_on=[init_node.last, priorities]),
    )
    storage = declare_storage(
        spec, ctx, identity, secrets, after=(init_node.last, priorities), tenant_namespaces=tenants.namespaces
    )
    if not external_ceph:
        vms = declare_vms(spec, ctx, own_ceph_access(spec, storage.ceph))
        for node in rollout_order(spec):
            if node.power.type == "virsh":
                nodes.deploy(node, vms[node.hostname])
    backups = spec.backups
    etcd_backup = EtcdBackup(
        "etcd-backup",
        EtcdBackupArgs(
            ctx=ctx,
            provider=identity.provider,
            schedule=backups.etcd_schedule,
            keep=backups.etcd_keep,
            after=(storage.ceph, priorities),
        ),
    )
    if spec.burst.enabled:  # the off-site copy goes to the burst AWS account
        declare_offsite(spec, ctx, identity, etcd_backup.namespace, ETCD_CLAIM, after=(storage.ceph, etcd_backup))
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
            credentials=registry_credentials,
        ),
        opts=pulumi.ResourceOptions(depends_on=[storage.ceph, addons, priorities]),
    )
    ml_image = ContainerImage(
        "ml-runtime-image",
        ContainerImageArgs(
            registry=spec.registry.mirror,
            repository="akiba/ml-runtime",
            tag=spec.registry.ml_runtime_tag,
            context="images/ml-runtime",
            dockerfile="images/ml-runtime/Dockerfile",
            push_password=registry.push_password,
            after=(registry,),
        ),
    )
    bench_image = ContainerImage(
        "gpu-benchmark-image",
        ContainerImageArgs(
            registry=spec.registry.mirror,
            repository="akiba/gpu-benchmark",
            tag=spec.gpu_benchmark.tag,
            context="benchmarks",  # the payload; benchmarks/.dockerignore keeps the rest out
            dockerfile="images/gpu-benchmark/Dockerfile",
            push_password=registry.push_password,
            build_args={"BASE": ml_image.ref},
            after=(registry,),
        ),
    )
    # Each engineer's home, in their namespace: adding or removing one touches no one else's pods.
    homes: dict[str, HomeContainer] = {}
    for engineer, account in zip(spec.engineers, args.accounts(spec.engineers), strict=True):
        namespace = tenants.namespaces[engineer.name]
        # Their registry account's Docker config and the registry's CA, in their namespace.
        registry_login = RegistryLogin(
            f"registry-login-{engineer.name}",
            RegistryLoginArgs(
                ctx=ctx,
                provider=identity.provider,
                login=engineer.name,
                registry=spec.registry.mirror,
                password=registry_credentials.engineer_passwords[engineer.name],
                ca_cert_pem=identity.ca_cert_pem,
                after=(namespace,),
            ),
        )
        docker_tls = DockerTls(
            f"docker-tls-{engineer.name}",
            DockerTlsArgs(ctx=ctx, provider=identity.provider, engineer=account, after=(namespace,)),
        )
        homes[engineer.name] = HomeContainer(
            f"home-{engineer.name}",
            HomeContainerArgs(
                ctx=ctx,
                provider=identity.provider,
                image=ml_image.ref,
                engineer=account,
                ssh_port=engineer.node_port,
                limits=args.home_limits(spec.tenancy),
                docker=with_registry(home_docker(account, docker_tls, args.home_limits(spec.tenancy)), registry_login),
                after=(namespace, storage.homes.resources[engineer.name], priorities),
            ),
        )
    ImagePrepull(
        "ml-image-prepull",
        ImagePrepullArgs(
            ctx=ctx,
            provider=identity.provider,
            namespace=namespaces.names["akiba-workloads"],
            image=ml_image.ref,
            after=(priorities,),
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
            burst_budget=BurstBudget(burst_node_price, spec.burst.monthly_budget_usd) if spec.burst.enabled else None,
            alert_webhook_url=secrets.alert_webhook_url,
            alert_receiver=spec.alerts.receiver,
        ),
        opts=pulumi.ResourceOptions(depends_on=[storage.ceph, priorities]),
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
                cpu=app.cpu,
                memory=app.memory,
                after=(priorities,),
            ),
        ).url
        + f":{apps.ingress_http_port}"
        for app in apps.apps
    }
    # Names for the ingress (registry, Grafana, apps) on the office DNS, MAAS's bind.
    OfficeDns("office-dns", OfficeDnsArgs(records=args.office_dns_records(spec), settings=maas))
    burst = (
        declare_burst(spec, ctx, join, identity, registry_credentials.pull_authorization, after=(init_node.last,))
        if spec.burst.enabled
        else None
    )

    bench = spec.gpu_benchmark
    GpuBenchmark(
        "gpu-benchmark",
        GpuBenchmarkArgs(
            ctx=ctx,
            provider=identity.provider,
            namespace=namespaces.names["akiba-workloads"],
            image=bench_image.ref,
            gpu_models=benchmark_models(spec),
            storage_class=bench.storage_class,
            results_size=bench.results_size,
            size=bench.size,
            after=(priorities,),
        ),
    )

    return {
        "contractVersion": "2",
        "clusterName": cluster.name,
        "apiEndpoint": spec.api_endpoint,
        # No admin kubeconfig: platform engineers use /etc/kubernetes/admin.conf on a controller
        # (kubeadm's own); the provider keeps this program's copy in its state.
        "caCertPem": identity.ca_cert_pem,
        "consumerKubeconfig": tenants.consumer_kubeconfig,
        "engineers": {
            e.name: {
                "namespace": engineer_namespace(e.name),
                "uid": e.uid,
                "sshPort": e.node_port,
                "homeClaim": HOME_CLAIM,
                # The line for their ~/.ssh/known_hosts (HostKeyAlias akiba-home-<login>).
                "sshKnownHosts": homes[e.name].known_hosts,
            }
            for e in spec.engineers
        },
        # Sealed to the engineer's own ssh keys (age): changes on every update, see Tenants._seal.
        **{f"engineerKubeconfig-{login}": sealed for login, sealed in tenants.sealed_kubeconfigs.items()},
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
            # A NodePort with externalTrafficPolicy Local (the client's address reaches the server):
            # of these, only the node running the NFS server answers; after a failover, another.
            "servers": [n.ip for n in spec.nodes],
            "port": storage.nfs.nfs_port,
            "export": NFS_PSEUDO_PATH,  # the root: each engineer's export is <export>/<login>
            "exports": storage.nfs.exports,  # login -> {path, clients}: only those engineers, those machines
        },
        "personalDatabases": {
            name: {"host": e.host, "port": e.port, "user": e.user, "database": e.database, "secretName": e.secret_name}
            for name, e in storage.databases.endpoints.items()
        },
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
                        # The gateway makes its own key: where to read its public half.
                        "wireguardPublicKeyParameter": burst.network.wireguard_public_key_parameter,
                        "wireguardPublicKeyCommand": public_key_command(
                            spec.burst.region, burst.network.wireguard_public_key_parameter
                        ),
                        "listenPort": spec.burst.site_link.listen_port,
                    }
                }
                if burst
                else {}
            ),
        },
    }
