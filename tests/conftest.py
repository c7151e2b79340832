"""Shared fixtures: offline plans of the real stacks, and the rule for real checkers
(missing in CI: fail; missing on a laptop: skip with the reason)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings

from stacks import config as stack_config
from stacks.spec import StackSpec
from tools.plan import references
from tools.plan.runner import Plan
from tools.plan.stackfile import StackFile, read_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACKS = ("prod", "dev")
IN_CI = os.environ.get("CI") == "true"


def require_tool(name: str, install: str) -> str:
    """The path of a real checker; fails in CI when missing, skips elsewhere."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    message = f"{name} is not installed ({install})"
    if IN_CI:
        pytest.fail(f"{message}: CI must install it (.ci/run)")
    pytest.skip(message)


def stack_file(stack: str) -> StackFile:
    return read_stack_file(ROOT, stack)


def config_values(stack: str) -> dict[str, Any]:
    """The stack file's config with objects decoded, for tests that edit it."""
    sf = stack_file(stack)
    return {k: (json.loads(v) if k not in sf.secret_keys and v[:1] in "[{" else v) for k, v in sf.config.items()}


def edited(stack: str, edit: Callable[[dict[str, Any]], None]) -> StackFile:
    """A copy of a stack file's config with `edit` applied (secrets stay secret)."""
    sf = stack_file(stack)
    values = copy.deepcopy(config_values(stack))
    edit(values)
    cfg = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    # A secret stays secret only while the edit left its placeholder alone.
    return StackFile(stack, sf.path, cfg, [k for k in sf.secret_keys if cfg.get(k) == sf.config[k]])


def parse(sf: StackFile) -> StackSpec:
    """Validate a stack file's config the way the program does."""
    settings.reset_options(project="akiba", stack=sf.stack)
    runtime_config.set_all_config(sf.config, sf.secret_keys)
    return stack_config.parse(stack_config.from_pulumi())


_PLANS: dict[str, Plan] = {}


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    for stack in STACKS:
        if stack not in _PLANS:
            _PLANS[stack] = references.plan(stack_file(stack), ROOT)
            assert _PLANS[stack].resources, f"{stack}: the recorded plan is empty"
    return _PLANS
