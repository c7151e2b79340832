"""What a replacement does to the resources that read it: a replaced resource comes back with new
generated values (a new key, certificate, password, id), so whatever was built from them changes
too, and may be replaced in turn (a CA's new key -> its certificate -> every certificate it signed
-> the kubeconfig -> the kubernetes provider -> every object). The plan is run again with the mock
engine answering new values for the replaced resources, until no further resource is replaced."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulumi.runtime.mocks import MockResourceArgs

from tools.plan.mocks import AkibaMocks, StackOutputs

# Outputs a real replacement generates anew. Anything else the mock computes (a MAAS hostname,
# a Kubernetes object's echo of its inputs) stays what it was: a reinstalled node keeps its name.
REGENERATED = frozenset(
    {
        "privateKeyPem",
        "privateKeyOpenssh",
        "publicKeyPem",
        "publicKeyOpenssh",
        "certPem",
        "certRequestPem",
        "result",
        "bcryptHash",
        "base64",
        "hex",
        "secret",
        "digest",
        "arn",
        "primaryNetworkInterfaceId",
        "privateIp",
        "publicIp",
        "rfc3339",  # time.Rotating: a rotation is a new timestamp
        "rotationRfc3339",
        "unix",
    }
)
# Whose id stays across a replacement: Kubernetes objects (namespace/name), the program's dynamic
# resources (pool/image, the domain name), a MAAS deployment (the machine's system id).
_STABLE_ID = ("kubernetes:", "pulumi-python:dynamic:", "maas:index/instance:")
SUFFIX = "~replaced"


class ReplacedOutputs(AkibaMocks):
    """The offline mocks, answering new generated values for the resources named (type, name)."""

    def __init__(self, stack_references: dict[str, StackOutputs] | None, replaced: Iterable[tuple[str, str]]) -> None:
        super().__init__(stack_references)
        self.replaced = frozenset(replaced)

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid, state = super().new_resource(args)
        if args.resource_id or (args.typ, args.name) not in self.replaced:
            return rid, state
        renamed = MockResourceArgs(
            typ=args.typ,
            name=args.name + SUFFIX,
            inputs=args.inputs,
            provider=args.provider,
            resource_id=args.resource_id,
            custom=args.custom,
        )
        new_id, new_state = super().new_resource(renamed)
        state = {k: new_state[k] if k in REGENERATED and k in new_state else v for k, v in state.items()}
        return (rid if args.typ.startswith(_STABLE_ID) else new_id), state
