"""The typed, frozen stack spec: everything the program needs from `Pulumi.<stack>.yaml`.

Field names are snake_case here and camelCase in the stack file (Pulumi's convention).
Field-level rules live on the fields; rules that span fields live in `stacks.rules`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from components.burst.instance_types import INSTANCE_TYPES
from components.engineers.home_containers import default_ssh_port
from components.engineers.home_sshd import UID_MAX, UID_MIN
from components.tenants.quota import EPHEMERAL_MAX, quantity
from stacks.gpus import GPU_MODELS, GpuModel
from stacks.types import (
    Cidr,
    CronSchedule,
    DnsLabel,
    DnsName,
    Hostname,
    HttpUrl,
    InterfaceName,
    IPv4,
    KubernetesVersion,
    LoginName,
    MacAddress,
    PciAddress,
    RegistryHost,
    SshPublicKey,
    StableDiskPath,
    WireguardKey,
)

MAX_GPUS_PER_NODE = 8  # the most any board the device plugin supports well holds


class Section(BaseModel):
    """Base of every spec section: frozen, camelCase in YAML, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _key_generations(keys: list[int]) -> list[int]:
    if len(set(keys)) != len(keys) or min(keys, default=1) < 1:
        raise ValueError("distinct key generations, each 1 or more, the encrypting one first, like [1] or [2, 1]")
    return keys


class ClusterSpec(Section):
    name: Hostname = Field(description="Cluster name, used in names and tags. Example: akiba")
    kubernetes_version: KubernetesVersion = Field(description="kubeadm/kubelet version, e.g. 1.36.4")
    pod_cidr: Cidr = Field(description="flannel pod network, e.g. 10.244.0.0/16")
    service_cidr: Cidr = Field(description="Service network, e.g. 10.96.0.0/12")
    dns_domain: DnsName = Field(default="cluster.local", description="Cluster DNS domain")
    protect_stateful: bool = Field(
        description="protect=True and retain-on-delete for stateful resources (true in prod)"
    )
    api_vip: IPv4 | None = Field(
        default=None,
        description="The API server's virtual IP on the office LAN (kube-vip, ARP), no machine's address; "
        "required with more than one controller. Unset: the API is the one controller's address",
    )
    join_token_rotation_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="Days between rotations of the nodes' kubeadm join token (it expires after twice that)",
    )
    secrets_encryption_keys: Annotated[list[int], AfterValidator(_key_generations)] = Field(
        default=[1],
        min_length=1,
        max_length=3,
        description="Generations of the key that encrypts Secrets at rest, the first one writing; rotate by "
        "[1] -> [1, 2] -> [2, 1] -> [2], one `pulumi up` each (README: Secrets at rest)",
    )


class BondSpec(Section):
    mode: Literal["balance-alb", "active-backup", "802.3ad"] = Field(
        default="balance-alb",
        description="balance-alb needs no switch support (the article's fanless L2 switch)",
    )
    mtu: int = Field(default=1500, ge=1280, le=9000)


class NetworkSpec(Section):
    office_lan: Cidr = Field(description="The office LAN the nodes live on, e.g. 192.168.10.0/24")
    gateway: IPv4 = Field(description="Default gateway on the office LAN")
    dns_servers: list[IPv4] = Field(min_length=1, description="Resolvers for the nodes")
    bond: BondSpec = Field(default_factory=BondSpec)


def _https(value: str) -> str:
    # The API key crosses this URL, and with it the power of every node's configuration.
    if not value.startswith("https://"):
        raise ValueError(
            "an https:// URL (MAAS serves TLS on port 5443 after `maas config-tls enable`), "
            "like https://192.168.10.2:5443/MAAS: the API key must not cross the LAN in the clear"
        )
    return value


def _noble_only(value: object) -> object:
    if value == "jammy":
        raise ValueError(
            "noble: engineers' home pods run in their own user namespace (hostUsers: false) with the "
            "CephFS home mounted, which takes idmapped mounts of CephFS (Linux 6.7 or later); jammy's "
            "GA kernel is 5.15"
        )
    return value


