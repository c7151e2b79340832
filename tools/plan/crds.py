"""Custom resources against their CRDs' OpenAPI schemas, offline and strict.

The CRDs are upstream data kept out of the repository, in the files pinned by
`tools/plan/crds.sha256`: the directory `AKIBA_CRD_DIR` when set (CI sets it; used as it is),
else a user cache (`$XDG_CACHE_HOME/akiba/crds/<pins>`, default `~/.cache`) that the first plan
downloads, sha256-verified, and every later plan reads offline (`python -m tools.plan.crds fetch`
fills it or `--dest DIR`, `verify` checks a directory).

A manifest is checked like `kubectl apply --validate=strict` would: nulls in objects are
dropped (the API server prunes them), then its (group, version, kind) must be served by a CRD,
and every object schema without `additionalProperties` or `x-kubernetes-preserve-unknown-fields`
rejects unknown fields. `x-kubernetes-int-or-string`, `nullable`, `x-kubernetes-list-type`
(set, map) and the formats int32, int64 and date-time are honoured; CEL rules
(`x-kubernetes-validations`) are not evaluated. `metadata` gets a small ObjectMeta schema.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator, FormatChecker, ValidationError, validators

from tools.plan import crd_sources

ROOT = Path(__file__).resolve().parents[2]
ENV = crd_sources.ENV

Gvk = tuple[str, str, str]  # (group, version, kind)


def cache_dir() -> Path:
    """The user cache of the pinned CRDs: one directory per set of pins."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "akiba" / "crds" / crd_sources.pins_id()


def configured_dir() -> Path:
    """`AKIBA_CRD_DIR` when set, else the user cache (whether or not it is filled yet)."""
    return Path(os.environ[ENV]) if os.environ.get(ENV) else cache_dir()


