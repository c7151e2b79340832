"""Reading the stack config as parsed YAML, before (and besides) the typed spec: the
cross-field rules (stacks/rules.py, addresses.py, names.py) run over it so that every problem
is reported at once, each at its key path, even where the spec could not be built."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import TypeAdapter

Raw = dict[str, Any]


def normal(adapter: TypeAdapter[str], value: Any) -> str | None:
    """`value` as the field's type normalises it; None when malformed (the field reports it)."""
    try:
        return adapter.validate_python(value)
    except Exception:
        return None


def items_at(raw: Raw, key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, entry) of the mappings in the list at `key`; anything else is the spec's to report."""
    value = raw.get(key)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield i, item


def section_at(raw: Raw, *keys: str) -> dict[str, Any]:
    """The mapping at raw[keys[0]][keys[1]]...; empty where any level is missing or not one."""
    for key in keys:
        value = raw.get(key)
        raw = value if isinstance(value, dict) else {}
    return raw
