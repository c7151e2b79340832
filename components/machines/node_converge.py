"""Day-2 node configuration: after MAAS installed a node (components/cluster/bootstrap.py's
install user-data: name, address, this key), its configuration converges over ssh.

Per node, three `pulumi-command` resources in a chain through all nodes, so a change rolls
through them one at a time (the first controller first, the workers last) and stops at the
first node that fails:

  drain (runner)  ->  converge (node, ssh)  ->  uncordon (runner)  ->  next node's drain

The configuration document is the node's `#cloud-config` (the same renderer as the burst
nodes' first boot), applied by converge_apply.py. A changed document is an *update* of the
converge command (pulumi-command runs `update` when inputs change; only `triggers` replace:
pulumi/pulumi-command provider/pkg/provider/common/inputs.go), so no machine is released.
The drain and uncordon commands do nothing on create; on update (a new Kubernetes version)
the drain evicts the node's pods first when the node runs another kubelet version, as
kubeadm's upgrade procedure asks, and the uncordon lets them back.
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_tls as tls

from components.cluster.bootstrap import CONVERGE_USER, JOIN_TOKEN_FILE

APPLIER = Path(__file__).with_name("converge_apply.py")
# The runner's kubectl talks to the API with the admin kubeconfig, written to a private temp
# file for the one command and removed after it.
# `set -e`: an API that does not answer (or no kubectl) fails the step, and with it the rollout,
# instead of reading as "nothing to drain" (a command substitution's failure stops the script).
_KUBECTL = (
    'set -eu; k=$(mktemp); trap \'rm -f "$k"\' EXIT; printf "%s" "$AKIBA_KUBECONFIG" > "$k"; '
    'kc() { kubectl --kubeconfig "$k" "$@"; }; '
)


@dataclass(frozen=True)
class NodeAccessArgs:
    name: str  # e.g. "node-converge"


class NodeAccess(pulumi.ComponentResource):
    """The key node configuration logs in with (its public half goes into every install)."""

    private_key: pulumi.Output[str]
    public_key: pulumi.Output[str]

    def __init__(self, name: str, args: NodeAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:node:NodeAccess", name, None, opts)
        key = tls.PrivateKey(args.name, algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self))
        self.private_key = pulumi.Output.secret(key.private_key_openssh)
        self.public_key = key.public_key_openssh.apply(str.strip)
        self.register_outputs({"publicKey": self.public_key})


@dataclass(frozen=True)
class NodeConvergeArgs:
    hostname: str  # the Kubernetes node name
    address: str  # where ssh reaches it (its static address on the office LAN)
    document: pulumi.Output[str]  # secret: the node's #cloud-config
    kubernetes_version: str  # e.g. "1.36.4"
    private_key: pulumi.Output[str]  # secret: NodeAccess.private_key
    kubeconfig: pulumi.Output[str]  # secret: the admin kubeconfig the runner drains with
    after: tuple[pulumi.Resource, ...]  # the node's install, and the previous node's last step
    # secret: the join token a joining node needs once, at its first configuration (None: the
    # first controller, whose document carries the token it makes valid).
    join_token: pulumi.Output[str] | None = None


def apply_command() -> str:
    """The remote command: the applier (sent as text, so changing it needs no reinstall) run as
    root, reading the document on stdin."""
    source = base64.b64encode(APPLIER.read_bytes()).decode()
    return f'sudo /usr/bin/python3 -c "$(echo {source} | base64 -d)"'


def create_command(join_token: str) -> str:
    """The first configuration of a joining node: the current join token to JOIN_TOKEN_FILE
    (root's only; the bootstrap script joins with it and removes it), then the applier. printf
    is the shell's own: the token is in no process's arguments but this command's shell."""
    return (
        f"printf '%s\\n' {shlex.quote(join_token)} | sudo install -D -m 0600 /dev/stdin {JOIN_TOKEN_FILE} && "
        + apply_command()
    )


DRAINED = "akiba.io/drained-for-upgrade"  # set by the drain, so the uncordon undoes only its own


def drain_script(node: str, version: str) -> str:
    """Evict the node's pods before its kubelet changes version (kubeadm's upgrade procedure);
    nothing to do for a node already on `version`, or not yet in the cluster."""
    n = shlex.quote(node)
    return (
        _KUBECTL
        + f"have=$(kc get node {n} --ignore-not-found -o jsonpath='{{.status.nodeInfo.kubeletVersion}}'); "
        + f'if [ -n "$have" ] && [ "$have" != v{version} ]; then '
        + f"kc annotate node {n} {DRAINED}=v{version} --overwrite; "
        + f"kc drain {n} --ignore-daemonsets --delete-emptydir-data --timeout=30m; fi"
    )


def uncordon_script(node: str, version: str) -> str:
    """Let pods back after the upgrade: only onto a node a rollout drained (a node someone
    cordoned by hand stays cordoned), whichever version it drained for (a rollback included).
    The version is in the script so the step runs again whenever the drain may have."""
    n = shlex.quote(node)
    annotation = DRAINED.replace(".", "\\.")
    return (
        _KUBECTL
        + f"drained=$(kc get node {n} --ignore-not-found -o jsonpath='{{.metadata.annotations.{annotation}}}'); "
        + f': "for v{version}"; '
        + f'if [ -n "$drained" ]; then kc uncordon {n}; kc annotate node {n} {DRAINED}-; fi'
    )


class NodeConverge(pulumi.ComponentResource):
    """One node's place in the rolling configuration chain."""

    last: pulumi.Resource  # what the next node's drain waits for

    def __init__(self, name: str, args: NodeConvergeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:node:NodeConverge", name, None, opts)
        # Only the kubeconfig travels in the environment (secret); the version is in the scripts,
        # where a reviewer sees it change.
        env: dict[str, pulumi.Input[str]] = {"AKIBA_KUBECONFIG": args.kubeconfig}
        drain = command.local.Command(
            f"{name}-drain",
            create="true",  # a new node has nothing to drain
            update=drain_script(args.hostname, args.kubernetes_version),
            environment=env,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        apply = apply_command()
        create: pulumi.Input[str] = apply if args.join_token is None else args.join_token.apply(create_command)
        self.converge = command.remote.Command(
            f"{name}-converge",
            connection=command.remote.ConnectionArgs(
                host=args.address, user=CONVERGE_USER, private_key=args.private_key, dial_error_limit=60
            ),
            create=create,
            update=apply,
            stdin=args.document,
            # Its output stays in Pulumi's state: secret like its input (pulumi-command makes an
            # output secret only when an input of the same name is), and not sent back to the node.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[drain],
                additional_secret_outputs=["stdout", "stderr"],
                # The token matters only to a node's first configuration: a rotation must not
                # update (re-run the configuration of) every running node. A replaced converge
                # (a reinstall) is created anew, with the token of the day.
                ignore_changes=["create"] if args.join_token is not None else None,
            ),
        )
        self.last = command.local.Command(
            f"{name}-uncordon",
            create="true",
            update=uncordon_script(args.hostname, args.kubernetes_version),
            environment=env,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.converge]),
        )
        self.register_outputs({})
