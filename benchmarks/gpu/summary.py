"""From result lines to the figures the report shows: per workload and GPU model, the median
over its runs of speed, energy efficiency and cost efficiency.

Speed and energy come from the measured fields (iterations, seconds, energy); cost is
recomputed from the price table given to the report, not taken from the line, because card
prices move faster than benchmarks are rerun (the article's 980 Ti halved in five months).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from benchmarks.gpu import devices, prices
from benchmarks.gpu.results import BenchmarkResult


@dataclass(frozen=True)
class Figures:
    """One (workload, GPU model): medians over `runs`; None where nothing was measured or priced."""

    workload: str  # "image-cnn (standard, batch 128)": runs of other sizes are other workloads
    gpu_model: str
    runs: int
    iterations_per_s: float
    samples_per_s: float
    mean_w: float | None
    peak_w: float | None
    iterations_per_joule: float | None
    cost_per_hour_yen: float | None
    iterations_per_yen: float | None
    iterations_per_dollar: float | None
    cost_note: str  # the price used, or why there is no cost


def workload_label(r: BenchmarkResult) -> str:
    # An iteration of batch 64 is not an iteration of batch 128: never put them in one chart.
    return f"{r.workload} ({r.size}, batch {r.batch_size})"


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _price_note(table: prices.PriceTable, model: str) -> str:
    entry = table.models.get(model)
    if entry is None:
        return "no price"
    if entry.kind == "cloud":
        return f"{entry.hourly:g} {entry.currency}/h ({entry.as_of})"
    return f"{entry.price:g} {entry.currency} ({entry.as_of})"


def _one_run(r: BenchmarkResult, table: prices.PriceTable) -> dict[str, float | None]:
    it_per_s = r.iterations / r.seconds
    row: dict[str, float | None] = {
        "iterations_per_s": it_per_s,
        "samples_per_s": it_per_s * r.batch_size,
        "mean_w": r.mean_w,
        "peak_w": r.peak_w,
        "iterations_per_joule": r.iterations / r.energy_j if r.energy_j else None,
        "cost_per_hour_yen": None,
        "iterations_per_yen": None,
        "iterations_per_dollar": None,
    }
    try:
        cost = prices.hourly_cost(table, r.gpu_model, r.mean_w)
    except prices.NotPricedError:
        return row
    row["cost_per_hour_yen"] = cost.yen
    row["iterations_per_yen"] = prices.iterations_per_unit(it_per_s, cost.yen)
    row["iterations_per_dollar"] = prices.iterations_per_unit(it_per_s, cost.dollar)
    return row


def summarise(runs: Iterable[BenchmarkResult], table: prices.PriceTable) -> list[Figures]:
    """Figures per (workload, model), workloads in first-seen order, models as the article ordered them."""
    groups: dict[tuple[str, str], list[BenchmarkResult]] = defaultdict(list)
    for r in runs:
        groups[(workload_label(r), r.gpu_model)].append(r)
    workloads = list(dict.fromkeys(w for w, _ in groups))
    out = []
    for (workload, model), rs in sorted(
        groups.items(), key=lambda kv: (workloads.index(kv[0][0]), devices.model_sort_key(kv[0][1]))
    ):
        rows = [_one_run(r, table) for r in rs]

        def med(key: str, rows: list[dict[str, float | None]] = rows) -> float | None:
            return _median(row[key] for row in rows)

        it_s, samples_s = med("iterations_per_s"), med("samples_per_s")
        assert it_s is not None and samples_s is not None  # every run has a speed
        per_yen = med("iterations_per_yen")
        note = _price_note(table, model)
        if per_yen is None and note != "no price":
            note += ", no measured power"
        out.append(
            Figures(
                workload=workload,
                gpu_model=model,
                runs=len(rs),
                iterations_per_s=it_s,
                samples_per_s=samples_s,
                mean_w=med("mean_w"),
                peak_w=med("peak_w"),
                iterations_per_joule=med("iterations_per_joule"),
                cost_per_hour_yen=med("cost_per_hour_yen"),
                iterations_per_yen=per_yen,
                iterations_per_dollar=med("iterations_per_dollar"),
                cost_note=note,
            )
        )
    return out


def workloads(figures: list[Figures]) -> list[str]:
    return list(dict.fromkeys(f.workload for f in figures))


def first(figures: list[Figures], workload: str, metric: Callable[[Figures], float | None]) -> Figures | None:
    """The model that ranks first on one chart (None when no model has the figure)."""
    ranked = [f for f in figures if f.workload == workload and metric(f) is not None]
    return max(ranked, key=lambda f: metric(f) or 0.0) if ranked else None
