"""The article's three charts as PNG files: speed, energy efficiency and cost efficiency, one
panel per workload, bars per GPU model in the article's order, the best bar highlighted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a node or in CI

import matplotlib.pyplot as plt  # after matplotlib.use(): the backend must be chosen first

from benchmarks.gpu.summary import Figures, first, workloads


@dataclass(frozen=True)
class Chart:
    file: str
    title: str
    axis: str
    metric: Callable[[Figures], float | None]


CHARTS: tuple[Chart, ...] = (
    Chart("speed.png", "Speed", "iterations / s", lambda f: f.iterations_per_s),
    Chart("energy.png", "Energy efficiency", "iterations / J", lambda f: f.iterations_per_joule),  # J = W·s
    Chart("cost.png", "Cost efficiency", "iterations / yen", lambda f: f.iterations_per_yen),
)

BAR = "#4c72b0"
BEST = "#dd8452"


def _label(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def draw(chart: Chart, figures: list[Figures], out_dir: Path) -> Path:
    names = workloads(figures)
    fig, axes = plt.subplots(1, len(names), figsize=(max(6.0, 5.5 * len(names)), 4.6), squeeze=False)
    for ax, workload in zip(axes[0], names, strict=True):
        rows = [f for f in figures if f.workload == workload]
        best = first(figures, workload, chart.metric)
        values = [chart.metric(f) for f in rows]
        heights = [v or 0.0 for v in values]
        colours = [BEST if best is not None and f is best else BAR for f in rows]
        bars = ax.bar(range(len(rows)), heights, color=colours)
        top = max(heights, default=0.0) or 1.0
        for bar, value in zip(bars, values, strict=True):
            text = "n/a" if value is None else _label(value)
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + top * 0.01, text, ha="center", va="bottom")
        ax.set_xticks(range(len(rows)), [f.gpu_model for f in rows], rotation=30, ha="right")
        ax.set_ylim(0, top * 1.15)
        ax.set_xlim(-0.6, max(len(rows), 4) - 0.4)  # a panel of two models keeps bars of the usual width
        if best is None:  # e.g. CPU runs only: no power, so no energy or cost figure
            ax.text(0.5, 0.5, "no model has this figure", transform=ax.transAxes, ha="center", color="grey")
        ax.set_title(workload)
        ax.set_ylabel(chart.axis)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"{chart.title}: {chart.axis}, higher is better (best in orange)")
    fig.tight_layout()
    path = out_dir / chart.file
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
