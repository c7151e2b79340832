"""The mock engine's half of the offline plan: realistic computed values per provider family,
and a monitor that records every registration the way `pulumi preview` would show it."""

from __future__ import annotations

import base64
import hashlib
import json
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.sync_await import _sync_await

MASK = "[secret]"


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("/".join(parts).encode()).digest()


def _openssh_public(algorithm: str, seed: str) -> str:
    """The provider's `publicKeyOpenssh`: an ED25519 key in the ssh wire format (string
    "ssh-ed25519", string of 32 bytes), which ssh-keygen reads; other algorithms a stand-in."""
    if algorithm != "ED25519":
        return "ssh-rsa " + base64.b64encode(_digest("ssh", seed)).decode()
    kind = b"ssh-ed25519"
    blob = len(kind).to_bytes(4, "big") + kind + (32).to_bytes(4, "big") + _digest("ssh", seed)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()}\n"


def _pem(kind: str, seed: str, size: int = 270) -> str:
    body = base64.b64encode((_digest(kind, seed) * (size // 32 + 1))[:size]).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


def _chars(seed: str, length: int, alphabet: str) -> str:
    raw = _digest("random", seed) * (length // 32 + 1)
    return "".join(alphabet[b % len(alphabet)] for b in raw[:length])


# The offline plan's "now": a fixed instant, so plans are reproducible. A replaced resource
# (plan-diff's `~replaced` name) is made a rotation period later.
MOCK_NOW = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def _rotating(name: str, hours: int) -> dict[str, Any]:
    """time.Rotating's computed timestamps: made at MOCK_NOW (one period later per replacement)."""
    base = MOCK_NOW + timedelta(hours=hours) * name.count("~replaced")
    due = base + timedelta(hours=hours)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "rfc3339": base.strftime(fmt),
        "rotationRfc3339": due.strftime(fmt),
        "unix": int(base.timestamp()),
        "year": base.year,
        "month": base.month,
        "day": base.day,
        "hour": base.hour,
        "minute": base.minute,
        "second": base.second,
    }


@dataclass(frozen=True)
class StackOutputs:
    """What a StackReference to another stack reads: its outputs and which are secret."""

    outputs: dict[str, Any]
    secret_names: tuple[str, ...]


class AkibaMocks(Mocks):
    """Deterministic stand-ins for what the providers would compute."""

    def __init__(self, stack_references: dict[str, StackOutputs] | None = None) -> None:
        self.stack_references = stack_references or {}

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        name, typ = args.name, args.typ
        if typ == "kubernetes:core/v1:Secret" and args.resource_id:
            # A Secret the program reads (Rook's cephx keys): what Rook would have written.
            key = base64.b64encode(b"\x01\x00" + _digest("cephx", args.resource_id)[:26]).decode()
            client = str(args.resource_id).rsplit("/", 1)[-1].removeprefix("rook-ceph-client-")
            state["data"] = {client: base64.b64encode(key.encode()).decode()}
        elif typ == "pulumi:pulumi:StackReference":
            ref = self.stack_references.get(str(state.get("name")))
            if ref is None:
                known = ", ".join(sorted(self.stack_references)) or "none"
                raise KeyError(f"offline plan: no outputs for StackReference {state.get('name')!r} (known: {known})")
            state |= {"outputs": ref.outputs, "secretOutputNames": list(ref.secret_names)}
        elif typ == "tls:index/privateKey:PrivateKey":
            kind = "RSA PRIVATE KEY" if state.get("algorithm") == "RSA" else "EC PRIVATE KEY"
            state |= {
                "privateKeyPem": _pem(kind, name),
                "publicKeyPem": _pem("PUBLIC KEY", name, 294),
                "publicKeyOpenssh": _openssh_public(str(state.get("algorithm")), name),
            }
        elif typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            state["certPem"] = _pem("CERTIFICATE", name, 700)
        elif typ == "tls:index/certRequest:CertRequest":
            state["certRequestPem"] = _pem("CERTIFICATE REQUEST", name, 400)
        elif typ in ("random:index/randomString:RandomString", "random:index/randomPassword:RandomPassword"):
            alphabet = string.ascii_lowercase + (string.ascii_uppercase if state.get("upper", True) else "")
            alphabet += string.digits if state.get("numeric", True) else ""
            state["result"] = _chars(name, int(state["length"]), alphabet)
            if typ == "random:index/randomPassword:RandomPassword":  # bcrypt's $2a$<cost>$ + 53 chars
                state["bcryptHash"] = "$2a$10$" + _chars(
                    f"bcrypt/{name}", 53, "./" + string.ascii_letters + string.digits
                )
        elif typ == "random:index/randomBytes:RandomBytes":
            raw = (_digest("bytes", name) * (int(state["length"]) // 32 + 1))[: int(state["length"])]
            state |= {"base64": base64.b64encode(raw).decode(), "hex": raw.hex()}
        elif typ == "aws:ec2/instance:Instance":
            state |= {
                "primaryNetworkInterfaceId": f"eni-{_chars(name, 17, '0123456789abcdef')}",
                "privateIp": "10.0.0.10",
            }
        elif typ == "aws:ec2/eip:Eip":
            state["publicIp"] = "198.18.0.10"  # benchmark range: never a real address
        elif typ in (
            "aws:autoscaling/group:Group",
            "aws:iam/user:User",
            "aws:iam/role:Role",
            "aws:iam/instanceProfile:InstanceProfile",
            "aws:ssm/parameter:Parameter",
        ):
            state["arn"] = f"arn:aws:mock:::{typ.rsplit(':', 1)[-1].lower()}/{state.get('name', name)}"
            if typ != "aws:ssm/parameter:Parameter":
                state.setdefault("name", f"{name}-{_chars(name, 7, string.ascii_lowercase)}")
        elif typ == "time:index/rotating:Rotating":
            state |= _rotating(name, int(state.get("rotationHours") or 24 * int(state.get("rotationDays") or 1)))
        elif typ == "aws:iam/accessKey:AccessKey":
            state["secret"] = _chars(f"aws-secret/{name}", 40, string.ascii_letters + string.digits)
        elif typ == "docker-build:index:Image":
            state["digest"] = "sha256:" + _digest("image", name).hex()
        elif typ == "maas:index/machine:Machine":
            state.setdefault("hostname", name)
        elif typ == "maas:index/instance:Instance":
            state |= {"fqdn": f"{name}.maas", "hostname": name}
        return f"{name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@dataclass
class Recorded:
    """One resource as the offline plan records it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    dependencies: list[str]
    protect: bool
    retain_on_delete: bool
    provider: str  # urn of the explicit provider, "" for the default one
    inputs: dict[str, Any]  # secrets masked
    secret_paths: list[str]
    # So a plan diff can tell that a secret input changed. Offline plans only ever hold
    # placeholders and mock-generated values, so a digest reveals nothing real.
    secret_digests: dict[str, str]
    raw_inputs: dict[str, Any] = field(repr=False)  # unmasked: for validators only, never written
    id: str = ""  # what the mock engine answered (other resources refer to it, e.g. a launch template)
    # Resource options that change how `pulumi preview` diffs it (plan-diff applies them).
    replace_on_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool | None = None  # None: not set, the provider decides
    ignore_changes: list[str] = field(default_factory=list)
    # Its aliases as registered: {"urn": ...} or {"spec": {"name", "type", "parentUrn", "noParent"}}.
    aliases: list[dict[str, Any]] = field(default_factory=list)


def mask(value: Any, path: str = "") -> tuple[Any, list[str], list[Any]]:
    """Replace secret-wrapped values with MASK; return (masked, secret paths, secret values)."""
    if rpc.is_rpc_secret(value):
        return MASK, [path or "."], [rpc.unwrap_rpc_secret(value)]
    if isinstance(value, dict):
        out, paths, secrets = {}, [], []
        for k, v in value.items():
            out[k], p, s = mask(v, f"{path}.{k}" if path else k)
            paths += p
            secrets += s
        return out, paths, secrets
    if isinstance(value, list):
        items, paths, secrets = [], [], []
        for i, v in enumerate(value):
            m, p, s = mask(v, f"{path}[{i}]")
            items.append(m)
            paths += p
            secrets += s
        return items, paths, secrets
    return _int(value), [], []


def digest(value: Any) -> str:
    text = json.dumps(unwrap(value), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def unwrap(value: Any) -> Any:
    """The plain value with secret markers removed (for validators that need the content)."""
    if rpc.is_rpc_secret(value):
        return unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return _int(value)


def _int(value: Any) -> Any:
    # Protobuf carries every number as a double; manifests want 80, not 80.0.
    return int(value) if isinstance(value, float) and value.is_integer() else value


class DuplicateUrnError(Exception):
    """Two resources with one URN: the engine refuses the run, and so does the offline plan."""


class RecordingMonitor(MockMonitor):
    """A MockMonitor that keeps each registration's parent, dependencies, protect and inputs."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Recorded] = []
        self.outputs: dict[str, Any] = {}
        self.raw_outputs: dict[str, Any] = {}  # unmasked: for StackReferences in tests, never written
        self.secret_outputs: set[str] = set()
        # The atomic secrets (generated keys, passwords): they must never appear in anything
        # the plan writes. Values derived from them (user-data) are secret as a whole.
        self.secret_values: set[str] = set()
        self.engine_urns: set[str] = set()  # every URN registered, as the engine writes it
        self.type_chains: dict[str, str] = {}  # mock URN -> its whole type chain, for children's URNs

    def _claim_urn(self, request: Any) -> None:
        """Refuse a second resource with one URN as the engine does: its step generator fails
        the run with this message (pulumi/pulumi pkg/resource/deploy/step_generator.go,
        generateURN; sdk/go/common/diag/errors.go, GetDuplicateResourceURNError). The engine's
        URN holds the parent's whole type chain, none for a child of the stack; the mock's
        make_urn keeps only the parent's own type, which would see duplicates the engine does not."""
        mock_urn = self.make_urn(request.parent, request.type, request.name)
        chain = self.type_chains.get(request.parent, "")  # the stack itself is never claimed
        qualified = f"{chain}${request.type}" if chain else request.type
        urn = "::".join([*mock_urn.split("::")[:2], qualified, request.name])  # urn:pulumi:<stack>::<project>::
        if urn in self.engine_urns:
            raise DuplicateUrnError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
        self.engine_urns.add(urn)
        self.type_chains[mock_urn] = qualified

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        if request.type != "pulumi:pulumi:Stack":
            self._claim_urn(request)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        if request.additionalSecretOutputs:
            # The engine returns these outputs as secrets (tls private keys, random passwords):
            # do the same, or values derived from them would wrongly look public offline.
            state = dict(self.resources[response.urn].state)
            for name in request.additionalSecretOutputs:
                if name in state and not rpc.is_rpc_secret(state[name]):
                    state[name] = rpc.wrap_rpc_secret(state[name])
            response.object.CopyFrom(_sync_await(rpc.serialize_properties(state, {})))
        inputs = rpc.deserialize_properties(request.object)
        masked, paths, values = mask(inputs)
        state = self.resources[response.urn].state
        # Only scalar secret outputs are atomic (a key, a password); a secret map such as MAAS
        # powerParameters is secret because of one entry, which comes from config anyway.
        self._remember([v for name in request.additionalSecretOutputs if isinstance(v := state.get(name), str)])
        self.recorded.append(
            Recorded(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                dependencies=sorted(set(request.dependencies)),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                provider=request.provider.rsplit("::", 1)[0] if request.provider else "",  # "<urn>::<id>"
                inputs=masked,
                secret_paths=paths,
                secret_digests={p: digest(v) for p, v in zip(paths, values, strict=True)},
                raw_inputs=unwrap(inputs),
                id=response.id,
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace) if request.deleteBeforeReplaceDefined else None,
                ignore_changes=list(request.ignoreChanges),
                aliases=[_alias(a) for a in request.aliases] + [{"urn": u} for u in request.aliasURNs],
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        if request.urn.split("::")[-2] == "pulumi:pulumi:Stack":
            outputs = rpc.deserialize_properties(request.outputs)
            for name, value in outputs.items():
                masked, paths, _ = mask(value)
                self.outputs[name] = masked
                self.raw_outputs[name] = unwrap(value)
                if paths:
                    self.secret_outputs.add(name)
        else:
            # A component's scalar secret output is a credential of its own (an Authorization
            # header made from a password): as atomic as the password, never to be written.
            outputs = rpc.deserialize_properties(request.outputs)
            self._remember([v for v in map(unwrap, filter(rpc.is_rpc_secret, outputs.values())) if isinstance(v, str)])
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    def _remember(self, values: list[Any]) -> None:
        for value in values:
            for leaf in _leaves(value):
                if isinstance(leaf, str) and len(leaf) >= 6:
                    self.secret_values.add(leaf)


def _alias(alias: Any) -> dict[str, Any]:
    """An alias_pb2.Alias as plan-diff reads it (an empty parentUrn without noParent: the same parent)."""
    if alias.urn:
        return {"urn": alias.urn}
    s = alias.spec
    return {"spec": {"name": s.name, "type": s.type, "parentUrn": s.parentUrn, "noParent": s.noParent}}


def _leaves(value: Any) -> list[Any]:
    value = unwrap(value)
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]
