"""Power sampled in a background thread while the timed part runs, and the energy it adds up to.

Energy is the trapezoidal integral of the sampled power over time, so a run is charged for
what the board drew, not for its nameplate watts. The sampler knows nothing of NVML: it calls
a `read_watts` function, which keeps it testable without a GPU.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class PowerSummary:
    samples: int
    span_s: float  # first to last sample
    mean_w: float  # time-weighted: energy / span
    peak_w: float
    energy_j: float


def integrate(samples: list[tuple[float, float]]) -> PowerSummary:
    """Summarise (time s, power W) samples; energy by the trapezoidal rule."""
    if len(samples) < 2:
        raise ValueError(f"need at least two power samples to integrate, got {len(samples)}")
    energy = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(samples))
    span = samples[-1][0] - samples[0][0]
    if span <= 0:
        raise ValueError("power samples span no time")
    return PowerSummary(
        samples=len(samples),
        span_s=span,
        mean_w=energy / span,
        peak_w=max(p for _, p in samples),
        energy_j=energy,
    )


class PowerSampler:
    """`with PowerSampler(read): timed_work()`, then `.summary()`.

    One sample is taken on entry and one on exit, so the samples span the timed part; the
    thread adds one every `interval_s` in between. A failing read stops the sampling and is
    raised from `summary()`, so a broken meter never passes for a number.
    """

    def __init__(
        self,
        read_watts: Callable[[], float],
        interval_s: float = 0.05,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._read = read_watts
        self._interval = interval_s
        self._clock = clock
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._error: BaseException | None = None

    def _sample(self) -> None:
        self._samples.append((self._clock(), self._read()))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sample()
            except Exception as exc:  # surfaced by summary(): the thread has no one to tell
                self._error = exc
                return

    def __enter__(self) -> PowerSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is None:
            try:
                self._sample()
            except Exception as err:
                self._error = err

    def summary(self) -> PowerSummary:
        if self._error is not None:
            raise RuntimeError(f"power sampling failed: {self._error}") from self._error
        return integrate(sorted(self._samples))
