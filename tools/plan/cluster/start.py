"""Will a container of an image the program builds start as the user the pod grants?

For the images the plan builds (docker-build Images), the Dockerfile says which user the image
runs as and what its entrypoint is; the pod's securityContext may override the user and sets
the capabilities. What a program needs is stated here once, with why:

- the kubelet refuses `runAsNonRoot` with a user of 0, or with a USER it cannot read as a number;
- sshd as root needs SETUID/SETGID (it becomes the user who logs in) and SYS_CHROOT (its
  privilege-separation child chroots to /run/sshd); as any other user it needs nothing, and
  logs in only that user (the home pods: one per engineer, as the engineer);
- /etc/shadow is root:shadow 0640 in the image: reading it needs uid 0.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from tools.plan.cluster.model import Container
from tools.plan.cluster.pulls import repository_of


@dataclass(frozen=True)
class Needs:
    uid: int | None  # None: any user
    capabilities: frozenset[str]
    why: str


PROGRAMS = {
    # The capabilities are what it needs when it runs as root.
    "sshd": Needs(None, frozenset({"SETUID", "SETGID", "SYS_CHROOT"}), "sshd switches to the user who logs in"),
}
ROOT_ONLY_FILES = {"/etc/shadow": "/etc/shadow is root:shadow 0640 in the image"}
_WRAPPERS = {"tini", "dumb-init", "--", "exec", "env"}
_SHELLS = {"sh", "bash"}


@dataclass(frozen=True)
class ImageFacts:
    """What a built image's Dockerfile says."""

    repository: str  # host:port/path
    user: str  # the final stage's USER ("" = root)
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    dockerfile: str

    @property
    def uid(self) -> int | None:
        name = self.user.split(":", 1)[0]
        if name in ("", "root"):
            return 0
        return int(name) if name.isdigit() else None


def _exec_form(value: str) -> tuple[str, ...]:
    value = value.strip()
    if value.startswith("["):
        return tuple(json.loads(value))
    return ("/bin/sh", "-c", value)


def _substitute(value: str, args: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def image_facts(
    repository: str,
    dockerfile: Path,
    base: Mapping[str, ImageFacts] | None = None,
    build_args: Mapping[str, str] | None = None,
) -> ImageFacts:
    """The final stage's USER, ENTRYPOINT and CMD; a stage FROM another built image inherits them."""
    parser = DockerfileParser(path=str(dockerfile))
    user, entrypoint, cmd = "", (), ()  # type: tuple[str, tuple[str, ...], tuple[str, ...]]
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            ref = _substitute(value.split()[0], build_args or {})
            parent = (base or {}).get(repository_of(ref))
            user, entrypoint, cmd = (parent.user, parent.entrypoint, parent.cmd) if parent else ("", (), ())
        elif instruction == "USER":
            user = value.strip()
        elif instruction == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(value), ()
        elif instruction == "CMD":
            cmd = _exec_form(value)
    return ImageFacts(repository, user, entrypoint, cmd, str(dockerfile))


def _programs(argv: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(program names it runs, files it names) — through tini and `sh -c` scripts."""
    words = list(argv)
    while words and Path(words[0]).name in _WRAPPERS:
        words.pop(0)
    if len(words) >= 3 and Path(words[0]).name in _SHELLS and words[1] == "-c":
        programs, files = [], []
        for segment in re.split(r"[;&|]+|\bdo\b|\bthen\b", words[2]):
            try:
                tokens = shlex.split(segment)
            except ValueError:
                tokens = segment.split()
            tokens = [t for t in tokens if not re.match(r"^\w+=", t)]
            if tokens and tokens[0] not in ("for", "if", "done", "fi", "set"):
                programs.append(Path(tokens[0]).name)
            files += [t for t in tokens if t.startswith("/")]
        files += [f for f in ROOT_ONLY_FILES if f in words[2]]
        return programs, files
    return ([Path(words[0]).name] if words else []), [w for w in words if w.startswith("/")]


def start_problems(container: Container, image: ImageFacts) -> list[str]:
    """Why the container would not start, or its entrypoint would fail at once."""
    argv = (
        container.command + container.args if container.command else (*image.entrypoint, *(container.args or image.cmd))
    )
    uid = container.run_as_user if container.run_as_user is not None else image.uid
    who = f"uid {uid}" if uid is not None else f"user {image.user!r}"
    granted = (
        "the pod's securityContext" if container.run_as_user is not None else f"the image's USER ({image.dockerfile})"
    )
    problems = []
    if container.run_as_non_root:
        if uid == 0:
            problems.append("runAsNonRoot is set but it would run as root: the kubelet refuses to start it")
        elif uid is None:
            problems.append(
                f"runAsNonRoot is set but the image's USER {image.user!r} is not numeric: the kubelet refuses it"
            )
    programs, files = _programs(argv)
    for program in programs:
        needs = PROGRAMS.get(program)
        if needs is None:
            continue
        if needs.uid is not None and uid != needs.uid:
            problems.append(f"{program} needs uid {needs.uid} ({needs.why}); it runs as {who} from {granted}")
        missing = needs.capabilities - container.capabilities
        if uid == 0 and missing and "ALL" not in container.capabilities:
            problems.append(f"{program} needs {', '.join(sorted(missing))}, which the container drops")
    for path in files:
        if path in ROOT_ONLY_FILES and uid != 0:
            problems.append(f"it reads {path} as {who} ({granted}): {ROOT_ONLY_FILES[path]}")
    return problems
