"""`python -m benchmarks.gpu.report RESULTS.jsonl [...] --out DIR`: the article's three charts
(speed.png, energy.png, cost.png) and report.md, a table of the figures per model and workload
with the model that ranks first on each chart.

The article's programs map to the workloads as train.py -> image-cnn, char_cnn.py -> char-cnn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.gpu import prices, results
from benchmarks.gpu.charts import CHARTS, draw
from benchmarks.gpu.summary import Figures, first, summarise, workloads

COLUMNS = (
    "GPU model",
    "runs",
    "iterations/s",
    "samples/s",
    "mean W",
    "peak W",
    "iterations/J",
    "price (as of)",
    "cost/h (yen)",
    "iterations/yen",
    "iterations/$",
)


def fmt(value: float | None) -> str:
    """Four significant figures, no exponent for everyday magnitudes; "n/a" when not measured."""
    if value is None:
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _row(f: Figures) -> list[str]:
    return [
        f.gpu_model,
        str(f.runs),
        fmt(f.iterations_per_s),
        fmt(f.samples_per_s),
        fmt(f.mean_w),
        fmt(f.peak_w),
        fmt(f.iterations_per_joule),
        f.cost_note,
        fmt(f.cost_per_hour_yen),
        fmt(f.iterations_per_yen),
        fmt(f.iterations_per_dollar),
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def markdown(figures: list[Figures], sources: list[Path], table: prices.PriceTable, price_file: Path) -> str:
    names = workloads(figures)
    lines = [
        "# GPU benchmark",
        "",
        f"Results: {', '.join(f'`{s}`' for s in sources)}. Prices: `{price_file}` (1 dollar = "
        f"{table.yen_per_dollar:g} yen; owned cards over {table.service_life_years:g} years plus "
        f"{table.electricity.price_per_kwh:g} {table.electricity.currency}/kWh at the measured power;"
        " cloud machines at their hourly price).",
        "",
        "Figures are medians over each model's runs. Power is the GPU board's (NVML), not the whole"
        " machine's at the wall as in the article. n/a: not measured (no NVML on a CPU run) or not priced.",
        "",
        "## First on each chart",
        "",
    ]
    winners = []
    for chart in CHARTS:
        cells = []
        for w in names:
            best = first(figures, w, chart.metric)
            cells.append("n/a" if best is None else f"{best.gpu_model} ({fmt(chart.metric(best))})")
        winners.append([f"{chart.title} ({chart.axis})", *cells])
    lines += _table(["chart", *names], winners)
    for w in names:
        lines += ["", f"## {w}", ""]
        lines += _table(list(COLUMNS), [_row(f) for f in figures if f.workload == w])
    lines += ["", *(f"![{c.title}]({c.file})" for c in CHARTS), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu.report", description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+", help="JSON lines from benchmarks.gpu.run")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs and report.md")
    p.add_argument("--prices", type=Path, default=prices.DEFAULT_PRICES, help="price table (YAML or JSON)")
    args = p.parse_args(argv)
    try:
        table = prices.load(args.prices)
        runs = [r for path in args.results for r in results.read(path)]
    except (prices.PriceTableError, results.ResultsFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no results in {', '.join(map(str, args.results))}", file=sys.stderr)
        return 2
    figures = summarise(runs, table)
    args.out.mkdir(parents=True, exist_ok=True)
    for chart in CHARTS:
        print(draw(chart, figures, args.out))
    report = args.out / "report.md"
    report.write_text(markdown(figures, args.results, table, args.prices), encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
