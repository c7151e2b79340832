"""Reading a rendered node #cloud-config in tests: its files, and the bootstrap script line by line."""

from __future__ import annotations

import re
from typing import Any

import yaml

from components.cluster.bootstrap import BOOTSTRAP_SCRIPT


def entries(user_data: str) -> list[dict[str, Any]]:
    """`write_files`, as cloud-init reads them."""
    assert user_data.startswith("#cloud-config\n")
    return list(yaml.safe_load(user_data)["write_files"])


def files(user_data: str) -> dict[str, str]:
    """path -> content of every file the document writes whole (appends left out)."""
    return {f["path"]: f["content"] for f in entries(user_data) if not f.get("append")}


def script_lines(user_data: str) -> list[str]:
    """The bootstrap script's lines, stripped: steps inside its `if changed ...; then` blocks are indented."""
    return [line.strip() for line in files(user_data)[BOOTSTRAP_SCRIPT].splitlines()]


def only_line(lines: list[str], pattern: str) -> int:
    """The index of the one line matching `pattern` (a step rendered twice, or not at all, fails)."""
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert len(found) == 1, f"{pattern!r}: {len(found)} lines"
    return found[0]
