"""`make plan-diff BASE=<rev> [ALLOW_REPLACE="<id> ..."]`: plan the stack at BASE and at the
working tree and say, for each resource, what `pulumi up` would do to it: create (+), update in
place (~), replace creating the new one first (+-) or deleting the old one first (-+), delete (-),
with the inputs that force each replacement (the providers' own rules, tools/plan/replacement).

The gate: a change that replaces or deletes a machine, a disk, a volume or the cluster's keys
(tools/plan/replacement/critical.py) fails, unless the change names each such resource in the one
switch, ALLOW_REPLACE (`--allow-replace`, AKIBA_ALLOW_REPLACE). So does a change the engine
itself would refuse (replacing or deleting a protected resource).

For reviewers without cloud credentials: secrets are compared by digest, never shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks.problems import ConfigError
from tools.plan.artifacts import plan_document, scrub
from tools.plan.mocks import Recorded
from tools.plan.references import resolve
from tools.plan.replacement import engine
from tools.plan.replacement.cascade import ReplacedOutputs
from tools.plan.replacement.dynamic import TYPE as DYNAMIC
from tools.plan.replacement.dynamic import load_provider
from tools.plan.replacement.engine import Resource, Step
from tools.plan.runner import ROOT, Plan, run
from tools.plan.stackfile import StackFile, StackFileError, read_stack_file

ALLOW_ENV = "AKIBA_ALLOW_REPLACE"
SYMBOL = {"create": "+", "update": "~", "delete": "-"}
MAX_KEYS = 6
Replan = Callable[[frozenset[tuple[str, str]]], Plan]


@dataclass
class Result:
    """What would happen to each resource, and which stack outputs change."""

    stack: str
    steps: dict[str, Step]
    outputs: list[str]

    def by_action(self, *actions: str) -> list[Step]:
        return sorted((s for s in self.steps.values() if s.action in actions), key=lambda s: s.resource.ident)


@dataclass
class Gate:
    refused: list[Step] = field(default_factory=list)
    allowed: list[Step] = field(default_factory=list)
    engine_errors: list[Step] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # allowances naming nothing refused
    ambiguous: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not (self.refused or self.engine_errors or self.unmatched or self.ambiguous)


# --- the two sides ---------------------------------------------------------------------------


def _plan_json(tree: Path, stack: str, out: Path) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-m", "tools.plan", "plan", "--stack", stack, "--out", str(out), "--no-check"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"offline plan failed in {tree}:\n{res.stderr.strip() or res.stdout.strip()}")
    doc: dict[str, Any] = json.loads((out / stack / "plan.json").read_text())
    return doc


def document(plan: Plan) -> dict[str, Any]:
    """A plan as plan.json holds it (secrets masked, digests kept)."""
    doc: dict[str, Any] = scrub(plan_document(plan), plan.secret_values)
    return doc


def base_resources(doc: Mapping[str, Any]) -> dict[str, Resource]:
    return {
        r["urn"]: Resource(
            urn=r["urn"],
            type=r["type"],
            name=r.get("name") or r["urn"].rsplit("::", 1)[-1],
            inputs=engine.comparable(r["inputs"], r.get("secretInputs") or {}),
            custom=r.get("custom", True),
            protect=bool(r.get("protect")),
            retain_on_delete=bool(r.get("retainOnDelete")),
            provider=r.get("provider", ""),
            dependencies=tuple(r.get("dependencies", ())),
        )
        for r in doc["resources"]
    }


def head_resources(plan: Plan) -> dict[str, Resource]:
    """The new side: plan.json's view plus what only the new registration knows (its options,
    its dynamic provider object)."""
    doc = document(plan)
    entries = {r["urn"]: r for r in doc["resources"]}
    providers: dict[str, Any] = {}
    by_urn = {rec.urn: rec for rec in plan.resources}
    memo: dict[str, frozenset[str]] = {}
    out: dict[str, Resource] = {}
    for rec in plan.resources:
        entry = entries[rec.urn]
        dynamic = None
        if rec.type == DYNAMIC:
            key = str(rec.raw_inputs.get("__provider"))
            dynamic = providers[key] if key in providers else providers.setdefault(key, load_provider(rec.raw_inputs))
        provider_entry = entries.get(rec.provider)
        out[rec.urn] = Resource(
            urn=rec.urn,
            type=rec.type,
            name=rec.name,
            inputs=engine.comparable(entry["inputs"], entry["secretInputs"]),
            custom=rec.custom,
            protect=rec.protect,
            retain_on_delete=rec.retain_on_delete,
            provider=rec.provider,
            dependencies=tuple(rec.dependencies),
            id=rec.id,
            options=engine.Options(
                replace_on_changes=tuple(rec.replace_on_changes),
                delete_before_replace=rec.delete_before_replace,
                ignore_changes=tuple(rec.ignore_changes),
            ),
            dynamic_provider=dynamic,
            provider_inputs=provider_entry["inputs"] if provider_entry else {},
            aliases=alias_urns(rec, by_urn, memo),
        )
    return out


def _urn(prefix: str, parent: str, typ: str, name: str) -> str:
    """A URN as the offline plan writes it (the parent's own type before the resource's)."""
    if parent:
        typ = parent.split("::")[2].split("$")[-1] + "$" + typ
    return f"{prefix}::{typ}::{name}"


def alias_urns(rec: Recorded, by_urn: Mapping[str, Recorded], memo: dict[str, frozenset[str]]) -> frozenset[str]:
    """The URNs a resource's aliases name, its parent's aliases inherited (pulumi/pulumi
    pkg/resource/deploy/source_eval.go: a child of an aliased parent is aliased under it too)."""
    if rec.urn in memo:
        return memo[rec.urn]
    prefix = "::".join(rec.urn.split("::")[:2])
    urns: set[str] = set()
    for alias in rec.aliases:
        if "urn" in alias:
            urns.add(alias["urn"])
            continue
        spec = alias["spec"]
        parent = "" if spec.get("noParent") else spec.get("parentUrn") or rec.parent
        urns.add(_urn(prefix, parent, spec.get("type") or rec.type, spec.get("name") or rec.name))
    parent_rec = by_urn.get(rec.parent)
    for parent_alias in alias_urns(parent_rec, by_urn, memo) if parent_rec else ():
        urns.add(_urn(prefix, parent_alias, rec.type, rec.name))
    memo[rec.urn] = frozenset(urns)
    return memo[rec.urn]


def planner(stack_file: StackFile, root: Path = ROOT) -> Replan:
    """Plans the stack, the named (type, name) resources answering new generated values."""
    refs = resolve(stack_file, root)
    return lambda replaced: run(stack_file, stack_references=refs, mocks=ReplacedOutputs(refs, replaced))


# --- the comparison ----------------------------------------------------------------------------


def compare(base: Mapping[str, Any] | Plan, head: Plan, replan: Replan | None = None) -> Result:
    """What `pulumi up` would do going from `base` (a plan.json document or a plan) to `head`.

    With `replan`, follow replacements into what is built from the replaced resources' new values."""
    doc = document(base) if isinstance(base, Plan) else base
    olds = base_resources(doc)
    own = engine.compare(olds, head_resources(head))
    steps = own
    seen: frozenset[tuple[str, str]] = frozenset()
    while replan is not None:
        replaced = frozenset((s.resource.type, s.resource.name) for s in steps.values() if s.action == "replace")
        if replaced <= seen:
            break
        seen |= replaced
        steps = engine.compare(olds, head_resources(replan(seen)))
    replaced_idents = {u: s.resource.ident for u, s in steps.items() if s.action == "replace"}
    for urn, s in steps.items():
        mine = own.get(urn)
        if s.action in ("create", "delete") or (mine and set(s.changed) <= set(mine.changed)):
            continue
        causes = [replaced_idents[d] for d in s.resource.dependencies if d in replaced_idents]
        s.caused_by = list(dict.fromkeys([*s.caused_by, *causes]))
    head_outputs = scrub(head.outputs, head.secret_values)
    base_outputs = doc.get("outputs", {})
    outputs = sorted(k for k in set(base_outputs) | set(head_outputs) if base_outputs.get(k) != head_outputs.get(k))
    return Result(head.stack, steps, outputs)