def default_dir() -> Path:
    """The CRD directory the checks use: `AKIBA_CRD_DIR` as it is when set; else the user cache,
    downloaded once when missing and offline afterwards. A failed download is said on stderr
    with what to do; the directory returned is then missing, which the CRD check reports."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    cache = cache_dir()
    if not cache.is_dir():
        print(f"fetching the pinned CRDs into {cache} (once)", file=sys.stderr)
        try:
            crd_sources.fetch(cache)
        except crd_sources.FetchError as err:
            print(f"error: {err}", file=sys.stderr)
    return cache


class _Loader(yaml.CSafeLoader):
    """YAML as the API server reads it: timestamps stay strings."""


def _as_string(loader: _Loader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_string)


def load_yaml(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


# --- the index -------------------------------------------------------------------------------


@dataclass
class CrdIndex:
    schemas: dict[Gvk, dict[str, Any]]  # served versions only
    unserved: set[Gvk]
    sources: list[Path]
    _validators: dict[Gvk, Any] = field(default_factory=dict, repr=False)

    @property
    def groups(self) -> set[str]:
        return {gvk[0] for gvk in self.schemas} | {gvk[0] for gvk in self.unserved}

    def validator(self, gvk: Gvk) -> Any:
        if gvk not in self._validators:
            self._validators[gvk] = _Validator(structural(self.schemas[gvk], root=True), format_checker=FORMATS)
        return self._validators[gvk]


def load_index(paths: list[Path]) -> CrdIndex:
    """Every CustomResourceDefinition in these files (cached per process)."""
    return _load_index(tuple(p.resolve() for p in paths))


@functools.cache
def _load_index(paths: tuple[Path, ...]) -> CrdIndex:
    index = CrdIndex({}, set(), list(paths))
    for path in paths:
        for doc in load_yaml(path.read_text()):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                gvk = (spec["group"], version["name"], spec["names"]["kind"])
                if version.get("served", False):
                    index.schemas[gvk] = version["schema"]["openAPIV3Schema"]
                else:
                    index.unserved.add(gvk)
    return index


def load_dir(crd_dir: Path) -> CrdIndex:
    return load_index([crd_dir / name for name in crd_sources.pinned()])


# --- CRD schema -> JSON schema ---------------------------------------------------------------

_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_STRINGS = {"type": "array", "items": {"type": "string"}}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": _NAME, "maxLength": 253},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": _STRINGS,
        "ownerReferences": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["apiVersion", "kind", "name", "uid"],
                "properties": {
                    k: {"type": "boolean" if k in ("controller", "blockOwnerDeletion") else "string"}
                    for k in ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
                },
                "additionalProperties": False,
            },
        },
    },
}
_NESTED = ("items", "additionalProperties", "not")
_NESTED_LISTS = ("anyOf", "allOf", "oneOf")
_DROP = ("description", "default", "example", "externalDocs", "x-kubernetes-validations")


def structural(schema: Mapping[str, Any], root: bool = False) -> dict[str, Any]:
    """A CRD's OpenAPI v3 schema as a Draft 7 JSON schema with Kubernetes' strict semantics."""
    out = {k: v for k, v in schema.items() if k not in _DROP}
    if "properties" in schema:
        out["properties"] = {k: structural(v) for k, v in schema["properties"].items()}
    for key in _NESTED:
        if isinstance(schema.get(key), Mapping):
            out[key] = structural(schema[key])
    for key in _NESTED_LISTS:
        if key in schema:
            out[key] = [structural(s) for s in schema[key]]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if schema.get("x-kubernetes-embedded-resource"):
        embedded = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
        out["properties"] = embedded | out.get("properties", {})
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
        if out.get("anyOf") == [{"type": "integer"}, {"type": "string"}]:
            del out["anyOf"]  # the type says it, once
    if (out.get("type") == "object" or "properties" in out) and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if schema.get("nullable") is True and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if root:  # every kind has these, whether its schema lists them or not
        out["properties"] = out.get("properties", {}) | {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": _OBJECT_META,
        }
        out.setdefault("required", [])
        out["required"] = sorted({*out["required"], "apiVersion", "kind", "metadata"})
    return out


FORMATS = FormatChecker(formats=())
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    return True


def _list_type(validator: Any, list_type: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    """`x-kubernetes-list-type`: set items and map keys must be unique."""
    if not isinstance(instance, list) or list_type not in ("set", "map"):
        return
    keys = schema.get("x-kubernetes-list-map-keys", [])
    seen: set[str] = set()
    for item in instance:
        key = [item.get(k) for k in keys] if list_type == "map" and isinstance(item, dict) else item
        token = json.dumps(key, sort_keys=True, default=str)
        if token in seen:
            what = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True)) if list_type == "map" else token
            yield ValidationError(f"duplicate entry ({what}) in a list of type {list_type}")
        seen.add(token)


for _name, _check in (("int32", _int32), ("int64", _int64), ("date-time", _date_time)):
    FORMATS.checks(_name)(_check)
_Validator = validators.extend(Draft7Validator, {"x-kubernetes-list-type": _list_type})


# --- validation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    path: str  # the JSON path of the bad field, e.g. spec.storage.nodes[0].name
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def drop_nulls(value: Any) -> Any:
    """Null fields removed from objects at every depth (as the API server prunes them)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def gvk_of(manifest: Mapping[str, Any]) -> Gvk:
    group, _, version = str(manifest.get("apiVersion", "")).rpartition("/")
    return group, version, str(manifest.get("kind", ""))


def validate(manifest: Mapping[str, Any], index: CrdIndex) -> list[Problem]:
    """Every problem of one custom resource against its CRD, sorted by path."""
    if not isinstance(manifest, Mapping):
        return [Problem("(root)", f"expected an object, found {_short(manifest)}")]
    doc = drop_nulls(dict(manifest))
    gvk = gvk_of(doc)
    if gvk not in index.schemas:
        return [Problem("(root)", _unknown(gvk, index))]
    problems = {p for error in index.validator(gvk).iter_errors(doc) for p in _problems(error)}
    return sorted(problems, key=lambda p: (p.path, p.message))


