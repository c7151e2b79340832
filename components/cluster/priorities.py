"""The platform's PriorityClasses: who preempts whom when the office nodes are full.

    akiba-platform     100000  what everything else needs (registry, monitoring, ingress)
    akiba-interactive   10000  people waiting: home containers, the ML apps
    akiba-batch          1000  Jobs (the default: a pod that names no class gets this)
    akiba-burst           100  opportunistic work: never preempts, the first to be preempted

When a pod does not fit, the scheduler may evict pods of *lower* priority to make room (never of
equal priority), giving them their terminationGracePeriodSeconds after SIGTERM; a Job's pods that
are evicted this way carry the `DisruptionTarget` condition, which a Job's podFailurePolicy can
ignore (examples/checkpoint/). The kube-system add-ons keep the built-in system-* classes, above
all of these.

Why batch is the global default: engineers' Jobs that name no class are batch work; and every pod
that names none (a Helm chart whose values do not set one) gets 1000 instead of 0, so a batch Job
can never preempt it (only strictly lower priorities are preempted) and burst work, which never
preempts, cannot either. The default applies when a pod is created: a pod made before the class
existed keeps priority 0, so the classes are created right after the API server, before any
workload (stacks/composition.py passes them as dependencies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.context import PlatformContext

PLATFORM = "akiba-platform"
INTERACTIVE = "akiba-interactive"
BATCH = "akiba-batch"
BURST = "akiba-burst"

Preemption = Literal["PreemptLowerPriority", "Never"]

# A Job's podFailurePolicy under which a pod that was preempted, evicted or drained is retried
# without counting against backoffLimit: the kubelet and the scheduler mark such a pod with the
# DisruptionTarget condition (Kubernetes "Pod failure policy"; needs restartPolicy: Never).
RETRY_DISRUPTED: dict[str, Any] = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
}


@dataclass(frozen=True)
class PriorityLevel:
    """One PriorityClass."""

    name: str  # never `system-...`: the API server reserves that prefix
    value: int  # higher schedules first and may preempt lower; user classes stay <= 1e9
    preemption: Preemption  # Never: waits for room instead of evicting anyone
    description: str
    global_default: bool = False  # at most one class: the priority of pods that name none


LEVELS: tuple[PriorityLevel, ...] = (
    PriorityLevel(
        PLATFORM,
        100_000,
        "PreemptLowerPriority",
        "Platform services every other workload depends on (registry, monitoring, ingress).",
    ),
    PriorityLevel(
        INTERACTIVE,
        10_000,
        "PreemptLowerPriority",
        "People are waiting: engineers' home containers and the ML apps. Preempts batch and burst work.",
    ),
    PriorityLevel(
        BATCH,
        1_000,
        "PreemptLowerPriority",
        "Jobs: may be preempted by interactive and platform pods; checkpoint to $HOME and resume.",
        global_default=True,
    ),
    PriorityLevel(
        BURST,
        100,
        "Never",
        "Opportunistic work: runs on idle capacity, never preempts, is preempted first.",
    ),
)


def priority_class_manifest(level: PriorityLevel, labels: dict[str, str]) -> dict[str, Any]:
    """The PriorityClass object (scheduling.k8s.io/v1)."""
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": level.name, "labels": labels},
        "value": level.value,
        "globalDefault": level.global_default,
        "preemptionPolicy": level.preemption,
        "description": level.description,
    }


@dataclass(frozen=True)
class PriorityClassesArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    after: tuple[pulumi.Resource, ...] = ()  # the API server: e.g. the first controller's deployment


class PriorityClasses(pulumi.ComponentResource):
    """The classes of `LEVELS`; pass the component itself as a dependency of anything whose pods
    name one (the Priority admission plugin rejects a pod whose class does not exist yet:
    "no PriorityClass with name ... was found", kubernetes plugin/pkg/admission/priority/admission.go)."""

    def __init__(self, name: str, args: PriorityClassesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:k8s:PriorityClasses", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        self.classes: dict[str, k8s.scheduling.v1.PriorityClass] = {}
        for level in LEVELS:
            m = priority_class_manifest(level, args.ctx.labels)
            self.classes[level.name] = k8s.scheduling.v1.PriorityClass(
                level.name,
                metadata=m["metadata"],
                value=m["value"],
                global_default=m["globalDefault"],
                preemption_policy=m["preemptionPolicy"],
                description=m["description"],
                # The API refuses a changed value or preemption policy: replace the class instead
                # (pulumi-kubernetes would show it as an update that then fails at `pulumi up`).
                opts=pulumi.ResourceOptions.merge(
                    on_cluster, pulumi.ResourceOptions(replace_on_changes=["value", "preemptionPolicy"])
                ),
            )
        self.register_outputs({"names": [level.name for level in LEVELS]})
