"""Property paths the way the Pulumi engine writes them (`spec.template.spec.containers[0].image`,
`metadata.annotations["pulumi.com/x"]`, `triggers[*]`), and the changed paths between two input
objects, down to the leaves as a provider's detailed diff reports them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Segment = str | int
Path = tuple[Segment, ...]
WILDCARD = "*"
_PLAIN = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
_TOKEN = re.compile(r'\.?([^.\[\]"]+)|\[(\d+|\*)\]|\["((?:[^"\\]|\\.)*)"\]')


class PathError(ValueError):
    pass


def parse(text: str) -> Path:
    """`a.b[0]["c.d"]` -> ("a", "b", 0, "c.d"); `[*]` and a bare `*` segment are wildcards.

    The grammar of pulumi/pulumi sdk/go/common/resource/properties_path.go (ParsePropertyPath)."""
    if text == WILDCARD:
        return (WILDCARD,)
    out: list[Segment] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PathError(f"not a property path: {text!r}")
        name, index, quoted = m.groups()
        if name is not None:
            out.append(name)
        elif index is not None:
            out.append(WILDCARD if index == WILDCARD else int(index))
        else:
            out.append(quoted.replace('\\"', '"'))
        pos = m.end()
    return tuple(out)


def render(path: Path) -> str:
    text = ""
    for seg in path:
        if isinstance(seg, int):
            text += f"[{seg}]"
        elif seg == WILDCARD:
            text += "[*]" if text else "*"
        elif _PLAIN.match(seg):
            text += f".{seg}" if text else seg
        else:
            text += '["' + seg.replace('"', '\\"') + '"]'
    return text or "."


def contains(pattern: Path, path: Path) -> bool:
    """pulumi's PropertyPath.Contains: `pattern` names `path` or one of its ancestors."""
    if len(pattern) > len(path):
        return False
    return all(p in (WILDCARD, q) for p, q in zip(pattern, path, strict=False))


def _child(value: Any, seg: Segment) -> tuple[bool, Any]:
    if isinstance(value, list) and isinstance(seg, int):
        return (True, value[seg]) if 0 <= seg < len(value) else (False, None)
    if isinstance(value, dict) and seg in value:
        return True, value[seg]
    return False, None


def get(value: Any, path: Path) -> tuple[bool, Any]:
    """(found, value) at `path`; a wildcard segment is not resolved here."""
    for seg in path:
        found, value = _child(value, seg)
        if not found:
            return False, None
    return True, value


def has(value: Any, pattern: Path) -> bool:
    """Whether `value` holds something at `pattern` (wildcards match any list index or key)."""
    if not pattern:
        return True
    head, rest = pattern[0], pattern[1:]
    if head == WILDCARD:
        children = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
        return any(has(child, rest) for child in children)
    found, child = get(value, (head,))
    return found and has(child, rest)


def touches(pattern: Path, path: Path, old: Any, new: Any) -> bool:
    """Whether a change at `path` changes something `pattern` names: `pattern` contains `path`,
    or `path` is above `pattern` and the old or new value there holds what `pattern` names (a
    whole `spec` added holds its `spec.selector`). This is how pulumi-kubernetes matches its
    force-new JSONPaths against a patch (provider/pkg/openapi/match.go PatchPropertiesChanged)."""
    if contains(pattern, path):
        return True
    if len(path) >= len(pattern) or not contains(pattern[: len(path)], path):
        return False
    rest = pattern[len(path) :]
    return any(found and has(value, rest) for found, value in (get(old, path), get(new, path)))


def changed(old: Any, new: Any, path: Path = ()) -> Iterator[Path]:
    """The paths where `old` and `new` differ: into maps key by key and into lists index by index
    (an element added or removed is its own path), like the engine's detailed diff."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if key not in old or key not in new:
                yield (*path, key)
            elif old[key] != new[key]:
                yield from changed(old[key], new[key], (*path, key))
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            if i >= len(old) or i >= len(new):
                yield (*path, i)
            elif old[i] != new[i]:
                yield from changed(old[i], new[i], (*path, i))
    elif old != new:
        yield path


def set_at(value: dict[str, Any], path: Path, new: Any, present: bool = True) -> None:
    """Set (or remove, with present=False) the value at a concrete path, creating maps on the way."""
    target: Any = value
    for seg in path[:-1]:
        found, child = get(target, (seg,))
        if not found:
            if not present:
                return
            child = {}
            target[seg] = child
        target = child
    last = path[-1]
    if isinstance(last, int) and isinstance(target, list):
        if present and 0 <= last < len(target):
            target[last] = new
        elif not present and 0 <= last < len(target):
            del target[last]
    elif isinstance(target, dict):
        if present:
            target[last] = new
        else:
            target.pop(last, None)


def expand(value: Any, pattern: Path, prefix: Path = ()) -> Iterator[Path]:
    """The concrete paths in `value` that a wildcard pattern names."""
    if not pattern:
        yield prefix
        return
    head, rest = pattern[0], pattern[1:]
    if head == WILDCARD:
        keys: list[Segment] = (
            list(range(len(value))) if isinstance(value, list) else list(value) if isinstance(value, dict) else []
        )
        for key in keys:
            yield from expand(get(value, (key,))[1], rest, (*prefix, key))
    else:
        found, child = get(value, (head,))
        if found or not rest:
            yield from expand(child, rest, (*prefix, head))
