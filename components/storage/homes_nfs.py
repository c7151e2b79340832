"""NFS for people, not for the LAN: each engineer who declares client machines gets one export of
their own home, `/homes/<login>`, that only those machines may mount, read-write with root
squashed. Nobody else's home is reachable through it, and an engineer without clients has no export.

This replaces the article's corosync/pacemaker NFS pair. Rook's CephNFS is active/passive
through Kubernetes: when the node running the NFS server dies, the pod is rescheduled. The
server tolerates an unreachable node for 30 s only (default 300 s), so a client stalls for
roughly node detection (~40 s) + 30 s + pod start (~20 s) + the NFSv4 grace period (90 s):
about three minutes, then carries on (hard mounts retry; nothing is lost) — against the node
now running the server (see the Service below).

The exports live in Ceph (the mgr's nfs module), not in Kubernetes, so a Job reconciles them:
it finds each engineer's CephFS subvolume from their home claim's volume, applies their export,
and removes every export under /homes that is no longer wanted (a removed engineer or client,
and the old export of the whole tree).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.priorities import PLATFORM
from components.context import PlatformContext
from components.storage.personal_databases import KUBECTL_IMAGE, api_token_volume
from components.storage.rook_ceph import CEPH_IMAGE, PLACEMENT, TOLERATIONS
from components.storage.rook_ceph import NAMESPACE as ROOK_NAMESPACE
from components.tenants.names import HOME_CLAIM, engineer_namespace

NFS_NAME = "homes"
NFS_PSEUDO_PATH = "/homes"
NFS_PORT = 2049
EXPORTER = "homes-nfs-export"  # the Job, its ServiceAccount and its roles
SUBVOLUME_GROUP = "csi"  # where ceph-csi makes its subvolumes
PATH_MARK = "@PATH@"  # replaced in the Job by the subvolume's path, known only once the claim is bound
RESOLVED = "/resolved"  # <login> -> subvolume name, written by the step that may read the API
FAST_FAILOVER = [
    {"key": f"node.kubernetes.io/{cond}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    for cond in ("not-ready", "unreachable")
]


@dataclass(frozen=True)
class HomeExport:
    """One engineer's export: who, and from which machines."""

    login: str  # e.g. tarui: exports the `home` claim of namespace eng-tarui at /homes/tarui
    clients: tuple[str, ...]  # addresses or small networks, e.g. ("192.168.10.51",)


def pseudo_path(login: str) -> str:
    return f"{NFS_PSEUDO_PATH}/{login}"


def export_spec(export: HomeExport, filesystem: str, path: str = PATH_MARK) -> dict[str, Any]:
    """The `ceph nfs export apply` document (ceph mgr/nfs export_utils.Export.from_dict): nobody
    by default (access_type NONE), the declared clients read-write with root squashed (root on a
    client machine is `nobody` here: it can read and write only what anyone may)."""
    return {
        "path": path,
        "pseudo": pseudo_path(export.login),
        "cluster_id": NFS_NAME,
        "access_type": "NONE",
        "squash": "root_squash",
        "security_label": True,
        "protocols": [4],
        "transports": ["TCP"],
        "fsal": {"name": "CEPH", "fs_name": filesystem},
        "clients": [{"addresses": list(export.clients), "access_type": "RW", "squash": "root_squash"}],
    }


def resolve_script(exports: tuple[HomeExport, ...]) -> str:
    """Each exported home's CephFS subvolume, from its claim's bound volume (waits for binding)."""
    lines = ["set -eu"]
    for e in exports:
        ns = engineer_namespace(e.login)
        lines += [
            "pv=",
            "for _ in $(seq 120); do",
            f"  pv=$(kubectl get pvc {HOME_CLAIM} -n {ns} -o jsonpath='{{.spec.volumeName}}' || true)",
            '  [ -n "$pv" ] && break; sleep 5',
            "done",
            f'[ -n "$pv" ] || {{ echo "claim {ns}/{HOME_CLAIM} is not bound" >&2; exit 1; }}',
            f"kubectl get pv \"$pv\" -o jsonpath='{{.spec.csi.volumeAttributes.subvolumeName}}' > {RESOLVED}/{e.login}",
            f"test -s {RESOLVED}/{e.login}",
        ]
    return "\n".join(lines) + "\n"


