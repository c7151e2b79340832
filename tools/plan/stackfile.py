"""Reads `Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to a program.

Objects become JSON strings, `secure:` values become placeholders marked secret (the offline
plan never decrypts anything), and the keys keep their `project:` prefix. A key defined twice in
one mapping is refused, as Pulumi's YAML reader refuses it.

The committed stack files hold no secret (no secrets provider could decrypt a committed
ciphertext): the offline plan fills each secret the program requires and the file lacks with a
placeholder, named in `StackFile.filled`. `fill_secrets=False` reads the file as a fresh
`pulumi preview` would see it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stacks.config import required_secrets
from stacks.problems import PROJECT
from tools.plan.strict_yaml import DuplicateKeyError, StrictSafeLoader


class _Yaml12Loader(StrictSafeLoader):
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
    """The stack file itself cannot be read (missing, not YAML, a key twice, no `config:` mapping)."""


@dataclass(frozen=True)
class StackFile:
    stack: str
    path: Path
    config: dict[str, str]  # as pulumi.runtime.set_all_config takes it
    secret_keys: list[str]
    filled: tuple[str, ...] = ()  # secrets the file lacks, given offline placeholders


def placeholder(key: str) -> str:
    """The offline stand-in for a secret; recognisable so tests can hunt for leaks."""
    return f"offline-secret-placeholder<{key}>"


def stack_path(root: Path, stack: str) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def read_stack_file(root: Path, stack: str, *, fill_secrets: bool = True) -> StackFile:
    """The stack's config as the program gets it; with `fill_secrets`, every secret the program
    requires (`stacks.config.required_secrets`) and the file lacks is an offline placeholder."""
    path = stack_path(root, stack)
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise StackFileError(f"{path.name}: no such stack file (stacks here: {', '.join(known)})")
    raw = _config_mapping(path)
    config: dict[str, str] = {}
    secret: list[str] = []
    for key, value in raw.items():
        if is_secure(value):
            config[key] = placeholder(key)
            secret.append(key)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(_plain(value))
    filled: list[str] = []
    if fill_secrets:
        values = {k.removeprefix(f"{PROJECT}:"): v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
        for name in required_secrets(values):
            key = f"{PROJECT}:{name}"
            if key not in config:
                config[key] = placeholder(key)
                secret.append(key)
                filled.append(key)
    return StackFile(stack, path, config, secret, tuple(filled))


def read_yaml(path: Path) -> Any:
    """The file parsed as Pulumi parses a stack file (YAML 1.2 scalars, no duplicate keys)."""
    try:
        return yaml.load(path.read_text(), Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)
    except DuplicateKeyError as err:  # Pulumi's reader refuses these too (tools/plan/strict_yaml.py)
        raise StackFileError("\n".join(f"{path.name}: {line}" for line in err.duplicates)) from None
    except yaml.YAMLError as err:
        raise StackFileError(f"{path.name}: not valid YAML: {err}") from None


def _config_mapping(path: Path) -> dict[str, Any]:
    doc = read_yaml(path)
    raw = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise StackFileError(f"{path.name}: expected a top-level `config:` mapping")
    return raw


def is_secure(value: Any) -> bool:
    """A Pulumi ciphertext: a mapping whose only key is `secure`, holding a string
    (pulumi/pulumi sdk/go/common/resource/config/object.go, `isSecureValue`)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str)


def filled_message(stack_file: StackFile) -> str | None:
    """The one line the offline plan prints when it filled secrets the stack file lacks."""
    if not stack_file.filled:
        return None
    return (
        f"{stack_file.path.name}: offline placeholders for the secrets it does not set: "
        f"{', '.join(stack_file.filled)} (a real preview needs `pulumi config set --secret`)"
    )


def _plain(value: Any) -> Any:
    # YAML may produce dates or other non-JSON scalars; the CLI would pass their text.
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
