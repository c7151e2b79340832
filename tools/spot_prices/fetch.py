"""Asks EC2 for spot price history; the only module that talks to AWS."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

# botocore's ConnectionError (endpoint, TLS, proxy failures), not the builtin one.
from botocore.exceptions import ConnectionError as BotoConnectionError  # type: ignore[import-untyped]

from tools.spot_prices.errors import FetchError
from tools.spot_prices.figures import PriceRecord
from tools.spot_prices.settings import PRODUCT

# Fail within seconds when offline, not after botocore's default 60 s connect timeout and
# legacy retries: the report is interactive.
_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})


def client(region: str) -> Any:
    # The region is passed explicitly so AWS_REGION / AWS_DEFAULT_REGION / a profile's region
    # cannot make the report price a different region than the stack deploys to.
    return boto3.session.Session(region_name=region).client("ec2", region_name=region, config=_CLIENT_CONFIG)


def spot_price_history(
    region: str,
    instance_types: Sequence[str],
    zones: Sequence[str],
    start: datetime,
    end: datetime,
    ec2: Any = None,
) -> list[PriceRecord]:
    """Every Linux/UNIX price record for the types and zones from `start` to `end`, plus the
    one in effect at `start` (EC2 returns it; see figures.window_stats)."""
    ec2 = ec2 if ec2 is not None else client(region)
    wanted_types, wanted_zones = set(instance_types), set(zones)
    records: list[PriceRecord] = []
    try:
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=list(instance_types),
            ProductDescriptions=[PRODUCT],
            Filters=[{"Name": "availability-zone", "Values": list(zones)}],
            StartTime=start,
            EndTime=end,
        )
        for page in pages:
            for item in page.get("SpotPriceHistory", []):
                record = _record(item)
                # The request already filters; this guards against a service (or fake) that
                # ignores a filter and would mix another zone's prices into a row.
                if record.instance_type in wanted_types and record.zone in wanted_zones:
                    records.append(record)
    except (NoCredentialsError, PartialCredentialsError):
        raise FetchError(
            "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); "
            "ec2:DescribeSpotPriceHistory is the only permission needed"
        ) from None
    except (BotoConnectionError, HTTPClientError) as err:
        raise FetchError(f"cannot reach EC2 in {region}: {_one_line(err)}") from None
    except ClientError as err:
        error = err.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        raise FetchError(f"EC2 in {region} refused DescribeSpotPriceHistory: {code}: {_one_line(message)}") from None
    except BotoCoreError as err:
        # Expired SSO tokens, bad profiles and the like: botocore's own message says what to do.
        raise FetchError(f"AWS: {_one_line(err)}") from None
    return records


def _record(item: dict[str, Any]) -> PriceRecord:
    try:
        price = Decimal(item["SpotPrice"])
    except (KeyError, InvalidOperation):
        raise FetchError(f"EC2 returned a spot price record without a price: {item!r}") from None
    timestamp: datetime = item["Timestamp"]
    if timestamp.tzinfo is None:  # botocore parses to aware UTC; a naive one would not compare
        timestamp = timestamp.replace(tzinfo=UTC)
    return PriceRecord(
        instance_type=item["InstanceType"], zone=item["AvailabilityZone"], price=price, timestamp=timestamp
    )


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