def _unknown(gvk: Gvk, index: CrdIndex) -> str:
    group, version, kind = gvk
    api = f"{group}/{version}" if group else version
    served = sorted(v for g, v, k in index.schemas if (g, k) == (group, kind))
    if gvk in index.unserved:
        return f"{api} {kind} is not served by its CRD (served: {', '.join(served) or 'none'})"
    hint = f" (its CRD serves {', '.join(served)})" if served else ""
    where = index.sources[0].parent if index.sources else "the index"
    return f"no CRD for {api} {kind} in {where}{hint}"


def json_path(parts: Any) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", str(part)):
            path += f".{part}" if path else str(part)
        else:
            path += f"[{json.dumps(part)}]"
    return path or "(root)"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _problems(error: ValidationError) -> list[Problem]:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        return [Problem(json_path([*path, k]), "unknown field") for k in error.instance if k not in known]
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [Problem(json_path([*path, k]), "required field is missing") for k in missing]
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        found = _JSON_TYPES.get(type(error.instance), "null")
        return [Problem(json_path(path), f"expected {' or '.join(expected)}, found {found} {_short(error.instance)}")]
    if error.validator == "enum":
        return [
            Problem(json_path(path), f"{_short(error.instance)} is not one of {_short(error.validator_value, 300)}")
        ]
    if error.validator == "format":
        return [Problem(json_path(path), f"{_short(error.instance)} is not a valid {error.validator_value}")]
    if error.validator == "pattern":
        return [
            Problem(json_path(path), f"{_short(error.instance)} does not match the pattern {error.validator_value}")
        ]
    if error.validator in ("anyOf", "oneOf") and error.context:
        best = min(error.context, key=lambda e: len(e.message))
        return [Problem(json_path(path), f"{_short(error.instance)}: {best.message[:300]}")]
    return [Problem(json_path(path), error.message if len(error.message) < 400 else error.message[:397] + "...")]


def validate_files(paths: list[Path], index: CrdIndex) -> dict[Path, list[Problem]]:
    """Problems per file (files without problems left out)."""
    found = {}
    for path in paths:
        problems = [p for doc in load_yaml(path.read_text()) for p in validate(doc, index)]
        if problems:
            found[path] = problems
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan.crds", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help=f"check a CRD directory against {crd_sources.CHECKSUMS.name}")
    where = f"default: ${ENV}, else the user cache ({cache_dir()})"
    v.add_argument("dir", nargs="?", type=Path, help=where)
    f = sub.add_parser("fetch", help="download the pinned CRDs from upstream; writes only what matches its sha256")
    f.add_argument("--dest", type=Path, help=where)
    c = sub.add_parser("validate", help="validate custom resource manifests (YAML files) against the CRDs")
    c.add_argument("files", nargs="+", type=Path)
    c.add_argument("--crd-dir", type=Path, help=f"{where}, fetched when missing")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        dest = args.dest or configured_dir()
        if dest.is_dir() and not crd_sources.verify(dest):
            print(f"{dest}: every pinned CRD file is already there and matches")
            return 0
        try:
            written = crd_sources.fetch(dest)
        except crd_sources.FetchError as err:
            print(err, file=sys.stderr)
            return 1
        print("\n".join(f"wrote {p}" for p in written))
        return 0
    verifying = args.command == "verify"  # checks a directory as it is: never downloads
    crd_dir = (args.dir or configured_dir()) if verifying else (args.crd_dir or default_dir())
    problems = crd_sources.verify(crd_dir)
    if args.command == "verify" or problems:
        print("\n".join(problems) or f"{crd_dir}: every pinned CRD file matches {crd_sources.CHECKSUMS.name}")
        return 1 if problems else 0
    start = time.perf_counter()
    index = load_dir(crd_dir)
    loaded = time.perf_counter()
    found = validate_files(args.files, index)
    for path, file_problems in found.items():
        print("\n".join(f"{path}: {p}" for p in file_problems))
    done = time.perf_counter()
    print(
        f"{len(args.files)} file(s), {len(found)} invalid; CRDs loaded in {loaded - start:.2f}s, "
        f"validated in {done - loaded:.3f}s",
        file=sys.stderr,
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