class MaasSpec(Section):
    url: Annotated[HttpUrl, AfterValidator(_https)] = Field(
        description="MAAS region API over TLS, e.g. https://192.168.10.2:5443/MAAS"
    )
    distro_series: Annotated[Literal["noble"], BeforeValidator(_noble_only)] = Field(
        description="Ubuntu release MAAS deploys: noble (its 6.8 kernel has the idmapped mounts home pods need)"
    )
    hwe_kernel: str | None = Field(default=None, description="e.g. hwe-24.04; MAAS default if unset")
    pool: str | None = Field(default=None, description="MAAS resource pool for the nodes")
    zone: str | None = Field(default=None, description="MAAS zone for the nodes")


def _mirror_host(value: str) -> str:
    # The host gets a record on the office DNS (components/machines/dns.py) when it is a name.
    host = value.split(":")[0]
    labels = host.split(".")
    if len(host) > 253 or not all(re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", label) for label in labels):
        raise ValueError("host[:port] whose host is a DNS name or an IPv4 address, like registry.akiba.lan:30443")
    return value


class RegistrySpec(Section):
    mirror: Annotated[str, AfterValidator(_mirror_host)] = Field(
        pattern=r"^[a-z0-9.-]+(:\d{1,5})?$",
        description="host[:port] of the in-cluster registry every containerd uses as a mirror",
    )
    upstreams: list[RegistryHost] = Field(
        min_length=1, description="Registries mirrored through it, e.g. docker.io, nvcr.io"
    )
    ml_runtime_tag: str = Field(
        pattern=r"^[\w][\w.-]{0,127}$", description="Tag of the ML runtime image built from images/ml-runtime"
    )

    @property
    def host(self) -> str:
        return self.mirror.split(":")[0]


class HypervisorSpec(Section):
    name: Hostname = Field(description="Name other sections refer to, e.g. desk01")
    uri: str = Field(
        pattern=r"^qemu(\+ssh|\+tcp|\+tls)?://\S*/system$",
        description="libvirt URI, e.g. qemu+ssh://virsh@192.168.10.5/system",
    )


class ManualPower(Section):
    """Consumer PCs have no BMC: MAAS asks a person to press the button."""

    type: Literal["manual"]


class IpmiPower(Section):
    type: Literal["ipmi"]
    address: IPv4
    user: str = Field(min_length=1)


class AmtPower(Section):
    """Intel AMT (vPro boards); the password is the `powerPassword` secret."""

    type: Literal["amt"]
    address: IPv4


class VirshPower(Section):
    """A libvirt VM as a MAAS machine: the program declares the VM (disks on Ceph RBD, the
    node's NICs and GPUs), it PXE-boots, MAAS powers it through the hypervisor's URI."""

    type: Literal["virsh"]
    hypervisor: Hostname = Field(description="Name of a declared hypervisor")
    domain: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="libvirt domain name")
    vcpus: int = Field(ge=1, le=64)
    memory_mib: int = Field(ge=1024, le=1048576)
    bridge: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,15}$", description="Host bridge every NIC joins")
    boot_disk_gib: int = Field(default=40, ge=10, le=2048)
    osd_disk_gib: int = Field(default=50, ge=10, le=4096)


Power = Annotated[ManualPower | IpmiPower | AmtPower | VirshPower, Field(discriminator="type")]
# Power types MAAS needs the `powerPassword` secret for.
POWER_TYPES_WITH_PASSWORD = ("ipmi", "amt", "virsh")


class NicSpec(Section):
    name: InterfaceName
    mac: MacAddress


class GpuSpec(Section):
    model: GpuModel
    pci: PciAddress | None = Field(
        default=None,
        description="The GPU's slot as its function 0, e.g. 0000:01:00.0, for VT-d passthrough (its other "
        "functions, the HDMI audio, go with it)",
    )


class HardwareSpec(Section):
    """The least a PC has, as MAAS counts it. MAAS refuses to deploy the node on a machine with
    less (`min_cpu_count`, `min_memory`), and the cluster is planned for this much: the node's
    capacity the scheduler fills."""

    cpus: int = Field(ge=1, le=1024, description="CPU threads, e.g. 8 for a 4-core CPU with SMT")
    memory_gib: int = Field(
        ge=1, le=16384, description="GiB of RAM as MAAS reports it, a little under what is installed: 62 for 64 GB"
    )


