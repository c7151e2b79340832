"""The one view of a planned resource every rule reads, whichever engine produced it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
    # Input name -> URN of the resource its value came from (a security group rule's
    # securityGroupId): how rules join separate resources whose ids are unknown in a preview.
    refs: Mapping[str, str] = field(default_factory=dict)

    @property
    def stack(self) -> str:
        # urn:pulumi:<stack>::<project>::<type>::<name>
        return self.urn.split("::", 1)[0].removeprefix("urn:pulumi:")

    @property
    def ancestry(self) -> tuple[str, ...]:
        """The types of its parents, outermost first (`a$b$<own type>` in the URN)."""
        parts = self.urn.split("::")
        return tuple(parts[2].split("$")[:-1]) if len(parts) > 2 else ()


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the pack (policy config in `pulumi preview --policy-pack-config`)."""

    protected_stacks: tuple[str, ...] = ("prod",)
    max_burst_size: int = 20
    # The most public address space one security group may admit, as a prefix length: the
    # office's own addresses (one /32 today) fit in a /24 with room for an ISP block; more is
    # not "the office" but the internet written in pieces.
    max_public_ingress_v4: int = 24
    max_public_ingress_v6: int = 56


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
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):  # the engine's are list proxies
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
    else:
        yield path, value
