"""`cloud-init schema --config-file` for many files in one process.

Run by tools/plan/checkers.py with the interpreter of the installed `cloud-init` script (the
Debian package lives in the system python3, not in the project's venv), as
`python3 -I cloudinit_worker.py`: it reads a JSON list of paths on stdin and prints one JSON
object per path, in order, as a JSON list on stdout: {"path", "valid", "output"}.

Each file goes through the very function the CLI runs, `cloudinit.config.schema.
handle_schema_args` (cloud-init 22.4: canonical/cloud-init cloudinit/config/schema.py), with the
CLI's arguments, so findings, messages and deprecation handling are the CLI's: a file is valid
when it prints "Valid cloud-config: <path>" (deprecations alone do not make it invalid; errors,
a missing #cloud-config header, bad YAML or a non-dict do). What one CLI process per file paid
again and again is paid once here:

- the interpreter start and `cloudinit` import;
- `get_schema()` (reads and parses the bundled schema JSON) and `get_jsonschema_validator()`
  (builds the validator class): both pure, so memoised;
- YAML parsing: cloud-init's own loader class (`safeyaml._CustomSafeLoader`, its constructors)
  on libyaml's parser instead of PyYAML's pure-Python one, the same YAML 1.1 grammar; a text
  libyaml rejects is parsed again by the pure loader, so a YAML error reads as the CLI's;
- identical texts (byte for byte) are validated once; an invalid one is validated again under
  each of its paths, so every message names its own file.

This file runs under the system python3 with only cloud-init's dependencies: standard library
only, nothing from the project.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import io
import json
import logging
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

VALID = "Valid cloud-config:"


def _load_cloudinit() -> Any:
    schema: Any = importlib.import_module("cloudinit.config.schema")
    safeyaml: Any = importlib.import_module("cloudinit.safeyaml")
    yaml: Any = importlib.import_module("yaml")
    schema.get_schema = functools.cache(schema.get_schema)
    schema.get_jsonschema_validator = functools.cache(_sharing_resolver(schema.get_jsonschema_validator))
    # util.load_file logs two DEBUG lines per file, each paying for a LogRecord and a stack
    # walk although no handler shows them (the CLI prints WARNING and above, as here).
    logging.disable(logging.INFO)
    if getattr(yaml, "__with_libyaml__", False):
        pure_load = safeyaml.load
        parser = importlib.import_module("yaml.cyaml").CParser

        class _Loader(parser, safeyaml._CustomSafeLoader):  # type: ignore[misc,valid-type]
            """cloud-init's loader (its constructors and resolver) on libyaml's parser, built
            as PyYAML builds its CSafeLoader."""

            def __init__(self, stream: Any) -> None:
                parser.__init__(self, stream)
                yaml.constructor.SafeConstructor.__init__(self)
                yaml.resolver.Resolver.__init__(self)

        def load(blob: Any) -> Any:
            try:
                return yaml.load(blob, Loader=_Loader)
            except yaml.YAMLError:
                return pure_load(blob)  # the CLI's own error message (or its own verdict)

        safeyaml.load = load
    return schema


def _sharing_resolver(get_jsonschema_validator: Any) -> Any:
    """cloud-init's validator class, made with one $ref resolver per schema: jsonschema (< 4.18)
    gives every new validator a fresh RefResolver, whose caches (`_get_subschemas_cache`: a
    walk of the whole schema) were rebuilt for every file."""

    def get() -> tuple[Any, Any]:
        validator_class, format_checker = get_jsonschema_validator()
        resolvers: dict[int, tuple[Any, Any]] = {}

        def validator(schema: Any, *args: Any, **kwargs: Any) -> Any:
            if "resolver" not in kwargs:
                if id(schema) not in resolvers:  # the schema is memoised: one object
                    resolvers[id(schema)] = (schema, getattr(validator_class(schema), "resolver", None))
                if resolvers[id(schema)][1] is not None:
                    kwargs["resolver"] = resolvers[id(schema)][1]
            return validator_class(schema, *args, **kwargs)

        validator.check_schema = validator_class.check_schema  # type: ignore[attr-defined]
        return validator, format_checker

    return get


def check(schema: Any, path: str) -> dict[str, Any]:
    """One file through the CLI's `cloud-init schema --config-file PATH`."""
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(config_file=path, docs=None, system=False, annotate=False)
    exited = False
    try:
        with redirect_stdout(out), redirect_stderr(err):
            schema.handle_schema_args("cloudconfig-schema", args)
    except SystemExit:  # the CLI's `error()` prints "Error:" and exits 1
        exited = True
    except Exception:  # the CLI would die with this traceback: as invalid as it gets
        exited = True
        err.write(traceback.format_exc())
    valid = not exited and VALID in out.getvalue()
    return {"path": path, "valid": valid, "output": out.getvalue() + err.getvalue()}


def check_all(schema: Any, paths: list[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[str]] = {}
    for path in paths:
        with open(path, "rb") as f:
            groups.setdefault(hashlib.sha256(f.read()).hexdigest(), []).append(path)
    results: dict[str, dict[str, Any]] = {}
    for same in groups.values():
        first = check(schema, same[0])
        results[same[0]] = first
        for path in same[1:]:
            # Valid is valid whatever the name; a finding's message names its file.
            results[path] = check(schema, path) if not first["valid"] else {**first, "path": path}
    return [results[p] for p in paths]


def main() -> int:
    paths = json.load(sys.stdin)
    try:
        schema = _load_cloudinit()
    except ImportError as err:
        print(f"cloud-init's Python library is not importable by {sys.executable}: {err}", file=sys.stderr)
        return 3
    json.dump(check_all(schema, paths), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
