"""Kubernetes resource quantities (`500m`, `2`, `64Mi`, `1.5Gi`, `1e3`) as exact numbers.

The same grammar as k8s.io/apimachinery's resource.Quantity: a decimal number, then a binary
suffix (Ki..Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent.
"""

from __future__ import annotations

import re
from decimal import Decimal

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "": "1", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12"}
_DECIMAL |= {"P": "1e15", "E": "1e18"}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")


def parse(value: str | int | float) -> Decimal:
    """The quantity's value: cores for cpu, bytes for memory, a count for extended resources."""
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 64Mi)")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Decimal(_DECIMAL[suffix])
    return number * Decimal(10) ** int(suffix[1:])


def show(resource: str, amount: Decimal) -> str:
    """A quantity as a person reads it: 1.5 cpu, 7.5Gi, 2 nvidia.com/gpu."""
    if resource == "memory" or resource.endswith("storage"):
        for unit in ("Ti", "Gi", "Mi", "Ki"):
            if amount >= _BINARY[unit]:
                return f"{(amount / _BINARY[unit]).quantize(Decimal('0.1')).normalize():f}{unit}"
        return f"{amount:f}"
    return f"{amount.normalize():f}"
