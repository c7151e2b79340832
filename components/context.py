"""The platform context handed to every component: names, labels, tags, protect policy."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class PlatformContext:
    """What every component needs to know about the stack it is part of."""

    stack: str
    cluster_name: str
    protect_stateful: bool  # prod: stateful resources are protected and retained on delete

    @property
    def labels(self) -> dict[str, str]:
        """Kubernetes labels on every object the platform creates."""
        return {
            "app.kubernetes.io/part-of": "akiba",
            "app.kubernetes.io/managed-by": "pulumi",
            "akiba.io/stack": self.stack,
        }

    @property
    def tags(self) -> dict[str, str]:
        """Tags (MAAS, AWS) on every object the platform creates."""
        return {"akiba:stack": self.stack, "akiba:cluster": self.cluster_name}

    def stateful(self, parent: pulumi.Resource, **extra: object) -> pulumi.ResourceOptions:
        """Options for a resource that holds data: in prod it cannot be deleted by mistake,
        and removing it from the program leaves the real thing in place."""
        return pulumi.ResourceOptions(
            parent=parent,
            protect=self.protect_stateful,
            retain_on_delete=self.protect_stateful,
            **extra,  # type: ignore[arg-type]
        )
