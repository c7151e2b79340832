"""The report (python -m benchmarks.gpu.report): charts and table from a hand-made results
file whose figures are worked out by hand below, and the price table's validation."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from benchmarks.gpu import prices
from stacks.gpus import GPU_MODELS
from tests.gpu_benchmark_deps import require_modules

# A price table of round numbers: 1 year = 8760 h, so a card of 8760 yen costs 1 yen an hour.
PRICES = """
yen_per_dollar: 100
service_life_years: 1
electricity: {price_per_kwh: 20, currency: yen, source: test}
models:
  gtx-750-ti: {kind: owned, price: 8760, currency: yen, as_of: 2016-10, source: test}
  gtx-1080: {kind: owned, price: 87600, currency: yen, as_of: 2016-10, source: test}
  g4dn.xlarge: {kind: cloud, hourly: 0.5, currency: dollar, as_of: 2025-01, source: test}
"""

IMAGE, CHAR = "image-cnn (standard, batch 128)", "char-cnn (standard, batch 128)"


def result(model: str, workload: str, iterations: int, seconds: float, mean_w: float | None) -> dict[str, Any]:
    """A result line as the payload writes it; energy = mean power x time."""
    measured = mean_w is not None
    return {
        "schema_version": 1, "timestamp": "2016-12-01T00:00:00+00:00", "hostname": "akiba01",
        "gpu_model": model, "gpu_name": model, "device": "cuda" if measured else "cpu", "host_cpu": "x",
        "cpu_threads": 4, "driver_version": None, "cuda_version": None, "torch_version": "2.13.0",
        "workload": workload, "size": "standard", "batch_size": 128, "warmup": 10, "iterations": iterations,
        "seed": 0, "seconds": seconds, "iterations_per_s": 0.0, "samples_per_s": 0.0, "final_loss": 1.0,
        "power_source": "nvml" if measured else "unavailable: CPU run", "power_samples": 100 if measured else None,
        "mean_w": mean_w, "peak_w": mean_w * 1.2 if mean_w else None,
        "energy_j": mean_w * seconds if mean_w else None, "energy_counter_j": None, "iterations_per_joule": None,
        "price_kind": None, "cost_source": "unavailable: x", "cost_per_hour_yen": None,
        "cost_per_hour_dollar": None, "iterations_per_yen": None, "iterations_per_dollar": None,
    }  # fmt: skip


RESULTS = [
    # gtx-1080 image-cnn, three runs at 20, 16 and 25 it/s: the report shows the medians.
    result("gtx-1080", "image-cnn", 200, 10.0, 200.0),
    result("gtx-1080", "image-cnn", 200, 12.5, 200.0),
    result("gtx-1080", "image-cnn", 200, 8.0, 200.0),
    result("gtx-1080", "char-cnn", 300, 20.0, 150.0),
    result("g4dn.xlarge", "image-cnn", 200, 8.0, 70.0),
    result("g4dn.xlarge", "char-cnn", 300, 10.0, 60.0),
    result("cpu", "image-cnn", 200, 100.0, None),
    result("gtx-750-ti", "image-cnn", 200, 40.0, 50.0),  # last in the file, first in the report
]

# Worked by hand: it/s = iterations / seconds; it/J = iterations / (W x s);
# owned cost/h = price / 8760 h + 20 yen/kWh x kW; cloud cost/h = 0.5 $ x 100; it/yen = it/s x 3600 / cost/h.
EXPECTED: dict[str, dict[str, dict[str, float | None]]] = {
    IMAGE: {
        "gtx-750-ti": {"runs": 1, "iterations/s": 5, "samples/s": 640, "mean W": 50, "iterations/J": 0.1,
                       "cost/h (yen)": 2.0, "iterations/yen": 9000, "iterations/$": 900000},
        "gtx-1080": {"runs": 3, "iterations/s": 20, "samples/s": 2560, "mean W": 200, "iterations/J": 0.1,
                     "cost/h (yen)": 14.0, "iterations/yen": 20 * 3600 / 14, "iterations/$": 20 * 3600 / 0.14},
        "g4dn.xlarge": {"runs": 1, "iterations/s": 25, "samples/s": 3200, "mean W": 70, "iterations/J": 200 / 560,
                        "cost/h (yen)": 50.0, "iterations/yen": 1800, "iterations/$": 180000},
        "cpu": {"runs": 1, "iterations/s": 2, "samples/s": 256, "mean W": None, "iterations/J": None,
                "cost/h (yen)": None, "iterations/yen": None, "iterations/$": None},
    },
    CHAR: {
        "gtx-1080": {"runs": 1, "iterations/s": 15, "samples/s": 1920, "mean W": 150, "iterations/J": 0.1,
                     "cost/h (yen)": 13.0, "iterations/yen": 15 * 3600 / 13, "iterations/$": 15 * 3600 / 0.13},
        "g4dn.xlarge": {"runs": 1, "iterations/s": 30, "samples/s": 3840, "mean W": 60, "iterations/J": 0.5,
                        "cost/h (yen)": 50.0, "iterations/yen": 2160, "iterations/$": 216000},
    },
}  # fmt: skip
FIRST = {  # chart -> (image-cnn, char-cnn)
    "Speed": ("g4dn.xlarge", "g4dn.xlarge"),
    "Energy efficiency": ("g4dn.xlarge", "g4dn.xlarge"),
    "Cost efficiency": ("gtx-750-ti", "gtx-1080"),
}


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """Each "## heading" table of report.md as rows of {column: cell}."""
    out: dict[str, list[dict[str, str]]] = {}
    heading = ""
    header: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("## "):
            heading, header = line[3:], []
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not header:
                header = cells
                out[heading] = []
            else:
                out[heading].append(dict(zip(header, cells, strict=True)))
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_modules("matplotlib")
    from benchmarks.gpu.report import main

    root = tmp_path_factory.mktemp("report")
    (root / "prices.yaml").write_text(PRICES)
    (root / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RESULTS))
    assert main([str(root / "results.jsonl"), "--out", str(root / "out"), "--prices", str(root / "prices.yaml")]) == 0
    return root / "out"


@pytest.mark.parametrize("name", ["speed.png", "energy.png", "cost.png"])
def test_each_chart_is_a_real_png(report: Path, name: str) -> None:
    data = (report / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width >= 600 and height >= 400
    assert len(data) > 20_000  # bars, labels and two panels, not an empty canvas


def test_the_three_charts_differ(report: Path) -> None:
    assert len({(report / n).read_bytes() for n in ("speed.png", "energy.png", "cost.png")}) == 3


def test_the_table_shows_the_hand_worked_figures(report: Path) -> None:
    got = tables((report / "report.md").read_text())
    for workload, models in EXPECTED.items():
        rows = got[workload]
        # The article's order: by model number, cloud machines after the cards, the CPU last.
        assert [r["GPU model"] for r in rows] == list(models)
        for row in rows:
            for column, expected in models[row["GPU model"]].items():
                cell = row[column]
                if expected is None:
                    assert cell == "n/a", (workload, row["GPU model"], column)
                else:
                    assert float(cell) == pytest.approx(expected, rel=1e-3), (workload, row["GPU model"], column)


def test_the_table_names_the_first_model_on_each_chart(report: Path) -> None:
    rows = tables((report / "report.md").read_text())["First on each chart"]
    firsts = {r["chart"].split(" (")[0]: (r[IMAGE].split(" ")[0], r[CHAR].split(" ")[0]) for r in rows}
    assert firsts == FIRST


def test_a_bad_results_line_is_named(tmp_path: Path) -> None:
    require_modules("matplotlib")
    from benchmarks.gpu.report import main

    bad = tmp_path / "results.jsonl"
    bad.write_text(json.dumps(RESULTS[0]) + "\n" + json.dumps({**RESULTS[1], "seconds": "soon"}) + "\n")
    assert main([str(bad), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def write_prices(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("price: 87600", "price: -5"), "models.gtx-1080.price: Input should be greater than 0; found -5"),
        (("price: 87600, ", ""), "models.gtx-1080: Value error, an owned card needs 'price'"),
        (("price: 87600", "prcie: 87600"), "models.gtx-1080.prcie: Extra inputs are not permitted"),
        (("currency: dollar", "currency: euro"), "models.g4dn.xlarge.currency: Input should be 'yen' or 'dollar'"),
        (("yen_per_dollar: 100\n", ""), "yen_per_dollar: Field required"),
        (("gtx-750-ti:", "GTX 750 Ti:"), "models.GTX 750 Ti.[key]: String should match pattern"),
        (("hourly: 0.5", "hourly: 0.5, price: 1"), "models.g4dn.xlarge: Value error, a cloud machine needs 'hourly'"),
    ],
)
def test_a_bad_price_table_names_the_key(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = write_prices(tmp_path, PRICES.replace(*edit))
    with pytest.raises(prices.PriceTableError) as err:
        prices.load(path)
    assert str(err.value).startswith(f"{path}: 1 problem(s) in the price table:")
    assert message in str(err.value)


def test_every_problem_of_a_price_table_is_reported_at_once(tmp_path: Path) -> None:
    path = write_prices(tmp_path, PRICES.replace("price: 87600", "price: 0").replace("hourly: 0.5", "hourly: x"))
    with pytest.raises(prices.PriceTableError, match=r"2 problem\(s\)") as err:
        prices.load(path)
    assert "models.gtx-1080.price" in str(err.value) and "models.g4dn.xlarge.hourly" in str(err.value)


def test_a_price_table_that_is_not_yaml_or_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(prices.PriceTableError, match="not valid YAML"):
        prices.load(write_prices(tmp_path, "models: [unclosed"))
    with pytest.raises(prices.PriceTableError, match="cannot read the price table"):
        prices.load(tmp_path / "absent.yaml")


def test_the_shipped_price_table_prices_every_platform_gpu_model() -> None:
    table = prices.load(prices.DEFAULT_PRICES)
    assert set(GPU_MODELS) <= set(table.models)
    # The article's cards at their 2016 street prices, spread over three years.
    assert table.models["gtx-1080"].price == 80_000 and table.models["gtx-1080"].as_of == "2016-10"
    assert prices.hourly_cost(table, "gtx-1080", 180.0).yen == pytest.approx(80_000 / 26_280 + 27 * 0.18)
