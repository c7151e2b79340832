"""Personal databases cloned in seconds (the article: half a day with RDS snapshots, 3 s with
Ceph RBD snapshot + clone).

A golden PostgreSQL volume is reloaded from production on a schedule and snapshotted on
another. Every snapshot is taken from the golden volume itself and every personal volume is a
clone of the newest snapshot `golden-newest` — one metadata-only `rbd clone`, a chain of depth
one, well inside ceph-csi's limits (soft 4, hard 8), never a clone of a clone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster.k8s_object import KubernetesObject
from components.cluster.namespaces import declare_namespace
from components.context import PlatformContext
from components.storage.ceph_storage import RBD_CLASS, RBD_SNAPSHOT_CLASS

NAMESPACE = "akiba-db"
GOLDEN = "golden-postgres"
NEWEST = "golden-newest"
KUBECTL_IMAGE = "docker.io/alpine/k8s:1.36.4"
PGDATA = "/var/lib/postgresql/data/pgdata"
POSTGRES_UID = 999  # the postgres user of the official image
LIMITS = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


@dataclass(frozen=True)
class GoldenDatabase:
    """The golden PostgreSQL copy every personal database is cloned from, and its schedules."""

    version: str  # PostgreSQL image tag, e.g. "17.6"
    size: str  # volume size of the golden copy and of each clone, e.g. "200Gi"
    refresh_schedule: str  # cron: reload the golden copy from production
    snapshot_schedule: str  # cron: snapshot the golden volume
    keep_snapshots: int  # how many dated snapshots to keep, e.g. 7


def postgres_image(db: GoldenDatabase) -> str:
    return f"docker.io/library/postgres:{db.version}-bookworm"


def snapshot_script(db: GoldenDatabase) -> str:
    """Snapshot the golden volume, make it the newest, keep the last few."""
    snap = (
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: NAME\n"
        "  labels: {akiba.io/golden: postgres}\n"
        f"spec:\n  volumeSnapshotClassName: {RBD_SNAPSHOT_CLASS}\n  source: {{persistentVolumeClaimName: {GOLDEN}}}\n"
    )
    return "\n".join(
        [
            "set -eu",
            f"snap() {{ printf '%s' '{snap}' | sed \"s/NAME/$1/\" | kubectl apply -n {NAMESPACE} -f -;"
            f" kubectl wait -n {NAMESPACE} --for=jsonpath='{{.status.readyToUse}}'=true"
            " volumesnapshot/$1 --timeout=10m; }",
            'snap "golden-$(date -u +%Y%m%d%H%M)"',
            # The stable name personal volumes clone from; a claim made in the gap waits for it.
            f"kubectl delete -n {NAMESPACE} volumesnapshot {NEWEST} --ignore-not-found --wait",
            f"snap {NEWEST}",
            f"kubectl get -n {NAMESPACE} volumesnapshot -l akiba.io/golden=postgres"
            " --sort-by=.metadata.creationTimestamp -o name | grep -v '/golden-newest$' | head -n -"
            + str(db.keep_snapshots)
            + f" | xargs -r kubectl delete -n {NAMESPACE}",
        ]
    )


def refresh_script() -> str:
    """Reload the golden copy from production (read-only source URL, a secret)."""
    return (
        "set -euo pipefail\n"
        'pg_dump --format=custom --no-owner --no-privileges "$SOURCE_URL" '
        '| pg_restore --clean --if-exists --no-owner --dbname="postgresql://postgres:${POSTGRES_PASSWORD}@'
        f'{GOLDEN}:5432/postgres"\n'
    )


def postgres_pod(
    name: str, image: str, claim: str, secret: str, labels: dict[str, str], reset_password: bool
) -> dict[str, Any]:
    """A PostgreSQL pod on one volume. A clone keeps the golden superuser password, so a
    personal one resets it to its own in single-user mode (no network, no auth) first."""
    container = {
        "name": "postgres",
        "image": image,
        "env": [
            {"name": "PGDATA", "value": PGDATA},
            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
        ],
        "ports": [{"name": "postgres", "containerPort": 5432}],
        "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]}, "periodSeconds": 10},
        "resources": LIMITS,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    }
    init = []
    if reset_password:
        init.append(
            {
                **container,
                "name": "own-password",
                "command": [
                    "bash",
                    "-c",
                    "echo \"ALTER ROLE postgres PASSWORD '$POSTGRES_PASSWORD';\""
                    ' | postgres --single -D "$PGDATA" postgres',
                ],
                "readinessProbe": None,
                "ports": None,
            }
        )
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsUser": POSTGRES_UID,
                "runAsGroup": POSTGRES_UID,
                "fsGroup": POSTGRES_UID,
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [{k: v for k, v in c.items() if v is not None} for c in init],
            "containers": [container],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


@dataclass(frozen=True)
class PersonalDatabasesArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    golden: GoldenDatabase  # version, size and schedules of the golden copy
    owners: tuple[str, ...]  # login names of the engineers who get a personal clone
    source_url: pulumi.Output[str]  # secret
    after: tuple[pulumi.Resource, ...]  # storage classes, snapshot class


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    database: str
    secret_name: str


class PersonalDatabases(pulumi.ComponentResource):
    endpoints: dict[str, Endpoint]
    passwords: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: PersonalDatabasesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:db:PersonalDatabases", name, None, opts)
        ctx, db = args.ctx, args.golden
        self._labels = ctx.labels
        image = postgres_image(db)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        ns = declare_namespace(NAMESPACE, "baseline", ctx, k8s_opts)
        in_ns = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[ns]))

        # The golden copy.
        golden_pw = random.RandomPassword(
            "golden-postgres", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        k8s.core.v1.Secret(
            GOLDEN,
            metadata={"name": GOLDEN, "namespace": NAMESPACE, "labels": ctx.labels},
            string_data=pulumi.Output.all(golden_pw.result, args.source_url).apply(
                lambda v: {"password": v[0], "source-url": v[1]}
            ),
            opts=in_ns,
        )
        golden_claim = k8s.core.v1.PersistentVolumeClaim(
            GOLDEN,
            metadata={"name": GOLDEN, "namespace": NAMESPACE, "labels": ctx.labels},
            spec={
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": RBD_CLASS,
                "resources": {"requests": {"storage": db.size}},
            },
            opts=ctx.stateful(self, provider=args.provider, depends_on=[ns, *args.after]),
        )
        golden_labels = {**ctx.labels, "app.kubernetes.io/name": GOLDEN}
        self._server(GOLDEN, image, GOLDEN, GOLDEN, golden_labels, reset_password=False, opts=in_ns, after=golden_claim)
        refresh_labels = {**ctx.labels, "app.kubernetes.io/name": "golden-refresh"}
        k8s.batch.v1.CronJob(
            "golden-refresh",
            metadata={"name": "golden-refresh", "namespace": NAMESPACE, "labels": refresh_labels},
            spec={
                "schedule": db.refresh_schedule,
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 1,
                        "template": {
                            "metadata": {"labels": refresh_labels},
                            "spec": {
                                "restartPolicy": "Never",
                                "automountServiceAccountToken": False,
                                "securityContext": {"runAsNonRoot": True, "runAsUser": POSTGRES_UID},
                                "containers": [
                                    {
                                        "name": "refresh",
                                        "image": image,
                                        "command": ["bash", "-c", refresh_script()],
                                        "env": [
                                            {
                                                "name": "SOURCE_URL",
                                                "valueFrom": {"secretKeyRef": {"name": GOLDEN, "key": "source-url"}},
                                            },
                                            {
                                                "name": "POSTGRES_PASSWORD",
                                                "valueFrom": {"secretKeyRef": {"name": GOLDEN, "key": "password"}},
                                            },
                                        ],
                                        "resources": LIMITS,
                                        "securityContext": {
                                            "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]},
                                        },
                                    }
                                ],
                            },
                        },
                    }
                },
            },
            opts=in_ns,
        )
        self._snapshots(db, ctx, in_ns)
        self._network_policy(
            GOLDEN,
            {"app.kubernetes.io/name": GOLDEN},
            {"app.kubernetes.io/name": "golden-refresh"},
            same_namespace=True,
            opts=in_ns,
        )
        # The first `golden-newest`, so personal volumes can be cloned on day one; the
        # snapshot CronJob replaces it with each new snapshot.
        first = KubernetesObject(
            NEWEST,
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshot",
                "metadata": {
                    "name": NEWEST,
                    "namespace": NAMESPACE,
                    "labels": {**ctx.labels, "akiba.io/golden": "postgres"},
                },
                "spec": {
                    "volumeSnapshotClassName": RBD_SNAPSHOT_CLASS,
                    "source": {"persistentVolumeClaimName": GOLDEN},
                },
            },
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[golden_claim])),
        )

        # One clone per engineer who asked.
        self.endpoints, self.passwords = {}, {}
        for owner in args.owners:
            dbname = f"db-{owner}"
            pw = random.RandomPassword(dbname, length=32, special=False, opts=pulumi.ResourceOptions(parent=self))
            k8s.core.v1.Secret(
                dbname,
                metadata={
                    "name": dbname,
                    "namespace": NAMESPACE,
                    "labels": {**ctx.labels, "akiba.io/engineer": owner},
                },
                string_data=pw.result.apply(
                    lambda p, n=dbname: {"password": p, "user": "postgres", "host": f"{n}.{NAMESPACE}.svc"}
                ),
                opts=in_ns,
            )
            claim = k8s.core.v1.PersistentVolumeClaim(
                dbname,
                metadata={
                    "name": dbname,
                    "namespace": NAMESPACE,
                    "labels": {**ctx.labels, "akiba.io/engineer": owner},
                },
                spec={
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": RBD_CLASS,
                    "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": NEWEST},
                    "resources": {"requests": {"storage": db.size}},
                },
                opts=ctx.stateful(self, provider=args.provider, depends_on=[ns, first, *args.after]),
            )
            labels = {**ctx.labels, "app.kubernetes.io/name": dbname, "akiba.io/engineer": owner}
            self._server(dbname, image, dbname, dbname, labels, reset_password=True, opts=in_ns, after=claim)
            self._network_policy(
                dbname,
                {"app.kubernetes.io/name": dbname},
                {"akiba.io/engineer": owner},
                same_namespace=False,
                opts=in_ns,
            )
            self.endpoints[owner] = Endpoint(f"{dbname}.{NAMESPACE}.svc", 5432, "postgres", "postgres", dbname)
            self.passwords[owner] = pw.result
        self.register_outputs({"engineers": sorted(self.endpoints)})

    def _server(
        self,
        name: str,
        image: str,
        claim: str,
        secret: str,
        labels: dict[str, str],
        *,
        reset_password: bool,
        opts: pulumi.ResourceOptions,
        after: pulumi.Resource,
    ) -> None:
        k8s.apps.v1.Deployment(
            name,
            metadata={"name": name, "namespace": NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # one writer on a ReadWriteOnce volume
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": postgres_pod(name, image, claim, secret, labels, reset_password),
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[after])),
        )
        k8s.core.v1.Service(
            name,
            metadata={"name": name, "namespace": NAMESPACE, "labels": labels},
            spec={
                "selector": {"app.kubernetes.io/name": name},
                "ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}],
            },
            opts=opts,
        )

    def _network_policy(
        self,
        name: str,
        target: dict[str, str],
        clients: dict[str, str],
        *,
        same_namespace: bool,
        opts: pulumi.ResourceOptions,
    ) -> None:
        peer: dict[str, Any] = {"podSelector": {"matchLabels": clients}}
        if not same_namespace:
            peer["namespaceSelector"] = {}  # the engineer's pods in any namespace
        k8s.networking.v1.NetworkPolicy(
            name,
            metadata={"name": name, "namespace": NAMESPACE, "labels": self._labels},
            spec={
                "podSelector": {"matchLabels": target},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [peer], "ports": [{"protocol": "TCP", "port": 5432}]}],
            },
            opts=opts,
        )

    def _snapshots(self, db: GoldenDatabase, ctx: PlatformContext, opts: pulumi.ResourceOptions) -> None:
        name = "golden-snapshot"
        labels = {**ctx.labels, "app.kubernetes.io/name": name}
        k8s.core.v1.ServiceAccount(name, metadata={"name": name, "namespace": NAMESPACE, "labels": labels}, opts=opts)
        k8s.rbac.v1.Role(
            name,
            metadata={"name": name, "namespace": NAMESPACE, "labels": labels},
            rules=[
                {
                    "apiGroups": ["snapshot.storage.k8s.io"],
                    "resources": ["volumesnapshots"],
                    "verbs": ["get", "list", "watch", "create", "patch", "delete"],
                }
            ],
            opts=opts,
        )
        k8s.rbac.v1.RoleBinding(
            name,
            metadata={"name": name, "namespace": NAMESPACE, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}],
            opts=opts,
        )
        k8s.batch.v1.CronJob(
            name,
            metadata={"name": name, "namespace": NAMESPACE, "labels": labels},
            spec={
                "schedule": db.snapshot_schedule,
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 2,
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "restartPolicy": "Never",
                                "serviceAccountName": name,
                                "securityContext": {"runAsNonRoot": True, "runAsUser": 65534},
                                "containers": [
                                    {
                                        "name": "snapshot",
                                        "image": KUBECTL_IMAGE,
                                        "command": ["sh", "-c", snapshot_script(db)],
                                        "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}},
                                        "securityContext": {
                                            "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]},
                                        },
                                    }
                                ],
                            },
                        },
                    }
                },
            },
            opts=opts,
        )
