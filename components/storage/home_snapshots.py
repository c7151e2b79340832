"""Hourly (or as configured) CephFS snapshots of every home, with retention, taken by Ceph's own
scheduler: the manager's `snap_schedule` module creates `<home>/.snap/scheduled-<time>` and
prunes old ones. An engineer restores a file by copying it back out of `~/.snap/<name>/`.

Rook 1.20 declares snapshot schedules only under `CephFilesystem.spec.mirroring`
(rook/rook PendingReleaseNotes/Documentation: filesystem-mirroring.md, `snapshotSchedules`),
which would also turn on mirroring; so the schedules are set with the Ceph CLI instead, by a
CronJob that reconciles them (new homes get theirs within one run), as a cephx user that can
do nothing but talk to the `snap_schedule` module (`mgr "allow module snap_schedule rw"`).

Each schedule is on the home's own subvolume: ceph-csi records the home's directory in the PV
(`subvolumePath`, /volumes/csi/csi-vol-<id>/<uuid>), and the schedule goes on its parent, the
subvolume's root, because the MDS refuses a snapshot anywhere else inside a subvolume (EPERM;
tests/test_backups.py shows both on a real CephFS). The engineer then sees each snapshot in
`~/.snap/_<name>_<inode>/`. Not on `/volumes/csi` as a whole: newer Ceph may refuse snapshots on
an ancestor of a subvolume, and each home would not see its own snapshots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.priorities import PLATFORM
from components.context import PlatformContext
from components.storage.ceph_storage import HOME_SNAPSHOTS_CLIENT as CLIENT
from components.storage.personal_databases import KUBECTL_IMAGE
from components.storage.rook_ceph import CEPH_IMAGE, TOLERATIONS
from components.storage.rook_ceph import NAMESPACE as ROOK_NAMESPACE

NAME = "home-snapshots"
SCHEDULE = "17 * * * *"  # when the CronJob reconciles the schedules (Ceph takes the snapshots)
PATHS_DIR = "/work"
# snap_schedule's retention units (ceph/ceph src/pybind/mgr/snap_schedule/fs/schedule.py,
# parse_retention): h(ourly) d(aily) w(eekly) M(onthly) y(early).
RETENTION_UNITS = {"hourly": "h", "daily": "d", "weekly": "w", "monthly": "M", "yearly": "y"}


@dataclass(frozen=True)
class HomeSnapshots:
    """How often the homes are snapshotted and how many of each age are kept."""

    every: str  # snap_schedule interval: a count and h, d or w, e.g. "1h"
    keep: tuple[tuple[str, int], ...]  # (("hourly", 24), ("daily", 7), ("weekly", 4)); 0 entries left out


def wanted(policy: HomeSnapshots) -> dict[str, object]:
    """What `ceph fs snap-schedule list <path> --format json` shows for a home once set."""
    return {"schedule": [policy.every], "retention": {RETENTION_UNITS[k]: n for k, n in policy.keep if n}}


def reconcile_script(filesystem: str, policy: HomeSnapshots) -> str:
    """Python (the Ceph image's own python3) that gives the subvolume of every home path listed
    in the files named as arguments exactly this schedule and retention, idempotently; one whose
    schedule differs is removed and set again (snap_schedule refuses to overwrite a retention)."""
    want = wanted(policy)
    return f"""\
import json, subprocess, sys
FS = {filesystem!r}
EVERY = {policy.every!r}
RETAIN = {json.dumps(want["retention"])}

def ceph(*args, check=True):
    proc = subprocess.run(["ceph", "fs", "snap-schedule", *args, "--fs", FS], capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit(f"ceph fs snap-schedule {{' '.join(args)}}: {{proc.stderr.strip()}}")
    return proc

def current(path):
    proc = ceph("list", path, "--format", "json", check=False)
    # No schedule yet: ENOENT from some versions, an empty answer from 16.2.
    got = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None
    if not got or not got.get("schedule"):
        return None
    retention = {{}}
    kept = got.get("retention") or []
    for entry in [kept] if isinstance(kept, dict) else kept:  # 16.2 lists one dict per unit
        retention.update(entry)
    return {{"schedule": got.get("schedule"), "retention": retention}}

# Each file holds a home's subvolumePath; the snapshots go on its parent, the subvolume root.
paths = [p.strip().rstrip("/").rsplit("/", 1)[0] for f in sys.argv[1:] for p in open(f) if p.strip()]
if not paths:
    sys.exit("no home paths to schedule")
for path in paths:
    if current(path) == {{"schedule": [EVERY], "retention": RETAIN}}:
        continue
    if current(path) is not None:
        ceph("remove", path)
    ceph("add", path, EVERY)
    for unit, count in RETAIN.items():
        ceph("retention", "add", path, unit, str(count))
    print(f"{{path}}: every {{EVERY}}, keep {{RETAIN}}")
"""


def _path_file(namespace: str, claim: str) -> str:
    return f"{PATHS_DIR}/{namespace}.{claim}"


def paths_script(claims: tuple[tuple[str, str], ...]) -> str:
    """Shell for the kubectl step: each home claim's subvolume path, one file per claim. A
    claim not bound yet fails the run (the next run picks it up; the Job shows as failed)."""
    lines = ["set -eu"]
    for namespace, claim in claims:
        out, what = _path_file(namespace, claim), f"{namespace}/{claim}"
        lines += [
            f"pv=$(kubectl get pvc -n {namespace} {claim} -o jsonpath='{{.spec.volumeName}}')",
            f'test -n "$pv" || {{ echo "{what}: not bound yet" >&2; exit 1; }}',
            f"kubectl get pv \"$pv\" -o jsonpath='{{.spec.csi.volumeAttributes.subvolumePath}}' > {out}",
            f'test -s {out} || {{ echo "{what}: PV $pv has no subvolumePath" >&2; exit 1; }}',
        ]
    return "\n".join(lines)


def ceph_login_script() -> str:
    """ceph.conf and keyring for client.<CLIENT> from Rook's mon endpoints and the Secret."""
    return "\n".join(
        [
            "set -eu",
            'mon_host=$(sed "s/[a-z0-9]*=//g" /etc/rook/mon-endpoints)',
            'printf "[global]\\nmon_host = %s\\n" "$mon_host" > /etc/ceph/ceph.conf',
            f'printf "[client.{CLIENT}]\\nkey = %s\\n" "$CEPH_KEY" > /etc/ceph/keyring',
        ]
    )


@dataclass(frozen=True)
class HomeSnapshotsArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    filesystem: str  # the CephFS the homes live on
    claims: tuple[tuple[str, str], ...]  # (namespace, claim) of each home, e.g. (("eng-alice", "home"),)
    policy: HomeSnapshots
    after: tuple[pulumi.Resource, ...]  # the homes, the CephClient


class HomeSnapshotSchedules(pulumi.ComponentResource):
    def __init__(self, name: str, args: HomeSnapshotsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:HomeSnapshots", name, None, opts)
        ctx = args.ctx
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        labels = {**ctx.labels, "app.kubernetes.io/name": NAME}
        # Reading PVs is cluster-wide; the account can get PVs and the home claims, nothing else.
        k8s.core.v1.ServiceAccount(
            NAME, metadata={"name": NAME, "namespace": ROOK_NAMESPACE, "labels": labels}, opts=on_cluster
        )
        k8s.rbac.v1.ClusterRole(
            NAME,
            metadata={"name": f"akiba-{NAME}", "labels": labels},
            rules=[{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get"]}],
            opts=on_cluster,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            NAME,
            metadata={"name": f"akiba-{NAME}", "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"akiba-{NAME}"},
            subjects=[{"kind": "ServiceAccount", "name": NAME, "namespace": ROOK_NAMESPACE}],
            opts=on_cluster,
        )
        # In each engineer's namespace, get on their home claim and nothing else.
        for namespace, claim in args.claims:
            k8s.rbac.v1.Role(
                f"{NAME}-{namespace}",
                metadata={"name": NAME, "namespace": namespace, "labels": labels},
                rules=[
                    {
                        "apiGroups": [""],
                        "resources": ["persistentvolumeclaims"],
                        "resourceNames": [claim],
                        "verbs": ["get"],
                    }
                ],
                opts=on_cluster,
            )
            k8s.rbac.v1.RoleBinding(
                f"{NAME}-{namespace}",
                metadata={"name": NAME, "namespace": namespace, "labels": labels},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
                subjects=[{"kind": "ServiceAccount", "name": NAME, "namespace": ROOK_NAMESPACE}],
                opts=on_cluster,
            )
        locked = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        small = {"limits": {"cpu": "200m", "memory": "128Mi"}}
        pod = {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "priorityClassName": PLATFORM,
                "serviceAccountName": NAME,
                "tolerations": TOLERATIONS,
                "initContainers": [
                    {
                        "name": "paths",
                        "image": KUBECTL_IMAGE,
                        "command": ["sh", "-c", paths_script(args.claims)],
                        "resources": small,
                        "securityContext": {**locked, "runAsUser": 65534},
                        "volumeMounts": [{"name": "work", "mountPath": PATHS_DIR}],
                    }
                ],
                "containers": [
                    {
                        "name": "schedule",
                        "image": CEPH_IMAGE,
                        "command": [
                            "bash",
                            "-c",
                            ceph_login_script()
                            + '\nexec python3 -c "$RECONCILE" '
                            + " ".join(_path_file(ns, c) for ns, c in args.claims),
                        ],
                        "env": [
                            {"name": "RECONCILE", "value": reconcile_script(args.filesystem, args.policy)},
                            {"name": "CEPH_ARGS", "value": f"--id {CLIENT} --keyring /etc/ceph/keyring"},
                            {
                                "name": "CEPH_KEY",
                                "valueFrom": {"secretKeyRef": {"name": f"rook-ceph-client-{CLIENT}", "key": CLIENT}},
                            },
                        ],
                        "resources": small,
                        "securityContext": locked,
                        "volumeMounts": [
                            {"name": "work", "mountPath": PATHS_DIR, "readOnly": True},
                            {"name": "mon-endpoints", "mountPath": "/etc/rook"},
                            {"name": "ceph-config", "mountPath": "/etc/ceph"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "work", "emptyDir": {}},
                    {
                        "name": "mon-endpoints",
                        "configMap": {
                            "name": "rook-ceph-mon-endpoints",
                            "items": [{"key": "data", "path": "mon-endpoints"}],
                        },
                    },
                    {"name": "ceph-config", "emptyDir": {}},
                ],
            },
        }
        k8s.batch.v1.CronJob(
            NAME,
            metadata={"name": NAME, "namespace": ROOK_NAMESPACE, "labels": labels},
            spec={
                "schedule": SCHEDULE,
                "concurrencyPolicy": "Forbid",
                # A stuck pod fails the Job (and pages) instead of skipping every later run (Forbid).
                "jobTemplate": {"spec": {"backoffLimit": 2, "activeDeadlineSeconds": 1800, "template": pod}},
            },
            opts=on_cluster,
        )
        self.register_outputs({})
