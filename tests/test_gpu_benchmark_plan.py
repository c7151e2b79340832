"""The GPU benchmark in both plans: a Job per GPU model present, results on a protected volume."""

from __future__ import annotations

from typing import Any

import pytest

from tools.plan.runner import Plan

JOB = "kubernetes:batch/v1:Job"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"


def _benchmark_jobs(plan: Plan) -> list[Any]:
    return [j for j in plan.by_type(JOB) if j.name.startswith("gpu-benchmark-")]


@pytest.mark.parametrize(
    ("stack", "models"),
    [
        # prod's burst group is modelled by g2.2xlarge (Kepler): no current PyTorch for it.
        ("prod", {"gtx-1050-ti", "gtx-1060", "gtx-1070", "gtx-1080", "gtx-980-ti"}),
        ("dev", {"gtx-1060", "gtx-750-ti", "tesla-t4"}),
    ],
)
def test_one_job_per_gpu_model(plans: dict[str, Plan], stack: str, models: set[str]) -> None:
    jobs = _benchmark_jobs(plans[stack])
    selected = {j.raw_inputs["spec"]["template"]["spec"]["nodeSelector"]["akiba.io/gpu-model"] for j in jobs}
    assert selected == models and len(jobs) == len(models)
    for job in jobs:
        pod = job.raw_inputs["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "gpu-benchmark-results"


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_results_live_on_cephfs_and_are_protected_in_prod(plans: dict[str, Plan], stack: str) -> None:
    (pvc,) = [r for r in plans[stack].by_type(PVC) if r.name == "gpu-benchmark-results"]
    assert pvc.raw_inputs["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc.raw_inputs["spec"]["storageClassName"] == "akiba-cephfs"
    assert pvc.protect is (stack == "prod") and pvc.retain_on_delete is (stack == "prod")
    for job in _benchmark_jobs(plans[stack]):
        assert pvc.urn in job.dependencies