class DisksSpec(Section):
    boot: StableDiskPath = Field(description="The OS disk (the article's USB-attached SSD)")
    ceph: list[StableDiskPath] = Field(
        default_factory=list, description="Whole disks handed to Ceph OSDs; never the boot disk"
    )


class NodeSpec(Section):
    hostname: Hostname
    role: Literal["controller", "worker"]
    ip: IPv4 = Field(description="Static address on the office LAN (on the bond)")
    power: Power
    nics: list[NicSpec] = Field(min_length=1, max_length=4, description="Bond members; the first one PXE-boots")
    gpus: list[GpuSpec] = Field(default_factory=list, max_length=MAX_GPUS_PER_NODE)
    disks: DisksSpec
    hardware: HardwareSpec | None = Field(
        default=None,
        description="Required for a PC, e.g. {cpus: 8, memoryGib: 62}; not given for a VM (power type virsh), "
        "whose floor is its power.vcpus and power.memoryMib",
    )

    @property
    def pxe_mac(self) -> str:
        return self.nics[0].mac

    @property
    def gpu_model(self) -> str | None:
        return self.gpus[0].model if self.gpus else None

    @property
    def driver_branch(self) -> str | None:
        model = self.gpu_model
        return GPU_MODELS[model].driver_branch if model else None


def _cpu_quantity(value: str) -> str:
    try:
        amount = quantity(value)
    except ValueError:
        amount = None
    if amount is None or amount <= 0 or value[-1] == "i":
        raise ValueError("a CPU quantity (Kubernetes) greater than 0, like 16 or 500m")
    return value


def _byte_quantity(value: str) -> str:
    try:
        amount = quantity(value)
    except ValueError:
        amount = None
    if amount is None or amount < 2**20 or value[-1] == "m":
        raise ValueError("a byte quantity (Kubernetes) of at least 1Mi, like 64Gi or 1Ti")
    return value


# Kubernetes quantities as the ResourceQuota and LimitRange take them.
CpuQuantity = Annotated[str, AfterValidator(_cpu_quantity)]
ByteQuantity = Annotated[str, AfterValidator(_byte_quantity)]


class QuotaOverrideSpec(Section):
    """Part of one engineer's quota that differs from `tenancy.quota`, e.g. {gpus: 8}."""

    gpus: int | None = Field(default=None, ge=0, le=1000, description="nvidia.com/gpu all their pods request")
    cpu: CpuQuantity | None = Field(default=None, description="CPU all their pods request, e.g. 16")
    memory: ByteQuantity | None = Field(default=None, description="Memory all their pods request, e.g. 64Gi")
    storage: ByteQuantity | None = Field(default=None, description="All their claims, the home included, e.g. 1Ti")


class QuotaSpec(Section):
    """What each engineer's namespace may use in all (its ResourceQuota)."""

    gpus: int = Field(ge=0, le=1000, description="nvidia.com/gpu all their pods request together, e.g. 4")
    cpu: CpuQuantity = Field(description="CPU all their pods request together (one container's most), e.g. 16")
    memory: ByteQuantity = Field(description="Memory all their pods request together (one container's most), e.g. 64Gi")
    storage: ByteQuantity = Field(description="All their PersistentVolumeClaims, the home included, e.g. 1Ti")

    def overridden(self, override: QuotaOverrideSpec | None) -> QuotaSpec:
        """This quota with an engineer's own values in place of the stack's."""
        own = override.model_dump(exclude_none=True) if override else {}
        return self.model_copy(update=own)


class ContainerDefaultsSpec(Section):
    """Request and limit of a container in an engineer's namespace that states none (LimitRange)."""

    cpu: CpuQuantity = Field(default="1", description="e.g. 1 or 500m")
    memory: ByteQuantity = Field(default="2Gi", description="e.g. 2Gi")
    ephemeral_storage: ByteQuantity = Field(
        default="60Gi",
        description=f"Node disk (layer, logs, emptyDirs) a container may use, at most {EPHEMERAL_MAX}; the home "
        "pod's shell and Docker together hold Docker's 100Gi state",
    )


