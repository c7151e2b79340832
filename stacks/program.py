"""The Pulumi program: config -> spec -> components -> outputs contract."""

from __future__ import annotations

import sys

from stacks.composition import build
from stacks.config import load_spec, read_secrets
from stacks.outputs import export

# Frames the SDK's dependency-cycle check needs per node: it walks every new resource's
# dependencies recursively (pulumi/runtime/resource_cycle_breaker.py `_with_transitive_deps`),
# and the nodes' configuration is one chain through all of them, three resources per node
# (components/machines/node_converge.py). Python's default limit (1000) ends near 300 nodes.
FRAMES_PER_NODE = 10


def main() -> None:
    spec = load_spec()  # raises ConfigError (a clean pulumi.RunError) listing every problem
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000 + FRAMES_PER_NODE * len(spec.nodes)))
    export(build(spec, read_secrets(spec)))
