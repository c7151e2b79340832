"""The benchmark Job manifest (benchmarks.gpu.job): valid for the cluster's Kubernetes, on the
right nodes with one GPU, bounded, non-root, and pinned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.gpu.job import benchmark_job_manifest
from stacks.gpus import GPU_MODELS
from tests.conftest import require_tool
from tools.plan import checkers

IMAGE = "registry.akiba.internal/akiba/ml-benchmark:2026.11.1"
LABELS = {"app.kubernetes.io/part-of": "akiba", "akiba.io/stack": "prod"}


def job(model: str = "gtx-1080", **kw: Any) -> dict[str, Any]:
    return benchmark_job_manifest(
        model, kw.pop("image", IMAGE), "akiba-workloads", "gpu-benchmark-results", LABELS, **kw
    )


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


@pytest.mark.checker
def test_the_job_is_valid_for_the_clusters_kubernetes(tmp_path: Path) -> None:
    require_tool("kubernetes-validate", "pip install kubernetes-validate")
    paths = []
    for model in [*GPU_MODELS, "g4dn.xlarge", "h100"]:
        path = tmp_path / f"{model}.yaml"
        path.write_text(yaml.safe_dump(job(model)))
        paths.append(path)
    assert checkers.kubernetes(paths, "1.36.4") == []


def test_it_runs_on_one_gpu_of_the_model_and_writes_that_models_file() -> None:
    spec = pod(job("gtx-970"))
    assert spec["nodeSelector"] == {"akiba.io/gpu-model": "gtx-970"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    (c,) = spec["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == c["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory", "nvidia.com/gpu"}
    args = c["args"]
    assert args[args.index("--gpu-model") + 1] == "gtx-970"
    assert args[args.index("--out") + 1] == "/results/gtx-970.jsonl"
    assert args[args.index("--device") + 1] == "cuda"  # never a silent CPU run filed as the card
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts["/results"]]["persistentVolumeClaim"] == {"claimName": "gpu-benchmark-results"}


def test_it_is_bounded_and_cleans_up() -> None:
    manifest = job()
    assert manifest["spec"]["backoffLimit"] <= 2
    assert manifest["spec"]["ttlSecondsAfterFinished"] > 0
    assert manifest["spec"]["activeDeadlineSeconds"] > 0
    assert pod(manifest)["restartPolicy"] == "Never"


def test_it_runs_as_non_root_with_nothing_extra() -> None:
    spec = pod(job())
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    sc = spec["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True


def test_one_job_per_model_so_two_runs_of_a_model_never_write_one_file_at_once() -> None:
    names = {job(m)["metadata"]["name"] for m in [*GPU_MODELS, "g4dn.xlarge"]}
    assert len(names) == len(GPU_MODELS) + 1
    assert job("g4dn.xlarge")["metadata"]["name"] == "gpu-benchmark-g4dn-xlarge"  # no dot in a Job name
    assert job()["metadata"]["labels"] == {
        **LABELS,
        "app.kubernetes.io/name": "gpu-benchmark",
        "akiba.io/gpu-model": "gtx-1080",
    }


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("registry.akiba.internal/akiba/ml-benchmark", "not pinned"),
        ("registry.akiba.internal:5000/akiba/ml-benchmark", "not pinned"),  # a port is not a tag
        ("registry.akiba.internal/akiba/ml-benchmark:latest", "'latest'"),
    ],
)
def test_an_unpinned_image_is_refused(image: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        job(image=image)


def test_a_digest_pins_the_image() -> None:
    image = "registry.akiba.internal/akiba/ml-benchmark@sha256:" + "a" * 64
    assert pod(job(image=image))["containers"][0]["image"] == image