class HomeLimitsSpec(Section):
    """What a login's shell (and their Docker daemon) may use at most on one node: its limits.
    Only requests count against the quota; the quota's cpu and memory are each container's most."""

    cpu: CpuQuantity = Field(description="CPU limit of the home shell, e.g. 16")
    memory: ByteQuantity = Field(description="Memory limit of the home shell, e.g. 64Gi")


class TenancySpec(Section):
    """What every engineer gets as a tenant: their namespace's quota, container defaults, their
    home shell's limits, and how long their client certificate lives (a `pulumi up` in its last
    7 days renews it)."""

    quota: QuotaSpec = Field(description="Stack-wide per-engineer quota; engineers[].quota overrides parts")
    container_defaults: ContainerDefaultsSpec = Field(default_factory=ContainerDefaultsSpec)
    home: HomeLimitsSpec | None = Field(
        default=None, description="The home shell's limits, e.g. {cpu: 16, memory: 64Gi}; unset: the quota's"
    )
    certificate_days: int = Field(
        default=30, ge=8, le=365, description="Validity of engineers' and consumers' client certificates"
    )

    @model_validator(mode="after")
    def _defaults_fit(self) -> TenancySpec:
        d, h, q = self.container_defaults, self.home_limits, self.quota
        wrong = []
        if quantity(d.cpu) > quantity(q.cpu) or quantity(d.memory) > quantity(q.memory):
            wrong.append(
                f"containerDefaults ({d.cpu} cpu, {d.memory}) within quota ({q.cpu} cpu, {q.memory}): "
                "a container with the defaults could never start"
            )
        if quantity(d.ephemeral_storage) > quantity(EPHEMERAL_MAX):
            wrong.append(
                f"containerDefaults.ephemeralStorage ({d.ephemeral_storage}) within {EPHEMERAL_MAX} (the "
                "LimitRange's max per container): a container with the defaults could never start"
            )
        if quantity(h.cpu) > quantity(q.cpu) or quantity(h.memory) > quantity(q.memory):
            wrong.append(
                f"home ({h.cpu} cpu, {h.memory}) within quota ({q.cpu} cpu, {q.memory}): the quota is each "
                "container's most (the LimitRange's max), which would refuse every home pod"
            )
        if wrong:
            raise ValueError("; and ".join(wrong))
        return self

    @property
    def home_limits(self) -> HomeLimitsSpec:
        """The home shell's limits: `home`, or the quota's cpu and memory where unset."""
        return self.home or HomeLimitsSpec(cpu=self.quota.cpu, memory=self.quota.memory)


NFS_CLIENT_MIN_PREFIX = 28  # at most 16 addresses: a few machines, never the office LAN


def _nfs_client(value: str) -> str:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        net = None
    if net is None or net.prefixlen < NFS_CLIENT_MIN_PREFIX:
        raise ValueError(
            f"an IPv4 address like 192.168.10.50, or a network of at most 16 addresses (/{NFS_CLIENT_MIN_PREFIX} "
            "or longer) with no host bits"
        )
    return str(net.network_address) if net.prefixlen == 32 else str(net)


NfsClient = Annotated[str, AfterValidator(_nfs_client)]