# Exit 0 when the export Ceph has (argv[1], `ceph nfs export info`) already is the wanted one (argv[2]).
SAME_EXPORT = (
    "import json, sys; have, want = (json.load(open(p)) for p in sys.argv[1:3]);"
    " keys = ('path', 'pseudo', 'access_type', 'squash', 'clients', 'protocols', 'transports');"
    " sys.exit(any(have.get(k) != want.get(k) for k in keys) or have['fsal'].get('fs_name') != want['fsal']['fs_name'])"
)


def export_script(filesystem: str, exports: tuple[HomeExport, ...]) -> str:
    """Apply the wanted exports and remove every other one under /homes (idempotent), with Rook's
    admin credentials."""
    wanted = " ".join(pseudo_path(e.login) for e in exports)
    lines = [
        "set -eu",
        'mon_host=$(sed "s/[a-z0-9]*=//g" /etc/rook/mon-endpoints)',
        'printf "[global]\\nmon_host = %s\\n" "$mon_host" > /etc/ceph/ceph.conf',
        'printf "[%s]\\nkey = %s\\n" "$ROOK_CEPH_USERNAME" "$ROOK_CEPH_SECRET" > /etc/ceph/keyring',
        # An export that already says this is left alone; one that differs is removed and made
        # again. Ceph's manager restarts the NFS server through its orchestrator on any update of
        # an export (mgr/nfs export.py), and Rook's cluster has no orchestrator backend set:
        # creating and removing need none (the server follows its RADOS config object).
        "apply() {",
        f'  subvolume=$(cat {RESOLVED}/"$1")',
        f'  path=$(ceph fs subvolume getpath {filesystem} "$subvolume" {SUBVOLUME_GROUP})',
        f'  printf "%s" "$2" | sed "s#{PATH_MARK}#$path#" > /tmp/export.json',
        f'  if ceph nfs export info {NFS_NAME} "$3" > /tmp/current.json 2>/dev/null; then',
        f"    if python3 -c {shlex.quote(SAME_EXPORT)} /tmp/current.json /tmp/export.json; then return 0; fi",
        f'    ceph nfs export rm {NFS_NAME} "$3"',
        "  fi",
        f"  ceph nfs export apply {NFS_NAME} -i /tmp/export.json",
        "}",
    ]
    for e in exports:
        spec = shlex.quote(json.dumps(export_spec(e, filesystem), sort_keys=True))
        lines.append(f"apply {e.login} {spec} {pseudo_path(e.login)}")
    lines += [
        f"wanted=' {wanted} '",
        f"ceph nfs export ls {NFS_NAME} --format json"
        " | python3 -c 'import json, sys; print(\"\\n\".join(json.load(sys.stdin)))' > /tmp/exports",
        "while read -r pseudo; do",
        '  case "$pseudo" in',
        f"    {NFS_PSEUDO_PATH}|{NFS_PSEUDO_PATH}/*)",
        '      case "$wanted" in *" $pseudo "*) ;;'
        f' *) echo "removing $pseudo"; ceph nfs export rm {NFS_NAME} "$pseudo" ;; esac ;;',
        "  esac",
        "done < /tmp/exports",
    ]
    return "\n".join(lines) + "\n"


