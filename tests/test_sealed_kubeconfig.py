"""engineerKubeconfig-<login> as an engineer and as everyone else meets it: anyone who reads the
stack decrypts every Pulumi secret output, so the output is the engineer's kubeconfig sealed with
age to their own ssh keys. Opened here with real keys from ssh-keygen, by pyrage and by the real
`age` CLI (as the README tells engineers); any other key opens nothing."""

from __future__ import annotations

import base64
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pyrage  # type: ignore[import-untyped]
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from components.tenants import sealed
from stacks import outputs
from tests.conftest import ROOT, edited, require_tool
from tests.test_tenants import SigningMocks
from tools.plan import references, runner
from tools.plan.runner import Plan

AGE_INSTALL = "apt-get install age"
SSH_KEYGEN_INSTALL = "apt-get install openssh-client"
SECRET = "kubernetes:core/v1:Secret"


@dataclass(frozen=True)
class KeyPair:
    private: Path  # OpenSSH private key file, as `age -d -i` takes it
    public: str  # the authorized_keys line

    def identity(self) -> Any:
        return pyrage.ssh.Identity.from_buffer(self.private.read_bytes())


def _keygen(directory: Path, name: str, *kind: str) -> KeyPair:
    keygen = require_tool("ssh-keygen", SSH_KEYGEN_INSTALL)
    path = directory / name
    subprocess.run([keygen, "-q", *kind, "-N", "", "-C", f"{name}@test", "-f", str(path)], check=True)
    return KeyPair(path, path.with_suffix(".pub").read_text().strip())


@dataclass(frozen=True)
class Keys:
    ed25519: KeyPair
    rsa: KeyPair
    ecdsa: KeyPair
    rsa_1024: KeyPair  # sshd may take it; age refuses RSA under 2048 bits
    stranger: KeyPair  # an ed25519 key of nobody in the stack


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("ssh")
    return Keys(
        ed25519=_keygen(d, "tarui", "-t", "ed25519"),
        rsa=_keygen(d, "tarui-rsa", "-t", "rsa", "-b", "3072"),
        ecdsa=_keygen(d, "tarui-ecdsa", "-t", "ecdsa"),
        rsa_1024=_keygen(d, "tarui-rsa-1024", "-t", "rsa", "-b", "1024"),
        stranger=_keygen(d, "stranger", "-t", "ed25519"),
    )


