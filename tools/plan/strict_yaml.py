"""A YAML loader that refuses a mapping key given twice, as the Pulumi CLI does.

The CLI reads stack files with Go's gopkg.in/yaml.v3, whose decoder checks every mapping
before it builds it and fails with "line N: mapping key "k" already defined at line M"
(yaml.v3 decode.go, `(*decoder).mapping`: keys of the same node kind and the same text). PyYAML
keeps the last value silently, so a stack file with `akiba:nodes` twice, or a node with two
`ip:` keys, would plan offline with one of them and fail at the first real `pulumi preview`.

Use `StrictSafeLoader` as the base of a loader: every duplicate in the document is reported
at once, with its line and its key path.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class DuplicateKeyError(yaml.YAMLError):
    """One or more mapping keys given twice; the message lists each, as yaml.v3 does."""

    def __init__(self, duplicates: list[str]) -> None:
        self.duplicates = duplicates
        super().__init__("yaml: unmarshal errors:\n  " + "\n  ".join(duplicates))


def _step(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    # Inside the stack file's `config:` the key path is the one the program reports
    # (akiba:nodes[0].ip); elsewhere a dotted path from the top.
    if path in ("", "config"):
        return key
    return f"{path}.{key}"


def duplicate_keys(root: Node) -> list[str]:
    """Every key given twice in one mapping, anywhere under `root`, in document order."""
    found: list[str] = []
    seen_nodes: set[int] = set()  # an alias points at a node already walked

    def walk(node: Node, path: str) -> None:
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[str, ScalarNode] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    earlier = first.setdefault(key.value, key)
                    if earlier is not key:
                        where = _step(path, key.value)
                        found.append(
                            f'line {key.start_mark.line + 1}: mapping key "{key.value}" already defined at line '
                            f"{earlier.start_mark.line + 1} ({where})"
                        )
                    walk(value, _step(path, key.value))
                else:
                    walk(value, path)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, _step(path, i))

    walk(root, "")
    return found


class StrictSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that raises `DuplicateKeyError` for a key given twice in a mapping."""

    def construct_document(self, node: Node) -> Any:
        duplicates = duplicate_keys(node)
        if duplicates:
            raise DuplicateKeyError(duplicates)
        return super().construct_document(node)
