"""Custom resources against their CRDs' schemas (tools/plan/crds.py), strictly; the pinned CRD
files (crds.sha256, fetch, verify); routing between kubernetes-validate and the CRD checker.

Tests that need the CRD directory fail in CI when it is missing and skip elsewhere."""

from __future__ import annotations

import copy
import http.server
import json
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.conftest import IN_CI, STACKS, require_tool
from tests.servers import free_port
from tools.plan import __main__ as plan_main
from tools.plan import artifacts, checkers, crd_sources, crds
from tools.plan.runner import Plan


def require_crd_dir() -> Path:
    """The CRD directory (AKIBA_CRD_DIR, else the user cache, fetched when missing); fails in CI
    when missing, skips elsewhere."""
    found = crds.default_dir()
    if found is not None and found.is_dir():
        return found
    message = f"no CRD directory ({crds.ENV} unset or missing; python -m tools.plan.crds fetch --dest DIR)"
    if IN_CI:
        pytest.fail(f"{message}: CI must provide it (.ci/run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def index() -> crds.CrdIndex:
    return crds.load_dir(require_crd_dir())


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "rook-ceph", "labels": {"app.kubernetes.io/part-of": "akiba"}, **extra}


POOL: dict[str, Any] = {
    "apiVersion": "ceph.rook.io/v1",
    "kind": "CephBlockPool",
    "metadata": meta("kube-rbd"),
    "spec": {"failureDomain": "host", "replicated": {"size": 3, "requireSafeReplicaSize": True}},
}
CLUSTER: dict[str, Any] = {
    "apiVersion": "ceph.rook.io/v1",
    "kind": "CephCluster",
    "metadata": meta("rook-ceph"),
    "spec": {
        "cephVersion": {"image": "quay.io/ceph/ceph:v19.2.3", "allowUnsupported": False},
        "dataDirHostPath": "/var/lib/rook",
        "mon": {"count": 3, "allowMultiplePerNode": False},
        "mgr": {"count": 2, "modules": [{"name": "rook", "enabled": True}]},
        "dashboard": {"enabled": True, "ssl": True},
        "network": {"provider": "host"},
        "resources": {"osd": {"limits": {"cpu": 2, "memory": "4Gi"}, "requests": {"cpu": "500m", "memory": "2Gi"}}},
        "storage": {
            "useAllNodes": False,
            "useAllDevices": False,
            "nodes": [{"name": "akiba01", "devices": [{"name": "/dev/disk/by-id/ata-X_1"}]}],
        },
        "placement": {"all": {"tolerations": [{"key": "storage", "operator": "Exists", "effect": "NoSchedule"}]}},
    },
}
SNAPSHOT_CLASS: dict[str, Any] = {
    "apiVersion": "snapshot.storage.k8s.io/v1",
    "kind": "VolumeSnapshotClass",
    "metadata": {"name": "akiba-rbd"},
    "driver": "rook-ceph.rbd.csi.ceph.com",
    "deletionPolicy": "Delete",
    "parameters": {"clusterID": "rook-ceph", "csi.storage.k8s.io/snapshotter-secret-name": "rook-csi-rbd-provisioner"},
}
SERVICE_MONITOR: dict[str, Any] = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "ServiceMonitor",
    "metadata": meta("rook-ceph-mgr"),
    "spec": {
        "namespaceSelector": {"matchNames": ["rook-ceph"]},
        "selector": {"matchLabels": {"app": "rook-ceph-mgr"}},
        "endpoints": [{"port": "http-metrics", "path": "/metrics", "interval": "30s"}],
    },
}
VALID = {
    "CephBlockPool": POOL,
    "CephCluster": CLUSTER,
    "VolumeSnapshotClass": SNAPSHOT_CLASS,
    "ServiceMonitor": SERVICE_MONITOR,
}


