"""The off-site copy: the homes and the etcd snapshots, encrypted by restic, in an S3 bucket of
the burst AWS account (only when burst is configured: that is the account the platform has).

- The bucket is private (public access blocked, objects owned by the bucket owner), versioned
  (an overwritten or deleted object stays recoverable) and encrypted at rest by S3; restic
  encrypts everything before it leaves anyway, with a random repository password kept in a
  Kubernetes Secret and in the Pulumi state (a secret there).
- The IAM user `<cluster>-homes-backup` may list that bucket and read, write and delete its
  objects, nothing else.
- The homes are mounted read-only through a static CephFS volume of the CSI subvolume group, as
  the cephx user `homes-backup` (read-only caps, components/storage/ceph_storage.py); the etcd
  snapshots through the claim `akiba-backup/etcd-snapshots` (components/cluster/etcd_backup.py).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster.priorities import PLATFORM
from components.context import PlatformContext
from components.storage.rook_ceph import CEPHFS_DRIVER
from components.storage.rook_ceph import NAMESPACE as ROOK_NAMESPACE

RESTIC_IMAGE = "docker.io/restic/restic:0.18.0"
NAME = "offsite-backup"
CEPH_USER = "homes-backup"
HOMES_ROOT = "/volumes/csi"  # ceph-csi's subvolume group: every home is below it
CSI_SECRET = "homes-backup-csi"  # noqa: S105 (a Secret's name)


def bucket_policy_for_user(bucket_arn: str) -> dict[str, Any]:
    """The backup user's only rights: this bucket's listing and its objects."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": bucket_arn},
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"{bucket_arn}/*",
            },
        ],
    }


def backup_script(
    keep_daily: int, keep_weekly: int, keep_monthly: int, trees: tuple[str, ...] = ("/backup/homes", "/backup/etcd")
) -> str:
    """restic: make the repository on the first run, back up the trees, thin out old snapshots,
    and read back a sample of the data so a damaged repository fails the Job, not the restore."""
    return "\n".join(
        [
            "set -eu",
            "restic cat config >/dev/null 2>&1 || restic init",
            f"restic backup --host akiba --tag scheduled {' '.join(trees)}",
            f"restic forget --host akiba --tag scheduled --keep-daily {keep_daily}"
            f" --keep-weekly {keep_weekly} --keep-monthly {keep_monthly} --prune",
            "restic check --read-data-subset=1%",
        ]
    )


@dataclass(frozen=True)
class OffsiteBackupArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    aws_provider: aws.Provider
    region: str  # the bucket's region: the burst region
    bucket: str  # S3 bucket name (globally unique), e.g. "akiba-prod-offsite-backup"
    filesystem: str  # the homes' CephFS
    namespace: pulumi.Input[str]  # akiba-backup, made with the etcd snapshots
    etcd_claim: str  # the etcd snapshots' claim in that namespace
    schedule: str  # cron
    keep: tuple[int, int, int]  # daily, weekly, monthly restic snapshots
    after: tuple[pulumi.Resource, ...]  # CephStorage (the homes-backup client), the etcd backup


