"""The program's own dynamic providers (`pulumi-python:dynamic:Resource`): the engine asks the
provider object pickled in `__provider` (the new program's) for its `diff(id, olds, news)` and uses
its DiffResult as is: `changes`, `replaces`, `delete_before_replace`
(pulumi sdk/python/lib/pulumi/dynamic/__main__.py DynamicResourceProviderServicer.Diff)."""

from __future__ import annotations

import base64
from typing import Any

import dill  # type: ignore[import-untyped]

from tools.plan.replacement.model import Change, Source, Verdict
from tools.plan.replacement.paths import parse

TYPE = "pulumi-python:dynamic:Resource"
PROVIDER_KEY = "__provider"
SDK = Source("pulumi/pulumi", "sdk/python/lib/pulumi/dynamic/__main__.py")


def load_provider(raw_inputs: dict[str, Any]) -> Any:
    """The provider object of a dynamic resource, from its unmasked inputs."""
    pickled = raw_inputs.get(PROVIDER_KEY)
    # The program's own pickle, made by this same run: nothing untrusted is loaded.
    return dill.loads(base64.b64decode(pickled)) if isinstance(pickled, str) else None  # noqa: S301


def diff(change: Change) -> Verdict | None:
    if change.type != TYPE:
        return None
    provider = change.dynamic_provider
    name = f"{type(provider).__module__}.{type(provider).__qualname__}"
    source = Source("this repository", name)
    if provider is None or not callable(getattr(provider, "diff", None)):
        return Verdict(notes=["no dynamic provider to ask: assumed to update in place"], source=SDK)
    olds = {k: v for k, v in change.olds.items() if k != PROVIDER_KEY}
    news = {k: v for k, v in change.news.items() if k != PROVIDER_KEY}
    try:
        result = provider.diff(change.resource_id, olds, news)
    except Exception as err:
        return Verdict(
            replaces=list(change.paths),
            source=source,
            notes=[f"{name}.diff raised {type(err).__name__}: {err}; counted as a replacement"],
        )
    if result.changes is False:
        return Verdict(changes=False, source=source)
    return Verdict(
        replaces=[parse(k) for k in result.replaces or []],
        delete_before_replace=bool(result.delete_before_replace),
        source=source,
    )