def edited(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of doc with the dotted path set to value (a list index as a number)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return out


def problems(doc: dict[str, Any], index: crds.CrdIndex) -> list[str]:
    return [str(p) for p in crds.validate(doc, index)]


# --- validation against the real CRDs --------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_custom_resources_pass(index: crds.CrdIndex, kind: str) -> None:
    assert problems(VALID[kind], index) == []


def test_an_unknown_field_fails_with_its_path(index: crds.CrdIndex) -> None:
    typo = edited(POOL, "spec.replicated.sizee", 3)
    assert problems(typo, index) == ["spec.replicated.sizee: unknown field"]
    nested = edited(CLUSTER, "spec.storage.nodes.0.devices.0.nmae", "sdb")
    assert problems(nested, index) == ["spec.storage.nodes[0].devices[0].nmae: unknown field"]
    top = edited(SNAPSHOT_CLASS, "spec", {"driver": "x"})
    assert problems(top, index) == ["spec: unknown field"]


def test_a_wrong_type_fails_with_its_path(index: crds.CrdIndex) -> None:
    (problem,) = problems(edited(POOL, "spec.replicated.size", "three"), index)
    assert problem == 'spec.replicated.size: expected integer, found string "three"'
    (problem,) = problems(edited(CLUSTER, "spec.mon.allowMultiplePerNode", "no"), index)
    assert problem.startswith("spec.mon.allowMultiplePerNode: expected boolean, found string")


def test_enums_patterns_and_formats_are_checked(index: crds.CrdIndex) -> None:
    assert problems(edited(SNAPSHOT_CLASS, "deletionPolicy", "Keep"), index) == [
        'deletionPolicy: "Keep" is not one of ["Delete", "Retain"]'
    ]
    (problem,) = problems(edited(SERVICE_MONITOR, "spec.endpoints.0.interval", "30 seconds"), index)
    assert problem.startswith('spec.endpoints[0].interval: "30 seconds" does not match the pattern')
    (problem,) = problems(edited(CLUSTER, "spec.storage.osdMaxUpdatesInParallel", 2**31), index)  # format: int32
    assert problem == "spec.storage.osdMaxUpdatesInParallel: 2147483648 is not a valid int32"
    (problem,) = problems(edited(CLUSTER, "spec.mon.count", 10), index)
    assert problem == "spec.mon.count: 10 is greater than the maximum of 9"


def test_nulls_are_dropped_before_validation(index: crds.CrdIndex) -> None:
    doc = edited(POOL, "spec.deviceClass", None)
    doc = edited(doc, "spec.replicated.targetSizeRatio", None)
    doc = edited(doc, "metadata.annotations", None)
    assert problems(doc, index) == []
    assert crds.drop_nulls({"a": None, "b": [{"c": None, "d": 1}], "e": {"f": None}}) == {"b": [{"d": 1}], "e": {}}


def test_int_or_string_accepts_both_and_nothing_else(index: crds.CrdIndex) -> None:
    for port in (9283, "http-metrics"):
        assert problems(edited(SERVICE_MONITOR, "spec.endpoints.0.targetPort", port), index) == []
    (problem,) = problems(edited(SERVICE_MONITOR, "spec.endpoints.0.targetPort", True), index)
    assert problem == "spec.endpoints[0].targetPort: expected integer or string, found boolean true"
    for cpu in (2, "1500m"):
        assert problems(edited(CLUSTER, "spec.resources.osd.limits.cpu", cpu), index) == []
    (problem,) = problems(edited(CLUSTER, "spec.resources.osd.limits.memory", "4 gigs"), index)  # not a quantity
    assert problem.startswith('spec.resources.osd.limits.memory: "4 gigs" does not match the pattern')


def test_preserve_unknown_fields_keeps_unknown_fields(index: crds.CrdIndex) -> None:
    # CephCluster spec.cephConfig: map of maps; spec.external is strict, placement objects are not.
    ok = edited(CLUSTER, "spec.cephConfig", {"global": {"osd_pool_default_size": "3"}})
    assert problems(ok, index) == []


def test_list_map_keys_must_be_unique(index: crds.CrdIndex) -> None:
    group = {"name": "ceph", "rules": [{"alert": "CephDown", "expr": "up == 0"}]}
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta("ceph-rules"),
        "spec": {"groups": [group]},
    }
    assert problems(rule, index) == []
    (problem,) = problems(edited(rule, "spec.groups", [group, group]), index)
    assert problem == "spec.groups: duplicate entry (name='ceph') in a list of type map"


