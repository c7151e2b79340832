"""`python -m tools.spot_prices --stack prod [--json] [--days 7] [--region R --zones A,B --types T,U]`.

Exit status: 0 with a report, 1 when no configured type has any price in the zones (the report
is still printed), 2 for a problem to fix first (stack file, unknown type, credentials,
network), told in one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tools.plan.stackfile import StackFileError
from tools.spot_prices import catalogue, fetch, figures, render, settings
from tools.spot_prices.errors import SpotPriceError

ROOT = Path(__file__).resolve().parents[2]
MAX_DAYS = 90  # EC2 keeps 90 days of spot price history


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {value!r}") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_DAYS} (EC2 keeps {MAX_DAYS} days), not {days}")
    return days


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.spot_prices", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--stack", required=True, help="reads Pulumi.<stack>.yaml's akiba:burst section")
    p.add_argument("--region", help="instead of the stack's burst region")
    p.add_argument("--zones", type=_csv, help="comma-separated, instead of the stack's zones")
    p.add_argument("--types", type=_csv, help="comma-separated instance types, instead of the stack's")
    p.add_argument("--days", type=_days, default=7, help="history window (default 7)")
    p.add_argument("--json", action="store_true", help="JSON for machines instead of the table")
    return p


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    args = parser().parse_args(argv)
    end = datetime.now(UTC)
    start = end - timedelta(days=args.days)
    try:
        burst = settings.with_overrides(settings.load(root, args.stack), args.region, args.zones, args.types)
        for itype in burst.instance_types:  # before any AWS call: a typo should not cost a request
            catalogue.lookup(itype)
        records = fetch.spot_price_history(burst.region, burst.instance_types, burst.zones, start, end)
    except (SpotPriceError, StackFileError) as err:
        print(f"spot_prices: {err}", file=sys.stderr)
        return 2
    report = figures.build(
        burst.stack,
        burst.region,
        records,
        burst.instance_types,
        burst.zones,
        burst.max_size,
        catalogue.lookup,
        start,
        end,
    )
    print(render.as_json(report) if args.json else render.table(report))
    if report.cheapest is None:
        print(f"spot_prices: no spot price for {', '.join(burst.instance_types)} in {burst.region}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
