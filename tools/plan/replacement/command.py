"""Providers written with pulumi-go-provider: pulumi-command and pulumi-docker-build.

pulumi-command 1.x: `triggers` is tagged `provider:"replaceOnChanges"` (pulumi/pulumi-command
provider/pkg/provider/common/inputs.go; remote/copy.go for CopyToRemote), and the generated SDK adds
`replace_on_changes=["triggers[*]"]` to every Command. Any other input updates in place: Update
runs the `update` command, or `create` again when there is none
(provider/pkg/provider/remote/commandController.go, local/commandController.go).

pulumi-docker-build Image: Diff reports every difference as an update (a rebuild), never a
replacement (pulumi/pulumi-docker-build provider/internal/image.go Diff)."""

from __future__ import annotations

from tools.plan.replacement.model import Change, Source, Verdict
from tools.plan.replacement.paths import parse, touches

COMMAND = Source("pulumi/pulumi-command", "provider/pkg/provider/common/inputs.go")
DOCKER_BUILD = Source("pulumi/pulumi-docker-build", "provider/internal/image.go")
_TRIGGERS = parse("triggers")


def diff(change: Change) -> Verdict | None:
    if change.type.startswith("command:"):
        replaces = [p for p in change.paths if touches(_TRIGGERS, p, change.olds, change.news)]
        return Verdict(replaces=replaces, source=COMMAND)
    if change.type.startswith("docker-build:"):
        return Verdict(source=DOCKER_BUILD, notes=["an update rebuilds (and pushes) the image"])
    return None