def test_metadata_is_checked_minimally(index: crds.CrdIndex) -> None:
    assert problems(edited(POOL, "metadata", {"namespace": "rook-ceph"}), index) == [
        "metadata.name: required field is missing"
    ]
    (problem,) = problems(edited(POOL, "metadata.labels", {"tier": 1}), index)
    assert problem == "metadata.labels.tier: expected string, found integer 1"
    assert problems(edited(POOL, "metadata.labelz", {}), index) == ["metadata.labelz: unknown field"]
    (problem,) = problems(edited(POOL, "metadata.name", "Kube_RBD"), index)
    assert problem.startswith('metadata.name: "Kube_RBD" does not match')
    assert problems({k: v for k, v in POOL.items() if k != "metadata"}, index) == [
        "metadata: required field is missing"
    ]


def test_an_unknown_kind_or_version_fails(index: crds.CrdIndex) -> None:
    (problem,) = problems(edited(POOL, "kind", "CephBlokPool"), index)
    assert problem.startswith("(root): no CRD for ceph.rook.io/v1 CephBlokPool")
    (problem,) = problems(edited(SERVICE_MONITOR, "kind", "Prometheus"), index)
    assert "no CRD for monitoring.coreos.com/v1 Prometheus" in problem
    (problem,) = problems(edited(SNAPSHOT_CLASS, "apiVersion", "snapshot.storage.k8s.io/v1beta1"), index)
    assert (
        problem == "(root): snapshot.storage.k8s.io/v1beta1 VolumeSnapshotClass is not served by its CRD (served: v1)"
    )
    (problem,) = problems(edited(POOL, "apiVersion", "ceph.rook.io/v2"), index)
    assert "no CRD for ceph.rook.io/v2 CephBlockPool" in problem and "(its CRD serves v1)" in problem


def test_the_index_holds_the_pinned_kinds(index: crds.CrdIndex) -> None:
    kinds = {(g, k) for g, _, k in index.schemas}
    for kind in ("CephCluster", "CephBlockPool", "CephFilesystem", "CephNFS", "CephClient"):
        assert ("ceph.rook.io", kind) in kinds
    for kind in ("VolumeSnapshotClass", "VolumeSnapshot", "VolumeSnapshotContent"):
        assert ("snapshot.storage.k8s.io", kind) in kinds
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert ("monitoring.coreos.com", kind) in kinds
    assert not index.groups & checkers.BUILTIN_GROUPS
    assert crds.load_dir(require_crd_dir()) is index, "loaded once per process"


# --- the structural schema rules, on small schemas (no CRD directory needed) -----------------


def check(schema: dict[str, Any], value: Any) -> list[str]:
    validator = crds._Validator(crds.structural(schema), format_checker=crds.FORMATS)
    return sorted(p.path + ": " + p.message for e in validator.iter_errors(value) for p in crds._problems(e))