class OffsiteBackup(pulumi.ComponentResource):
    bucket: pulumi.Output[str]

    def __init__(self, name: str, args: OffsiteBackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:OffsiteBackup", name, None, opts)
        ctx = args.ctx
        on_aws = pulumi.ResourceOptions(parent=self, provider=args.aws_provider)
        bucket = aws.s3.Bucket(
            NAME,
            bucket=args.bucket,
            tags=ctx.tags,
            opts=ctx.stateful(self, provider=args.aws_provider),
        )
        aws.s3.BucketPublicAccessBlock(
            NAME,
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=on_aws,
        )
        aws.s3.BucketOwnershipControls(
            NAME, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=on_aws
        )
        aws.s3.BucketVersioning(NAME, bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=on_aws)
        # Versioning keeps what restic's prune rewrites or deletes: without an expiry for old
        # versions the bucket (and the bill) only grows. 30 days still undo a mistaken prune.
        aws.s3.BucketLifecycleConfiguration(
            NAME,
            bucket=bucket.id,
            rules=[
                {
                    "id": "old-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": 30},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=on_aws,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            NAME,
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=on_aws,
        )
        user = aws.iam.User(NAME, name=f"{ctx.cluster_name}-homes-backup", path="/akiba/", tags=ctx.tags, opts=on_aws)
        # From the name, not the bucket's output: the policy is known (and checked) at plan time.
        aws.iam.UserPolicy(
            NAME,
            user=user.name,
            policy=json.dumps(bucket_policy_for_user(f"arn:aws:s3:::{args.bucket}")),
            opts=pulumi.ResourceOptions.merge(on_aws, pulumi.ResourceOptions(depends_on=[bucket])),
        )
        key = aws.iam.AccessKey(NAME, user=user.name, opts=on_aws)
        password = random.RandomPassword(NAME, length=48, special=False, opts=pulumi.ResourceOptions(parent=self))

        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        labels = {**ctx.labels, "app.kubernetes.io/name": NAME}
        k8s.core.v1.Secret(
            NAME,
            metadata={"name": NAME, "namespace": args.namespace, "labels": labels},
            string_data=pulumi.Output.all(key.id, key.secret, password.result, bucket.bucket).apply(
                lambda v: {
                    "AWS_ACCESS_KEY_ID": v[0],
                    "AWS_SECRET_ACCESS_KEY": v[1],
                    "RESTIC_PASSWORD": v[2],
                    "RESTIC_REPOSITORY": f"s3:s3.{args.region}.amazonaws.com/{v[3]}/akiba",
                }
            ),
            opts=on_cluster,
        )
        # The homes, read-only, as client.homes-backup: ceph-csi's static volume needs its key as
        # userID/userKey; Rook keeps it in rook-ceph-client-homes-backup under the user's name.
        rook_secret = k8s.core.v1.Secret.get(
            "rook-ceph-client-homes-backup-offsite",
            f"{ROOK_NAMESPACE}/rook-ceph-client-{CEPH_USER}",
            opts=on_cluster,
        )
        csi_secret = k8s.core.v1.Secret(
            CSI_SECRET,
            metadata={"name": CSI_SECRET, "namespace": ROOK_NAMESPACE, "labels": labels},
            string_data=rook_secret.data.apply(
                lambda data: {"userID": CEPH_USER, "userKey": base64.b64decode(data[CEPH_USER]).decode()}
            ),
            opts=on_cluster,
        )
        volume = k8s.core.v1.PersistentVolume(
            "offsite-homes",
            metadata={"name": f"{ctx.cluster_name}-offsite-homes", "labels": labels},
            spec={
                "accessModes": ["ReadOnlyMany"],
                "capacity": {"storage": "1Ti"},  # not enforced for a static volume
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "claimRef": {"namespace": args.namespace, "name": "offsite-homes"},
                "csi": {
                    "driver": CEPHFS_DRIVER,
                    "volumeHandle": f"{ctx.cluster_name}-offsite-homes",
                    "readOnly": True,
                    "nodeStageSecretRef": {"name": CSI_SECRET, "namespace": ROOK_NAMESPACE},
                    "volumeAttributes": {
                        "clusterID": ROOK_NAMESPACE,
                        "fsName": args.filesystem,
                        "staticVolume": "true",
                        "rootPath": HOMES_ROOT,
                    },
                },
            },
            opts=ctx.stateful(self, provider=args.provider, depends_on=[*args.after, csi_secret]),
        )
        claim = k8s.core.v1.PersistentVolumeClaim(
            "offsite-homes",
            metadata={"name": "offsite-homes", "namespace": args.namespace, "labels": labels},
            spec={
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "volumeName": volume.metadata.name,
                "resources": {"requests": {"storage": "1Ti"}},
            },
            opts=ctx.stateful(self, provider=args.provider, depends_on=list(args.after)),
        )
        daily, weekly, monthly = args.keep
        k8s.batch.v1.CronJob(
            NAME,
            metadata={"name": NAME, "namespace": args.namespace, "labels": labels},
            spec={
                "schedule": args.schedule,
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 1,
                        # A pod stuck Pending or pulling must fail the Job (and page), not hold
                        # concurrencyPolicy Forbid so that every later night is skipped in silence.
                        "activeDeadlineSeconds": 6 * 3600,
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "restartPolicy": "Never",
                                "priorityClassName": PLATFORM,
                                "automountServiceAccountToken": False,
                                "containers": [
                                    {
                                        "name": "restic",
                                        "image": RESTIC_IMAGE,
                                        "command": ["sh", "-c", backup_script(daily, weekly, monthly)],
                                        "envFrom": [{"secretRef": {"name": NAME}}],
                                        "env": [{"name": "RESTIC_CACHE_DIR", "value": "/cache"}],
                                        # Root with only DAC_READ_SEARCH: read every engineer's
                                        # files (0750 homes), change nothing.
                                        "securityContext": {
                                            "runAsUser": 0,
                                            "allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]},
                                        },
                                        "resources": {
                                            "requests": {"cpu": "250m", "memory": "512Mi"},
                                            "limits": {"cpu": "2", "memory": "2Gi"},
                                        },
                                        "volumeMounts": [
                                            {"name": "homes", "mountPath": "/backup/homes", "readOnly": True},
                                            {"name": "etcd", "mountPath": "/backup/etcd", "readOnly": True},
                                            {"name": "cache", "mountPath": "/cache"},
                                            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (the pod's own emptyDir)
                                        ],
                                    }
                                ],
                                "volumes": [
                                    {
                                        "name": "homes",
                                        "persistentVolumeClaim": {"claimName": "offsite-homes", "readOnly": True},
                                    },
                                    {
                                        "name": "etcd",
                                        "persistentVolumeClaim": {"claimName": args.etcd_claim, "readOnly": True},
                                    },
                                    {"name": "cache", "emptyDir": {"sizeLimit": "10Gi"}},
                                    {"name": "tmp", "emptyDir": {}},
                                ],
                            },
                        },
                    }
                },
            },
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[claim])),
        )
        self.bucket = bucket.bucket
        self.register_outputs({"bucket": self.bucket})
