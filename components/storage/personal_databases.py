"""Personal databases cloned in seconds (the article: half a day with RDS snapshots, 3 s with
Ceph RBD snapshot + clone).

A golden PostgreSQL volume is reloaded from production on a schedule and snapshotted on
another. Every snapshot is taken from the golden volume itself and every personal volume is a
clone of the newest snapshot `golden-newest` — one metadata-only `rbd clone`, a chain of depth
one, well inside ceph-csi's limits (soft 4, hard 8), never a clone of a clone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster.namespaces import declare_namespace
from components.cluster.priorities import BATCH, INTERACTIVE, PLATFORM, RETRY_DISRUPTED
from components.context import PlatformContext
from components.storage.ceph_storage import GOLDEN_SNAPSHOT_CLASS, RBD_CLASS
from components.tenants.names import DATABASE_SECRET, engineer_namespace
from components.tenants.network import EVERYWHERE, default_deny, dns_egress, in_namespace, tcp

NAMESPACE = "akiba-db"
GOLDEN = "golden-postgres"
NEWEST = "golden-newest"
SKIP_AWAIT = "pulumi.com/skipAwait"
KUBECTL_IMAGE = "docker.io/alpine/k8s:1.36.4"
PGDATA = "/var/lib/postgresql/data/pgdata"
POSTGRES_UID = 999  # the postgres user of the official image
LIMITS = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
POSTGRES_PORT = 5432
NAME_LABEL = "app.kubernetes.io/name"


def database_name(login: str) -> str:
    """db-<login>: their server's Deployment, Service, claim and (here) Secret."""
    return f"db-{login}"


def database_pods(login: str) -> dict[str, str]:
    """The labels that select one engineer's database server pod."""
    return {NAME_LABEL: database_name(login)}


@dataclass(frozen=True)
class GoldenDatabase:
    """The golden PostgreSQL copy every personal database is cloned from, and its schedules."""

    version: str  # PostgreSQL image tag, e.g. "17.6"
    size: str  # volume size of the golden copy and of each clone, e.g. "200Gi"
    refresh_schedule: str  # cron: reload the golden copy from production, then snapshot it
    keep_snapshots: int  # how many dated snapshots to keep, e.g. 7


def postgres_image(db: GoldenDatabase) -> str:
    return f"docker.io/library/postgres:{db.version}-bookworm"


def snapshot_script(db: GoldenDatabase) -> str:
    """Snapshot the golden volume, make it the newest, keep the last few."""
    snap = (
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: NAME\n"
        "  labels: {akiba.io/golden: postgres}\n"
        f"spec:\n  volumeSnapshotClassName: {GOLDEN_SNAPSHOT_CLASS}\n"
        f"  source: {{persistentVolumeClaimName: {GOLDEN}}}\n"
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


REFRESH_APP = "akiba-golden-refresh"  # the load's application_name, so another load can see it
OTHER_LOADS = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{REFRESH_APP}'"  # noqa: S608 (constant)


def refresh_script() -> str:
    """Reload the golden copy from production (read-only source URL, a secret): once the golden
    server answers (on the first run it may still be starting), and never two loads at once
    (the first run's Job and a nightly one can overlap; CronJob's Forbid covers only its own)."""
    golden = f"postgresql://postgres:${{POSTGRES_PASSWORD}}@{GOLDEN}:5432/postgres"
    return (
        "\n".join(
            [
                "set -euo pipefail",
                f'golden="{golden}"',
                f"for _ in $(seq 360); do pg_isready -q -h {GOLDEN} -p 5432 && break; sleep 5; done",
                f"pg_isready -h {GOLDEN} -p 5432",
                f'running=$(psql "$golden" -tAc "{OTHER_LOADS}")',
                'if [ "$running" != 0 ]; then echo "another load of the golden copy is running" >&2; exit 1; fi',
                'pg_dump --format=custom --no-owner --no-privileges "$SOURCE_URL"'
                f' | pg_restore --clean --if-exists --no-owner --dbname="$golden?application_name={REFRESH_APP}"',
            ]
        )
        + "\n"
    )


PIPELINE = "golden-refresh"
SNAPSHOTTER = "golden-snapshot"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def api_token_volume() -> dict[str, Any]:
    """The service account's token, CA and namespace where kubectl looks for them, as a volume for
    the one step of a pod that talks to the API (pods here do not automount it: the step that
    holds the source URL or Ceph's admin key gets no token)."""
    return {
        "name": "api",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]
        },
    }