def export_job(filesystem: str, exports: tuple[HomeExport, ...], labels: dict[str, str]) -> dict[str, Any]:
    locked = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    secret_env = [
        {
            "name": "ROOK_CEPH_USERNAME",
            "valueFrom": {"secretKeyRef": {"name": "rook-ceph-mon", "key": "ceph-username"}},
        },
        {"name": "ROOK_CEPH_SECRET", "valueFrom": {"secretKeyRef": {"name": "rook-ceph-mon", "key": "ceph-secret"}}},
    ]
    resolved = {"name": "resolved", "mountPath": RESOLVED}
    return {
        "metadata": {"name": EXPORTER, "namespace": ROOK_NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 10,  # the NFS server may take a while to come up
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "priorityClassName": PLATFORM,
                    "tolerations": TOLERATIONS,
                    "serviceAccountName": EXPORTER,
                    "automountServiceAccountToken": False,
                    "initContainers": [
                        {
                            "name": "resolve",
                            "image": KUBECTL_IMAGE,
                            "command": ["sh", "-c", resolve_script(exports)],
                            "securityContext": {**locked, "runAsUser": 65534, "runAsNonRoot": True},
                            "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}},
                            "volumeMounts": [
                                resolved,
                                {
                                    "name": "api",
                                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                                    "readOnly": True,
                                },
                            ],
                        }
                    ],
                    "containers": [
                        {
                            "name": "export",
                            "image": CEPH_IMAGE,
                            "command": ["bash", "-c", export_script(filesystem, exports)],
                            "env": secret_env,
                            "securityContext": locked,
                            "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}},
                            "volumeMounts": [
                                {"name": "mon-endpoints", "mountPath": "/etc/rook"},
                                {"name": "ceph-config", "mountPath": "/etc/ceph"},
                                {**resolved, "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "mon-endpoints",
                            "configMap": {
                                "name": "rook-ceph-mon-endpoints",
                                "items": [{"key": "data", "path": "mon-endpoints"}],
                            },
                        },
                        {"name": "ceph-config", "emptyDir": {}},
                        {"name": "resolved", "emptyDir": {}},
                        api_token_volume(),
                    ],
                },
            },
        },
    }


def service_spec(node_port: int) -> dict[str, Any]:
    """NFS on a fixed port of every node. externalTrafficPolicy Local: the client's own address
    reaches Ganesha, which is what each export's clients block admits. With Cluster, kube-proxy
    would SNAT it to a node's address and the block would have to admit the nodes, i.e. anyone
    who can reach a node. The cost: only the node running the server answers (the others drop
    the port), so after a failover clients mount again from the node now running it."""
    return {
        "type": "NodePort",
        "externalTrafficPolicy": "Local",
        "selector": {"app": "rook-ceph-nfs", "ceph_nfs": NFS_NAME},
        "ports": [{"name": "nfs", "port": NFS_PORT, "targetPort": NFS_PORT, "nodePort": node_port}],
    }


@dataclass(frozen=True)
class HomesNfsArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    filesystem: str  # the CephFS the homes live on, e.g. "homes"
    nfs_node_port: int  # NodePort of the NFS server for clients outside Kubernetes, e.g. 32049
    exports: tuple[HomeExport, ...]  # one per engineer who declared client machines
    after: tuple[pulumi.Resource, ...]  # the filesystem, the homes, the PriorityClasses
    # The engineers' namespaces, where the Job may read the `home` claim: login -> Namespace.
    namespaces: Mapping[str, pulumi.Resource]
    # Where the server and its Service were declared before they moved here (the homes
    # component's URN): an alias, so the move neither replaces nor deletes them.
    moved_from: pulumi.Input[str] | None = None