class EngineerSpec(Section):
    name: LoginName
    # The range the home containers accept (components.engineers.home_sshd): Debian's for people.
    uid: int = Field(ge=UID_MIN, le=UID_MAX, description="Stable uid on every node and container")
    gid: int | None = Field(default=None, ge=UID_MIN, le=UID_MAX, description="Defaults to uid")
    ssh_keys: list[SshPublicKey] = Field(min_length=1)
    home_size: str = Field(default="100Gi", pattern=r"^\d+(Gi|Ti)$", description="CephFS home quota")
    personal_database: bool = Field(default=False, description="A private clone of the golden database")
    nfs_clients: list[NfsClient] = Field(
        default_factory=list,
        description="Machines that may mount their home over NFS (root squashed), e.g. [192.168.10.50]; "
        "none: no export",
    )
    quota: QuotaOverrideSpec | None = Field(
        default=None, description="Their own quota where it differs from tenancy.quota, e.g. {gpus: 8}"
    )
    ssh_port: int | None = Field(
        default=None,
        ge=30000,
        le=32767,
        description="NodePort their ssh reaches their home on; default 31000 + uid % 1000",
    )
    home_volume: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="An existing PersistentVolume their home claim binds (adopting a home from akiba-homes, "
        "README: Moving homes into the engineers' namespaces); keep it once set",
    )

    @property
    def group_id(self) -> int:
        return self.gid if self.gid is not None else self.uid

    @property
    def node_port(self) -> int:
        """The port `ssh -p <port> <login>@<any node>` uses."""
        return self.ssh_port if self.ssh_port is not None else default_ssh_port(self.uid)


def _known_instance_type(value: str) -> str:
    if value not in INSTANCE_TYPES:
        raise ValueError(f"a GPU instance type the platform knows ({', '.join(INSTANCE_TYPES)})")
    return value


BurstInstanceType = Annotated[str, AfterValidator(_known_instance_type)]


class SiteLinkSpec(Section):
    """WireGuard between an EC2 gateway and the office router (see README, "Burst")."""

    type: Literal["wireguard"] = "wireguard"
    office_public_ip: IPv4 = Field(description="The office's public address: the only peer allowed in")
    office_public_key: WireguardKey = Field(description="The office router's WireGuard public key")
    listen_port: int = Field(default=51820, ge=1024, le=65535)
    tunnel_cidr: Cidr = Field(default="10.255.255.0/30", description="Point-to-point tunnel addresses")
    gateway_instance_type: str = Field(default="t3.micro", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


class ExistingVpcSpec(Section):
    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]{8,17}$")
    internet_gateway_id: str = Field(pattern=r"^igw-[0-9a-f]{8,17}$", description="Attached to that VPC")


class BurstSpec(Section):
    enabled: bool
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="e.g. ap-northeast-1")
    vpc_cidr: Cidr
    zones: list[str] = Field(min_length=1)
    instance_types: list[BurstInstanceType] = Field(
        min_length=1, description="First is the one the autoscaler models; e.g. g2.2xlarge"
    )
    max_size: int = Field(ge=0, le=100)
    monthly_budget_usd: float = Field(gt=0)
    notify_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    existing_vpc: ExistingVpcSpec | None = Field(default=None, description="Use this VPC instead of making one")
    site_link: SiteLinkSpec
    spot_price_usd: dict[str, float] = Field(
        description="Expected hourly spot price per instance type, for the cost output "
        "(refresh with `python -m tools.spot_prices`)"
    )
    root_volume_gib: int = Field(default=100, ge=30, le=2000, description="Encrypted gp3 root volume")

    @property
    def max_hourly_cost_usd(self) -> float:
        """Upper bound: every instance at the dearest configured type's price."""
        return self.max_size * max(self.spot_price_usd[t] for t in self.instance_types)


class LibvirtSpec(Section):
    """Where VM disks live: this stack's Ceph, or (dev) prod's, read through a StackReference."""

    ceph_stack: str | None = Field(
        default=None,
        pattern=r"^[\w.-]+/[\w.-]+/[\w.-]+$",
        description="org/project/stack whose Ceph holds the VM disks; unset: this stack's own",
    )


class SnapshotRetentionSpec(Section):
    """How many scheduled snapshots of each age Ceph keeps (snap_schedule's retention)."""

    hourly: int = Field(default=0, ge=0, le=10000)
    daily: int = Field(default=0, ge=0, le=10000)
    weekly: int = Field(default=0, ge=0, le=10000)
    monthly: int = Field(default=0, ge=0, le=10000)
    yearly: int = Field(default=0, ge=0, le=100)

    @model_validator(mode="after")
    def _keeps_some(self) -> SnapshotRetentionSpec:
        if not any(self.model_dump().values()):
            raise ValueError("keeps no snapshot: set at least one of hourly, daily, weekly, monthly, yearly")
        return self


