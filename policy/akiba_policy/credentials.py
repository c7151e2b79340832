"""no-credentials-in-plain-config: credentials belong in Secrets (mounted or referenced with
secretKeyRef), not in what anyone who can read a Deployment, a ConfigMap or an annotation
sees. Two tests, on container env values and args, ConfigMap data and annotations (and an SSM
parameter that is not a SecureString):
- a credential-looking name (PASSWORD, TOKEN, SECRET, API_KEY, PRIVATE_KEY, ACCESS_KEY...)
  holding a literal (not a path, not a $(VAR)/${VAR} reference, not empty);
- a value that is credential material whatever its name (PEM private key, AWS access key id,
  JWT, user:password@ URL, bearer token, GitHub/Slack token, cephx key, password hash).
The engine unwraps Pulumi secrets before a pack sees them, so a Pulumi secret put in an env
value fires too: it is still plain text in the object."""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .context import PlanContext
from .k8s import containers, kind, pod_metadata, pod_path, pod_spec
from .model import PlannedResource, PolicyConfig

MATERIAL = {
    "a PEM private key": re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a JSON Web Token": re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"),
    "a password in a URL": re.compile(r"\b[a-zA-Z][\w+.-]*://[^\s/:@]+:(?![$])[^\s/@]+@"),
    "a bearer token": re.compile(r"(?i)\bbearer\s+(?![$])[\w.~+/-]{16,}=*"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}"),
    "a Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "a cephx key": re.compile(r"\bAQ[A-Za-z0-9+/]{36}=="),
    "a password hash": re.compile(r"\$(?:1|2[aby]|5|6|y|7)\$[./A-Za-z0-9$]{8,}"),
}
# Not "passwd": /etc/passwd holds none (the home pods' accounts ConfigMap has one).
SECRET_WORDS = {"password", "passphrase", "pass", "pwd", "secret", "token", "credential", "credentials"}
SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("client", "secret")}
SECRET_SUFFIXES = ("password", "token", "secret", "apikey")  # PGPASSWORD, GITHUBTOKEN
# The last word says the value points at a credential rather than holds it.
POINTERS = {"file", "path", "dir", "name", "ref", "url", "endpoint", "id", "type", "length", "ttl", "mode", "policy"}
REFERENCE = re.compile(r"^(\$\(\w+\)|\$\{\w+\}|\{\{.*\}\})$")
# key: value / key=value in a file (a ConfigMap entry, an annotation), JSON included.
ASSIGNMENT = re.compile(r"""(?:^|[{,])\s*["']?([\w.-]+)["']?\s*[:=]\s*["']?([^\s"',#{}\[\]]+)""", re.MULTILINE)
FLAG = re.compile(r"^--?([\w-]+)=(.+)$")


def _words(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)]


def credential_name(name: str) -> bool:
    """`DB_PASSWORD`, `apiKey`, `PGPASSWORD`, `client-secret` are; `PASSWORD_FILE`,
    `secretName`, `tokenTTL`, `SSH_AUTH_SOCK` are not."""
    words = _words(name)
    if not words or words[-1] in POINTERS:
        return False
    return any(w in SECRET_WORDS or w.endswith(SECRET_SUFFIXES) for w in words) or any(
        pair in SECRET_PAIRS for pair in itertools.pairwise(words)
    )


def literal(value: Any) -> bool:
    """A value that would be the credential itself."""
    if not isinstance(value, str):
        return value is not None and not isinstance(value, bool)
    text = value.strip()
    return (
        bool(text) and not text.startswith("/") and not REFERENCE.match(text) and text.lower() not in ("true", "false")
    )


def material(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    return [what for what, pattern in MATERIAL.items() if pattern.search(value)]


def _file(where: str, text: Any) -> Iterator[str]:
    """A file's worth of text: credential material, or `password: hunter2` lines."""
    for what in material(text):
        yield f"{where} holds {what}"
    for key, value in ASSIGNMENT.findall(text) if isinstance(text, str) else ():
        if credential_name(key) and literal(value) and len(value) >= 4:
            yield f"{where} sets {key} to a literal"
            break


def _entry(where: str, key: str, value: Any) -> Iterator[str]:
    if credential_name(key) and literal(value):
        yield f"{where} looks like a credential and holds a literal"
    else:
        yield from _file(where, value)


def _containers(res: PlannedResource) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        who = f"container {c.get('name')!r}"
        for e in c.get("env") or []:
            if isinstance(e, Mapping) and "value" in e:
                yield from _entry(f"{who} env {e.get('name')}", str(e.get("name") or ""), e.get("value"))
        words = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
        for i, arg in enumerate(words):
            flag = FLAG.match(arg)
            if flag and credential_name(flag[1]) and literal(flag[2]):
                yield f"{who} passes {arg.split('=', 1)[0]} a literal on its command line"
            elif arg.startswith("-") and credential_name(arg.lstrip("-")) and i + 1 < len(words):
                following = words[i + 1]
                if literal(following) and not following.startswith("-"):  # `--token abc`, not `--token --x`
                    yield f"{who} passes {arg} a literal on its command line"
            for what in material(arg):
                yield f"{who} command line holds {what}"


def _annotations(where: str, meta: Any) -> Iterator[str]:
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    for key, value in annotations.items() if isinstance(annotations, Mapping) else ():
        yield from _entry(f"{where} annotation {key}", str(key).rsplit("/", 1)[-1], value)


def _ssm_parameter(res: PlannedResource) -> Iterator[str]:
    """A credential in SSM is a SecureString (KMS-encrypted, its own IAM permission to read)."""
    if res.props.get("type") == "SecureString":
        return
    name = str(res.props.get("name") or res.name).rstrip("/").rsplit("/", 1)[-1]
    if credential_name(name) or material(res.props.get("value")):
        yield f"SSM parameter {name!r} holds a credential as {res.props.get('type')!r}: use SecureString"


def no_credentials_in_plain_config(res: PlannedResource, _: PolicyConfig, __: PlanContext) -> Iterator[str]:
    if res.type == "aws:ssm/parameter:Parameter":
        yield from _ssm_parameter(res)
    k = kind(res)
    if k is None:
        return
    yield from _annotations("object", res.props.get("metadata"))
    if len(pod_path(res) or ()) > 1:  # a controller: its pod template has metadata of its own
        yield from _annotations("pod template", pod_metadata(res))
    yield from _containers(res)
    if k == "ConfigMap":
        for key, value in (res.props.get("data") or {}).items():
            yield from _entry(f"data[{key}]", str(key), value)
        for key, value in (res.props.get("binaryData") or {}).items():
            try:
                text = base64.b64decode(str(value), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            yield from _entry(f"binaryData[{key}]", str(key), text)