def test_structural_rules() -> None:
    strict = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert check(strict, {"a": "x", "b": 1}) == ["b: unknown field"]
    assert check({"type": "object"}, {"b": 1}) == ["b: unknown field"], "an object without properties prunes all"
    preserved = strict | {"x-kubernetes-preserve-unknown-fields": True}
    assert check(preserved, {"a": "x", "b": 1}) == []
    assert check(preserved, {"a": 1}) == ["a: expected string, found integer 1"]
    assert check({"type": "object", "additionalProperties": {"type": "integer"}}, {"b": 1}) == []
    assert check({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}, 1.5) == [
        "(root): expected integer or string, found number 1.5"
    ]
    nullable = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string", "nullable": True}}}}
    assert check(nullable, {"a": ["x", None]}) == []
    assert check({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}, ["a", "a"]) == [
        '(root): duplicate entry ("a") in a list of type set'
    ]
    assert check({"type": "string", "format": "date-time"}, "2026-01-02T03:04:05Z") == []
    assert check({"type": "string", "format": "date-time"}, "2026-02-30T00:00:00Z") == [
        '(root): "2026-02-30T00:00:00Z" is not a valid date-time'
    ]


def test_a_document_that_is_not_an_object_fails(index: crds.CrdIndex) -> None:
    (problem,) = problems([POOL], index)  # type: ignore[arg-type]
    assert problem.startswith('(root): expected an object, found [{"apiVersion": "ceph.rook.io/v1"')
    assert problem.endswith("...") and len(problem) < 200


def test_yaml_timestamps_stay_strings() -> None:
    (doc,) = crds.load_yaml("at: 2026-01-02T03:04:05Z\nday: 2026-01-02\n")
    assert doc == {"at": "2026-01-02T03:04:05Z", "day": "2026-01-02"}


# --- the pinned CRD files: verify and fetch --------------------------------------------------


def test_verify_passes_on_the_crd_dir_and_fails_on_a_modified_copy(tmp_path: Path) -> None:
    crd_dir = require_crd_dir()
    assert crd_sources.verify(crd_dir) == []
    assert crds.main(["verify", str(crd_dir)]) == 0
    copied = tmp_path / "crds"
    shutil.copytree(crd_dir, copied)
    rook = copied / "rook-ceph-v1.20.6.crds.yaml"
    rook.chmod(0o644)
    rook.write_bytes(rook.read_bytes().replace(b"type: integer", b"type: string", 1))
    (copied / "prometheus-operator-v0.93.0.crds.yaml").unlink()
    found = crd_sources.verify(copied)
    assert len(found) == 2
    assert "rook-ceph-v1.20.6.crds.yaml: sha256" in found[0] and "missing" in found[1]
    assert crds.main(["verify", str(copied)]) == 1


def test_the_checksum_file_pins_exactly_the_sources() -> None:
    assert list(crd_sources.pinned()) == [s.name for s in crd_sources.SOURCES]
    for source in crd_sources.SOURCES:
        for part in source.parts:
            assert part.url.startswith("https://raw.githubusercontent.com/") and len(part.sha256) == 64


def upstream_parts(crd_dir: Path) -> dict[str, bytes]:
    """Each upstream file, cut back out of the pinned files by the join rule."""
    parts: dict[str, bytes] = {}
    for source in crd_sources.SOURCES:
        data = (crd_dir / source.name).read_bytes()
        if source.separator:
            pieces = data.split(b"\n" + source.separator + source.separator)
            pieces = [p + b"\n" for p in pieces[:-1]] + [pieces[-1].removesuffix(source.separator)]
            pieces = [pieces[0]] + [source.separator + p for p in pieces[1:]]
        else:
            pieces = [data]
        assert len(pieces) == len(source.parts), source.name
        parts |= {part.url: piece for part, piece in zip(source.parts, pieces, strict=True)}
    return parts


def test_the_join_rule_and_part_checksums_reproduce_the_pinned_files() -> None:
    parts = upstream_parts(require_crd_dir())
    pins = crd_sources.pinned()
    for source in crd_sources.SOURCES:
        assert [crd_sources.sha256(parts[p.url]) for p in source.parts] == [p.sha256 for p in source.parts]
        assert crd_sources.sha256(source.join([parts[p.url] for p in source.parts])) == pins[source.name]


