"""The committed stack files as the real Pulumi CLI meets them: nothing it could not decrypt, no
key written twice, and on a fresh stack the program's own message naming every missing secret's
`pulumi config set --secret` command at once. The offline plan fills exactly the secrets the
program requires with placeholders and says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.config import required_secrets, set_secret_command
from stacks.problems import ConfigError
from stacks.spec import OPTIONAL_SECRET_KEYS, SECRET_KEYS
from tests.conftest import ROOT, STACKS
from tools.plan import __main__ as plan_main
from tools.plan.runner import run
from tools.plan.stackfile import StackFileError, is_secure, placeholder, read_stack_file, read_yaml

# The stack-file keys that say how its `secure:` values are encrypted (pulumi/pulumi
# sdk/go/common/workspace/project.go, ProjectStack: secretsprovider, encryptedkey, encryptionsalt).
PROVIDER_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")


def secure_values(value: Any, path: str = "") -> list[str]:
    """The paths of every `secure:` value, at any depth (Pulumi decrypts nested ones too)."""
    if is_secure(value):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in secure_values(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in secure_values(v, f"{path}[{i}]")]
    return []


def undecryptable(path: Path) -> list[str]:
    """Values of a stack file no secrets provider could decrypt: a committed file declares no
    provider (each stack's own is created by `pulumi stack init`), so any ciphertext is one."""
    doc = read_yaml(path)
    assert isinstance(doc, dict), path
    found = [
        f"{path.name}: declares {k} (a stack's own, made by `pulumi stack init`)" for k in PROVIDER_KEYS if k in doc
    ]
    if not any(k in doc for k in PROVIDER_KEYS):
        found += [f"{path.name}: {p}: a secure value without a secrets provider" for p in secure_values(doc)]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_hold_nothing_pulumi_could_not_decrypt(stack: str) -> None:
    path = ROOT / f"Pulumi.{stack}.yaml"
    assert undecryptable(path) == []
    config = read_yaml(path)["config"]
    assert len(config) >= 10, "the file was read"
    assert not {f"akiba:{k}" for k in SECRET_KEYS} & set(config), "no secret key is committed"


def test_the_decryption_check_finds_ciphertext_at_any_depth(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(
        "config:\n  akiba:maasApiKey:\n    secure: v1:placeholder:x\n"
        "  akiba:nodes:\n    - power:\n        password:\n          secure: AAABAx\n"
        "  akiba:note:\n    secure: [not, a, string]\n"
    )
    assert undecryptable(path) == [
        "Pulumi.x.yaml: config.akiba:maasApiKey: a secure value without a secrets provider",
        "Pulumi.x.yaml: config.akiba:nodes[0].power.password: a secure value without a secrets provider",
    ]
    path.write_text("encryptionsalt: v1:abc\nconfig: {}\n")
    assert undecryptable(path) == [
        "Pulumi.x.yaml: declares encryptionsalt (a stack's own, made by `pulumi stack init`)"
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_a_fresh_stack_gets_the_programs_message_for_every_missing_secret_at_once(stack: str) -> None:
    committed = read_stack_file(ROOT, stack, fill_secrets=False)
    assert committed.secret_keys == [] and committed.filled == ()
    with pytest.raises(ConfigError) as err:
        run(committed)  # the real program, as `pulumi preview` runs it on a fresh stack
    problems = err.value.problems
    required = SECRET_KEYS.keys() - OPTIONAL_SECRET_KEYS
    assert [p.path for p in problems] == sorted(f"akiba:{k}" for k in required), "these, and nothing else"
    for problem in problems:
        key = problem.path.removeprefix("akiba:")
        assert problem.found == "no value"
        assert f"`{set_secret_command(stack, key)}`" in problem.expected
        assert f"pulumi config set --secret --stack {stack} {problem.path} <value>" in str(err.value)


@pytest.mark.parametrize("stack", STACKS)
def test_the_offline_plan_fills_exactly_the_secrets_the_program_requires(stack: str) -> None:
    sf = read_stack_file(ROOT, stack)
    committed = read_stack_file(ROOT, stack, fill_secrets=False)
    values = {k.removeprefix("akiba:"): v for k, v in read_yaml(sf.path)["config"].items()}
    expected = tuple(f"akiba:{k}" for k in required_secrets(values))
    assert sf.filled == expected and set(expected) == {f"akiba:{k}" for k in SECRET_KEYS.keys() - OPTIONAL_SECRET_KEYS}
    assert all(sf.config[k] == placeholder(k) and k in sf.secret_keys for k in expected)
    assert {k: v for k, v in sf.config.items() if k not in expected} == committed.config


def test_the_fill_follows_the_program_and_leaves_set_secrets_alone(tmp_path: Path) -> None:
    doc = read_yaml(ROOT / "Pulumi.prod.yaml")
    for node in doc["config"]["akiba:nodes"]:
        node["power"] = {"type": "manual"}  # no node needs the power password
    doc["config"]["akiba:maasApiKey"] = {"secure": "v1:ciphertext-of-this-stack"}
    (tmp_path / "Pulumi.manual.yaml").write_text(yaml.safe_dump(doc))
    sf = read_stack_file(tmp_path, "manual")
    assert sf.filled == ("akiba:goldenDbSourceUrl",)
    assert set(sf.secret_keys) == {"akiba:maasApiKey", "akiba:goldenDbSourceUrl"}
    assert sf.config["akiba:maasApiKey"] == placeholder("akiba:maasApiKey"), "never decrypted offline"


def test_make_plan_says_which_secrets_it_filled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = read_yaml(ROOT / "Pulumi.prod.yaml")
    doc["config"]["akiba:cluster"]["podCidr"] = "not-a-cidr"  # stop right after the config is read
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    assert plan_main.plan_command("prod", tmp_path / "out", True, stack_dir=tmp_path) == 2
    out, err = capsys.readouterr()
    filled = [line for line in out.splitlines() if "offline placeholders" in line]
    assert filled == [
        "Pulumi.prod.yaml: offline placeholders for the secrets it does not set: akiba:goldenDbSourceUrl, "
        "akiba:maasApiKey, akiba:powerPassword (a real preview needs `pulumi config set --secret`)"
    ]
    assert "akiba:cluster.podCidr" in err and "akiba:maasApiKey" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "config:\n  akiba:cluster: {}\n  akiba:network: {}\n  akiba:cluster: {}\n",
            'line 4: mapping key "akiba:cluster" already defined at line 2 (akiba:cluster)',
        ),
        (
            "config:\n  akiba:nodes:\n    - hostname: a\n      ip: 10.0.0.1\n      hostname: b\n",
            'line 5: mapping key "hostname" already defined at line 3 (akiba:nodes[0].hostname)',
        ),
        (
            "config:\n  akiba:maas: {url: x, pool: y, url: z}\n  akiba:maas: {}\n",
            'line 2: mapping key "url" already defined at line 2 (akiba:maas.url)\n'
            'Pulumi.x.yaml: line 3: mapping key "akiba:maas" already defined at line 2 (akiba:maas)',
        ),
    ],
)
def test_a_key_written_twice_is_refused_like_pulumi_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text(text)
    with pytest.raises(StackFileError) as err:
        read_stack_file(tmp_path, "x")
    assert sorted(str(err.value).splitlines()) == sorted(f"Pulumi.x.yaml: {message}".splitlines())
    assert plan_main.plan_command("x", tmp_path / "out", True, stack_dir=tmp_path) == 2
    assert f"Pulumi.x.yaml: {message}" in capsys.readouterr().err


def test_yaml_12_scalars_and_distinct_keys_still_read(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text(
        "config:\n  akiba:a: {mac: 52:54:00:20:01:01, on: on, n: 1, m: '1'}\n  akiba:b: [x, x]\n"
    )
    sf = read_stack_file(tmp_path, "x", fill_secrets=False)
    assert sf.config == {
        "akiba:a": '{"mac": "52:54:00:20:01:01", "on": "on", "n": 1, "m": "1"}',
        "akiba:b": '["x", "x"]',
    }
