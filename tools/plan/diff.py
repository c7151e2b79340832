"""`make plan-diff BASE=<rev>`: plan the stack at BASE and at the working tree, print the
resources added, removed and changed (with the changed input keys). For reviewers without
cloud credentials."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.plan.runner import ROOT


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


def changed_keys(before: Any, after: Any, path: str = "") -> list[str]:
    """Dotted paths of the inputs that differ (down to the first differing level)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys: list[str] = []
        for k in sorted(set(before) | set(after)):
            if before.get(k) != after.get(k):
                sub = f"{path}.{k}" if path else k
                if isinstance(before.get(k), dict) and isinstance(after.get(k), dict):
                    keys += changed_keys(before[k], after[k], sub)
                else:
                    keys.append(sub)
        return keys
    return [path or "."] if before != after else []


def _digests(resource: dict[str, Any]) -> dict[str, str]:
    digests = resource.get("secretInputs")
    return digests if isinstance(digests, dict) else {}  # plans from before digests existed


def compare(base: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    old = {r["urn"]: r for r in base["resources"]}
    new = {r["urn"]: r for r in head["resources"]}
    changed = {}
    for urn in sorted(old.keys() & new.keys()):
        keys = changed_keys(old[urn]["inputs"], new[urn]["inputs"])
        old_secret, new_secret = _digests(old[urn]), _digests(new[urn])
        keys += [
            f"{p} (secret)" for p in sorted(set(old_secret) | set(new_secret)) if old_secret.get(p) != new_secret.get(p)
        ]
        if old[urn]["protect"] != new[urn]["protect"]:
            keys.append("(protect)")
        if keys:
            changed[urn] = keys
    outputs = sorted(
        k for k in set(base["outputs"]) | set(head["outputs"]) if base["outputs"].get(k) != head["outputs"].get(k)
    )
    return {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": changed,
        "outputs": outputs,
    }


def _short(urn: str) -> str:
    typ, name = urn.split("::")[-2:]
    return f"{typ.split('$')[-1]}  {name}"


def render(stack: str, base_rev: str, result: dict[str, Any]) -> str:
    lines = [
        f"Plan diff of stack '{stack}' ({base_rev} -> working tree): "
        f"{len(result['added'])} to add, {len(result['changed'])} to change, {len(result['removed'])} to remove"
    ]
    lines += [f"  + {_short(u)}" for u in result["added"]]
    lines += [f"  ~ {_short(u)}  ({', '.join(k)})" for u, k in result["changed"].items()]
    lines += [f"  - {_short(u)}" for u in result["removed"]]
    if result["outputs"]:
        lines.append(f"  outputs changed: {', '.join(result['outputs'])}")
    return "\n".join(lines)


def diff_against(stack: str, base_rev: str) -> int:
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
            head = _plan_json(ROOT, stack, Path(tmp, "out-head"))
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    print(render(stack, base_rev, compare(base, head)))
    return 0