def test_fetch_writes_only_what_matches(tmp_path: Path) -> None:
    crd_dir = require_crd_dir()
    parts = upstream_parts(crd_dir)
    dest = tmp_path / "fetched"
    written = crd_sources.fetch(dest, downloader=parts.__getitem__)
    assert sorted(p.name for p in written) == sorted(crd_sources.pinned())
    assert crd_sources.verify(dest) == []
    assert sorted(p.name for p in dest.iterdir()) == sorted(crd_sources.pinned()), "no temporary files left"

    tampered = dict(parts)
    url = crd_sources.SOURCES[2].parts[1].url
    tampered[url] = tampered[url].replace(b"type: string", b"type: object", 1)
    other = tmp_path / "other"
    with pytest.raises(crd_sources.FetchError, match=r"podmonitors\.yaml: sha256") as err:
        crd_sources.fetch(other, downloader=tampered.__getitem__)
    assert "nothing written" in str(err.value)
    assert not other.exists()


def test_the_fetch_and_validate_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    crd_dir = require_crd_dir()
    parts = upstream_parts(crd_dir)
    downloads: list[str] = []

    def fake(url: str) -> bytes:
        downloads.append(url)
        return parts[url]

    monkeypatch.setattr(crd_sources, "download", fake)
    dest = tmp_path / "crds"
    assert crds.main(["fetch", "--dest", str(dest)]) == 0
    assert len(downloads) == 7 and crd_sources.verify(dest) == []
    assert crds.main(["fetch", "--dest", str(dest)]) == 0, "already there: nothing downloaded"
    assert len(downloads) == 7
    monkeypatch.setattr(crd_sources, "download", lambda url: b"")
    assert crds.main(["fetch", "--dest", str(tmp_path / "bad")]) == 1
    assert "nothing written" in capsys.readouterr().err
    good, bad = write(tmp_path, {"good": POOL, "bad": edited(POOL, "spec.replicated.size", "3")})
    assert crds.main(["validate", "--crd-dir", str(dest), str(good)]) == 0
    assert crds.main(["validate", "--crd-dir", str(dest), str(good), str(bad)]) == 1
    assert f'{bad}: spec.replicated.size: expected integer, found string "3"' in capsys.readouterr().out


def test_fetch_writes_nothing_on_a_bad_download(tmp_path: Path) -> None:
    calls: list[str] = []

    def fake(url: str) -> bytes:
        calls.append(url)
        return b"---\n404: Not Found\n"

    with pytest.raises(crd_sources.FetchError):
        crd_sources.fetch(tmp_path / "dest", downloader=fake)
    assert not (tmp_path / "dest").exists()
    assert calls == [p.url for s in crd_sources.SOURCES for p in s.parts]


# --- routing and the plan checker ------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_version", "builtin"),
    [
        ("v1", True),
        ("apps/v1", True),
        ("batch/v1", True),
        ("storage.k8s.io/v1", True),
        ("networking.k8s.io/v1", True),
        ("rbac.authorization.k8s.io/v1", True),
        ("snapshot.storage.k8s.io/v1", False),
        ("ceph.rook.io/v1", False),
        ("monitoring.coreos.com/v1", False),
        ("example.com/v1", False),
    ],
)
def test_routing(api_version: str, builtin: bool) -> None:
    assert checkers.is_builtin(api_version) is builtin


def test_builtin_groups_are_the_groups_kubernetes_validate_knows() -> None:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    groups = set()
    for definitions in base.glob("v*-local-strict/_definitions.json"):
        for schema in json.loads(definitions.read_text())["$defs"].values():
            groups |= {gvk["group"] for gvk in schema.get("x-kubernetes-group-version-kind", [])}
    assert groups == checkers.BUILTIN_GROUPS


def write(tmp_path: Path, docs: dict[str, dict[str, Any]]) -> list[Path]:
    paths = []
    for name, doc in docs.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(doc))  # JSON is YAML
        paths.append(path)
    return paths