class HomesNfs(pulumi.ComponentResource):
    nfs_port: int
    exports: dict[str, dict[str, Any]]  # login -> {"path": /homes/<login>, "clients": [...]}

    def __init__(self, name: str, args: HomesNfsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:storage:HomesNfs", name, None, opts)
        ctx = args.ctx
        moved = [pulumi.Alias(parent=args.moved_from)] if args.moved_from else []
        nfs = k8s.apiextensions.CustomResource(
            "cephnfs-homes",
            api_version="ceph.rook.io/v1",
            kind="CephNFS",
            metadata={"name": NFS_NAME, "namespace": ROOK_NAMESPACE, "labels": ctx.labels},
            spec={
                "server": {
                    "active": 1,
                    "priorityClassName": PLATFORM,
                    "placement": {
                        "tolerations": [*TOLERATIONS, *FAST_FAILOVER],
                        "nodeAffinity": PLACEMENT["nodeAffinity"],
                    },
                    "resources": {"limits": {"memory": "2Gi"}},
                }
            },
            # Its grace and export records live in RADOS: protect it like the rest of Ceph.
            opts=ctx.stateful(self, provider=args.provider, depends_on=list(args.after), aliases=moved),
        )
        access = self._exporter_access(args)
        job = export_job(args.filesystem, args.exports, ctx.labels)
        k8s.batch.v1.Job(
            EXPORTER,
            metadata=job["metadata"],
            spec=job["spec"],
            # args.after: its PriorityClass too (admission refuses a pod naming a missing class).
            # Aliased to where it was declared before: one Job under one name, replaced in place
            # (delete, then create), never a second created beside the old one of the same name.
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[nfs, *access, *args.after], aliases=moved
            ),
        )
        self.nfs_port = args.nfs_node_port
        k8s.core.v1.Service(
            "homes-nfs",
            metadata={"name": "homes-nfs", "namespace": ROOK_NAMESPACE, "labels": ctx.labels},
            spec=service_spec(self.nfs_port),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[nfs], aliases=moved),
        )
        self.exports = {e.login: {"path": pseudo_path(e.login), "clients": list(e.clients)} for e in args.exports}
        self.register_outputs({"port": self.nfs_port, "exports": self.exports})

    def _exporter_access(self, args: HomesNfsArgs) -> list[pulumi.Resource]:
        """Read the exported homes' claims (by name, in their namespaces) and volumes: nothing else.
        A volume's name is known only once bound, so volumes are readable by any name (they hold
        no data, only where it lives)."""
        labels = args.ctx.labels
        opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        account = k8s.core.v1.ServiceAccount(
            EXPORTER, metadata={"name": EXPORTER, "namespace": ROOK_NAMESPACE, "labels": labels}, opts=opts
        )
        subject = [{"kind": "ServiceAccount", "name": EXPORTER, "namespace": ROOK_NAMESPACE}]
        volumes = k8s.rbac.v1.ClusterRole(
            EXPORTER,
            metadata={"name": f"akiba:{EXPORTER}", "labels": labels},
            rules=[{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get"]}],
            opts=opts,
        )
        made: list[pulumi.Resource] = [
            account,
            volumes,
            k8s.rbac.v1.ClusterRoleBinding(
                EXPORTER,
                metadata={"name": f"akiba:{EXPORTER}", "labels": labels},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"akiba:{EXPORTER}"},
                subjects=subject,
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[volumes])),
            ),
        ]
        for e in args.exports:
            ns = engineer_namespace(e.login)
            inside = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[args.namespaces[e.login]]))
            meta = {"name": EXPORTER, "namespace": ns, "labels": labels}
            role = k8s.rbac.v1.Role(
                f"{EXPORTER}-{e.login}",
                metadata=meta,
                rules=[
                    {
                        "apiGroups": [""],
                        "resources": ["persistentvolumeclaims"],
                        "resourceNames": [HOME_CLAIM],
                        "verbs": ["get"],
                    }
                ],
                opts=inside,
            )
            made.append(role)
            made.append(
                k8s.rbac.v1.RoleBinding(
                    f"{EXPORTER}-{e.login}",
                    metadata=meta,
                    role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": EXPORTER},
                    subjects=subject,
                    opts=pulumi.ResourceOptions.merge(inside, pulumi.ResourceOptions(depends_on=[role])),
                )
            )
        return made
