"""The Pulumi program: config -> spec -> components -> outputs contract."""

from __future__ import annotations

from stacks.composition import build
from stacks.config import load_spec, read_secrets
from stacks.outputs import export


def main() -> None:
    spec = load_spec()  # raises ConfigError (a clean pulumi.RunError) listing every problem
    export(build(spec, read_secrets(spec)))
