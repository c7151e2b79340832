"""The report's arithmetic, as pure functions of price records: no AWS, no clock, no I/O.

Prices are Decimal USD per instance-hour, as EC2 sends them ("0.281300"), so tests can check
figures exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from tools.spot_prices.catalogue import InstanceFacts

MEAN_KIND = "time-weighted"


@dataclass(frozen=True)
class PriceRecord:
    """One EC2 spot price change: `price` holds from `timestamp` until the next record."""

    instance_type: str
    zone: str
    price: Decimal
    timestamp: datetime


@dataclass(frozen=True)
class WindowStats:
    current: Decimal  # the newest record's price
    current_since: datetime
    minimum: Decimal
    mean: Decimal  # time-weighted over [covered_from, end]
    maximum: Decimal
    covered_from: datetime  # the window start, or the first record if it came later
    records: int  # records that set the price at some moment of the window


@dataclass(frozen=True)
class Row:
    """One (instance type, zone); `stats` is None when EC2 returned no price for it."""

    instance_type: str
    zone: str
    facts: InstanceFacts
    stats: WindowStats | None

    @property
    def current_per_gpu(self) -> Decimal | None:
        return None if self.stats is None else per_gpu_hour(self.stats.current, self.facts.gpus)

    @property
    def mean_per_gpu(self) -> Decimal | None:
        return None if self.stats is None else per_gpu_hour(self.stats.mean, self.facts.gpus)


@dataclass(frozen=True)
class FleetCost:
    """`max_size` instances all at one row's current price."""

    max_size: int
    row: Row
    usd_per_hour: Decimal


@dataclass(frozen=True)
class Report:
    stack: str
    region: str
    start: datetime
    end: datetime
    rows: list[Row]
    cheapest: Row | None
    cheapest_by_type: dict[str, Row | None]
    upper_bound: FleetCost | None  # the dearest current price, for every instance
    cheapest_case: FleetCost | None  # the cheapest current instance price, for every instance

    @property
    def missing(self) -> list[Row]:
        return [r for r in self.rows if r.stats is None]


def window_stats(records: Iterable[PriceRecord], start: datetime, end: datetime) -> WindowStats | None:
    """Current, min, time-weighted mean and max of one (type, zone) series over [start, end].

    Each price holds from its timestamp until the next record (or `end`). EC2 also returns the
    last change before `start` (the price in effect at `start`): it counts from `start`, and
    anything older was already replaced before the window and counts not at all. Records after
    `end` are ignored. When every counted record sits at `end` (no duration to weigh), the mean
    is the plain mean of their prices. None when no price falls in the window.
    """
    ordered = sorted((r for r in records if r.timestamp <= end), key=lambda r: r.timestamp)
    before = [r for r in ordered if r.timestamp <= start]
    # The last record at or before `start` is the price in effect when the window opens.
    counted = before[-1:] + [r for r in ordered if r.timestamp > start]
    if not counted:
        return None
    weighted = Decimal(0)
    total = 0
    for i, record in enumerate(counted):
        held_from = max(record.timestamp, start)
        held_until = counted[i + 1].timestamp if i + 1 < len(counted) else end
        micros = (held_until - held_from) // timedelta(microseconds=1)  # exact, unlike float seconds
        weighted += record.price * micros
        total += micros
    prices = [r.price for r in counted]
    mean = weighted / total if total else sum(prices, Decimal(0)) / len(prices)
    return WindowStats(
        current=counted[-1].price,
        current_since=counted[-1].timestamp,
        minimum=min(prices),
        mean=mean,
        maximum=max(prices),
        covered_from=max(counted[0].timestamp, start),
        records=len(counted),
    )


def per_gpu_hour(price: Decimal, gpus: int) -> Decimal:
    return price / gpus


def rows(
    records: Sequence[PriceRecord],
    instance_types: Sequence[str],
    zones: Sequence[str],
    facts: Callable[[str], InstanceFacts],
    start: datetime,
    end: datetime,
) -> list[Row]:
    """One row per configured (type, zone), in config order, with or without prices."""
    series: dict[tuple[str, str], list[PriceRecord]] = {}
    for record in records:
        series.setdefault((record.instance_type, record.zone), []).append(record)
    return [
        Row(t, z, facts(t), window_stats(series.get((t, z), []), start, end)) for t in instance_types for z in zones
    ]


def cheapest(candidates: Iterable[Row]) -> Row | None:
    """Lowest current $/GPU-hour; ties go to the lower window mean $/GPU-hour, then to config
    order (min() keeps the first), so the type the autoscaler models wins a dead heat."""
    priced = _priced(candidates)
    if not priced:
        return None
    row, _ = min(
        priced, key=lambda p: (per_gpu_hour(p[1].current, p[0].facts.gpus), per_gpu_hour(p[1].mean, p[0].facts.gpus))
    )
    return row


def cheapest_by_type(all_rows: Sequence[Row]) -> dict[str, Row | None]:
    types = dict.fromkeys(r.instance_type for r in all_rows)
    return {t: cheapest(r for r in all_rows if r.instance_type == t) for t in types}


def fleet_costs(all_rows: Sequence[Row], max_size: int) -> tuple[FleetCost | None, FleetCost | None]:
    """(upper bound, cheapest case) hourly cost of `max_size` instances.

    Upper bound: every instance at the highest current price among the configured types and
    zones (the autoscaler may launch any of them). Cheapest case: every instance at the lowest
    current instance price (per instance, not per GPU: this is what the bill counts). Ties
    report the earlier row in config order (max() and min() keep the first of equals)."""
    priced = _priced(all_rows)
    if not priced:
        return None, None
    dearest = max(priced, key=lambda p: p[1].current)
    cheapest_row = min(priced, key=lambda p: p[1].current)
    return (
        FleetCost(max_size, dearest[0], max_size * dearest[1].current),
        FleetCost(max_size, cheapest_row[0], max_size * cheapest_row[1].current),
    )


def _priced(candidates: Iterable[Row]) -> list[tuple[Row, WindowStats]]:
    return [(r, r.stats) for r in candidates if r.stats is not None]


def build(
    stack: str,
    region: str,
    records: Sequence[PriceRecord],
    instance_types: Sequence[str],
    zones: Sequence[str],
    max_size: int,
    facts: Callable[[str], InstanceFacts],
    start: datetime,
    end: datetime,
) -> Report:
    all_rows = rows(records, instance_types, zones, facts, start, end)
    upper, low = fleet_costs(all_rows, max_size)
    return Report(stack, region, start, end, all_rows, cheapest(all_rows), cheapest_by_type(all_rows), upper, low)
