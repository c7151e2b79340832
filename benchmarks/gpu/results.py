"""One benchmark result = one JSON line; the same model writes the payload's lines and reads
them back in the report, so a field renamed on one side fails on the other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class BenchmarkResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1  # bumped when a field changes meaning
    timestamp: str  # ISO 8601, UTC
    hostname: str
    gpu_model: str  # platform slug (akiba.io/gpu-model value), "cpu" for a CPU run
    gpu_name: str  # as torch names the device ("NVIDIA GeForce GTX 1080"), or the CPU's name
    device: Literal["cuda", "cpu"]
    host_cpu: str  # the article's char_cnn.py was CPU-bound on an AMD host: keep the host's CPU
    cpu_threads: int
    driver_version: str | None  # NVIDIA driver (NVML)
    cuda_version: str | None  # the CUDA torch was built with
    torch_version: str
    workload: str
    size: str
    batch_size: int = Field(gt=0)
    warmup: int = Field(ge=0)
    iterations: int = Field(gt=0)
    seed: int
    seconds: float = Field(gt=0)
    iterations_per_s: float
    samples_per_s: float
    final_loss: float
    # Power: all None (and power_source says why) when not measured.
    power_source: str  # "nvml" or "unavailable: <reason>"
    power_samples: int | None
    mean_w: float | None
    peak_w: float | None
    energy_j: float | None  # trapezoidal integral of the sampled power over the timed part
    energy_counter_j: float | None  # NVML's energy counter over the same span, a cross-check
    iterations_per_joule: float | None
    # Cost, from the price table at run time (the report recomputes it from its own table).
    price_kind: Literal["owned", "cloud"] | None
    cost_source: str  # the formula with its numbers, or "unavailable: <reason>"
    cost_per_hour_yen: float | None
    cost_per_hour_dollar: float | None
    iterations_per_yen: float | None
    iterations_per_dollar: float | None


class ResultsFileError(Exception):
    """A results file with a line that is not a result; the message names the line."""


def append(path: Path, result: BenchmarkResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(result.model_dump_json() + "\n")


def read(path: Path) -> list[BenchmarkResult]:
    results = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            results.append(BenchmarkResult.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ResultsFileError(f"{path}:{number}: not a benchmark result: {exc}") from exc
    return results