def test_custom_resources_checker(tmp_path: Path) -> None:
    crd_dir = require_crd_dir()
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rook-ceph", "labelz": {}}}
    bad_pool = edited(POOL, "spec.replicated.sizee", 3)
    paths = write(tmp_path, {"ns": namespace, "pool": POOL, "bad-pool": bad_pool, "sm": SERVICE_MONITOR})
    (finding,) = checkers.custom_resources(paths, crd_dir)
    assert finding.artifact.name == "bad-pool.yaml" and finding.checker == "CRD schema"
    assert finding.message == "spec.replicated.sizee: unknown field"
    assert checkers.split_manifests(paths) == ([paths[0]], paths[1:])
    assert checkers.custom_resources(paths[:1], crd_dir) == [], "built-in kinds are not its business"


def test_kubernetes_validate_only_gets_builtin_kinds(tmp_path: Path) -> None:
    require_tool("kubernetes-validate", "pip install kubernetes-validate")
    bad_pool = edited(POOL, "spec.replicated.sizee", 3)
    assert checkers.kubernetes(write(tmp_path, {"bad-pool": bad_pool}), "1.36.4") == []
    # A built-in group with a kind it has no schema for is a finding, not a warning.
    unknown = {"apiVersion": "apps/v1", "kind": "Deploymint", "metadata": {"name": "x"}}
    (finding,) = checkers.kubernetes(write(tmp_path, {"unknown": unknown}), "1.36.4")
    assert "Couldn't find schema" in finding.message


def test_custom_resources_checker_needs_a_verified_crd_dir(tmp_path: Path) -> None:
    with pytest.raises(checkers.MissingCheckerError, match="CRD directory"):
        checkers.custom_resources([], tmp_path / "nowhere")
    with pytest.raises(checkers.MissingCheckerError, match=crds.ENV):
        checkers.custom_resources([], None)
    (tmp_path / "rook-ceph-v1.20.6.crds.yaml").write_text("---\n")
    (finding,) = checkers.custom_resources([], tmp_path)
    assert finding.checker == "CRD files" and "missing" in finding.message and "sha256" in finding.message


