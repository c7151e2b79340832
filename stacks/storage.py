"""Rook Ceph on the nodes' SSDs, and what lives on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cluster.identity import ClusterIdentity
from components.context import PlatformContext
from components.storage.ceph_storage import CephStorage, CephStorageArgs
from components.storage.home_snapshots import HomeSnapshotsArgs, HomeSnapshotSchedules
from components.storage.homes_nfs import HomeExport, HomesNfs, HomesNfsArgs
from components.storage.offsite import OffsiteBackup, OffsiteBackupArgs
from components.storage.personal_databases import PersonalDatabases, PersonalDatabasesArgs
from components.storage.rook_ceph import RookCeph, RookCephArgs
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
    tenant_namespaces: Mapping[str, pulumi.Resource],
) -> Storage:
    """Rook Ceph on the nodes' SSDs, and what lives on it: homes, golden and personal databases.
    `tenant_namespaces` (login -> Namespace): what goes into an engineer's namespace waits for it."""
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
            namespaces=dict(tenant_namespaces),
        ),
    )
    nfs = HomesNfs(
        "homes-nfs",
        HomesNfsArgs(
            ctx=ctx,
            provider=identity.provider,
            filesystem=spec.storage.filesystem,
            nfs_node_port=spec.storage.nfs_node_port,
            exports=tuple(HomeExport(e.name, tuple(e.nfs_clients)) for e in spec.engineers if e.nfs_clients),
            after=(homes, ceph, *after),
            namespaces=tenant_namespaces,
            moved_from=pulumi.create_urn("shared-homes", "akiba:storage:SharedHomes"),
        ),
    )
    HomeSnapshotSchedules(
        "home-snapshots",
        HomeSnapshotsArgs(
            ctx=ctx,
            provider=identity.provider,
            filesystem=spec.storage.filesystem,
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
            namespaces=tenant_namespaces,
            pod_cidr=spec.cluster.pod_cidr,
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
