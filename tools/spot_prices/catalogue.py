"""GPU instance facts for the price report: the platform's one catalogue (components/burst/instance_types.py)."""

from __future__ import annotations

from components.burst.instance_types import INSTANCE_TYPES, InstanceType
from tools.spot_prices.errors import UnknownInstanceTypeError

InstanceFacts = InstanceType
CATALOGUE = INSTANCE_TYPES


def lookup(instance_type: str) -> InstanceFacts:
    try:
        return CATALOGUE[instance_type]
    except KeyError:
        raise UnknownInstanceTypeError(
            f"unknown instance type {instance_type!r}: components/burst/instance_types.py has no GPU count for it "
            f"(known: {', '.join(CATALOGUE)})"
        ) from None