def check_gate(result: Result, allow: Iterable[str]) -> Gate:
    """Refuse each replacement or deletion of a stateful or critical resource that `allow` does not
    name exactly (its ident, its URN, or its name when no other resource has that name)."""
    tokens = list(dict.fromkeys(t for t in allow if t))
    gate = Gate(engine_errors=[s for s in result.steps.values() if s.engine_error])
    critical = [
        s
        for s in result.steps.values()
        if s.action in ("replace", "delete")
        and s.resource.category
        and not (s.action == "delete" and s.resource.retain_on_delete)
    ]
    names: dict[str, list[str]] = {}
    for s in result.steps.values():
        names.setdefault(s.resource.name, []).append(s.resource.ident)
    used: set[str] = set()
    for s in sorted(critical, key=lambda s: s.resource.ident):
        hit = [t for t in tokens if t in (s.resource.ident, s.resource.urn)]
        hit += [t for t in tokens if t == s.resource.name and len(names.get(t, [])) == 1]
        used.update(hit)
        (gate.allowed if hit else gate.refused).append(s)
    for token in tokens:
        if token in used:
            continue
        if len(names.get(token, [])) > 1:
            gate.ambiguous[token] = sorted(names[token])
        else:
            gate.unmatched.append(token)
    return gate


# --- what the reviewer reads -------------------------------------------------------------------


