"""How the dynamic providers' `diff` tells an identity change (a replacement) from an in-place
update. Pure: the engine and `make plan-diff` both call these diffs, without any service."""

from __future__ import annotations

from typing import Any


def identity_changes(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """The identity keys whose value differs: the replacement's reasons.

    A key the old state does not have (recorded before the provider had it) is adopted, not
    compared: the resource was never made as that value. An unknown new value (a preview's computed
    input) differs from any old one, so an identity it may change counts as a replacement: the
    safe side."""
    return [k for k in keys if k in olds and olds[k] != news.get(k)]


def adopted(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """Identity keys new to the state: an in-place update records them."""
    return [k for k in keys if k not in olds and news.get(k) is not None]


def in_place_changes(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """The keys that changed and are updated in place."""
    return [k for k in keys if olds.get(k) != news.get(k)]
