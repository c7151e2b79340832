"""README's Secrets table lists exactly the secrets the program reads, each with its command."""

from __future__ import annotations

import re

from stacks.spec import POWER_TYPES_WITH_PASSWORD, SECRET_KEYS
from tests.conftest import ROOT


def secrets_table() -> dict[str, str]:
    """README's `### Secrets` table: `akiba:<key>` -> its whole row."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n### Secrets\n", 1)
    assert len(section) == 2, "README.md has a `### Secrets` section"
    body = re.split(r"\n#{1,3} ", section[1], maxsplit=1)[0]
    rows: dict[str, str] = {}
    for line in body.splitlines():
        match = re.match(r"\|\s*`(akiba:[A-Za-z]+)`\s*\|", line)
        if match:
            assert match[1] not in rows, f"{match[1]} listed twice"
            rows[match[1]] = line
    return rows


def test_the_readme_secrets_table_lists_exactly_the_programs_secrets() -> None:
    rows = secrets_table()
    assert sorted(rows) == sorted(f"akiba:{k}" for k in SECRET_KEYS)
    for key, row in rows.items():
        assert re.search(rf"pulumi config set --secret [^|]*{key}\b", row), f"{key}: the row names its command"
    assert all(f"`{t}`" in rows["akiba:powerPassword"] for t in POWER_TYPES_WITH_PASSWORD), "when it is needed"
