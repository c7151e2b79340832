"""Config problems and the one error that reports all of them.

`ConfigError` is a `pulumi.RunError`, so a real `pulumi preview` prints the message and
exits cleanly instead of dumping a Python traceback at the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

PROJECT = "akiba"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the stack config, located by its key path."""

    path: str  # e.g. akiba:nodes[3].gpus[0].model
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}; found {self.found}"


def key_path(key: str, *parts: str | int) -> str:
    """`key_path("nodes", 3, "gpus", 0, "model")` -> `akiba:nodes[3].gpus[0].model`."""
    out = f"{PROJECT}:{key}"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def shown(value: Any, limit: int = 60) -> str:
    """A short, readable rendering of a bad value for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigError(pulumi.RunError):
    """Every problem in one stack file, reported at once."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(set(problems))
        lines = [f"{source}: {len(self.problems)} problem(s) in the stack config:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))
