"""Reads `akiba:*` config into the frozen `StackSpec`, or fails with every problem at once.

This is the only module that touches `pulumi.Config`; components get typed values.
"""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import BaseModel, ValidationError

from stacks import rules
from stacks.problems import PROJECT, ConfigError, Problem, key_path, shown
from stacks.spec import POWER_TYPES_WITH_PASSWORD, SECRET_KEYS, SECTION_KEYS, StackSpec


@dataclass(frozen=True)
class RawConfig:
    """The stack's `akiba:` config as plain values, before validation."""

    stack: str
    source: str  # the stack file, for messages
    values: dict[str, Any]  # key without the `akiba:` prefix -> value (objects already parsed)
    secret_keys: frozenset[str]


@dataclass(frozen=True)
class StackSecrets:
    """The secrets the program needs, as Pulumi secret outputs (never plain strings)."""

    golden_db_source_url: pulumi.Output[str]
    maas_api_key: pulumi.Output[str]
    power_password: pulumi.Output[str] | None
    alert_webhook_url: pulumi.Output[str] | None = None  # optional: alerts go nowhere without it


def set_secret_command(stack: str, key: str) -> str:
    return f"pulumi config set --secret --stack {stack} {PROJECT}:{key} <value>"


def from_pulumi() -> RawConfig:
    """The config the Pulumi engine handed this program run."""
    stack = pulumi.get_stack()
    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    env_secret = set(runtime_config.get_config_secret_keys_env())
    values: dict[str, Any] = {}
    secret: set[str] = set()
    prefix = f"{PROJECT}:"
    for full_key, value in merged.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        values[key] = _decode(value) if key in SECTION_KEYS else value
        if full_key in env_secret or runtime_config.is_config_secret(full_key):
            secret.add(key)
    return RawConfig(stack, f"Pulumi.{stack}.yaml", values, frozenset(secret))


def _decode(value: Any) -> Any:
    # Pulumi hands structured config to the program as JSON text.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def parse(raw: RawConfig) -> StackSpec:
    """Validate the whole config; raise `ConfigError` listing every problem."""
    problems = _key_problems(raw) + rules.check(raw.values)
    data = {k: raw.values.get(k) for k in SECTION_KEYS if k in raw.values}
    try:
        spec = StackSpec.model_validate({"stack": raw.stack, "source": raw.source, **data})
    except ValidationError as err:
        problems += [_from_pydantic(e, raw.values) for e in err.errors()]
        spec = None
    if problems or spec is None:
        raise ConfigError(raw.source, problems)
    return spec


def _key_problems(raw: RawConfig) -> list[Problem]:
    out = []
    known = set(SECTION_KEYS) | set(SECRET_KEYS)
    for key in raw.values:
        if key not in known:
            out.append(Problem(key_path(key), _one_of(known, key), f"unknown key {key!r}"))
    for key in SECRET_KEYS:
        if key in raw.values and key not in raw.secret_keys:
            out.append(
                Problem(
                    key_path(key),
                    f"a secret (`{set_secret_command(raw.stack, key)}`)",
                    "a plaintext value",
                )
            )
    for key in required_secrets(raw.values):
        if key not in raw.values:
            out.append(
                Problem(
                    key_path(key),
                    f"{SECRET_KEYS[key]}; set it with `{set_secret_command(raw.stack, key)}`",
                    "no value",
                )
            )
    return out


def required_secrets(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The secret keys (of `SECRET_KEYS`) this config needs: what `read_secrets` will require.

    The offline plan fills exactly these with placeholders when the stack file lacks them."""
    needed = ("goldenDbSourceUrl", "maasApiKey")
    return (*needed, "powerPassword") if _needs_power_password(values) else needed


def _needs_power_password(values: Mapping[str, Any]) -> bool:
    nodes = values.get("nodes")
    return isinstance(nodes, list) and any(
        isinstance(n, dict) and isinstance(n.get("power"), dict) and n["power"].get("type") in POWER_TYPES_WITH_PASSWORD
        for n in nodes
    )


def _one_of(known: set[str], found: str) -> str:
    close = difflib.get_close_matches(found, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"one of the known keys {', '.join(sorted(known))}{hint}"


def _from_pydantic(error: Any, values: dict[str, Any]) -> Problem:
    """Turn one pydantic error into a Problem whose path matches the stack file."""
    loc = list(error["loc"])
    parts: list[str | int] = []
    node: Any = values
    model: Any = StackSpec
    owner: Any = StackSpec  # the model that owns the last key
    for i, part in enumerate(loc):
        owner = model
        if isinstance(node, dict) and part in node:
            node = node[part]
            model = _field_model(model, str(part))
            parts.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            parts.append(part)
        elif i == len(loc) - 1:
            parts.append(part)  # a missing or unknown key: name it
        else:
            model = _union_member(model, str(part))  # a union tag pydantic adds to the path
    path = key_path(str(parts[0]), *parts[1:]) if parts else f"{PROJECT}:"
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        return Problem(path, "a value (this key is required)", "nothing")
    if kind == "extra_forbidden":
        is_model = isinstance(owner, type) and issubclass(owner, BaseModel)
        aliases = {f.alias or n for n, f in owner.model_fields.items()} if is_model else set()
        expected = _one_of(aliases, str(parts[-1])) if aliases else "no such key"
        return Problem(path, expected, f"unknown key {parts[-1]!r}")
    expected = msg.removeprefix("Value error, ")
    expected = expected[0].lower() + expected[1:] if expected else expected
    expected = expected.removeprefix("input should be ")
    return Problem(path, expected, shown(error.get("input")))


def _field_model(model: Any, alias: str) -> Any:
    """The model class (if any) behind field `alias` of `model`, through lists/optionals."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    for name, field in model.model_fields.items():
        if (field.alias or name) == alias:
            return _unwrap(field.annotation)
    return None


def _unwrap(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and args:
        return _unwrap(args[0])
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(args[0])
    if args and type(None) in args:  # Optional[X]
        return _unwrap(next(a for a in args if a is not type(None)))
    return annotation if isinstance(annotation, type) else args or annotation


def _union_member(model: Any, tag: str) -> Any:
    members = model if isinstance(model, tuple) else typing.get_args(model)
    for member in members:
        field = getattr(member, "model_fields", {}).get("type")
        if field is not None and tag in typing.get_args(field.annotation):
            return member
    return model


def read_secrets(spec: StackSpec) -> StackSecrets:
    """The secret config values as Pulumi secrets; a missing one stops with the exact command."""
    config = pulumi.Config(PROJECT)
    # The same rule as `required_secrets` (which parse() already enforced), on the typed spec.
    needs_power = any(n.power.type in POWER_TYPES_WITH_PASSWORD for n in spec.nodes)
    return StackSecrets(
        golden_db_source_url=config.require_secret("goldenDbSourceUrl"),
        maas_api_key=config.require_secret("maasApiKey"),
        power_password=config.require_secret("powerPassword") if needs_power else None,
        alert_webhook_url=config.get_secret("alertWebhookUrl"),
    )


def load_spec() -> StackSpec:
    """Entry point for the program: the validated spec of the current stack."""
    return parse(from_pulumi())
