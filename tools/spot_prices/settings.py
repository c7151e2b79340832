"""What to price: the stack file's `akiba:burst` section, with command-line overrides."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tools.plan.stackfile import read_stack_file
from tools.spot_prices.errors import SettingsError

BURST_KEY = "akiba:burst"
# Linux spot prices: what the burst nodes run (the launch template's Ubuntu AMI).
PRODUCT = "Linux/UNIX"


@dataclass(frozen=True)
class BurstSettings:
    stack: str
    region: str
    zones: tuple[str, ...]
    instance_types: tuple[str, ...]
    max_size: int


def load(root: Path, stack: str) -> BurstSettings:
    """The burst section of `Pulumi.<stack>.yaml`; keys the report does not use are ignored.

    Raises SettingsError, or StackFileError when the file itself cannot be read."""
    sf = read_stack_file(root, stack)
    where = f"{sf.path.name}: {BURST_KEY}"
    if BURST_KEY not in sf.config:
        raise SettingsError(f"{sf.path.name}: no {BURST_KEY} section, so nothing to price")
    try:
        burst = json.loads(sf.config[BURST_KEY])
    except json.JSONDecodeError as err:
        raise SettingsError(f"{where}: not a mapping ({err})") from None
    if not isinstance(burst, dict):
        raise SettingsError(f"{where}: expected a mapping, found {type(burst).__name__}")
    return BurstSettings(
        stack=stack,
        region=_text(burst.get("region"), f"{where}.region"),
        zones=_texts(burst.get("zones"), f"{where}.zones"),
        instance_types=_texts(burst.get("instanceTypes"), f"{where}.instanceTypes"),
        max_size=_count(burst.get("maxSize"), f"{where}.maxSize"),
    )


def with_overrides(
    settings: BurstSettings,
    region: str | None = None,
    zones: list[str] | None = None,
    instance_types: list[str] | None = None,
) -> BurstSettings:
    """Apply --region/--zones/--types, then check the zones still belong to the region: a
    stale zone list would otherwise ask the wrong region and come back silently empty."""
    out = settings
    if region is not None:
        out = replace(out, region=_text(region, "--region"))
    if zones is not None:
        out = replace(out, zones=_texts(zones, "--zones"))
    if instance_types is not None:
        out = replace(out, instance_types=_texts(instance_types, "--types"))
    for zone in out.zones:
        # Zone names (also Local Zones like us-west-2-lax-1a) start with their region's name.
        if not zone.startswith(out.region) or len(zone) == len(out.region):
            hint = " (pass --zones for that region too)" if region is not None and zones is None else ""
            raise SettingsError(f"zone {zone!r} is not in region {out.region!r}{hint}")
    return out


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{where}: expected a non-empty string, found {value!r}")
    return value.strip()


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SettingsError(f"{where}: expected a non-empty list, found {value!r}")
    items = tuple(_text(v, where) for v in value)
    # A repeated entry would only repeat its rows in the table: keep the first.
    return tuple(dict.fromkeys(items))


def _count(value: Any, where: str) -> int:
    # bool is an int in Python; `maxSize: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"{where}: expected a whole number >= 0, found {value!r}")
    return value
