"""Existing Secrets rewritten once the API servers encrypt with a new key: a Secret is encrypted
when written, so those written before encryption was on (or under the previous key) stay as
they were until something writes them again (kubernetes.io "Encrypting Confidential Data at
Rest": "Ensure all Secrets are encrypted").

One runner-side command after every controller has its new configuration; it runs again
whenever the key that encrypts changes (the first of cluster.secretsEncryptionKeys).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
import pulumi_command as command

# Every Secret, read and written back unchanged: the API server encrypts it with the first key.
# A Secret changed or deleted between the read and the write (an operator at work) fails its
# replace: read again, three times. bash's pipefail: an API that does not answer fails `pulumi up`.
REWRITE = (
    'set -uo pipefail; k=$(mktemp); trap \'rm -f "$k"\' EXIT; printf "%s" "$AKIBA_KUBECONFIG" > "$k"; '
    "for attempt in 1 2 3; do "
    'kubectl --kubeconfig "$k" get secrets --all-namespaces -o json '
    '| kubectl --kubeconfig "$k" replace -f - >/dev/null && exit 0; sleep 10; done; exit 1'
)


@dataclass(frozen=True)
class SecretsRewriteArgs:
    key_name: str  # the key Secrets are written with, e.g. "key-2": a new one rewrites them all
    kubeconfig: pulumi.Output[str]  # secret: the admin kubeconfig
    after: tuple[pulumi.Resource, ...]  # every controller's configuration


class SecretsRewrite(pulumi.ComponentResource):
    def __init__(self, name: str, args: SecretsRewriteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:cluster:SecretsRewrite", name, None, opts)
        command.local.Command(
            name,
            create=f"bash -c {shlex.quote(REWRITE)}",
            environment={"AKIBA_KUBECONFIG": args.kubeconfig},
            # A new encrypting key replaces the command: it runs again, with that key.
            triggers=[args.key_name],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        self.register_outputs({})
