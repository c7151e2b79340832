"""The benchmark payload (python -m benchmarks.gpu.run) on this machine's CPU, its power
arithmetic with a fake meter, and the device -> model mapping."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.gpu import devices
from benchmarks.gpu.power import PowerSampler, integrate
from stacks.gpus import GPU_MODELS
from tests.conftest import ROOT
from tests.gpu_benchmark_deps import require_modules

# What a result line carries (the list plus the provenance the report needs).
FIELDS = {
    "schema_version", "timestamp", "hostname", "gpu_model", "gpu_name", "device", "host_cpu", "cpu_threads",
    "driver_version", "cuda_version", "torch_version", "workload", "size", "batch_size", "warmup", "iterations",
    "seed", "seconds", "iterations_per_s", "samples_per_s", "final_loss", "power_source", "power_samples",
    "mean_w", "peak_w", "energy_j", "energy_counter_j", "iterations_per_joule", "price_kind", "cost_source",
    "cost_per_hour_yen", "cost_per_hour_dollar", "iterations_per_yen", "iterations_per_dollar",
}  # fmt: skip
POWER_FIELDS = ("power_samples", "mean_w", "peak_w", "energy_j", "energy_counter_j", "iterations_per_joule")
COST_FIELDS = ("cost_per_hour_yen", "cost_per_hour_dollar", "iterations_per_yen", "iterations_per_dollar")


@pytest.fixture
def torch_installed() -> None:
    require_modules("torch")


def run_payload(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "benchmarks.gpu.run", "--device", "cpu", "--size", "tiny"]
    cmd += ["--batch-size", "8", "--warmup", "2", "--iterations", "6", "--out", str(out), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.usefixtures("torch_installed")
def test_cpu_run_writes_one_result_line_per_workload(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    res = run_payload(out, "--workload", "image-cnn", "char-cnn")
    assert res.returncode == 0, res.stderr
    rows = lines(out)
    assert [r["workload"] for r in rows] == ["image-cnn", "char-cnn"]
    for r in rows:
        assert set(r) == FIELDS
        assert (r["gpu_model"], r["device"], r["size"]) == ("cpu", "cpu", "tiny")
        assert (r["batch_size"], r["iterations"]) == (8, 6)
        assert r["seconds"] > 0 and r["iterations_per_s"] > 0
        assert r["iterations_per_s"] == pytest.approx(6 / r["seconds"])
        assert r["samples_per_s"] == pytest.approx(8 * r["iterations_per_s"])
        assert math.isfinite(r["final_loss"]) and r["final_loss"] > 0
        assert r["torch_version"].startswith("2.13.0") and r["hostname"]
        # No GPU, no NVML: no power figure is made up, and the line says why.
        assert all(r[f] is None for f in POWER_FIELDS)
        assert r["power_source"].startswith("unavailable:") and "CPU" in r["power_source"]
        assert all(r[f] is None for f in COST_FIELDS)
        assert r["cost_source"].startswith("unavailable:")
    # One readable line per workload on stdout.
    assert [line.split(" ")[0] for line in res.stdout.splitlines()] == ["image-cnn", "char-cnn"]


@pytest.mark.usefixtures("torch_installed")
def test_runs_append_and_are_seeded(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    for _ in range(2):
        res = run_payload(out, "--workload", "char-cnn")
        assert res.returncode == 0, res.stderr
    first, second = lines(out)  # appended, so one file on the shared volume collects every run
    assert first["final_loss"] == pytest.approx(second["final_loss"], rel=1e-4)  # same seed, same data and weights
    res = run_payload(out, "--workload", "char-cnn", "--seed", "1")
    assert lines(out)[2]["final_loss"] != pytest.approx(first["final_loss"], rel=1e-4)


@pytest.mark.usefixtures("torch_installed")
def test_a_bad_price_table_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text((ROOT / "benchmarks/gpu/prices.yaml").read_text().replace("price: 80000", "price: -80000"))
    out = tmp_path / "results.jsonl"
    res = run_payload(out, "--prices", str(bad))
    assert res.returncode == 2
    assert "models.gtx-1080.price" in res.stderr and "greater than 0" in res.stderr
    assert not out.exists()


@pytest.mark.usefixtures("torch_installed")
def test_asking_for_cuda_without_a_gpu_fails_instead_of_running_on_the_cpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "results.jsonl"
    res = run_payload(out, "--device", "cuda")
    assert res.returncode == 2 and "no CUDA device" in res.stderr
    assert not out.exists()


class FakeMeter:
    """A constant-power board with an energy counter, so the GPU path's bookkeeping runs here."""

    def __init__(self, watts: float, counter_mj: list[float]) -> None:
        self.watts = watts
        self.counter = iter(counter_mj)

    def read_watts(self) -> float:
        return self.watts

    def energy_mj(self) -> float | None:
        return next(self.counter)


