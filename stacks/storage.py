"""Rook Ceph on the nodes' SSDs, and what lives on it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cluster.identity import ClusterIdentity
from components.context import PlatformContext
from components.storage.ceph_storage import CephStorage, CephStorageArgs
from components.storage.home_snapshots import HomeSnapshotsArgs, HomeSnapshotSchedules
from components.storage.homes_nfs import HomesNfs, HomesNfsArgs
from components.storage.offsite import OffsiteBackup, OffsiteBackupArgs
from components.storage.personal_databases import PersonalDatabases, PersonalDatabasesArgs
from components.storage.rook_ceph import RookCeph, RookCephArgs
from components.storage.shared_homes import NAMESPACE as HOMES_NAMESPACE
from components.storage.shared_homes import SharedHomes, SharedHomesArgs
from stacks import args
from stacks.config import StackSecrets
from stacks.spec import StackSpec


@dataclass(frozen=True)
class Storage:
    ceph: CephStorage
    homes: SharedHomes
    nfs: HomesNfs
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
        RookCephArgs(ctx=ctx, provider=identity.provider, nodes=args.ceph_hosts(spec.nodes), mons=spec.storage.mons),
        opts=pulumi.ResourceOptions(depends_on=list(after)),
    )
    ceph = CephStorage(
        "ceph-storage",
        CephStorageArgs(ctx=ctx, provider=identity.provider, pools=args.ceph_pools(spec.storage), cluster=rook.cluster),
    )
    homes = SharedHomes(
        "shared-homes",
        SharedHomesArgs(
            ctx=ctx,
            provider=identity.provider,
            filesystem=spec.storage.filesystem,
            homes=args.homes(spec.engineers),
            after=(ceph, *after),  # `after` holds the PriorityClasses their pods name
        ),
    )
    nfs = HomesNfs(
        "homes-nfs",
        HomesNfsArgs(
            ctx=ctx,
            provider=identity.provider,
            filesystem=spec.storage.filesystem,
            nfs_node_port=spec.storage.nfs_node_port,
            after=(homes, ceph, *after),
            moved_from=pulumi.create_urn("shared-homes", "akiba:storage:SharedHomes"),
        ),
    )
    HomeSnapshotSchedules(
        "home-snapshots",
        HomeSnapshotsArgs(
            ctx=ctx,
            provider=identity.provider,
            filesystem=spec.storage.filesystem,
            homes_namespace=HOMES_NAMESPACE,
            claims=tuple(homes.claims.values()),
            policy=args.home_snapshots(spec.storage.home_snapshots),
            after=(homes, ceph, *after),
        ),
    )
    databases = PersonalDatabases(
        "personal-databases",
        PersonalDatabasesArgs(
            ctx=ctx,
            provider=identity.provider,
            golden=args.golden_database(spec.databases),
            owners=args.database_owners(spec.engineers),
            source_url=secrets.golden_db_source_url,
            after=(ceph, *after),
        ),
    )
    return Storage(ceph=ceph, homes=homes, nfs=nfs, databases=databases)


def declare_offsite(
    spec: StackSpec,
    ctx: PlatformContext,
    identity: ClusterIdentity,
    namespace: pulumi.Input[str],
    etcd_claim: str,
    after: tuple[pulumi.Resource, ...],
) -> OffsiteBackup:
    """The homes and etcd snapshots, encrypted by restic, to S3 in the burst account and region."""
    offsite = spec.backups.offsite
    return OffsiteBackup(
        "offsite-backup",
        OffsiteBackupArgs(
            ctx=ctx,
            provider=identity.provider,
            aws_provider=aws.Provider("aws-offsite", region=spec.burst.region, default_tags={"tags": ctx.tags}),
            region=spec.burst.region,
            bucket=offsite.bucket or f"{spec.cluster.name}-{spec.stack}-offsite-backup",
            filesystem=spec.storage.filesystem,
            namespace=namespace,
            etcd_claim=etcd_claim,
            schedule=offsite.schedule,
            keep=(offsite.keep_daily, offsite.keep_weekly, offsite.keep_monthly),
            after=after,
        ),
    )
