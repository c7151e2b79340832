"""Reads `Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to a program.

Objects become JSON strings, `secure:` values become placeholders marked secret (the offline
plan never decrypts anything), and the keys keep their `project:` prefix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML speaks YAML 1.1, where `52:54:00:20:01:01` is a base-60 integer and `on` is
    true. The Pulumi CLI reads stack files as YAML 1.2 (core schema), so do the same."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
):
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


class StackFileError(Exception):
    """The stack file itself cannot be read (missing, not YAML, no `config:` mapping)."""


@dataclass(frozen=True)
class StackFile:
    stack: str
    path: Path
    config: dict[str, str]  # as pulumi.runtime.set_all_config takes it
    secret_keys: list[str]


def placeholder(key: str) -> str:
    """The offline stand-in for a secret; recognisable so tests can hunt for leaks."""
    return f"offline-secret-placeholder<{key}>"


def stack_path(root: Path, stack: str) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def read_stack_file(root: Path, stack: str) -> StackFile:
    path = stack_path(root, stack)
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise StackFileError(f"{path.name}: no such stack file (stacks here: {', '.join(known)})")
    try:
        doc = yaml.load(path.read_text(), Loader=_Yaml12Loader)  # noqa: S506 or {}
    except yaml.YAMLError as err:
        raise StackFileError(f"{path.name}: not valid YAML: {err}") from None
    raw = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise StackFileError(f"{path.name}: expected a top-level `config:` mapping")
    config: dict[str, str] = {}
    secret: list[str] = []
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = placeholder(key)
            secret.append(key)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(_plain(value))
    return StackFile(stack, path, config, secret)


def _plain(value: Any) -> Any:
    # YAML may produce dates or other non-JSON scalars; the CLI would pass their text.
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
