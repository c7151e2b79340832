"""The nodes: MAAS deployments of PCs and VMs, and the VMs themselves on Ceph RBD."""

from __future__ import annotations

import pulumi

from components.cluster.bootstrap import ClusterJoin, Role
from components.cluster.identity import ClusterIdentity
from components.context import PlatformContext
from components.machines import maas as maas_backend
from components.machines.baremetal_node import BareMetalNode, BareMetalNodeArgs
from components.machines.libvirt_ceph_secret import LibvirtCephSecret, LibvirtCephSecretArgs, secret_uuid
from components.machines.libvirt_vm import LibvirtVm, LibvirtVmArgs, VmCephAccess
from components.machines.node_converge import NodeAccess, NodeAccessArgs
from components.storage import rook_ceph
from components.storage.ceph_storage import CephStorage
from stacks import args
from stacks.config import StackSecrets
from stacks.spec import NodeSpec, StackSpec, VirshPower

CEPH_MON_PORT = 6789  # msgr v1: what qemu's librbd and the hypervisors' rbd CLI both speak


class NodeDeployer:
    """Installs nodes through MAAS (all at once) and configures them one by one, in a chain: the
    first controller inits the cluster, every other node joins after the one before it, and a
    day-2 change rolls through them in the same order."""

    def __init__(
        self,
        spec: StackSpec,
        identity: ClusterIdentity,
        join: pulumi.Output[ClusterJoin],
        maas: maas_backend.MaasSettings,
        secrets: StackSecrets,
        registry_auth: pulumi.Output[str],
    ) -> None:
        self.spec, self.identity, self.join, self.maas, self.secrets = spec, identity, join, maas, secrets
        self.registry_auth = registry_auth
        self.lan, self.registry = args.office_lan(spec.network), args.registry_mirror(spec.registry)
        self.init_node: BareMetalNode | None = None
        self.access = NodeAccess("node-access", NodeAccessArgs(name="node-converge"))
        self.previous: pulumi.Resource | None = None  # the last configuration step so far

    def deploy(self, node: NodeSpec, vm: LibvirtVm | None) -> BareMetalNode:
        init = self.init_node
        role: Role = "worker" if node.role == "worker" else "controller-join" if init else "controller-init"
        # MAAS powers a VM on through virsh: its domain must exist.
        deploy_after = (vm.domain,) if vm is not None else ()
        bare = BareMetalNode(
            node.hostname,
            BareMetalNodeArgs(
                machine=args.machine(node, self.spec.hypervisor_uris),
                ip=node.ip,
                gpus=args.node_gpus(node),
                role=role,
                join=self.join,
                identity=self.identity,
                lan=self.lan,
                registry=self.registry,
                registry_auth=self.registry_auth,
                maas=self.maas,
                power_password=self.secrets.power_password,
                converge_key=self.access.private_key,
                converge_public_key=self.access.public_key,
                kubeconfig=self.identity.kubeconfig,
                kubernetes_version=self.spec.cluster.kubernetes_version,
                after=(self.previous,) if self.previous is not None else (),
                deploy_after=deploy_after,
                # dev's VMs keep their disks on prod's Ceph; prod's platform VM on prod's own.
                boots_from_cluster_ceph=vm is not None and self.spec.libvirt.ceph_stack is None,
            ),
        )
        if role == "controller-init":
            self.init_node = bare
        self.previous = bare.last
        return bare


def ceph_cluster_id(kubernetes_cluster: str) -> str:
    """The Ceph cluster the VM disks live on, by a name that outlives its monitors (the disks'
    identity): the Rook CephCluster, namespace/name, of the Kubernetes cluster that runs it. Its
    fsid would do too, but Rook makes that at first start, after the program names the disks."""
    return f"{kubernetes_cluster}/{rook_ceph.NAMESPACE}/{rook_ceph.CLUSTER_NAME}"


def external_ceph_access(spec: StackSpec) -> VmCephAccess:
    """Another stack's Ceph (dev keeps its VM disks on prod's), through its outputs contract."""
    assert spec.libvirt.ceph_stack is not None
    ref = pulumi.StackReference(spec.libvirt.ceph_stack)
    ceph = ref.require_output("ceph")
    return VmCephAccess(
        cluster=ref.require_output("clusterName").apply(lambda name: ceph_cluster_id(str(name))),
        monitors=ceph.apply(lambda c: [f"{ip}:{CEPH_MON_PORT}" for ip in c["monitorCandidates"]]),
        pool=ceph.apply(lambda c: str(c["vmPool"])),
        user=ceph.apply(lambda c: str(c["libvirtUser"]).removeprefix("client.")),
        key=pulumi.Output.secret(ref.require_output("cephLibvirtKey")),
    )


def own_ceph_access(spec: StackSpec, ceph: CephStorage) -> VmCephAccess:
    mons = [f"{n.ip}:{CEPH_MON_PORT}" for n in spec.nodes if n.disks.ceph]
    return VmCephAccess(
        cluster=ceph_cluster_id(spec.cluster.name),
        monitors=pulumi.Output.from_input(mons),
        pool=spec.storage.vm_pool,
        user="libvirt",
        key=ceph.libvirt_key,
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
                vm=args.vm_hardware(node, power),
                pool=ceph.pool,
                ceph=ceph,
                secret_uuid=uuid,
                uri=uri,
                protect=ctx.protect_stateful,
                after=(secret,),
            ),
        )
    return vms
