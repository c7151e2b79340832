"""Explicit provider resources (`pulumi:providers:<pkg>`): when the engine replaces one, every
resource it manages is replaced with it (pulumi/pulumi pkg/resource/deploy/step_generator.go
providerChanged: the new provider's DiffConfig reports a replacement). The kubernetes provider's
DiffConfig is in `kubernetes`; bridged providers replace only on config marked
ForcesProviderReplace (pulumi/pulumi-terraform-bridge pkg/tfbridge/provider.go configDiffer),
which pulumi-aws sets on `region`."""

from __future__ import annotations

from tools.plan.replacement.model import Change, Source, Verdict

BRIDGE = Source("pulumi/pulumi-terraform-bridge", "pkg/tfbridge/provider.go configDiffer")
_FORCES_REPLACE = {"aws": ("region",)}


def diff(change: Change) -> Verdict | None:
    if not change.type.startswith("pulumi:providers:") or change.type == "pulumi:providers:kubernetes":
        return None
    package = change.type.rsplit(":", 1)[-1]
    keys = _FORCES_REPLACE.get(package, ())
    return Verdict(replaces=[p for p in change.paths if p[:1] and p[0] in keys], source=BRIDGE)
