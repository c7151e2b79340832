"""The price table (what an hour of each GPU model costs) and the cost arithmetic.

An owned card costs its price spread over its service life, plus the electricity it draws
(the power measured during the run, not a nameplate figure). A cloud machine costs its hourly
price, electricity included. Both are kept in the entry's own currency and converted with the
table's one exchange rate, so the yen and dollar rankings always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

Currency = Literal["yen", "dollar"]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]*$")]
HOURS_PER_YEAR = 365 * 24

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Electricity(_Frozen):
    price_per_kwh: float = Field(gt=0)
    currency: Currency
    source: str = Field(min_length=1)


class PriceEntry(_Frozen):
    """One GPU model: an owned card (`price`) or a cloud machine (`hourly`)."""

    kind: Literal["owned", "cloud"]
    currency: Currency
    price: float | None = Field(default=None, gt=0)  # owned: what the card cost
    hourly: float | None = Field(default=None, gt=0)  # cloud: price of one hour
    as_of: str = Field(pattern=r"^\d{4}-\d{2}$")  # prices move fast (the 980 Ti halved in 5 months)
    source: str = Field(min_length=1)  # where the figure comes from, and whether it is approximate

    @model_validator(mode="after")
    def _one_price(self) -> Self:
        if self.kind == "owned" and (self.price is None or self.hourly is not None):
            raise ValueError("an owned card needs 'price' (and no 'hourly')")
        if self.kind == "cloud" and (self.hourly is None or self.price is not None):
            raise ValueError("a cloud machine needs 'hourly' (and no 'price')")
        return self


class PriceTable(_Frozen):
    yen_per_dollar: float = Field(gt=0)
    service_life_years: float = Field(gt=0)  # over which an owned card's price is spread
    electricity: Electricity
    models: dict[Slug, PriceEntry]

    def to_yen(self, amount: float, currency: Currency) -> float:
        return amount if currency == "yen" else amount * self.yen_per_dollar


class PriceTableError(Exception):
    """A price table that cannot be used; the message names the file and every bad key."""


def _key_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load(path: Path) -> PriceTable:
    """Read and validate a price table (YAML, or JSON, which YAML reads as well)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceTableError(f"{path}: cannot read the price table ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise PriceTableError(f"{path}: not valid YAML/JSON: {exc}") from exc
    try:
        return PriceTable.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"  - {_key_path(err['loc'])}: {err['msg']}"
            # A whole entry as "found" would bury the message; a scalar shows what to fix.
            + ("" if err["type"] == "missing" or isinstance(err["input"], dict) else f"; found {err['input']!r}")
            for err in exc.errors()
        ]
        raise PriceTableError(
            f"{path}: {len(problems)} problem(s) in the price table:\n" + "\n".join(problems)
        ) from None


@dataclass(frozen=True)
class HourlyCost:
    yen: float
    dollar: float
    basis: str  # the formula with its numbers, for the record


class NotPricedError(Exception):
    """No cost can be computed; the message says why (shown instead of a number)."""


def hourly_cost(table: PriceTable, model: str, mean_w: float | None) -> HourlyCost:
    """What one hour of `model` costs while drawing `mean_w` watts (owned cards only)."""
    entry = table.models.get(model)
    if entry is None:
        raise NotPricedError(f"no price for {model!r} in the price table")
    if entry.kind == "cloud":
        assert entry.hourly is not None  # the validator guarantees it
        yen = table.to_yen(entry.hourly, entry.currency)
        basis = f"cloud: {entry.hourly:g} {entry.currency}/h"
    else:
        assert entry.price is not None
        if mean_w is None:
            raise NotPricedError("no measured power, so no electricity cost for an owned card")
        life_h = table.service_life_years * HOURS_PER_YEAR
        card = table.to_yen(entry.price, entry.currency) / life_h
        power = table.to_yen(table.electricity.price_per_kwh, table.electricity.currency) * mean_w / 1000
        yen = card + power
        basis = (
            f"owned: {entry.price:g} {entry.currency} / {life_h:g} h"
            f" + {table.electricity.price_per_kwh:g} {table.electricity.currency}/kWh x {mean_w / 1000:.4f} kW"
        )
    return HourlyCost(yen=yen, dollar=yen / table.yen_per_dollar, basis=basis)


def iterations_per_unit(iterations_per_s: float, cost_per_hour: float) -> float:
    """Iterations bought by one yen (or dollar): an hour's iterations over an hour's cost."""
    return iterations_per_s * 3600 / cost_per_hour