def symbol(s: Step) -> str:
    if s.action == "replace":
        return "-+" if s.delete_before_replace else "+-"
    return SYMBOL[s.action]


def _keys(keys: list[str]) -> str:
    more = f", ... {len(keys) - MAX_KEYS} more" if len(keys) > MAX_KEYS else ""
    return ", ".join(keys[:MAX_KEYS]) + more


def describe(s: Step) -> str:
    """`forced by <keys>; also <keys>` for a replacement, the changed keys for an update."""
    if s.action == "replace":
        text = f"forced by {_keys(s.keys(s.forcing))}"
        rest = [p for p in s.changed if p not in s.forcing]
        text += f"; also {_keys(s.keys(rest))}" if rest else ""
    elif s.action == "update":
        text = _keys(s.keys(s.changed))
    else:
        return ""
    if s.caused_by:
        text += f" (because {', '.join(s.caused_by)} {'is' if len(s.caused_by) == 1 else 'are'} replaced)"
    return text


def render_result(result: Result, base_rev: str) -> list[str]:
    counts = {a: len(result.by_action(a)) for a in ("create", "update", "replace", "delete")}
    lines = [
        f"Plan diff of stack '{result.stack}' ({base_rev} -> working tree): "
        f"{counts['create']} to create, {counts['update']} to update, {counts['replace']} to replace, "
        f"{counts['delete']} to delete"
    ]
    order = {"create": 0, "update": 1, "replace": 2, "delete": 3}
    for s in sorted(result.steps.values(), key=lambda s: (order[s.action], s.resource.ident)):
        tag = f"  [{s.resource.category}]" if s.resource.category and s.action in ("replace", "delete") else ""
        detail = describe(s)
        lines.append(f"  {symbol(s):<2} {s.resource.ident}{'  ' + detail if detail else ''}{tag}")
        if s.engine_error:
            lines.append(f"       ! {s.engine_error}")
        lines += [f"       note: {n}" for n in s.notes]
    if result.outputs:
        lines.append(f"  outputs changed: {', '.join(result.outputs)}")
    return lines


def allow_command(result: Result, base_rev: str, idents: list[str]) -> str:
    return f'make plan-diff STACK={result.stack} BASE={base_rev} ALLOW_REPLACE="{" ".join(idents)}"'


