"""The engine's layer over a provider's Diff, as `pulumi preview` applies it
(pulumi/pulumi pkg/resource/deploy/step_generator.go):

- ignoreChanges: the old value of each ignored path is put back into the new inputs before the
  diff (processIgnoreChanges);
- replaceOnChanges: a changed path under one of them turns the update into a replacement
  (applyReplaceOnChanges);
- deleteBeforeReplace: the resource option, when set, overrides what the provider asked;
- a resource whose explicit provider is replaced is replaced with it (providerChanged);
- a protected resource cannot be replaced: the preview fails ("unable to replace resource ...
  as it is currently marked for protection")."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tools.plan.replacement import provider_diff
from tools.plan.replacement.critical import category
from tools.plan.replacement.model import SECRET_TOKEN, Change
from tools.plan.replacement.paths import (
    WILDCARD,
    Path,
    PathError,
    changed,
    contains,
    expand,
    get,
    parse,
    render,
    set_at,
)

Action = Literal["create", "update", "replace", "delete"]
MASK = "[secret]"


@dataclass(frozen=True)
class Options:
    """The resource options of a registration that change how it is diffed."""

    replace_on_changes: tuple[str, ...] = ()
    delete_before_replace: bool | None = None  # None: not set, the provider decides
    ignore_changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resource:
    """One resource of one side of the diff, inputs comparable across plans (secrets as digests)."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    custom: bool = True
    protect: bool = False
    retain_on_delete: bool = False
    provider: str = ""  # URN of its explicit provider
    dependencies: tuple[str, ...] = ()
    id: str = ""
    options: Options = Options()
    dynamic_provider: Any = None
    provider_inputs: Mapping[str, Any] = field(default_factory=dict)
    aliases: frozenset[str] = frozenset()  # URNs it was known by: the same resource, not a new one

    @property
    def ident(self) -> str:
        """How a reviewer names it: `<package>:<Kind>:<name>` (tls:PrivateKey:ca)."""
        package, _, kind = self.type.partition(":")
        kind = kind.rsplit(":", 1)[-1]
        if self.type == "pulumi-python:dynamic:Resource":
            package, kind = "dynamic", str(self.inputs.get("kind") or "Resource")
        elif package == "pulumi" and self.type.startswith("pulumi:providers:"):
            package = "provider"
        return f"{package}:{kind}:{self.name}"

    @property
    def category(self) -> str | None:
        return category(self.type, self.inputs)


@dataclass
class Step:
    """What the engine would do with one resource."""

    resource: Resource
    action: Action
    delete_before_replace: bool = False
    changed: list[Path] = field(default_factory=list)
    forcing: list[Path] = field(default_factory=list)
    secret: set[Path] = field(default_factory=set)  # changed paths whose values are secret
    caused_by: list[str] = field(default_factory=list)  # idents of replaced dependencies
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    engine_error: str = ""  # why `pulumi preview` itself would fail on this step

    def keys(self, paths: list[Path]) -> list[str]:
        return [render(p) + (" (secret)" if p in self.secret else "") for p in paths]


def comparable(inputs: Any, digests: Mapping[str, str], path: str = "") -> Any:
    """Masked inputs with each secret replaced by a token of its value's digest, so a changed
    secret compares unequal without its value (paths as tools.plan.mocks.mask writes them)."""
    if isinstance(inputs, dict):
        return {k: comparable(v, digests, f"{path}.{k}" if path else k) for k, v in inputs.items()}
    if isinstance(inputs, list):
        return [comparable(v, digests, f"{path}[{i}]") for i, v in enumerate(inputs)]
    if inputs == MASK and (digest := digests.get(path or ".")):
        return f"{SECRET_TOKEN}{digest}]"
    return inputs


def _holds_secret(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(SECRET_TOKEN) or value == MASK
    if isinstance(value, dict):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secret(v) for v in value)
    return False


def ignore_changes(olds: Mapping[str, Any], news: Mapping[str, Any], patterns: tuple[str, ...]) -> dict[str, Any]:
    """processIgnoreChanges: each ignored path takes its old value (or is dropped when it had none)."""
    result = copy.deepcopy(dict(news))
    for text in patterns:
        try:
            pattern = parse(text)
        except PathError:
            continue
        if pattern == (WILDCARD,):
            return copy.deepcopy(dict(olds))
        for path in {*expand(olds, pattern), *expand(result, pattern)}:
            found, value = get(olds, path)
            set_at(result, path, copy.deepcopy(value), present=found)
    return result


