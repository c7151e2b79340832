"""Ceph on Kubernetes: OSDs on exactly the declared SSDs, pools and classes, least-privilege
clients, homes owned by their engineers, personal databases cloned from the newest golden
snapshot, and nothing that holds data left unprotected in prod."""

from __future__ import annotations

import importlib
import json
import shlex
import subprocess
import sys
import types
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from components.storage.homes_nfs import HomeExport, export_script, export_spec, resolve_script
from components.storage.personal_databases import REFRESH_APP, refresh_script
from components.storage.shared_homes import claim_spec
from policy.akiba_policy.rules import STATEFUL_K8S_KINDS
from stacks import args
from stacks.problems import ConfigError
from tests import pod_security
from tests.conftest import IN_CI, config_values, edited, parse, require_tool
from tools.plan.mocks import Recorded
from tools.plan.runner import Plan

STACKS = ("prod", "dev")


def _kind(plan: Plan, kind: str) -> list[Recorded]:
    return [r for r in plan.resources if r.type.startswith("kubernetes:") and r.type.rsplit(":", 1)[-1] == kind]


def _named(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    return next(r.raw_inputs for r in _kind(plan, kind) if r.raw_inputs["metadata"]["name"] == name)


@pytest.mark.parametrize("stack", STACKS)
def test_osds_are_exactly_the_declared_ssds(plans: dict[str, Plan], stack: str) -> None:
    spec = _named(plans[stack], "CephCluster", "rook-ceph")["spec"]
    declared = {n["hostname"]: n["disks"]["ceph"] for n in config_values(stack)["akiba:nodes"] if n["disks"]["ceph"]}
    osds = {n["name"]: [d["name"] for d in n["devices"]] for n in spec["storage"]["nodes"]}
    assert osds == declared
    boots = {n["disks"]["boot"] for n in config_values(stack)["akiba:nodes"]}
    assert not boots & {d for ds in osds.values() for d in ds}
    assert spec["storage"]["useAllDevices"] is False and spec["network"]["provider"] == "host"


def test_prod_keeps_three_copies_on_three_hosts(plans: dict[str, Plan]) -> None:
    assert _named(plans["prod"], "CephCluster", "rook-ceph")["spec"]["mon"]["count"] == 3
    for pool in ("kube-rbd", "vm-disks"):
        spec = _named(plans["prod"], "CephBlockPool", pool)["spec"]
        assert spec["failureDomain"] == "host" and spec["replicated"]["size"] == 3


@pytest.mark.parametrize("stack", STACKS)
def test_classes_and_snapshots(plans: dict[str, Plan], stack: str) -> None:
    rbd = _named(plans[stack], "StorageClass", "akiba-rbd")
    assert rbd["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert rbd["parameters"]["pool"] == "kube-rbd"
    assert _named(plans[stack], "StorageClass", "akiba-cephfs")["parameters"]["fsName"] == "homes"
    snap_class = _named(plans[stack], "VolumeSnapshotClass", "akiba-rbd")
    assert snap_class["driver"] == "rook-ceph.rbd.csi.ceph.com"
    (group,) = [r for r in plans[stack].resources if r.type == "kubernetes:yaml/v2:ConfigGroup"]
    assert all("/external-snapshotter/v8.6.0/" in f for f in group.raw_inputs["files"])


def test_cephx_clients_have_least_privilege(plans: dict[str, Plan]) -> None:
    libvirt = _named(plans["prod"], "CephClient", "libvirt")["spec"]["caps"]
    assert libvirt == {"mon": "profile rbd", "osd": "profile rbd pool=vm-disks"}
    backup = _named(plans["prod"], "CephClient", "homes-backup")["spec"]["caps"]
    assert all(cap.startswith("allow r") for cap in backup.values())
    assert plans["prod"].outputs["ceph"]["libvirtKeySecret"] == "rook-ceph/rook-ceph-client-libvirt"


def _in_namespace(plan: Plan, kind: str, namespace: str, name: str) -> dict[str, Any]:
    (found,) = [
        r.raw_inputs
        for r in _kind(plan, kind)
        if r.raw_inputs["metadata"].get("namespace") == namespace and r.raw_inputs["metadata"]["name"] == name
    ]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_engineer_has_a_home_owned_by_them(plans: dict[str, Plan], stack: str) -> None:
    for eng in config_values(stack)["akiba:engineers"]:
        ns = f"eng-{eng['name']}"  # their namespace: only their pods can mount it
        claim = _in_namespace(plans[stack], "PersistentVolumeClaim", ns, "home")
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"] == "akiba-cephfs"
        assert "volumeName" not in claim["spec"]  # a new volume, unless homeVolume adopts one
        pod = _in_namespace(plans[stack], "Job", ns, "home-owner")["spec"]["template"]["spec"]
        assert pod_security.baseline({"spec": pod, "metadata": {}}) == []  # their namespace's level
        (chown,) = pod["containers"]
        gid = eng.get("gid", eng["uid"])
        assert chown["command"][-1].startswith(f"chown {eng['uid']}:{gid} /home/{eng['name']}")
        assert set(chown["securityContext"]["capabilities"]["add"]) == {"CHOWN", "FOWNER"}
        assert not chown["securityContext"].get("privileged") and "hostUsers" not in pod
    assert not [r for r in _kind(plans[stack], "Namespace") if r.raw_inputs["metadata"]["name"] == "akiba-homes"]


def test_home_volume_adopts_an_existing_volume() -> None:
    """homeVolume: the new claim binds that PersistentVolume (a home moved from akiba-homes)."""

    def adopt(values: dict[str, Any]) -> None:
        values["akiba:engineers"][0]["homeVolume"] = "pvc-0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"

    spec = parse(edited("dev", adopt))
    (home,) = [h for h in args.homes(spec.engineers) if h.volume_name]
    assert claim_spec(home)["volumeName"] == "pvc-0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"

    def bad(values: dict[str, Any]) -> None:
        values["akiba:engineers"][0]["homeVolume"] = "Not A Volume"

    with pytest.raises(ConfigError, match=r"engineers\[0\]\.homeVolume"):
        parse(edited("dev", bad))


@pytest.mark.parametrize("stack", STACKS)
def test_each_engineer_with_clients_gets_their_own_nfs_export(plans: dict[str, Plan], stack: str) -> None:
    """Per engineer: /homes/<login>, their declared machines only, root squashed; engineers
    without clients have no export, and the Job removes every other export under /homes."""
    engineers = config_values(stack)["akiba:engineers"]
    wanted = {e["name"]: e["nfsClients"] for e in engineers if e.get("nfsClients")}
    assert wanted, "the stack file declares no NFS client: nothing to test"
    if stack == "prod":
        assert len(wanted) < len(engineers), "some engineer without clients: they get no export"
    nfs = plans[stack].outputs["nfs"]
    assert nfs["export"] == "/homes" and nfs["port"] == 32049
    assert nfs["servers"] == [n["ip"] for n in config_values(stack)["akiba:nodes"]]
    assert nfs["exports"] == {login: {"path": f"/homes/{login}", "clients": c} for login, c in wanted.items()}
    service = _named(plans[stack], "Service", "homes-nfs")["spec"]
    assert service["ports"][0]["nodePort"] == 32049
    # The client's own address reaches Ganesha (Cluster would SNAT it to a node's).
    assert service["externalTrafficPolicy"] == "Local"
    job = _named(plans[stack], "Job", "homes-nfs-export")["spec"]["template"]["spec"]
    script = job["containers"][0]["command"][-1]
    for login, clients in wanted.items():
        spec = export_spec(HomeExport(login, tuple(clients)), "homes")
        assert shlex.quote(json.dumps(spec, sort_keys=True)) in script
        assert f"-n eng-{login}" in job["initContainers"][0]["command"][-1]
    assert "--path /volumes/csi" not in script, "the whole tree is never exported"
    # Only the resolve step may call the API; the step with Ceph's admin key has no token.
    assert job["automountServiceAccountToken"] is False
    assert [m["name"] for m in job["containers"][0]["volumeMounts"]] == ["mon-endpoints", "ceph-config", "resolved"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_nfs_exporter_reads_only_the_exported_home_claims(plans: dict[str, Plan], stack: str) -> None:
    wanted = [e["name"] for e in config_values(stack)["akiba:engineers"] if e.get("nfsClients")]
    roles = [r for r in _kind(plans[stack], "Role") if r.raw_inputs["metadata"]["name"] == "homes-nfs-export"]
    assert sorted(r.raw_inputs["metadata"]["namespace"] for r in roles) == sorted(f"eng-{x}" for x in wanted)
    for role in roles:
        assert role.raw_inputs["rules"] == [
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "resourceNames": ["home"], "verbs": ["get"]}
        ]
    (cluster_role,) = [
        r for r in _kind(plans[stack], "ClusterRole") if "homes-nfs-export" in r.raw_inputs["metadata"]["name"]
    ]
    assert cluster_role.raw_inputs["rules"] == [
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get"]}
    ]


def test_nfs_client_addresses_are_validated() -> None:
    def bad(engineers: list[dict[str, Any]]) -> None:
        engineers[0]["nfsClients"] = ["192.168.10.0/24", "desk.akiba.lan", "192.168.10.52"]

    with pytest.raises(ConfigError) as err:
        parse(edited("prod", lambda v: bad(v["akiba:engineers"])))
    text = str(err.value)
    assert "akiba:engineers[0].nfsClients[0]" in text and "akiba:engineers[0].nfsClients[1]" in text
    assert "nfsClients[2]" not in text and "/28" in text


def _ceph_export_module() -> Any:
    """Ceph's own export model (the mgr nfs module, ceph-mgr-modules-core), loaded without a
    running manager: what `ceph nfs export apply` parses and validates a document with."""
    mgr = Path("/usr/share/ceph/mgr")
    if not (mgr / "nfs" / "export_utils.py").exists():
        if IN_CI:
            pytest.fail("ceph-mgr-modules-core is not installed: CI must install it (.ci/run)")
        pytest.skip("ceph-mgr-modules-core is not installed")
    # The manager's C module and the live-filesystem lookup are not needed to parse and validate
    # a document: stand-ins (the filesystem `homes` exists), only while the module loads.
    stub = types.ModuleType("mgr_module")
    stub.NFS_GANESHA_SUPPORTED_FSALS = ["CEPH", "RGW"]  # type: ignore[attr-defined]
    utils = types.ModuleType("nfs.utils")
    utils.check_fs = lambda mgr, fs_name: fs_name == "homes"  # type: ignore[attr-defined]
    package = types.ModuleType("nfs")
    package.__path__ = [str(mgr / "nfs")]
    with mock.patch.dict(sys.modules, {"mgr_module": stub, "nfs": package, "nfs.utils": utils}):
        return importlib.import_module("nfs.export_utils")


def test_cephs_nfs_module_accepts_a_per_engineer_export() -> None:
    export_utils = _ceph_export_module()
    doc = export_spec(HomeExport("tarui", ("192.168.10.51", "192.168.10.64/28")), "homes", "/volumes/csi/csi-vol-1/2")
    export = export_utils.Export.from_dict(1, doc)
    export.validate(mgr=None)
    # Every field read back as given: no name the module does not know, none it ignored.
    assert export.to_dict() == {"export_id": 1, **doc}
    assert (export.pseudo, export.access_type, export.squash) == ("/homes/tarui", "NONE", "root_squash")
    (client,) = export.clients
    assert (client.addresses, client.access_type, client.squash) == (
        ["192.168.10.51", "192.168.10.64/28"],
        "RW",
        "root_squash",
    )
    # Ganesha's own configuration as the module writes it: nobody by default, the clients RW squashed.
    block = export_utils.GaneshaConfParser.write_block(export.to_export_block())
    assert 'access_type = "NONE";' in block and 'squash = "root_squash";' in block
    assert "clients = 192.168.10.51, 192.168.10.64/28;" in block
    # A misspelt field is refused by the same code.
    bad = export_utils.Export.from_dict(1, doc | {"squash": "rootsquashed"})
    with pytest.raises(Exception, match="squash"):
        bad.validate(mgr=None)


@pytest.mark.parametrize("stack", STACKS)
def test_personal_databases_clone_the_newest_golden_snapshot(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    wanted = {e["name"] for e in config_values(stack)["akiba:engineers"] if e.get("personalDatabase")}
    assert wanted and set(plan.outputs["personalDatabases"]) == wanted
    for name in wanted:
        claim = _named(plan, "PersistentVolumeClaim", f"db-{name}")
        assert claim["spec"]["dataSource"] == {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": "golden-newest",
        }
        policy = _named(plan, "NetworkPolicy", f"db-{name}")["spec"]
        assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": f"db-{name}"}
        (rule,) = policy["ingress"]
        # Their namespace by the name the API server sets: no label anyone puts on a pod admits it.
        namespace = {"matchLabels": {"kubernetes.io/metadata.name": f"eng-{name}"}}
        assert rule["from"] == [{"namespaceSelector": namespace}]
        assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
        # Their connection, in their own namespace: they never need a right in akiba-db.
        connection = [
            r
            for r in _kind(plan, "Secret")
            if r.raw_inputs["metadata"] == {**r.raw_inputs["metadata"], "name": "database", "namespace": f"eng-{name}"}
        ]
        (mine,) = [r.raw_inputs["stringData"] for r in connection]
        server = _named(plan, "Secret", f"db-{name}")["stringData"]
        assert mine["password"] == server["password"] and mine["host"] == f"db-{name}.akiba-db.svc"
        assert {k: mine[k] for k in ("port", "user", "database")} == {
            "port": "5432",
            "user": "postgres",
            "database": "postgres",
        }
    assert {n: e["secretName"] for n, e in plan.outputs["personalDatabases"].items()} == {
        n: f"eng-{n}/database" for n in wanted
    }
    # Passwords are no stack output (contract v2): each engineer reads theirs in their namespace.
    assert "personalDatabasePasswords" not in plan.outputs
    # Personal claims and servers do not hold `pulumi up` until the first snapshot exists.
    for name in wanted:
        for kind in ("PersistentVolumeClaim", "Deployment"):
            assert _named(plan, kind, f"db-{name}")["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


@pytest.mark.parametrize("stack", STACKS)
def test_golden_snapshots_follow_only_a_successful_load(plans: dict[str, Plan], stack: str) -> None:
    """The snapshot is a container after the refresh init container: a failed or unfinished load
    is never snapshotted, on the first run (a Job made now) or any night (the CronJob)."""
    plan = plans[stack]
    nightly = _named(plan, "CronJob", "golden-refresh")["spec"]["jobTemplate"]["spec"]
    first = _named(plan, "Job", "golden-refresh-initial")
    assert first["spec"] == nightly
    assert first["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    pod = nightly["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["refresh"]
    assert [c["name"] for c in pod["containers"]] == ["snapshot"]
    script = pod["containers"][0]["command"][-1]
    # Depth one: snapshots are taken of the golden volume itself, never of a clone.
    assert "persistentVolumeClaimName: golden-postgres" in script and "golden-newest" in script
    # Only the snapshot step carries the API token; the refresh step holds the production URL.
    assert pod["automountServiceAccountToken"] is False
    assert [m["name"] for m in pod["containers"][0]["volumeMounts"]] == ["api"]
    assert "volumeMounts" not in pod["initContainers"][0]
    assert not [r for r in plan.resources if r.type.endswith(":VolumeSnapshot")], "the pipeline takes the snapshots"


def _stateful(plan: Plan) -> list[Recorded]:
    return [r for r in plan.resources if r.type.rsplit(":", 1)[-1] in STATEFUL_K8S_KINDS]


def test_prod_protects_every_stateful_resource(plans: dict[str, Plan]) -> None:
    found = _stateful(plans["prod"])
    kinds = {r.type.rsplit(":", 1)[-1] for r in found}
    assert kinds >= {"CephCluster", "CephBlockPool", "CephFilesystem", "CephNFS", "PersistentVolumeClaim"}
    unprotected = [r.urn for r in found if not (r.protect and r.retain_on_delete)]
    assert unprotected == []
    # Deleting a claim or a snapshot object keeps the data in Ceph; the filesystem survives its CR.
    assert _named(plans["prod"], "StorageClass", "akiba-rbd")["reclaimPolicy"] == "Retain"
    assert _named(plans["prod"], "StorageClass", "akiba-cephfs")["reclaimPolicy"] == "Retain"
    assert _named(plans["prod"], "VolumeSnapshotClass", "akiba-rbd")["deletionPolicy"] == "Retain"
    assert _named(plans["prod"], "CephFilesystem", "homes")["spec"]["preserveFilesystemOnDelete"] is True


def test_dev_can_be_torn_down(plans: dict[str, Plan]) -> None:
    assert all(not r.protect for r in _stateful(plans["dev"]))
    assert _named(plans["dev"], "StorageClass", "akiba-rbd")["reclaimPolicy"] == "Delete"


def test_more_copies_than_hosts_is_refused() -> None:
    from stacks.problems import ConfigError

    def too_many(cfg: dict[str, Any]) -> None:
        cfg["akiba:storage"]["replicas"] = 3

    with pytest.raises(ConfigError, match=r"akiba:storage.replicas: expected at most 2 \(nodes with Ceph disks\)"):
        parse(edited("dev", too_many))


def test_the_golden_load_waits_for_its_server_and_never_runs_twice(tmp_path: Path) -> None:
    script = refresh_script()
    path = tmp_path / "refresh.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True, check=False).returncode == 0
    steps = script.splitlines()
    wait = next(i for i, line in enumerate(steps) if line.startswith("pg_isready"))
    guard = next(i for i, line in enumerate(steps) if "pg_stat_activity" in line)
    load = next(i for i, line in enumerate(steps) if line.startswith("pg_dump"))
    assert wait < guard < load
    # The load announces itself under the name the guard looks for.
    assert f"application_name={REFRESH_APP}" in steps[load] and f"'{REFRESH_APP}'" in steps[guard]


def test_the_export_job_applies_the_wanted_exports_and_removes_the_rest(tmp_path: Path) -> None:
    """The Job's two steps run with kubectl and ceph stand-ins: each exported home's subvolume is
    found from its bound volume, its path goes into the export, and every other export under
    /homes (the old whole-tree one, a removed engineer's) is removed; others are left alone."""
    bash = require_tool("bash", "apt install bash")
    exports = (HomeExport("tarui", ("192.168.10.51",)), HomeExport("yuta", ("192.168.10.52", "192.168.10.64/28")))
    bin_dir, etc, calls = tmp_path / "bin", tmp_path / "etc", tmp_path / "calls"
    for d in (bin_dir, etc / "rook", etc / "ceph", tmp_path / "resolved"):
        d.mkdir(parents=True)
    (etc / "rook" / "mon-endpoints").write_text("a=10.0.0.1:6789,b=10.0.0.2:6789")
    (bin_dir / "kubectl").write_text(
        '#!/bin/sh\necho "kubectl $*" >> "$CALLS"\n'
        'case "$*" in *"get pvc home -n eng-"*) printf pv-%s "${5#eng-}" ;; *"get pv pv-"*) printf csi-vol-%s "${3#pv-}" ;; esac\n'
    )
    (bin_dir / "ceph").write_text(
        '#!/bin/sh\necho "ceph $*" >> "$CALLS"\n'
        'case "$*" in\n'
        '  "fs subvolume getpath homes "*) echo "/volumes/csi/$5/uuid" ;;\n'
        '  "nfs export apply homes -i "*) cp "$6" "$CALLS.$(wc -l < "$CALLS")" ;;\n'
        '  "nfs export ls homes --format json") echo \'["/homes", "/homes/tarui", "/homes/gone", "/scratch"]\' ;;\n'
        '  "nfs export info homes "*) exit 1 ;;\n'
        "esac\n"
    )
    for tool in ("kubectl", "ceph"):
        (bin_dir / tool).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "CALLS": str(calls),
        "ROOK_CEPH_USERNAME": "client.admin",
        "ROOK_CEPH_SECRET": "k",
    }

    def run(script: str) -> None:
        # The pod's paths, moved under tmp_path (each replaced once: tmp_path itself is under /tmp).
        for pod_path, token in (("/resolved", "@R@"), ("/etc/", "@E@"), ("/tmp/", "@T@")):
            script = script.replace(pod_path, token)
        script = (
            script.replace("@R@", str(tmp_path / "resolved")).replace("@E@", f"{etc}/").replace("@T@", f"{tmp_path}/")
        )
        subprocess.run([bash, "-c", script], env=env, check=True, timeout=30)

    run(resolve_script(exports))
    assert (tmp_path / "resolved" / "yuta").read_text() == "csi-vol-yuta"
    run(export_script("homes", exports))
    log = calls.read_text().splitlines()
    applied = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("calls.*"), key=lambda p: int(p.suffix[1:]))]
    assert [(a["pseudo"], a["path"]) for a in applied] == [
        ("/homes/tarui", "/volumes/csi/csi-vol-tarui/uuid"),
        ("/homes/yuta", "/volumes/csi/csi-vol-yuta/uuid"),
    ]
    assert applied[1]["clients"][0]["addresses"] == ["192.168.10.52", "192.168.10.64/28"]
    removed = [line.split()[-1] for line in log if line.startswith("ceph nfs export rm")]
    assert removed == ["/homes", "/homes/gone"]
    assert "mon_host = 10.0.0.1:6789,10.0.0.2:6789" in (etc / "ceph" / "ceph.conf").read_text()


@pytest.mark.parametrize("stack", STACKS)
def test_scratch_classes_delete_what_their_claims_leave(plans: dict[str, Plan], stack: str) -> None:
    """Engineers' own claims and snapshots free their space in Ceph when deleted; otherwise the
    same pools and drivers as the platform's classes."""
    assert _kind(plans[stack], "StorageClass")
    for scratch, kept in (("akiba-rbd-scratch", "akiba-rbd"), ("akiba-cephfs-scratch", "akiba-cephfs")):
        new, old = _named(plans[stack], "StorageClass", scratch), _named(plans[stack], "StorageClass", kept)
        assert new["reclaimPolicy"] == "Delete"
        assert (new["provisioner"], new["parameters"]) == (old["provisioner"], old["parameters"])
        assert "annotations" not in new["metadata"]  # akiba-rbd stays the default class
    assert _named(plans[stack], "VolumeSnapshotClass", "akiba-rbd-scratch")["deletionPolicy"] == "Delete"
    if stack == "prod":
        assert _named(plans[stack], "StorageClass", "akiba-cephfs")["reclaimPolicy"] == "Retain"