@pytest.mark.parametrize("ci", [True, False])
def test_the_plan_fails_on_a_missing_crd_dir_unless_allowed_on_a_laptop(
    ci: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("cloud_init", "netplan", "kubernetes"):
        monkeypatch.setattr(checkers, name, lambda *args: [])
    monkeypatch.setenv(crds.ENV, str(tmp_path / "nowhere"))
    monkeypatch.setenv("AKIBA_ALLOW_MISSING_CHECKERS", "1")
    monkeypatch.setenv("CI", "true" if ci else "false")
    art = artifacts.Artifacts(root=tmp_path, plan_json=tmp_path / "plan.json")
    assert plan_main.check_artifacts(art, "1.36.4") == (1 if ci else 0)
    out, err = capsys.readouterr()
    if ci:
        assert "error: CRD directory" in err
    else:
        assert "SKIPPED CRD schemas: CRD directory" in out


@pytest.mark.parametrize("stack", STACKS)
def test_the_plans_custom_resources_pass_their_crds(plans: dict[str, Plan], stack: str, tmp_path: Path) -> None:
    crd_dir = require_crd_dir()
    art = artifacts.write(plans[stack], tmp_path / stack)
    assert checkers.custom_resources(art.manifests, crd_dir) == []


class Upstream:
    """A local stand-in for the upstream host (AKIBA_CRD_MIRROR): serves files by URL path and
    counts the requests; no test reaches the internet."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        for url, data in files.items():
            path = root / url.removeprefix(crd_sources.RAW + "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.requests: list[str] = []
        upstream = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                upstream.requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def pinned_parts() -> dict[str, bytes]:
    """The real upstream files, from the CRD directory (read before a test unsets AKIBA_CRD_DIR)."""
    return upstream_parts(require_crd_dir())


@pytest.fixture
def fresh_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty user cache (its root returned); the test unsets AKIBA_CRD_DIR, as on a fresh clone."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_default_dir_is_akiba_crd_dir_as_it_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(crds.ENV, str(tmp_path / "nowhere"))
    monkeypatch.setattr(crd_sources, "download", lambda url: pytest.fail(f"downloaded {url}"))
    assert crds.default_dir() == tmp_path / "nowhere", "CI's directory wins; nothing fetched"


def test_a_fresh_clone_fetches_the_pinned_crds_once_then_works_offline(
    fresh_clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream = Upstream(tmp_path / "www", pinned_parts())
    monkeypatch.delenv(crds.ENV)
    monkeypatch.setenv(crd_sources.MIRROR_ENV, upstream.url)
    try:
        crd_dir = crds.default_dir()
    finally:
        upstream.stop()
    assert crd_dir == fresh_clone / "akiba" / "crds" / crd_sources.pins_id()
    assert crd_sources.verify(crd_dir) == []
    assert len(upstream.requests) == 7, "each pinned upstream file once"
    assert [p.name for p in crd_dir.parent.iterdir()] == [crd_dir.name], "no staging directory left"
    assert "fetching the pinned CRDs" in capsys.readouterr().err

    # The server is gone: the plan's CRD check runs from the cache.
    for name in ("cloud_init", "netplan", "kubernetes", "libvirt_domains"):
        monkeypatch.setattr(checkers, name, lambda *args: [])
    (pool,) = write(tmp_path, {"pool": POOL})
    art = artifacts.Artifacts(root=tmp_path, plan_json=tmp_path / "plan.json", manifests=[pool])
    assert plan_main.check_artifacts(art, "1.36.4") == 0
    out, err = capsys.readouterr()
    assert "checked CRD schemas: ok" in out and "fetching" not in err
    assert crds.main(["validate", str(pool)]) == 0
    assert len(upstream.requests) == 7


def test_a_tampered_download_is_refused_and_caches_nothing(
    fresh_clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = pinned_parts()
    url = crd_sources.SOURCES[2].parts[1].url
    parts[url] = parts[url].replace(b"type: string", b"type: object", 1)
    upstream = Upstream(tmp_path / "www", parts)
    monkeypatch.delenv(crds.ENV)
    monkeypatch.setenv(crd_sources.MIRROR_ENV, upstream.url)
    try:
        crd_dir = crds.default_dir()
    finally:
        upstream.stop()
    err = capsys.readouterr().err
    assert "nothing written" in err and "podmonitors.yaml: sha256" in err
    assert crd_dir.parent == fresh_clone / "akiba" / "crds"
    assert not crd_dir.parent.exists() or list(crd_dir.parent.iterdir()) == [], "no cache, no staging left"
    with pytest.raises(checkers.MissingCheckerError, match="CRD directory"):
        checkers.custom_resources([], crd_dir)


def test_an_unreachable_upstream_says_what_to_do(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(crds.ENV, raising=False)
    monkeypatch.setenv(crd_sources.MIRROR_ENV, f"http://127.0.0.1:{free_port()}")  # nothing listens
    crd_dir = crds.default_dir()
    assert not crd_dir.exists()
    err = capsys.readouterr().err
    assert "could not download https://raw.githubusercontent.com/rook/rook/v1.20.6/deploy/examples/crds.yaml" in err
    for advice in ("make crds", crd_sources.MIRROR_ENV, f"export {crds.ENV}=DIR"):
        assert advice in err
    assert crds.main(["verify"]) == 1, "verify checks, never downloads"
    assert f"{crd_dir}/rook-ceph-v1.20.6.crds.yaml: missing" in capsys.readouterr().out


def test_require_crd_dir_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(crds.ENV, str(tmp_path / "nowhere"))
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI must provide it"):
        require_crd_dir()
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no CRD directory"):
        require_crd_dir()
