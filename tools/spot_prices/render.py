"""The report as a plain-text table for people and as JSON for machines."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tools.spot_prices.figures import MEAN_KIND, FleetCost, Report, Row
from tools.spot_prices.settings import PRODUCT

_NONE = "-"
_HEADERS = (
    "TYPE",
    "ZONE",
    "GPUS",
    "NOW $/h",
    "NOW $/GPU-h",
    "MIN $/h",
    "MEAN $/h",
    "MAX $/h",
    "MEAN $/GPU-h",
    "RECORDS",
)
_LEFT = 3  # the first three columns are text; the rest are numbers, right-aligned


def usd(value: Decimal | None) -> str:
    # Six places: EC2 quotes spot prices to the micro-dollar ("0.281300").
    return _NONE if value is None else f"{value:.6f}"


def table(report: Report) -> str:
    days = _days(report)
    lines = [
        f"Spot prices for stack {report.stack}: {report.region}, {PRODUCT}, last {days} days "
        f"({_when(report.start)} to {_when(report.end)})",
        f"USD. MEAN is {MEAN_KIND}: each price holds until the next record (the one in effect at the start counts).",
        "",
        *_grid([_HEADERS, *(_cells(r) for r in report.rows)]),
        "",
    ]
    best = report.cheapest
    if best is None:
        lines.append("Cheapest: no configured type has a spot price in these zones.")
    else:
        lines.append(
            f"Cheapest: {best.instance_type} in {best.zone} at {usd(best.current_per_gpu)} $/GPU-h now "
            f"({usd(best.stats.current if best.stats else None)} $/h; {days}-day mean {usd(best.mean_per_gpu)} $/GPU-h)"
        )
    lines.append("Cheapest per type:")
    type_width = max(len(t) for t in report.cheapest_by_type)
    for itype, row in report.cheapest_by_type.items():
        if row is None:
            zones = ", ".join(r.zone for r in report.rows if r.instance_type == itype)
            lines.append(f"  {itype:<{type_width}}  no price in {zones}")
        else:
            lines.append(
                f"  {itype:<{type_width}}  {row.zone}  {usd(row.current_per_gpu)} $/GPU-h now, "
                f"{days}-day mean {usd(row.mean_per_gpu)} $/GPU-h"
            )
    if report.upper_bound is None or report.cheapest_case is None:
        lines.append("Hourly cost at maxSize: unknown (no prices).")
    else:
        lines += [
            f"Hourly cost at maxSize {report.upper_bound.max_size}:",
            f"  upper bound    {_fleet(report.upper_bound)}, the highest current price",
            f"  cheapest case  {_fleet(report.cheapest_case)}, the lowest current price",
        ]
    if report.missing:
        by_type: dict[str, list[str]] = {}
        for row in report.missing:
            by_type.setdefault(row.instance_type, []).append(row.zone)
        pairs = "; ".join(f"{t} in {', '.join(zones)}" for t, zones in by_type.items())
        lines.append(f"No price records (not offered there, or no spot market; not in the figures above): {pairs}")
    return "\n".join(lines)


def as_json(report: Report) -> str:
    doc: dict[str, Any] = {
        "stack": report.stack,
        "region": report.region,
        "productDescription": PRODUCT,
        "windowStart": _iso(report.start),
        "windowEnd": _iso(report.end),
        "days": _days(report),
        "meanKind": MEAN_KIND,
        "rows": [_row_json(r) for r in report.rows],
        "cheapest": _choice_json(report.cheapest),
        "cheapestByType": {t: _choice_json(r) for t, r in report.cheapest_by_type.items()},
        "hourlyCostAtMaxSize": None
        if report.upper_bound is None or report.cheapest_case is None
        else {
            "maxSize": report.upper_bound.max_size,
            "upperBound": _fleet_json(report.upper_bound),
            "cheapestCase": _fleet_json(report.cheapest_case),
        },
        "missing": [{"instanceType": r.instance_type, "zone": r.zone} for r in report.missing],
    }
    return json.dumps(doc, indent=2)


def _cells(row: Row) -> tuple[str, ...]:
    s = row.stats
    return (
        row.instance_type,
        row.zone,
        f"{row.facts.gpus}x {row.facts.gpu.removeprefix('NVIDIA ')}",
        usd(s.current if s else None),
        usd(row.current_per_gpu),
        usd(s.minimum if s else None),
        usd(s.mean if s else None),
        usd(s.maximum if s else None),
        usd(row.mean_per_gpu),
        str(s.records if s else 0),
    )


def _grid(table_rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in table_rows) for i in range(len(_HEADERS))]
    return [
        "  ".join(
            c.ljust(w) if i < _LEFT else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in table_rows
    ]


def _fleet(cost: FleetCost) -> str:
    price = cost.row.stats.current if cost.row.stats else None
    return (
        f"{usd(cost.usd_per_hour)} $/h = {cost.max_size} x {cost.row.instance_type} in {cost.row.zone} "
        f"at {usd(price)} $/h ({cost.max_size * cost.row.facts.gpus} GPUs)"
    )


def _row_json(row: Row) -> dict[str, Any]:
    s = row.stats
    return {
        "instanceType": row.instance_type,
        "zone": row.zone,
        "gpus": row.facts.gpus,
        "gpu": row.facts.gpu,
        "vcpus": row.facts.vcpus,
        "memoryGib": row.facts.memory_gib,
        "records": s.records if s else 0,
        "current": _num(s.current if s else None),
        "currentSince": _iso(s.current_since) if s else None,
        "min": _num(s.minimum if s else None),
        "mean": _num(s.mean if s else None),
        "max": _num(s.maximum if s else None),
        "coveredFrom": _iso(s.covered_from) if s else None,
        "currentPerGpuHour": _num(row.current_per_gpu),
        "meanPerGpuHour": _num(row.mean_per_gpu),
    }


def _choice_json(row: Row | None) -> dict[str, Any] | None:
    if row is None or row.stats is None:
        return None
    return {
        "instanceType": row.instance_type,
        "zone": row.zone,
        "current": _num(row.stats.current),
        "currentPerGpuHour": _num(row.current_per_gpu),
        "meanPerGpuHour": _num(row.mean_per_gpu),
    }


def _fleet_json(cost: FleetCost) -> dict[str, Any]:
    return {
        "usdPerHour": _num(cost.usd_per_hour),
        "instanceType": cost.row.instance_type,
        "zone": cost.row.zone,
        "price": _num(cost.row.stats.current if cost.row.stats else None),
        "gpus": cost.max_size * cost.row.facts.gpus,
    }


def _num(value: Decimal | None) -> float | None:
    # JSON numbers for machines; float keeps ~15 significant digits, plenty for dollars.
    return None if value is None else float(value)


def _days(report: Report) -> int:
    return round((report.end - report.start) / timedelta(days=1))


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%MZ")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
