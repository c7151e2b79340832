"""Localhost security profiles: a container under a Localhost seccomp or AppArmor profile starts
only on a node whose configuration installs that profile. On any other node the kubelet refuses
to create it (the runtime cannot load the profile), so the pod never runs there."""

from __future__ import annotations

from collections.abc import Iterator

from tools.plan.cluster.scheduler import Placement


def problems(placements: list[Placement]) -> Iterator[tuple[str, str]]:
    """(subject, message) for each container that can land where its profile is missing."""
    for p in placements:
        where = {n.name: n for n in [*p.candidates, *p.placed]}
        for c in p.workload.containers:
            for profile in c.profiles:
                missing = sorted(name for name, n in where.items() if profile not in n.security_profiles)
                if missing:
                    kind, name = profile.split(":", 1)
                    yield (
                        p.workload.label,
                        f"container {c.name} runs under the {kind} profile {name!r}, which "
                        f"{', '.join(missing)} do(es) not install: the kubelet refuses to start it there",
                    )
