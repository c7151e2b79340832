"""Ceph on Kubernetes: OSDs on exactly the declared SSDs, pools and classes, least-privilege
clients, homes owned by their engineers, personal databases cloned from the newest golden
snapshot, and nothing that holds data left unprotected in prod."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.storage.personal_databases import REFRESH_APP, refresh_script
from policy.akiba_policy.rules import STATEFUL_K8S_KINDS
from tests.conftest import config_values, edited, parse
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


@pytest.mark.parametrize("stack", STACKS)
def test_every_engineer_has_a_home_owned_by_them(plans: dict[str, Plan], stack: str) -> None:
    for eng in config_values(stack)["akiba:engineers"]:
        claim = _named(plans[stack], "PersistentVolumeClaim", f"home-{eng['name']}")
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"] == "akiba-cephfs"
        job = _named(plans[stack], "Job", f"home-owner-{eng['name']}")
        command = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
        gid = eng.get("gid", eng["uid"])
        assert command.startswith(f"chown {eng['uid']}:{gid} /home/{eng['name']}")


@pytest.mark.parametrize("stack", STACKS)
def test_homes_are_exported_over_nfs(plans: dict[str, Plan], stack: str) -> None:
    nfs = plans[stack].outputs["nfs"]
    assert nfs["export"] == "/homes" and nfs["port"] == 32049
    assert nfs["servers"] == [n["ip"] for n in config_values(stack)["akiba:nodes"]]
    service = _named(plans[stack], "Service", "homes-nfs")
    assert service["spec"]["ports"][0]["nodePort"] == 32049


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
        assert rule["from"] == [{"podSelector": {"matchLabels": {"akiba.io/engineer": name}}, "namespaceSelector": {}}]
        assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert plan.outputs["personalDatabasePasswords"] == "[secret]"
    assert "personalDatabasePasswords" in plan.secret_outputs
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