def pipeline_pod(db: GoldenDatabase, labels: dict[str, str]) -> dict[str, Any]:
    """Reload the golden copy, then snapshot it: the snapshot step is a container that starts only
    after the refresh (an init container) succeeded, so a failed night leaves yesterday's
    `golden-newest` in place and no snapshot of a half-loaded database is ever taken."""
    locked = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    secret_env = [
        {"name": "SOURCE_URL", "valueFrom": {"secretKeyRef": {"name": GOLDEN, "key": "source-url"}}},
        {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": GOLDEN, "key": "password"}}},
    ]
    return {
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "priorityClassName": BATCH,
            "serviceAccountName": SNAPSHOTTER,
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [
                {
                    "name": "refresh",
                    "image": postgres_image(db),
                    "command": ["bash", "-c", refresh_script()],
                    "env": secret_env,
                    "resources": LIMITS,
                    "securityContext": {**locked, "runAsUser": POSTGRES_UID},
                }
            ],
            "containers": [
                {
                    "name": "snapshot",
                    "image": KUBECTL_IMAGE,
                    "command": ["sh", "-c", snapshot_script(db)],
                    "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}},
                    "securityContext": {**locked, "runAsUser": 65534},
                    "volumeMounts": [{"name": "api", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}],
                }
            ],
            "volumes": [api_token_volume()],
        },
    }