@pytest.mark.usefixtures("torch_installed")
def test_measured_power_becomes_energy_and_cost_in_the_result() -> None:
    import torch

    from benchmarks.gpu import prices, run
    from benchmarks.gpu.measure import measure
    from benchmarks.gpu.workloads import build

    step = build("image-cnn", "tiny", 8, torch.device("cpu"), seed=0)
    m = measure(step, 1, 20, lambda: None, FakeMeter(150.0, [1_000.0, 9_000.0]), "unused", interval_s=0.005)
    assert m.power is not None and m.power_source == "nvml"
    assert m.power.mean_w == pytest.approx(150.0) and m.power.peak_w == 150.0
    assert m.power.energy_j == pytest.approx(150.0 * m.power.span_s)
    assert m.power.span_s == pytest.approx(m.seconds, abs=0.05)  # the samples cover the timed part
    assert m.energy_counter_j == pytest.approx(8.0)  # (9000 - 1000) mJ

    args = argparse.Namespace(size="tiny", batch_size=8, warmup=1, iterations=20, seed=0)
    target = run.Target(torch.device("cpu"), "gtx-1080", "NVIDIA GeForce GTX 1080", None)
    table = prices.load(prices.DEFAULT_PRICES)
    r = run.to_result(args, target, "image-cnn", m, "580.95", table)
    assert r.iterations_per_joule == pytest.approx(20 / r.energy_j)  # type: ignore[operator]
    # 80,000 yen over 3 years, plus 27 yen/kWh at 0.150 kW
    cost_per_hour = 80_000 / (3 * 8760) + 27 * 0.150
    assert r.price_kind == "owned" and r.cost_per_hour_yen == pytest.approx(cost_per_hour)
    assert r.iterations_per_yen == pytest.approx(r.iterations_per_s * 3600 / cost_per_hour)
    assert r.iterations_per_dollar == pytest.approx(r.iterations_per_s * 3600 / (cost_per_hour / 150))


def test_energy_is_the_trapezoidal_integral_of_power() -> None:
    s = integrate([(0.0, 100.0), (1.0, 200.0), (3.0, 200.0)])
    assert s.energy_j == pytest.approx(150.0 + 400.0)
    assert s.mean_w == pytest.approx(550.0 / 3.0)
    assert (s.peak_w, s.samples, s.span_s) == (200.0, 3, 3.0)


def test_the_sampler_samples_while_the_work_runs() -> None:
    with PowerSampler(lambda: 80.0, interval_s=0.01) as sampler:
        time.sleep(0.2)
    s = sampler.summary()
    assert s.samples >= 5
    assert s.span_s == pytest.approx(0.2, abs=0.1)
    assert s.energy_j == pytest.approx(80.0 * s.span_s)


def test_a_failing_meter_is_an_error_not_a_number() -> None:
    readings = iter([50.0, 50.0])

    def flaky() -> float:
        return next(readings)  # StopIteration on the third read, like an NVML error mid-run

    with PowerSampler(flaky, interval_s=0.01) as sampler:
        time.sleep(0.1)
    with pytest.raises(RuntimeError, match="power sampling failed"):
        sampler.summary()


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("NVIDIA GeForce GTX 1080", "gtx-1080"),
        ("GeForce GTX 750 Ti", "gtx-750-ti"),  # drivers before R470 left out "NVIDIA"
        ("NVIDIA GeForce GTX 1060 3GB", "gtx-1060"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("Tesla T4", "g4dn.xlarge"),
        ("NVIDIA A10G", "a10g"),  # unknown: a slug made from the name
    ],
)
def test_device_names_map_to_model_slugs(name: str, slug: str) -> None:
    assert devices.slug_for(name) == slug


def test_every_platform_gpu_model_is_recognised_by_its_device_name() -> None:
    # A card the stack declares must file its results under its node label's value.
    assert {model: devices.slug_for(info.product) for model, info in GPU_MODELS.items()} == {m: m for m in GPU_MODELS}


CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]


@pytest.mark.parametrize(
    ("capability", "arch_list", "supported"),
    [
        ((6, 1), CU130, False),  # GTX 1080 on torch's CUDA 13 build: no kernels
        ((5, 0), CU130, False),  # GTX 750 Ti
        ((6, 1), CU126, True),  # sm_60 cubins run on sm_61
        ((5, 2), CU126, True),  # GTX 970 / 980 Ti on sm_50 cubins
        ((9, 0), CU130, True),  # H100
        ((12, 1), CU130, True),  # newer than every cubin: the compute_120 PTX
    ],
)
def test_torch_builds_without_kernels_for_the_card_are_detected(
    capability: tuple[int, int], arch_list: list[str], supported: bool
) -> None:
    assert devices.arch_supported(capability, arch_list) is supported
