"""reviewed-types: the resource types the pack has been reviewed against, in one place.

A type not listed fires (mandatory): a new kind of resource is exactly what no rule has
thought about yet (a NetworkAcl, a MutatingWebhook, a CRD that runs pods), so it must be read
and listed here, with the rules it needs, before it ships. Kubernetes objects are listed by
their API group/version and kind, which is also what a CustomResource and the children of a
Chart or ConfigGroup are registered as; the object's own apiVersion/kind must agree with it.
Component resources (`akiba:*`) create nothing themselves: each of their children is judged.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from .context import PlanContext
from .k8s import kind, type_token
from .model import PlannedResource, PolicyConfig

COMPONENT_PREFIX = "akiba:"

TYPES = frozenset(
    {
        "pulumi:pulumi:Stack",
        # Providers (explicit and default) of the packages the program uses.
        *(f"pulumi:providers:{p}" for p in ("aws", "kubernetes", "maas", "random", "tls", "command")),
        *(f"pulumi:providers:{p}" for p in ("docker-build", "time")),
        # AWS burst: network (no-open-ingress judges every ingress form), instances and their
        # launch templates (encrypted-volumes, imdsv2-required, burst-gpu-taint), the group
        # (spot-group-max-size, burst-size), budget, backups bucket (stateful-protected).
        "aws:autoscaling/group:Group",
        "aws:budgets/budget:Budget",
        "aws:ec2/eip:Eip",
        "aws:ec2/instance:Instance",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        "aws:iam/accessKey:AccessKey",
        "aws:iam/user:User",
        "aws:iam/userPolicy:UserPolicy",
        # The burst nodes' instance role: short-lived credentials instead of keys in user-data.
        "aws:iam/role:Role",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/instanceProfile:InstanceProfile",
        # What burst nodes read at boot with that role (join token, registry login, the
        # gateway's public key): no-credentials-in-plain-config wants credentials SecureString.
        "aws:ssm/parameter:Parameter",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketVersioning:BucketVersioning",
        # Commands (node converge, drains), images, machines, DNS, identities, clocks.
        "command:local:Command",
        "command:remote:Command",
        "docker-build:index:Image",
        "maas:index/dnsDomain:DnsDomain",
        "maas:index/dnsRecord:DnsRecord",
        "maas:index/instance:Instance",
        "maas:index/machine:Machine",
        "random:index/randomBytes:RandomBytes",
        "random:index/randomPassword:RandomPassword",
        "random:index/randomString:RandomString",
        "time:index/rotating:Rotating",
        "tls:index/certRequest:CertRequest",
        "tls:index/locallySignedCert:LocallySignedCert",
        "tls:index/privateKey:PrivateKey",
        "tls:index/selfSignedCert:SelfSignedCert",
        # Helm charts (pinned-versions) and the snapshot CRDs' ConfigGroup (inline objects judged).
        "kubernetes:helm.sh/v4:Chart",
        "kubernetes:yaml/v2:ConfigGroup",
        "pulumi-python:dynamic:Resource",  # only the providers below
    }
)

KUBERNETES = frozenset(
    {
        # Workloads: every pod rule reads them.
        *(f"core/v1:{k}" for k in ("Pod", "PodTemplate", "ReplicationController")),
        *(f"apps/v1:{k}" for k in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet")),
        "batch/v1:Job",
        "batch/v1:CronJob",
        # Namespaced configuration, quotas and storage.
        *(f"core/v1:{k}" for k in ("Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount")),
        *(f"core/v1:{k}" for k in ("PersistentVolume", "PersistentVolumeClaim", "ResourceQuota", "LimitRange")),
        "networking.k8s.io/v1:NetworkPolicy",
        "networking.k8s.io/v1:Ingress",
        "networking.k8s.io/v1:IngressClass",
        "policy/v1:PodDisruptionBudget",
        "scheduling.k8s.io/v1:PriorityClass",
        "storage.k8s.io/v1:StorageClass",
        "storage.k8s.io/v1:CSIDriver",
        "snapshot.storage.k8s.io/v1:VolumeSnapshotClass",
        "snapshot.storage.k8s.io/v1:VolumeSnapshot",
        # RBAC: rbac-no-cluster-admin and rbac-least-privilege.
        *(f"rbac.authorization.k8s.io/v1:{k}" for k in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")),
        # Charts' own: their CRDs (rook, prometheus-operator, traefik, snapshotter) and
        # prometheus-operator's admission webhooks.
        "apiextensions.k8s.io/v1:CustomResourceDefinition",
        "admissionregistration.k8s.io/v1:MutatingWebhookConfiguration",
        "admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration",
        # Engineers' namespaces' admission rules (components/tenants/admission.py): CEL the API
        # server evaluates, no webhook to reach; a policy only ever refuses a request, it changes
        # and runs nothing, and its binding only narrows where it refuses.
        "admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
        "admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding",
        # Rook Ceph (stateful-protected) and monitoring.
        *(f"ceph.rook.io/v1:{k}" for k in ("CephCluster", "CephBlockPool", "CephFilesystem", "CephNFS", "CephClient")),
        "ceph.rook.io/v1:CephFilesystemSubVolumeGroup",
        # The ceph-csi-drivers chart's CRs (the operator runs the CSI plugins in rook-ceph).
        *(f"csi.ceph.io/v1:{k}" for k in ("Driver", "OperatorConfig", "CephConnection", "ClientProfile")),
        *(f"monitoring.coreos.com/v1:{k}" for k in ("PrometheusRule", "ServiceMonitor", "PodMonitor")),
        *(f"monitoring.coreos.com/v1:{k}" for k in ("Prometheus", "Alertmanager")),
    }
)

# Dynamic providers by module.class (read from the pickled provider's header, never unpickled).
DYNAMIC_PROVIDERS = frozenset(
    {
        "components.machines.libvirt_ceph_secret.CephSecretProvider",
        "components.machines.libvirt_domain.DomainProvider",
        "components.machines.rbd_image.RbdImageProvider",
    }
)
PICKLED_GLOBAL = re.compile(rb"\x8c.([\w.]+)\x94\x8c.(\w+)\x94\x93", re.DOTALL)


def dynamic_provider(encoded: object) -> str | None:
    """`module.Class` of a dynamic resource's provider, from the pickle's first global."""
    try:
        raw = base64.b64decode(str(encoded), validate=True)
    except (binascii.Error, ValueError):
        return None
    found = PICKLED_GLOBAL.search(raw[:512])
    return f"{found[1].decode()}.{found[2].decode()}" if found else None


def reviewed_types(res: PlannedResource, _: PolicyConfig, __: PlanContext) -> Iterator[str]:
    if res.type.startswith(COMPONENT_PREFIX):
        return
    k = kind(res)
    if k is not None:
        listed = res.type.removeprefix("kubernetes:")  # a `...Patch` edits objects the plan does not hold: not listed
        if listed not in KUBERNETES:
            yield f"Kubernetes {listed} is not a reviewed kind (policy/akiba_policy/reviewed.py)"
        api, declared = res.props.get("apiVersion"), res.props.get("kind")
        if (
            isinstance(api, str)
            and isinstance(declared, str)
            and type_token(api, declared) != res.type.removesuffix("Patch")
        ):
            yield f"declares {api}/{declared} but is registered as {res.type}"
    elif res.type not in TYPES:
        yield f"{res.type} is not a reviewed resource type (policy/akiba_policy/reviewed.py)"
    elif res.type == "pulumi-python:dynamic:Resource":
        provider = dynamic_provider(res.props.get("__provider"))
        if provider not in DYNAMIC_PROVIDERS:
            yield f"dynamic provider {provider or 'unreadable'} is not reviewed (policy/akiba_policy/reviewed.py)"
