"""Replacement rules: for a resource whose inputs changed, what its provider's Diff answers
(update or replace, which inputs force it, delete-before-replace or not). One module per
provider family, each rule citing the provider source it comes from; `provider_diff` picks the
family. The engine's own layer (resource options, protect, provider replacement) is in `engine`."""

from __future__ import annotations

from tools.plan.replacement import command, dynamic, kubernetes, providers, terraform
from tools.plan.replacement.model import Change, Verdict

FAMILIES = (dynamic.diff, kubernetes.diff, providers.diff, terraform.diff, command.diff)


def provider_diff(change: Change) -> Verdict:
    for family in FAMILIES:
        verdict = family(change)
        if verdict is not None:
            return verdict
    package = change.type.split(":", 1)[0]
    return Verdict(notes=[f"no replacement rules for package {package!r}: assumed to update in place"])