def render_gate(result: Result, gate: Gate, base_rev: str) -> list[str]:
    lines: list[str] = []
    for s in gate.engine_errors:
        lines.append(f"ERROR {symbol(s)} {s.resource.ident}: {s.engine_error}")
    for token, idents in gate.ambiguous.items():
        lines.append(f"ERROR ALLOW_REPLACE {token!r} names {len(idents)} resources: use one of {', '.join(idents)}")
    for token in gate.unmatched:
        lines.append(f"ERROR ALLOW_REPLACE {token!r} names no refused replacement or deletion in this diff")
    if gate.allowed:
        lines.append("Allowed by ALLOW_REPLACE:")
        lines += [f"  {symbol(s):<2} {s.resource.ident}  [{s.resource.category}]" for s in gate.allowed]
    if gate.refused:
        lines.append(
            f"REFUSED: {len(gate.refused)} replacement(s) or deletion(s) of machines, disks, volumes or "
            "cluster keys that this change does not allow:"
        )
        for s in gate.refused:
            why = describe(s)
            lines.append(f"  {symbol(s):<2} {s.resource.ident}  [{s.resource.category}]{'  ' + why if why else ''}")
        idents = [s.resource.ident for s in gate.allowed + gate.refused]
        lines.append(
            "If that is intended, allow exactly these (the same names in --allow-replace or AKIBA_ALLOW_REPLACE):"
        )
        lines.append(f"  {allow_command(result, base_rev, idents)}")
    if gate.passed:
        lines.append("Gate: passed (no machine, disk, volume or cluster key is replaced or deleted without allowance)")
    return lines


def to_json(result: Result, gate: Gate, base_rev: str) -> dict[str, Any]:
    def entry(s: Step) -> dict[str, Any]:
        return {
            "id": s.resource.ident,
            "urn": s.resource.urn,
            "type": s.resource.type,
            "action": s.action,
            "symbol": symbol(s),
            "deleteBeforeReplace": s.delete_before_replace if s.action == "replace" else None,
            "changedKeys": s.keys(s.changed),
            "replaceKeys": s.keys(s.forcing),
            "causedBy": s.caused_by,
            "category": s.resource.category,
            "engineError": s.engine_error or None,
            "notes": s.notes,
            "rules": s.sources,
        }

    order = {"create": 0, "update": 1, "replace": 2, "delete": 3}
    steps = sorted(result.steps.values(), key=lambda s: (order[s.action], s.resource.ident))
    return {
        "stack": result.stack,
        "base": base_rev,
        "summary": {a: len(result.by_action(a)) for a in order},
        "resources": [entry(s) for s in steps],
        "outputsChanged": result.outputs,
        "gate": {
            "passed": gate.passed,
            "refused": [s.resource.ident for s in gate.refused],
            "allowed": [s.resource.ident for s in gate.allowed],
            "engineErrors": [s.resource.ident for s in gate.engine_errors],
            "unmatchedAllowances": gate.unmatched,
            "ambiguousAllowances": gate.ambiguous,
            "allowCommand": allow_command(result, base_rev, [s.resource.ident for s in gate.allowed + gate.refused])
            if gate.refused
            else None,
        },
    }


def report(result: Result, base_rev: str, allow: Iterable[str], out_dir: Path) -> int:
    """Print the diff and the gate, write <out_dir>/<stack>.json; 0 when the gate passes."""
    gate = check_gate(result, allow)
    print("\n".join(render_result(result, base_rev)))
    print()
    print("\n".join(render_gate(result, gate, base_rev)))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result.stack}.json"
    path.write_text(json.dumps(to_json(result, gate, base_rev), indent=2, sort_keys=False) + "\n")
    print(f"Wrote {path}")
    return 0 if gate.passed else 1


def allowances(flags: Iterable[str]) -> list[str]:
    """The names given with --allow-replace (each may hold several, space-separated) and in
    AKIBA_ALLOW_REPLACE."""
    words = [w for flag in flags for w in flag.split()]
    return words + os.environ.get(ALLOW_ENV, "").split()


def diff_against(stack: str, base_rev: str, allow: Iterable[str] = (), out_dir: Path | None = None) -> int:
    out_dir = out_dir or ROOT / "build" / "plan-diff"
    with tempfile.TemporaryDirectory(prefix="akiba-plan-diff-") as tmp:
        worktree = Path(tmp, "base")
        add = subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), base_rev],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if add.returncode != 0:
            print(f"cannot check out {base_rev!r}: {add.stderr.strip()}", file=sys.stderr)
            return 2
        try:
            base = _plan_json(worktree, stack, Path(tmp, "out-base"))
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    try:
        replan = planner(read_stack_file(ROOT, stack))
        head = replan(frozenset())
    except (ConfigError, StackFileError) as err:
        print(f"offline plan of the working tree failed: {err}", file=sys.stderr)
        return 1
    return report(compare(base, head, replan), base_rev, allow, out_dir)