class HomeSnapshotsSpec(Section):
    """CephFS snapshots of every home, taken and pruned by Ceph (the snap_schedule module)."""

    every: str = Field(
        default="1h",
        pattern=r"^[1-9][0-9]{0,3}[hdw]$",
        description="How often: a count and h, d or w (snap_schedule's interval), e.g. 1h",
    )
    keep: SnapshotRetentionSpec = Field(
        default_factory=lambda: SnapshotRetentionSpec(hourly=24, daily=7, weekly=4),
        description="e.g. {hourly: 24, daily: 7, weekly: 4}",
    )


class StorageSpec(Section):
    """Rook Ceph on the nodes' SSDs (`nodes[].disks.ceph`)."""

    replicas: int = Field(ge=1, le=5, description="Copies of every object; 3 in prod (one per host)")
    mons: Literal[1, 3, 5] = Field(description="Ceph monitors; 3 in prod")
    block_pool: str = Field(default="kube-rbd", pattern=r"^[a-z][a-z0-9-]{1,30}$")
    vm_pool: str = Field(default="vm-disks", pattern=r"^[a-z][a-z0-9-]{1,30}$")
    filesystem: str = Field(default="homes", pattern=r"^[a-z][a-z0-9-]{1,30}$")
    nfs_node_port: int = Field(default=32049, ge=30000, le=32767, description="NFS for clients outside Kubernetes")
    home_snapshots: HomeSnapshotsSpec = Field(default_factory=HomeSnapshotsSpec)


class DatabasesSpec(Section):
    """The golden database and the personal clones (the article: half a day -> 3 seconds)."""

    engine: Literal["postgres"] = "postgres"
    version: str = Field(pattern=r"^\d+\.\d+$", description="PostgreSQL image tag, e.g. 17.6")
    golden_size: str = Field(pattern=r"^\d+(Gi|Ti)$")
    refresh_schedule: CronSchedule = Field(
        description="cron: reload the golden copy from production, then snapshot it (only after a successful load)"
    )
    keep_snapshots: int = Field(default=7, ge=1, le=30)


class GpuBenchmarkSpec(Section):
    """The GPU benchmark Jobs (benchmarks/gpu); results go to a CephFS volume."""

    tag: str = Field(
        pattern=r"^[\w][\w.-]{0,127}$",
        description="Tag of the benchmark image the program builds from images/gpu-benchmark (FROM the ML "
        "runtime image, plus benchmarks/gpu) and pushes to <registry.mirror>/akiba/gpu-benchmark",
    )
    storage_class: str = Field(description="ReadWriteMany StorageClass for the results (CephFS)")
    results_size: str = Field(default="5Gi", pattern=r"^\d+(Mi|Gi|Ti)$")
    size: Literal["tiny", "standard"] = "standard"


# A tag, a digest, or both (`name:tag@sha256:...`: the tag for people, the digest for what runs).
PinnedImage = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9.-]+(:\d+)?/[a-z0-9./_-]+(:[\w][\w.-]{0,127}(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$"
    ),
]


class AppSpec(Section):
    """An ML web app for non-engineers (the article: ICACHAN, MICANCNN, TACOCNN)."""

    name: DnsLabel
    purpose: str = Field(min_length=1, description="What it does, for the people who use it")
    image: PinnedImage
    gpus: int = Field(default=0, ge=0, le=MAX_GPUS_PER_NODE)
    replicas: int = Field(default=1, ge=1, le=20)
    cpu: str = Field(
        default="2",
        pattern=r"^\d+(\.\d+)?m?$",
        description="CPU each replica is guaranteed (and limited to), e.g. 2 or 500m",
    )
    memory: str = Field(default="4Gi", pattern=r"^\d+(Mi|Gi)$", description="Memory each replica gets, e.g. 4Gi")


