"""Runs the real akiba program under the SDK's mock engine and returns what it declared."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings
from pulumi.runtime.mocks import set_mocks
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from tools.plan.mocks import AkibaMocks, Recorded, RecordingMonitor, StackOutputs
from tools.plan.stackfile import StackFile

PROJECT = "akiba"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Plan:
    """What one offline run of a stack declared."""

    stack: str
    resources: list[Recorded]
    outputs: dict[str, Any]  # secrets masked
    secret_outputs: set[str]
    secret_values: set[str] = field(repr=False)
    raw_outputs: dict[str, Any] = field(default_factory=dict, repr=False)  # unmasked; never written

    def as_reference(self) -> StackOutputs:
        """This plan's outputs as a StackReference to its stack would read them."""
        return StackOutputs(self.raw_outputs, tuple(sorted(self.secret_outputs)))

    def by_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == typ]


def akiba_program() -> None:
    """What `__main__.py` runs: imported fresh-safe (module state lives in the Pulumi runtime)."""
    program = importlib.import_module("stacks.program")
    program.main()


@contextmanager
def _batch_gc() -> Iterator[None]:
    """An offline plan is a short batch job that creates many long-lived SDK objects (Outputs,
    futures, protobuf structs). With CPython's default thresholds the collector rescans them
    again and again, which makes a 500-node plan superlinear; freeze what exists and collect
    the young generation less often."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def run(
    stack_file: StackFile,
    program: Callable[[], None] = akiba_program,
    *,
    project: str = PROJECT,
    stack_references: dict[str, StackOutputs] | None = None,
    mocks: AkibaMocks | None = None,
) -> Plan:
    """Evaluate `program` for the stack; raises whatever the program raises (ConfigError...).

    `stack_references` maps a StackReference name (org/project/stack) to the outputs it reads;
    `mocks` (with their own references) replace the default ones (plan-diff's replaced outputs)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    settings.reset_options(project=project, stack=stack_file.stack, preview=False)
    runtime_config.set_all_config(stack_file.config, stack_file.secret_keys)
    mocks = mocks or AkibaMocks(stack_references)
    monitor = RecordingMonitor(mocks)
    set_mocks(mocks, project=project, stack=stack_file.stack, preview=False, monitor=monitor)
    settings.ROOT.set(None)  # set_mocks made and closed a root stack; run_in_stack makes ours
    with _batch_gc():
        _sync_await(run_in_stack(program))
    secrets = set(monitor.secret_values) | {stack_file.config[k] for k in stack_file.secret_keys}
    return Plan(
        stack_file.stack, monitor.recorded, monitor.outputs, monitor.secret_outputs, secrets, monitor.raw_outputs
    )