def _sk_key() -> str:
    """A FIDO security key line (sk-ssh-ed25519): sshd takes it, age cannot seal to it."""

    def string(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    blob = string(b"sk-ssh-ed25519@openssh.com") + string(bytes(range(32))) + string(b"ssh:")
    return f"sk-ssh-ed25519@openssh.com {base64.b64encode(blob).decode()} tarui@yubikey"


def _dearmor(text: str) -> bytes:
    lines = text.splitlines()
    assert lines[0] == sealed.ARMOR_BEGIN and lines[-1] == sealed.ARMOR_END and text.endswith("\n")
    body = lines[1:-1]
    assert all(len(line) == 64 for line in body[:-1]) and 0 < len(body[-1]) <= 64  # age's strict armor
    return base64.b64decode("".join(body), validate=True)


def _open_with_pyrage(text: str, pair: KeyPair) -> str:
    plain: bytes = pyrage.decrypt(_dearmor(text), [pair.identity()])
    return plain.decode()


def _open_with_age(text: str, pair: KeyPair) -> subprocess.CompletedProcess[str]:
    """What the engineer runs: `... --show-secrets | age -d -i ~/.ssh/id_ed25519`."""
    age = require_tool("age", AGE_INSTALL)
    return subprocess.run([age, "-d", "-i", str(pair.private)], input=text, capture_output=True, text=True)


# --- sealing, on its own ----------------------------------------------------------------------


def test_each_of_the_engineers_keys_opens_it_and_no_other_key_does(keys: Keys) -> None:
    text = sealed.seal("apiVersion: v1\nkind: Config\n", [keys.ed25519.public, keys.rsa.public])
    for pair in (keys.ed25519, keys.rsa):
        assert _open_with_pyrage(text, pair) == "apiVersion: v1\nkind: Config\n"
        opened = _open_with_age(text, pair)
        assert opened.returncode == 0, opened.stderr
        assert opened.stdout == "apiVersion: v1\nkind: Config\n"
    with pytest.raises(pyrage.DecryptError):
        _open_with_pyrage(text, keys.stranger)
    refused = _open_with_age(text, keys.stranger)
    assert refused.returncode != 0 and refused.stdout == ""
    assert "no identity matched" in refused.stderr


def test_age_reads_the_armor_whatever_the_length_of_the_last_line(keys: Keys) -> None:
    """The armor's last line is full (64 columns) or short depending on the length: age is
    strict about both, so both are opened by the real CLI."""
    seen: set[bool] = set()
    # rage adds a random-length "grease" stanza to each header, so a given plaintext length does
    # not fix where the last line ends: try lengths until both shapes have been opened.
    for attempt in range(2000):
        if seen == {True, False}:
            break
        n = attempt % 97
        text = sealed.seal("x" * n, [keys.ed25519.public])
        last = len(text.splitlines()[-2])
        if (last == 64) in seen:
            continue
        seen.add(last == 64)
        opened = _open_with_age(text, keys.ed25519)
        assert opened.returncode == 0 and opened.stdout == "x" * n, opened.stderr
    assert seen == {True, False}


def test_sealing_is_fresh_each_time(keys: Keys) -> None:
    """Why the output changes on every `pulumi up` while the kubeconfig inside does not."""
    first, second = (sealed.seal("same", [keys.ed25519.public]) for _ in range(2))
    assert first != second
    assert _open_with_pyrage(first, keys.ed25519) == _open_with_pyrage(second, keys.ed25519) == "same"


def test_only_keys_age_can_seal_to_are_used(keys: Keys) -> None:
    yuta_before = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJKH50WdUVtMvZkfOqJgrKmawWZv4LjkqhGr2eWXvjIR yuta@akiba"
    given = [keys.ecdsa.public, _sk_key(), yuta_before, keys.rsa_1024.public, keys.rsa.public, keys.ed25519.public]
    # ecdsa and security keys are not age recipients; yuta's old sample key is no point of the
    # curve (no private key has it) and a 1024-bit RSA key too weak: age refuses both.
    assert sealed.sealable_keys(given) == (keys.rsa.public, keys.ed25519.public)
    assert sealed.sealable_keys([keys.ecdsa.public, _sk_key()]) == ()
    with pytest.raises(ValueError, match="no key"):
        sealed.seal("x", [])


# --- the stack's output ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    plan: Plan
    warnings: list[str]


@pytest.fixture(scope="module")
def sealed_plan(keys: Keys) -> Iterator[Sealed]:
    """Prod's plan, certificates really signed, with tarui's keys from ssh-keygen (ed25519, rsa
    and an ecdsa age cannot use) and haruka holding only keys age refuses (ecdsa, 1024-bit RSA)."""

    def edit(cfg: dict[str, Any]) -> None:
        for e in cfg["akiba:engineers"]:
            if e["name"] == "tarui":
                e["sshKeys"] = [keys.ecdsa.public, keys.ed25519.public, keys.rsa.public]
            elif e["name"] == "haruka":
                e["sshKeys"] = [keys.ecdsa.public, keys.rsa_1024.public]

    sf = edited("prod", edit)
    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        plan = runner.run(sf, mocks=SigningMocks(references.resolve(sf, ROOT)))
    finally:
        logging.getLogger().removeHandler(handler)
    assert plan.resources, "the recorded plan is empty"
    yield Sealed(plan, records)


def _home_kubeconfig(plan: Plan, login: str) -> str:
    """What their home pod mounts: Secret kubeconfig in eng-<login>."""
    (secret,) = [
        r.raw_inputs
        for r in plan.by_type(SECRET)
        if r.raw_inputs["metadata"].get("namespace") == f"eng-{login}"
        and r.raw_inputs["metadata"]["name"] == "kubeconfig"
    ]
    config: str = secret["stringData"]["config"]
    return config


def test_the_engineer_opens_their_output_to_their_kubeconfig(keys: Keys, sealed_plan: Sealed) -> None:
    plan = sealed_plan.plan
    text = plan.raw_outputs["engineerKubeconfig-tarui"]
    assert "engineerKubeconfig-tarui" in plan.secret_outputs  # still a Pulumi secret as well
    assert plan.outputs["engineerKubeconfig-tarui"] == "[secret]"  # nor written to plan.json
    opened = _open_with_age(text, keys.ed25519)
    assert opened.returncode == 0, opened.stderr
    assert _open_with_pyrage(text, keys.rsa) == opened.stdout
    # What their home pod mounts, and a kubeconfig for user tarui in eng-tarui.
    assert opened.stdout == _home_kubeconfig(plan, "tarui")
    doc = yaml.safe_load(opened.stdout)
    (user,) = doc["users"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["user"]["client-certificate-data"]))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "tarui"
    assert user["user"]["client-key-data"]
    (context,) = doc["contexts"]
    assert context["context"]["namespace"] == "eng-tarui" and doc["current-context"] == context["name"]
    # The plaintext is nowhere in the outputs: another reader of the stack gets ciphertext.
    assert user["user"]["client-key-data"] not in str(plan.raw_outputs)
    jsonschema.validate(plan.raw_outputs, outputs.contract())  # the armored value fits the pattern


def test_no_other_key_opens_an_engineers_output(keys: Keys, sealed_plan: Sealed) -> None:
    raw = sealed_plan.plan.raw_outputs
    with pytest.raises(pyrage.DecryptError):
        _open_with_pyrage(raw["engineerKubeconfig-tarui"], keys.stranger)
    assert _open_with_age(raw["engineerKubeconfig-tarui"], keys.stranger).returncode != 0
    # tarui's keys open nobody else's.
    for login in ("yuta", "kenji"):
        with pytest.raises(pyrage.DecryptError):
            _open_with_pyrage(raw[f"engineerKubeconfig-{login}"], keys.ed25519)
        assert _open_with_age(raw[f"engineerKubeconfig-{login}"], keys.ed25519).returncode != 0


def test_an_engineer_without_an_age_key_gets_no_output_and_a_warning(sealed_plan: Sealed) -> None:
    plan = sealed_plan.plan
    assert "engineerKubeconfig-haruka" not in plan.raw_outputs
    (warning,) = [w for w in sealed_plan.warnings if "haruka" in w]
    assert "age can seal a kubeconfig to (ssh-ed25519, ssh-rsa" in warning and "home pod" in warning
    assert not [w for w in sealed_plan.warnings if "tarui" in w]
    # Their kubeconfig is still in their home pod's Secret: the README's ssh path.
    assert yaml.safe_load(_home_kubeconfig(plan, "haruka"))["contexts"][0]["context"]["namespace"] == "eng-haruka"
