"""The one view of a planned resource every rule reads, whichever engine produced it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["mandatory", "advisory"]


@dataclass(frozen=True)
class PlannedResource:
    """A resource as the policies see it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]  # the inputs, secrets unwrapped
    protect: bool
    # Input paths that are Pulumi secrets; None where the engine does not say (the policy
    # SDK unwraps secrets before a pack sees them), so secret rules apply offline only.
    secret_paths: frozenset[str] | None = None

    @property
    def stack(self) -> str:
        # urn:pulumi:<stack>::<project>::<type>::<name>
        return self.urn.split("::", 1)[0].removeprefix("urn:pulumi:")


@dataclass(frozen=True)
class Violation:
    rule: str
    level: Level
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.level}] {self.rule}: {self.urn}: {self.message}"


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, leaf value) of a nested input structure."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
    else:
        yield path, value
