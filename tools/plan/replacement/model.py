"""What a replacement rule sees (one resource's old and new inputs) and what it answers (the
provider's Diff: which changed paths force a replacement, delete-before-replace or not)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.plan.replacement.paths import Path

SECRET_TOKEN = "[secret:"  # noqa: S105 (a marker: a masked secret compares by its value's digest)


@dataclass(frozen=True)
class Source:
    """Where a rule comes from: the provider repository and file that decide it."""

    repo: str
    file: str

    def __str__(self) -> str:
        return f"{self.repo} {self.file}"


@dataclass(frozen=True)
class Change:
    """One resource that exists before and after, with what differs."""

    urn: str
    type: str
    name: str
    olds: Mapping[str, Any]  # inputs; a secret is a SECRET_TOKEN string with its value's digest
    news: Mapping[str, Any]
    paths: tuple[Path, ...]  # where olds and news differ (after ignoreChanges)
    resource_id: str = ""
    provider_inputs: Mapping[str, Any] = field(default_factory=dict)  # its explicit provider's inputs
    dynamic_provider: Any = None  # the unpickled provider object of a dynamic resource
    # What happens to the resources this one depends on ("replace", "update"): some providers
    # replace on a dependency's change that offline inputs cannot show (a launch template's
    # new version), or their inputs become unknown.
    dependency_actions: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Verdict:
    """A provider's answer to Diff."""

    replaces: list[Path] = field(default_factory=list)
    delete_before_replace: bool = False
    changes: bool = True  # False: the provider reports no change although inputs differ
    source: Source | None = None
    notes: list[str] = field(default_factory=list)
    create_first_fails: str = ""  # why create-before-delete cannot work for it (shown when chosen)