def step(
    old: Resource,
    new: Resource,
    dependency_actions: Mapping[str, str],
    replaced: Mapping[str, str],
) -> Step | None:
    """The step for a resource in both plans; None when nothing happens to it.

    `dependency_actions`: urn -> action of the resources that changed; `replaced`: urn -> ident of
    the replaced ones (its provider among them replaces it too)."""
    if not new.custom:
        return None
    deps = {u: a for u, a in dependency_actions.items() if u in new.dependencies}
    if new.provider and new.provider in replaced:
        s = Step(new, "replace", forcing=[("provider",)], changed=[("provider",)], caused_by=[replaced[new.provider]])
        s.delete_before_replace = bool(new.options.delete_before_replace)
        return _finish(old, new, s)
    news = ignore_changes(old.inputs, new.inputs, new.options.ignore_changes)
    paths = list(changed(old.inputs, news))
    if not paths and not deps:
        return None
    change = Change(
        urn=new.urn,
        type=new.type,
        name=new.name,
        olds=old.inputs,
        news=news,
        paths=tuple(paths),
        resource_id=new.id,
        provider_inputs=new.provider_inputs,
        dynamic_provider=new.dynamic_provider,
        dependency_actions=deps,
    )
    verdict = provider_diff(change)
    if not verdict.changes or (not paths and not verdict.replaces):
        return None
    forcing = list(dict.fromkeys(verdict.replaces))
    for text in new.options.replace_on_changes:
        try:
            pattern = parse(text)
        except PathError:
            continue
        forcing += [p for p in paths if (pattern == (WILDCARD,) or contains(pattern, p)) and p not in forcing]
    secret = {p for p in {*paths, *forcing} if any(_holds_secret(get(side, p)[1]) for side in (old.inputs, news))}
    s = Step(new, "replace" if forcing else "update", changed=paths, forcing=forcing, secret=secret)
    s.sources = [str(verdict.source)] if verdict.source else []
    s.notes = list(verdict.notes)
    if forcing:
        override = new.options.delete_before_replace
        s.delete_before_replace = verdict.delete_before_replace if override is None else override
        if not s.delete_before_replace and verdict.create_first_fails:
            s.notes.append(verdict.create_first_fails)
    return _finish(old, new, s)


def _finish(old: Resource, new: Resource, s: Step) -> Step:
    if s.action == "replace":
        if old.protect and new.protect:
            s.engine_error = "protected: the engine refuses to replace it (unprotect it in an earlier change)"
        if old.retain_on_delete:
            s.notes.append("retainOnDelete: the old one is left in place, only forgotten by Pulumi")
    return s


def compare(base: Mapping[str, Resource], head: Mapping[str, Resource]) -> dict[str, Step]:
    """Every step, creates and deletes included, to a fixed point of the cascades the engine
    itself makes (a replaced provider; a dependency's update that a provider reads back)."""
    # An alias maps a new URN onto an old one: the engine moves the resource instead of
    # deleting and recreating it (step_generator.go, aliases).
    was: dict[str, str] = {urn: urn for urn in head.keys() & base.keys()}
    for urn in sorted(head.keys() - base.keys()):
        old = next(
            (a for a in sorted(head[urn].aliases) if a in base and a not in head and a not in was.values()), None
        )
        if old:
            was[urn] = old
    steps: dict[str, Step] = {}
    for _ in range(20):
        actions = {u: s.action for u, s in steps.items()}
        replaced = {u: s.resource.ident for u, s in steps.items() if s.action == "replace"}
        found: dict[str, Step] = {}
        for urn, old_urn in was.items():
            if s := step(base[old_urn], head[urn], actions, replaced):
                found[urn] = s
        if {u: s.action for u, s in found.items()} == actions:
            steps = found
            break
        steps = found
    for urn in head.keys() - was.keys():
        steps[urn] = Step(head[urn], "create")
    for urn in base.keys() - head.keys() - set(was.values()):
        gone = Step(base[urn], "delete")
        if base[urn].protect:
            gone.engine_error = "protected: the engine refuses to delete it"
        if base[urn].retain_on_delete:
            gone.notes.append("retainOnDelete: left in place, only forgotten by Pulumi")
        steps[urn] = gone
    return steps