class AppsSpec(Section):
    domain: DnsName = Field(description="Apps live at <name>.<domain>, Grafana at grafana.<domain>")
    ingress_http_port: int = Field(default=30080, ge=30000, le=32767)
    ingress_https_port: int = Field(default=30443, ge=30000, le=32767)
    apps: list[AppSpec] = Field(default_factory=list)


class BackupsSpec(Section):
    """etcd snapshots on the controllers, kept on CephFS (components/cluster/etcd_backup.py)."""

    etcd_schedule: CronSchedule = Field(
        default="17 */4 * * *", description="cron: when a controller saves an etcd snapshot (every 4 hours)"
    )
    etcd_keep: int = Field(default=18, ge=1, le=500, description="etcd snapshots kept; older ones are deleted")
    offsite: OffsiteSpec = Field(default_factory=lambda: OffsiteSpec())


class OffsiteSpec(Section):
    """restic copies of the homes and etcd snapshots to S3 (components/storage/offsite.py); only
    with burst.enabled (the AWS account)."""

    schedule: CronSchedule = Field(default="43 2 * * *", description="cron: when the off-site copy runs")
    bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
        description="S3 bucket name, unique across AWS; unset: <cluster>-<stack>-offsite-backup",
    )
    keep_daily: int = Field(default=7, ge=1, le=366)
    keep_weekly: int = Field(default=4, ge=0, le=520)
    keep_monthly: int = Field(default=12, ge=0, le=240)


class AlertsSpec(Section):
    """Where page and warn alerts go (the URL is the secret akiba:alertWebhookUrl)."""

    receiver: Literal["webhook", "slack", "msteams"] = Field(
        default="webhook",
        description="How Alertmanager posts to akiba:alertWebhookUrl: its webhook JSON (ntfy, Grafana OnCall, any "
        "Alertmanager webhook receiver), a Slack incoming webhook, or a Teams workflow webhook",
    )


class StackSpec(Section):
    """The whole stack, validated. Built only by `stacks.config.load_spec`."""

    stack: str
    source: str = Field(description="The stack file this came from, for messages")
    cluster: ClusterSpec
    network: NetworkSpec
    maas: MaasSpec
    registry: RegistrySpec
    hypervisors: list[HypervisorSpec] = Field(default_factory=list)
    nodes: list[NodeSpec] = Field(min_length=1)
    engineers: list[EngineerSpec] = Field(min_length=1)
    burst: BurstSpec
    gpu_benchmark: GpuBenchmarkSpec
    storage: StorageSpec
    databases: DatabasesSpec
    apps: AppsSpec
    libvirt: LibvirtSpec
    tenancy: TenancySpec
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)
    backups: BackupsSpec = Field(default_factory=BackupsSpec)

    @property
    def controllers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "controller"]

    @property
    def api_host(self) -> str:
        """The VIP when there is one, else the one controller's address."""
        return self.cluster.api_vip or self.controllers[0].ip

    @property
    def api_endpoint(self) -> str:
        return f"https://{self.api_host}:6443"

    @property
    def hypervisor_uris(self) -> dict[str, str]:
        return {h.name: h.uri for h in self.hypervisors}


# Config keys (under `akiba:`) whose values must be Pulumi secrets, and when they are needed.
SECRET_KEYS: dict[str, str] = {
    "goldenDbSourceUrl": "the read-only connection URL of the production database the golden copy is "
    "refreshed from (postgresql://user:password@host/db)",
    "maasApiKey": "the MAAS API key (MAAS UI > Preferences > API keys)",
    "powerPassword": "the BMC/AMT/virsh power password, needed when a node's power type is ipmi, amt or virsh",
    "alertWebhookUrl": "optional: the URL Alertmanager posts page and warn alerts to (alerts.receiver says "
    "how: an Alertmanager webhook receiver such as ntfy, a Slack incoming webhook, a Teams workflow webhook)",
}
# Secrets a stack may leave unset (the feature is then off): never required, never filled offline.
OPTIONAL_SECRET_KEYS = frozenset({"alertWebhookUrl"})

# Top-level config keys that hold the spec's sections.
SECTION_KEYS = tuple(to_camel(name) for name in StackSpec.model_fields if name not in ("stack", "source"))
