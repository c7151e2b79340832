"""StackReferences in the offline plan: a stack that reads another (dev reads prod's Ceph)
gets that stack's own offline plan outputs, so `make plan STACK=dev` works on a fresh clone."""

from __future__ import annotations

import json
from pathlib import Path

from tools.plan.mocks import StackOutputs
from tools.plan.runner import Plan, run
from tools.plan.stackfile import StackFile, read_stack_file


def referenced_stacks(stack_file: StackFile) -> list[str]:
    """The org/project/stack names a stack's config points at."""
    raw = stack_file.config.get("akiba:libvirt")
    ref = json.loads(raw).get("cephStack") if raw else None
    return [ref] if isinstance(ref, str) else []


def resolve(stack_file: StackFile, root: Path) -> dict[str, StackOutputs]:
    refs: dict[str, StackOutputs] = {}
    for ref in referenced_stacks(stack_file):
        stack = ref.rsplit("/", 1)[-1]
        if stack == stack_file.stack:
            raise ValueError(f"{stack_file.path.name}: akiba:libvirt.cephStack points at this stack itself")
        refs[ref] = plan(read_stack_file(root, stack), root).as_reference()
    return refs


def plan(stack_file: StackFile, root: Path) -> Plan:
    """The offline plan of a stack, its StackReferences resolved from their own plans."""
    return run(stack_file, stack_references=resolve(stack_file, root))
