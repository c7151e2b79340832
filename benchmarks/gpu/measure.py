"""Time one workload: warm-up steps, then timed steps with the power meter running.

CUDA runs asynchronously: without a synchronize before starting and after the last step the
clock would measure how fast Python queues kernels, not how fast the GPU runs them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from benchmarks.gpu.power import PowerSampler, PowerSummary
from benchmarks.gpu.workloads import TrainingStep


class PowerMeter(Protocol):
    """What the timing needs from a meter (nvml.NvmlDevice; a fake in tests)."""

    def read_watts(self) -> float: ...

    def energy_mj(self) -> float | None: ...


@dataclass(frozen=True)
class Measurement:
    seconds: float
    final_loss: float
    power: PowerSummary | None
    power_source: str  # "nvml" or "unavailable: <reason>"
    energy_counter_j: float | None


def measure(
    step: TrainingStep,
    warmup: int,
    iterations: int,
    synchronize: Callable[[], None],
    meter: PowerMeter | None,
    no_meter_reason: str,
    interval_s: float = 0.05,
) -> Measurement:
    """Run `warmup` untimed steps (allocator, cuDNN autotuning), then `iterations` timed ones."""
    for i in range(warmup):
        step(i)
    synchronize()
    sampler = PowerSampler(meter.read_watts, interval_s) if meter else None
    counter_start = meter.energy_mj() if meter else None
    with sampler if sampler else contextlib.nullcontext():
        start = time.perf_counter()
        loss = step(warmup)
        for i in range(warmup + 1, warmup + iterations):
            loss = step(i)
        synchronize()
        seconds = time.perf_counter() - start
    counter_end = meter.energy_mj() if meter else None

    power: PowerSummary | None = None
    source = f"unavailable: {no_meter_reason}"
    if sampler is not None:
        try:
            power = sampler.summary()
            source = "nvml"
        except (RuntimeError, ValueError) as exc:
            source = f"unavailable: {exc}"
    counter_j = None
    if power is not None and counter_start is not None and counter_end is not None:
        counter_j = (counter_end - counter_start) / 1000.0
    return Measurement(seconds, float(loss), power, source, counter_j)
