"""Runs ON a node (python3 + python3-yaml, which cloud-init depends on): applies the node's
configuration document after install, the day-2 half of what cloud-init does at first boot.

The document is the node's `#cloud-config` (components/cluster/bootstrap.py renders it; the
offline plan validates it with cloud-init's schema). Of it this applies `write_files` (path,
content, permissions, append) and then `runcmd`, like cloud-init, but idempotently: a file is
rewritten only when its content or mode differs, an `append` adds only missing lines, and the
paths that changed are handed to the commands (AKIBA_CHANGED names a file listing them), so
the bootstrap script restarts only what a change touched.

Standard library and PyYAML only; no import from the project (this file is sent as text).
Usage on a node: `python3 converge_apply.py < document.yaml`. AKIBA_ROOT (tests only) prefixes
every path and skips runcmd.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

CHANGED_LIST = "/run/akiba/changed"


def _target(root: str, path: str) -> Path:
    return Path(root + path) if root else Path(path)


def _write(target: Path, content: bytes, mode: int) -> bool:
    """Atomically (re)write `target` when its content or mode differs; True if it did."""
    try:
        same = target.read_bytes() == content and (target.stat().st_mode & 0o7777) == mode
    except FileNotFoundError:
        same = False
    if same:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)  # before the content: a key is never readable by others, not even briefly
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _append(target: Path, content: str) -> bool:
    """Add the lines of `content` that `target` lacks (cloud-init's `append: true` would add
    them again on every run)."""
    try:
        have = target.read_text().splitlines()
    except FileNotFoundError:
        have = []
    missing = [line for line in content.splitlines() if line and line not in have]
    if not missing:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as out:
        out.write("".join(f"{line}\n" for line in missing))
    return True


def apply(document: str, root: str = "") -> list[str]:
    """Write the document's files; return the paths that changed."""
    doc = yaml.safe_load(document.removeprefix("#cloud-config\n")) or {}
    changed = []
    for entry in doc.get("write_files") or ():
        path, content = str(entry["path"]), str(entry.get("content", ""))
        target = _target(root, path)
        if entry.get("append"):
            did = _append(target, content)
        else:
            did = _write(target, content.encode(), int(str(entry.get("permissions", "0644")), 8))
        if did:
            changed.append(path)
    return changed


def main() -> int:
    root = os.environ.get("AKIBA_ROOT", "")
    document = sys.stdin.read()
    changed = apply(document, root)
    listing = _target(root, CHANGED_LIST)
    _write(listing, "".join(f"{p}\n" for p in changed).encode(), 0o600)
    print(f"akiba converge: {len(changed)} file(s) changed" + "".join(f"\n  {p}" for p in changed))
    if root:
        return 0
    doc = yaml.safe_load(document.removeprefix("#cloud-config\n")) or {}
    env = {**os.environ, "AKIBA_CHANGED": CHANGED_LIST}
    for command in doc.get("runcmd") or ():
        argv = command if isinstance(command, list) else ["/bin/sh", "-c", command]
        result = subprocess.run([str(a) for a in argv], env=env, check=False)
        if result.returncode != 0:
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
