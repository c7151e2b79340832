"""The outputs contract: what other teams read through `StackReference`.

The contract itself is `outputs.v2.schema.json` beside this file (JSON Schema; `x-secret`
marks outputs that are Pulumi secrets). Exporting checks the program against it, so an
output cannot be dropped, renamed or lose its secret flag without the contract changing.
Outputs named by a pattern (`patternProperties`: one `engineerKubeconfig-<login>` per engineer)
take their secret flag from the pattern they match.

`outputs.v1.schema.json` stays beside it, withdrawn (`x-withdrawn` says why): no stack exports it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pulumi

SCHEMA_PATH = Path(__file__).with_name("outputs.v2.schema.json")
# scheme://user:password@: a credential, which a public output must never carry.
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]*@", re.I)


@cache
def contract() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def secret_outputs() -> set[str]:
    """The fixed outputs that are secrets (pattern-named ones: `is_secret`)."""
    return {name for name, prop in contract()["properties"].items() if prop.get("x-secret")}


def _pattern_of(name: str) -> dict[str, Any] | None:
    """The patternProperties entry an output name matches, if any (JSON Schema patterns are
    unanchored; the contract anchors its own)."""
    for pattern, prop in contract().get("patternProperties", {}).items():
        if re.search(pattern, name):
            found: dict[str, Any] = prop
            return found
    return None


def is_secret(name: str) -> bool:
    prop = contract()["properties"].get(name) or _pattern_of(name) or {}
    return bool(prop.get("x-secret"))


def export(values: dict[str, Any]) -> None:
    """Export exactly the contract's outputs, secret ones as Pulumi secrets."""
    props = contract()["properties"]
    missing = set(contract()["required"]) - set(values)
    extra = {name for name in values if name not in props and _pattern_of(name) is None}
    if missing or extra:
        # A programming error, not a config one: the contract and the program disagree.
        raise ValueError(f"outputs do not match {SCHEMA_PATH.name}: missing {sorted(missing)}, extra {sorted(extra)}")
    for name in sorted(values):
        value = values[name]
        pulumi.export(name, pulumi.Output.secret(value) if is_secret(name) else without_credentials(name, value))


def without_credentials(name: str, value: Any) -> Any:
    """`value` for a public output, refusing a URL with a password in it (stacks.rules refuses
    one in the config; this keeps any other source, a component's URL, from publishing one)."""
    if isinstance(value, pulumi.Output):
        return value.apply(lambda v: without_credentials(name, v))
    if isinstance(value, dict):
        return {k: without_credentials(f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_credentials(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, str) and _URL_PASSWORD.search(value):
        # A programming error: the config rule should have stopped it.
        raise ValueError(f"output {name}: a URL with user:password@ would be published; it belongs in a secret")
    return value