def postgres_pod(
    name: str, image: str, claim: str, secret: str, labels: dict[str, str], reset_password: bool, priority: str
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
            "priorityClassName": priority,
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
    # Each owner's namespace (login -> Namespace): their connection Secret `database` goes there.
    namespaces: Mapping[str, pulumi.Resource]
    pod_cidr: str  # e.g. 10.244.0.0/16: the refresh may reach anything but other pods


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    database: str
    secret_name: str  # <namespace>/<name> of the Secret the engineer reads it from: eng-<login>/database


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
        # Nothing in or out of a database pod but what a policy below admits.
        self._network_policy("default-deny", default_deny(), in_ns)

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
        golden = self._server(
            GOLDEN,
            image,
            GOLDEN,
            GOLDEN,
            golden_labels,
            reset_password=False,
            priority=PLATFORM,  # every personal copy comes from it
            opts=in_ns,
            after=golden_claim,
        )
        refresh_labels = {**ctx.labels, "app.kubernetes.io/name": PIPELINE}
        self._snapshot_account(ctx, in_ns)
        # A refresh evicted for an engineer's pod is retried, not counted as the night's failure.
        job_spec = {
            "backoffLimit": 1,
            "podFailurePolicy": RETRY_DISRUPTED,
            "template": pipeline_pod(db, refresh_labels),
        }
        k8s.batch.v1.CronJob(
            PIPELINE,
            metadata={"name": PIPELINE, "namespace": NAMESPACE, "labels": refresh_labels},
            spec={"schedule": db.refresh_schedule, "concurrencyPolicy": "Forbid", "jobTemplate": {"spec": job_spec}},
            opts=in_ns,
        )
        # The first load and the first `golden-newest`, now rather than tonight. `pulumi up` does not
        # wait for it (a production dump takes hours); the personal claims below bind once the
        # snapshot exists (the CSI provisioner retries until then).
        k8s.batch.v1.Job(
            f"{PIPELINE}-initial",
            metadata={
                "name": f"{PIPELINE}-initial",
                "namespace": NAMESPACE,
                "labels": refresh_labels,
                "annotations": {SKIP_AWAIT: "true"},
            },
            spec=job_spec,
            # After the golden server is ready (awaited), so the load has a database to go into.
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[golden])),
        )
        # The golden server: only the refresh loads it. The refresh: DNS, the golden server, and
        # anything outside the pod network (the production source, the API server for snapshots).
        self._network_policy(
            GOLDEN,
            {
                "podSelector": {"matchLabels": {NAME_LABEL: GOLDEN}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [in_namespace(NAMESPACE, {NAME_LABEL: PIPELINE})], "ports": tcp(POSTGRES_PORT)}],
            },
            in_ns,
        )
        self._network_policy(
            PIPELINE,
            {
                "podSelector": {"matchLabels": {NAME_LABEL: PIPELINE}},
                "policyTypes": ["Egress"],
                "egress": [
                    dns_egress(),
                    {"to": [in_namespace(NAMESPACE, {NAME_LABEL: GOLDEN})], "ports": tcp(POSTGRES_PORT)},
                    {"to": [{"ipBlock": {"cidr": EVERYWHERE, "except": [args.pod_cidr]}}]},
                ],
            },
            in_ns,
        )

        # One clone per engineer who asked.
        self.endpoints, self.passwords = {}, {}
        for owner in args.owners:
            dbname = database_name(owner)
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
                    # Binds when the first `golden-newest` exists: see the initial Job above.
                    "annotations": {SKIP_AWAIT: "true"},
                },
                spec={
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": RBD_CLASS,
                    "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": NEWEST},
                    "resources": {"requests": {"storage": db.size}},
                },
                opts=ctx.stateful(self, provider=args.provider, depends_on=[ns, *args.after]),
            )
            labels = {**ctx.labels, "app.kubernetes.io/name": dbname, "akiba.io/engineer": owner}
            self._server(
                dbname,
                image,
                dbname,
                dbname,
                labels,
                reset_password=True,
                priority=INTERACTIVE,  # an engineer works against it live
                opts=in_ns,
                after=claim,
                awaited=False,
            )
            # Only their namespace, by the name the API server gives it: no pod label of theirs or
            # anyone's admits another namespace.
            self._network_policy(
                dbname,
                {
                    "podSelector": {"matchLabels": database_pods(owner)},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [in_namespace(engineer_namespace(owner))], "ports": tcp(POSTGRES_PORT)}],
                },
                in_ns,
            )
            endpoint = Endpoint(
                f"{dbname}.{NAMESPACE}.svc",
                POSTGRES_PORT,
                "postgres",
                "postgres",
                f"{engineer_namespace(owner)}/{DATABASE_SECRET}",
            )
            self.endpoints[owner] = endpoint
            self.passwords[owner] = pw.result
            self._connection_secret(owner, endpoint, pw.result, args)
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
        priority: str,
        opts: pulumi.ResourceOptions,
        after: pulumi.Resource,
        awaited: bool = True,
    ) -> k8s.apps.v1.Deployment:
        meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": labels}
        if not awaited:  # its volume binds later (a clone of a snapshot that may not exist yet)
            meta["annotations"] = {SKIP_AWAIT: "true"}
        server = k8s.apps.v1.Deployment(
            name,
            metadata=meta,
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # one writer on a ReadWriteOnce volume
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": postgres_pod(name, image, claim, secret, labels, reset_password, priority),
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
        return server

    def _network_policy(self, name: str, spec: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        k8s.networking.v1.NetworkPolicy(
            name,
            metadata={"name": name, "namespace": NAMESPACE, "labels": self._labels},
            spec=spec,
            opts=opts,
        )

    def _connection_secret(
        self, owner: str, endpoint: Endpoint, password: pulumi.Output[str], args: PersonalDatabasesArgs
    ) -> None:
        """Their connection in their own namespace (Secret `database`): they read it there with
        their own identity and never need a right in this one."""
        ns = engineer_namespace(owner)
        fields = {
            "host": endpoint.host,
            "port": str(endpoint.port),
            "user": endpoint.user,
            "database": endpoint.database,
        }
        k8s.core.v1.Secret(
            f"{ns}-{DATABASE_SECRET}",
            metadata={"name": DATABASE_SECRET, "namespace": ns, "labels": self._labels},
            type="Opaque",
            string_data=password.apply(
                lambda p: {
                    **fields,
                    "password": p,
                    "url": f"postgresql://{fields['user']}:{p}@{fields['host']}:{fields['port']}/{fields['database']}",
                }
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.namespaces[owner]]),
        )

    def _snapshot_account(self, ctx: PlatformContext, opts: pulumi.ResourceOptions) -> None:
        """The identity the snapshot step uses: VolumeSnapshots in this namespace, nothing else."""
        labels = {**ctx.labels, "app.kubernetes.io/name": SNAPSHOTTER}
        meta = {"name": SNAPSHOTTER, "namespace": NAMESPACE, "labels": labels}
        k8s.core.v1.ServiceAccount(SNAPSHOTTER, metadata=meta, opts=opts)
        k8s.rbac.v1.Role(
            SNAPSHOTTER,
            metadata=meta,
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
            SNAPSHOTTER,
            metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SNAPSHOTTER},
            subjects=[{"kind": "ServiceAccount", "name": SNAPSHOTTER, "namespace": NAMESPACE}],
            opts=opts,
        )
