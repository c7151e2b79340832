"""`python -m tools.spot_prices`: the arithmetic on hand-made price records (exact, hand-checked
figures), then the whole command on moto's EC2.

moto 5.2.5 cannot be seeded with prices: its DescribeSpotPriceHistory answers one record per
instance type offered in each zone, always SpotPrice "0.00001" at 2006-01-02T15:04:05Z, and
ignores StartTime, EndTime and ProductDescriptions (moto/ec2/responses/spot_instances.py, which
has no backend store behind the price). So the moto tests read what moto returns, check it is
that (so a moto upgrade that changes it fails loudly here, not subtly), and check the report
against figures worked out from it; the time weighting is checked on the hand-made records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from moto import mock_aws

from tools.spot_prices import catalogue, fetch, figures, settings
from tools.spot_prices.__main__ import main
from tools.spot_prices.errors import UnknownInstanceTypeError
from tools.spot_prices.figures import PriceRecord

T0 = datetime(2026, 1, 5, tzinfo=UTC)
START, END = T0, T0 + timedelta(hours=10)
PROD_TYPES = ("g2.2xlarge", "g4dn.xlarge")
PROD_ZONES = ("ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d")
PROD_MAX_SIZE = 8


def rec(instance_type: str, zone: str, price: str, hours: float) -> PriceRecord:
    return PriceRecord(instance_type, zone, Decimal(price), T0 + timedelta(hours=hours))


def d(value: str) -> Decimal:
    return Decimal(value)


# --- the arithmetic, on hand-made records ---------------------------------------------------


def test_window_figures_are_time_weighted_from_the_price_in_effect_at_the_start() -> None:
    # Window 0h..10h. 0.50 was replaced at -2h (before the window): it never applies. 0.30 is
    # in effect at 0h and holds 4h, 0.20 holds 5h, 0.40 the last 1h. Given out of order.
    records = [
        rec("g4dn.12xlarge", "z", "0.20", 4),
        rec("g4dn.12xlarge", "z", "0.50", -5),
        rec("g4dn.12xlarge", "z", "0.40", 9),
        rec("g4dn.12xlarge", "z", "0.30", -2),
    ]
    stats = figures.window_stats(records, START, END)
    assert stats is not None
    assert stats.current == d("0.40")
    assert stats.current_since == T0 + timedelta(hours=9)
    assert stats.minimum == d("0.20")
    assert stats.maximum == d("0.40")  # not 0.50: that price ended before the window
    # (0.30 x 4 + 0.20 x 5 + 0.40 x 1) / 10 = 2.6 / 10; the plain mean of the three would be 0.30.
    assert stats.mean == d("0.26")
    assert stats.records == 3
    assert stats.covered_from == START
    # g4dn.12xlarge has 4 T4s: 0.40 / 4 and 0.26 / 4.
    row = figures.Row("g4dn.12xlarge", "z", catalogue.lookup("g4dn.12xlarge"), stats)
    assert row.current_per_gpu == d("0.10")
    assert row.mean_per_gpu == d("0.065")


def test_window_without_a_price_at_its_start_averages_from_the_first_record() -> None:
    stats = figures.window_stats([rec("t", "z", "1.00", 6), rec("t", "z", "0.50", 8)], START, END)
    assert stats is not None
    assert stats.covered_from == T0 + timedelta(hours=6)
    assert stats.mean == d("0.75")  # (1.00 x 2 + 0.50 x 2) / 4


def test_window_edges() -> None:
    assert figures.window_stats([], START, END) is None
    assert figures.window_stats([rec("t", "z", "0.10", 11)], START, END) is None  # after the window
    # A single record exactly at the end holds for no time: the mean falls back to its price.
    at_end = figures.window_stats([rec("t", "z", "0.10", 10)], START, END)
    assert at_end is not None
    assert (at_end.current, at_end.minimum, at_end.mean, at_end.maximum) == (d("0.10"),) * 4


# Two types with different GPU counts, two zones, window 0h..10h:
#   g4dn.xlarge   a: 0.25 all along                     now 0.25/GPU-h, mean 0.25/GPU-h
#   g4dn.xlarge   c: 0.30, then 0.20 from 5h            now 0.20/GPU-h, mean 0.25/GPU-h
#   g4dn.12xlarge a: 0.80 all along (4 GPUs)            now 0.20/GPU-h, mean 0.20/GPU-h
#   g4dn.12xlarge c: 1.20, then 0.96 from 8h (4 GPUs)   now 0.24/GPU-h, mean 1.152/4 = 0.288/GPU-h
MIXED = [
    rec("g4dn.xlarge", "a", "0.25", -1),
    rec("g4dn.xlarge", "c", "0.30", -1),
    rec("g4dn.xlarge", "c", "0.20", 5),
    rec("g4dn.12xlarge", "a", "0.80", -1),
    rec("g4dn.12xlarge", "c", "1.20", -1),
    rec("g4dn.12xlarge", "c", "0.96", 8),
]


def _mixed_report() -> figures.Report:
    return figures.build(
        "t", "r", MIXED, ["g4dn.xlarge", "g4dn.12xlarge"], ["a", "c"], PROD_MAX_SIZE, catalogue.lookup, START, END
    )


def test_cheapest_is_by_current_price_per_gpu_hour_then_by_mean() -> None:
    report = _mixed_report()
    by_pair = {(r.instance_type, r.zone): r for r in report.rows}
    assert by_pair["g4dn.12xlarge", "c"].current_per_gpu == d("0.24")
    assert by_pair["g4dn.12xlarge", "c"].mean_per_gpu == d("0.288")
    # g4dn.xlarge/c and g4dn.12xlarge/a both cost 0.20 per GPU-hour now; the mean (0.25 vs
    # 0.20) decides, although g4dn.xlarge/c comes first in config order.
    assert report.cheapest is by_pair["g4dn.12xlarge", "a"]
    assert report.cheapest_by_type == {
        "g4dn.xlarge": by_pair["g4dn.xlarge", "c"],
        "g4dn.12xlarge": by_pair["g4dn.12xlarge", "a"],
    }


def test_hourly_cost_at_max_size() -> None:
    report = _mixed_report()
    assert report.upper_bound is not None and report.cheapest_case is not None
    # Upper bound: 8 x the highest current instance price, 0.96 (g4dn.12xlarge in c).
    assert report.upper_bound.usd_per_hour == d("7.68")
    assert (report.upper_bound.row.instance_type, report.upper_bound.row.zone) == ("g4dn.12xlarge", "c")
    # Cheapest case: 8 x the lowest current instance price, 0.20 (g4dn.xlarge in c).
    assert report.cheapest_case.usd_per_hour == d("1.60")
    assert (report.cheapest_case.row.instance_type, report.cheapest_case.row.zone) == ("g4dn.xlarge", "c")


def test_a_dead_heat_goes_to_config_order_and_unpriced_rows_are_left_out() -> None:
    records = [rec("g4dn.xlarge", "a", "0.30", -1), rec("g5.xlarge", "a", "0.30", -1)]
    report = figures.build("t", "r", records, ["g5.xlarge", "g4dn.xlarge"], ["a", "b"], 2, catalogue.lookup, START, END)
    assert report.cheapest is not None and report.cheapest.instance_type == "g5.xlarge"
    assert [(r.instance_type, r.zone) for r in report.missing] == [("g5.xlarge", "b"), ("g4dn.xlarge", "b")]
    assert report.upper_bound is not None and report.upper_bound.usd_per_hour == d("0.60")


def test_a_type_not_in_the_catalogue_is_a_clear_error() -> None:
    with pytest.raises(UnknownInstanceTypeError, match=r"unknown instance type 'g9\.xlarge'.*burst/instance_types\.py"):
        catalogue.lookup("g9.xlarge")


def test_fetch_reads_every_page_and_only_the_asked_zones() -> None:
    class Pages:
        def __init__(self, pages: list[dict[str, Any]]) -> None:
            self.pages = pages
            self.kwargs: dict[str, Any] = {}

        def get_paginator(self, name: str) -> Pages:
            assert name == "describe_spot_price_history"
            return self

        def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
            self.kwargs = kwargs
            return self.pages

    def item(zone: str, price: str) -> dict[str, Any]:
        return {"InstanceType": "g4dn.xlarge", "AvailabilityZone": zone, "SpotPrice": price, "Timestamp": T0}

    fake = Pages([{"SpotPriceHistory": [item("a", "0.1")]}, {"SpotPriceHistory": [item("x", "0.9"), item("a", "0.2")]}])
    got = fetch.spot_price_history("r", ["g4dn.xlarge"], ["a"], START, END, ec2=fake)
    assert [r.price for r in got] == [d("0.1"), d("0.2")]
    assert fake.kwargs["ProductDescriptions"] == ["Linux/UNIX"]
    assert fake.kwargs["StartTime"] == START
    assert fake.kwargs["Filters"] == [{"Name": "availability-zone", "Values": ["a"]}]


# --- the whole command on moto --------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and moto's EC2. The environment names another region on purpose: the
    report must ask the stack's region."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


def test_prod_under_moto_prints_a_table_of_both_types_in_the_three_zones(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stack", "prod"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.startswith("TYPE") and "NOW $/GPU-h" in line for line in lines)
    for itype in PROD_TYPES:
        for zone in PROD_ZONES:
            assert any(line.split()[:2] == [itype, zone] for line in lines), f"no row for {itype} in {zone}:\n{out}"
    # moto prices g4dn.xlarge in ap-northeast-1 (so the region came from the stack, not
    # AWS_DEFAULT_REGION=us-east-1); moto's offerings, copied from AWS, list no g2 there.
    g4dn = next(line for line in lines if line.startswith("g4dn.xlarge"))
    assert "0.000010" in g4dn
    assert "Hourly cost at maxSize 8:" in out
    assert "upper bound    0.000080 $/h = 8 x g4dn.xlarge" in out
    assert "g2.2xlarge in ap-northeast-1a, ap-northeast-1c, ap-northeast-1d" in out


def test_prod_under_moto_json_figures_match_moto_records(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    started = datetime.now(UTC)
    assert main(["--stack", "prod", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)

    # What moto serves, asked directly, in the stack's region.
    ec2 = boto3.client("ec2", region_name="ap-northeast-1")
    served = ec2.describe_spot_price_history(
        InstanceTypes=list(PROD_TYPES), Filters=[{"Name": "availability-zone", "Values": list(PROD_ZONES)}]
    )["SpotPriceHistory"]
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in served:
        by_pair.setdefault((item["InstanceType"], item["AvailabilityZone"]), []).append(item)
    # moto's fixed fake (see the module docstring): one record per priced pair, long before
    # the window, so it is the price in effect for the whole window.
    assert sorted(by_pair) == [("g4dn.xlarge", z) for z in PROD_ZONES]
    assert all(len(items) == 1 for items in by_pair.values())
    assert all(i["Timestamp"] < started - timedelta(days=7) for i in served)
    assert {i["SpotPrice"] for i in served} == {"0.00001"}

    assert doc["region"] == "ap-northeast-1"
    assert doc["days"] == 7
    assert doc["meanKind"] == "time-weighted"
    rows = {(r["instanceType"], r["zone"]): r for r in doc["rows"]}
    assert list(rows) == [(t, z) for t in PROD_TYPES for z in PROD_ZONES]
    for pair, row in rows.items():
        if pair not in by_pair:
            assert row["current"] is None and row["records"] == 0
            continue
        price = float(by_pair[pair][0]["SpotPrice"])  # in effect all window: current = min = mean = max
        gpus = catalogue.lookup(pair[0]).gpus
        assert (row["current"], row["min"], row["mean"], row["max"]) == (price, price, price, price)
        assert row["currentPerGpuHour"] == row["meanPerGpuHour"] == price / gpus == 0.00001  # g4dn.xlarge: 1 T4
        assert row["records"] == 1
    # All g4dn.xlarge zones tie: the first configured zone wins.
    assert doc["cheapest"] == {
        "instanceType": "g4dn.xlarge",
        "zone": "ap-northeast-1a",
        "current": 0.00001,
        "currentPerGpuHour": 0.00001,
        "meanPerGpuHour": 0.00001,
    }
    assert doc["cheapestByType"]["g2.2xlarge"] is None
    cost = doc["hourlyCostAtMaxSize"]
    assert cost["maxSize"] == PROD_MAX_SIZE
    assert cost["upperBound"]["usdPerHour"] == pytest.approx(8 * 0.00001)  # 0.00008
    assert cost["upperBound"]["gpus"] == 8
    assert cost["cheapestCase"]["usdPerHour"] == pytest.approx(8 * 0.00001)
    assert doc["missing"] == [{"instanceType": "g2.2xlarge", "zone": z} for z in PROD_ZONES]


def test_overrides_pick_region_zones_and_types(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--stack", "prod", "--region", "us-east-1", "--zones", "us-east-1a", "--types", "g4dn.xlarge", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["region"] == "us-east-1"
    assert [(r["instanceType"], r["zone"], r["current"]) for r in doc["rows"]] == [
        ("g4dn.xlarge", "us-east-1a", 0.00001)
    ]


def test_catalogue_agrees_with_describe_instance_types(aws: None) -> None:
    # moto ships AWS's DescribeInstanceTypes data; it has dropped g2 and p3, the rest must match.
    ec2 = boto3.client("ec2", region_name="ap-northeast-1")
    known = {
        t["InstanceType"]: t
        for page in ec2.get_paginator("describe_instance_types").paginate()
        for t in page["InstanceTypes"]
    }
    checked = []
    for name, facts in catalogue.CATALOGUE.items():
        if name not in known:
            continue
        info = known[name]
        (gpu,) = info["GpuInfo"]["Gpus"]
        assert (gpu["Count"], f"{gpu['Manufacturer']} {gpu['Name']}") == (facts.gpus, facts.gpu), name
        assert info["VCpuInfo"]["DefaultVCpus"] == facts.vcpus, name
        assert info["MemoryInfo"]["SizeInMiB"] == facts.memory_gib * 1024, name
        checked.append(name)
    assert len(checked) == len(catalogue.CATALOGUE) - 3, sorted(set(catalogue.CATALOGUE) - set(checked))


# --- errors: one line, exit 2, no traceback -------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup either


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_no_credentials_is_one_line_and_exit_2(no_credentials: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "prod"]) == 2
    assert _one_line_error(capsys).startswith("spot_prices: no AWS credentials")


def test_no_network_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Nothing listens on the discard port: the connection is refused at once, as when offline.
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:9")
    assert main(["--stack", "prod"]) == 2
    assert _one_line_error(capsys).startswith("spot_prices: cannot reach EC2 in ap-northeast-1")


def test_unknown_type_on_the_command_line_fails_before_any_aws_call(
    no_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # With no credentials, reaching AWS would fail differently: the type is checked first.
    assert main(["--stack", "prod", "--types", "g4dn.xlarge,g9.xlarge"]) == 2
    assert "unknown instance type 'g9.xlarge'" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--region", "us-east-1"], "zone 'ap-northeast-1a' is not in region 'us-east-1' (pass --zones"),
        (["--zones", "us-west-2a"], "zone 'us-west-2a' is not in region 'ap-northeast-1'"),
    ],
)
def test_zones_must_belong_to_the_region(
    no_credentials: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["--stack", "prod", *argv]) == 2
    assert message in _one_line_error(capsys)


def test_unknown_stack_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "nope"]) == 2
    assert "Pulumi.nope.yaml: no such stack file" in _one_line_error(capsys)


def test_prod_burst_settings_come_from_the_stack_file() -> None:
    burst = settings.load(Path(__file__).resolve().parents[1], "prod")
    assert (burst.region, burst.zones, burst.instance_types, burst.max_size) == (
        "ap-northeast-1",
        PROD_ZONES,
        PROD_TYPES,
        PROD_MAX_SIZE,
    )
