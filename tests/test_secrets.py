"""No secret value appears in plaintext in any recorded input, output or artifact."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.registry.credentials import PULL_USER, PUSH_USER
from stacks.problems import ConfigError
from tests.conftest import STACKS, config_values, edited, parse, stack_file
from tools.plan import artifacts, report
from tools.plan.runner import Plan
from tools.plan.stackfile import placeholder


def _everything_written(plan: Plan, out: Path) -> dict[str, str]:
    art = artifacts.write(plan, out)
    files = [art.plan_json, *art.user_data, *art.netplan, *art.manifests]
    texts = {str(p): p.read_text() for p in files}
    texts["(printed plan)"] = report.render(plan)
    return texts


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_in_plan_outputs_or_artifacts(plans: dict[str, Plan], stack: str, tmp_path: Path) -> None:
    plan = plans[stack]
    secrets = plan.secret_values
    # The generated keys, the token secret and the config placeholders are all known.
    assert placeholder("akiba:maasApiKey") in secrets
    assert any("PRIVATE KEY" in s for s in secrets)
    assert len(secrets) >= 8
    for where, text in _everything_written(plan, tmp_path).items():
        leaked = [s[:20] for s in secrets if s in text]
        assert not leaked, f"{where} contains secret values starting {leaked}"
        assert "PRIVATE KEY-----\n" not in text or "[secret]" in text


@pytest.mark.parametrize("stack", STACKS)
def test_secret_inputs_are_masked_in_the_recorded_plan(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    converges = [r for r in plan.by_type("command:remote:Command") if r.name.endswith("-converge")]
    assert converges and len(converges) == len(plan.by_type("maas:index/instance:Instance"))
    for converge in converges:
        assert converge.inputs["stdin"] == "[secret]", "the configuration carries the pull credential (and keys)"
        assert "connection" in converge.secret_paths, "the ssh key is secret (and with it the connection)"
    for instance in plan.by_type("maas:index/instance:Instance"):
        # The install is public: it holds no token, credential or key (MAAS serves it over HTTP).
        user_data = instance.raw_inputs["deployParams"]["userData"]
        assert not [s[:12] for s in plan.secret_values if s in user_data], instance.name
    assert plan.secret_outputs and all(plan.outputs[k] == "[secret]" for k in plan.secret_outputs)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a resource's inputs; a #cloud-config document also by its files' contents
    (a key inside it is indented YAML, not the PEM text)."""
    if isinstance(value, str):
        yield value
        if value.startswith("#cloud-config\n"):
            for f in yaml.safe_load(value).get("write_files") or ():
                yield str(f.get("content", ""))
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.mark.parametrize("stack", STACKS)
def test_ca_keys_reach_only_the_controllers_over_ssh(plans: dict[str, Plan], stack: str) -> None:
    """The cluster's CA keys are in nothing MAAS sees (its install
    user-data, served to the node over plain HTTP): they reach exactly the controllers, in their
    configuration, which pulumi-command sends over ssh. Otherwise only tls resources that sign
    with them hold them (in Pulumi's state, never sent anywhere)."""
    plan = plans[stack]
    certs = {r.name: r for r in plan.by_type("tls:index/selfSignedCert:SelfSignedCert")}
    controllers = {n["hostname"] for n in plan.outputs["nodes"] if n["role"] == "controller"}
    assert controllers
    for name in ("ca", "etcd-ca", "front-proxy-ca"):
        pem = str(certs[name].raw_inputs["privateKeyPem"])
        assert pem.startswith("-----BEGIN")
        holders = {(r.type, r.name) for r in plan.resources if any(pem in s for s in _strings(r.raw_inputs))}
        remote = {n for t, n in holders if t == "command:remote:Command"}
        assert remote == {f"{c}-converge" for c in controllers}, name
        assert {t for t, _ in holders} <= {
            "command:remote:Command",
            "tls:index/selfSignedCert:SelfSignedCert",
            "tls:index/locallySignedCert:LocallySignedCert",
        }, (name, holders)
        ips = {n["ip"] for n in plan.outputs["nodes"] if n["role"] == "controller"}
        for r in plan.by_type("command:remote:Command"):
            if r.name in remote:  # ssh to the controller itself, as the configuration account
                assert r.raw_inputs["connection"]["user"] == "akiba-converge", r.name
                assert r.raw_inputs["connection"]["host"] in ips and r.raw_inputs["connection"]["port"] == 22
    (maas,) = [r for r in plan.resources if r.type == "pulumi:providers:maas"]
    assert maas.raw_inputs["apiUrl"].startswith("https://"), "the MAAS API key crosses this URL"


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_hold_no_plaintext_secret(stack: str) -> None:
    sf = stack_file(stack)
    assert set(sf.secret_keys) == {"akiba:maasApiKey", "akiba:powerPassword", "akiba:goldenDbSourceUrl"}
    assert set(sf.filled) == set(sf.secret_keys), "offline placeholders: the file holds none"
    assert not [line for line in sf.path.read_text().splitlines() if line.strip().startswith("secure:")]


@pytest.mark.parametrize("stack", STACKS)
def test_the_registry_pull_credential_stays_secret(plans: dict[str, Plan], stack: str, tmp_path: Path) -> None:
    """Every node's configuration carries the `Basic ...` header of akiba-pull: the header is a secret
    of its own (not just the password inside it) and appears in nothing the plan writes."""
    plan = plans[stack]
    headers = [s for s in plan.secret_values if s.startswith("Basic ")]
    assert len(headers) == 1
    user, _, password = base64.b64decode(headers[0].removeprefix("Basic ")).decode().partition(":")
    assert user == PULL_USER and password in plan.secret_values
    nodes = [r for r in plan.by_type("command:remote:Command") if r.name.endswith("-converge")]
    assert nodes and all(headers[0] in r.raw_inputs["stdin"] for r in nodes)
    for where, text in _everything_written(plan, tmp_path).items():
        assert headers[0] not in text, where
    secret = next(r for r in plan.by_type("kubernetes:core/v1:Secret") if r.name == "registry-htpasswd")
    lines = secret.raw_inputs["stringData"]["htpasswd"].splitlines()
    engineers = sorted(e["name"] for e in config_values(stack)["akiba:engineers"])
    assert [line.split(":", 1)[0] for line in lines] == [PUSH_USER, PULL_USER, *engineers], "and one per engineer"
    assert all(line.split(":", 1)[1].startswith("$2") for line in lines), "bcrypt hashes"
    assert "registryPushPassword" in plan.secret_outputs


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        (["akiba:maas", "url"], "http://192.168.10.2:5240/MAAS", "an https:// URL (MAAS serves TLS on port 5443"),
        (["akiba:cluster", "joinTokenRotationDays"], 0, "greater than or equal to 1"),
        (["akiba:cluster", "secretsEncryptionKeys"], [1, 1], "distinct key generations"),
    ],
    ids=["maas-over-plain-http", "join-token-never-rotated", "one-key-twice"],
)
def test_transit_and_rest_settings_are_checked(key: list[str], value: Any, words: str) -> None:
    """The MAAS API key would cross the LAN in the clear; a join token must rotate; an encryption
    key generation named twice is a mistake: each is a problem with its key path."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg[key[0]][key[1]] = value

    with pytest.raises(ConfigError) as caught:
        parse(edited("prod", edit))
    path = f"  - {key[0]}.{key[1]}: "
    lines = [line for line in str(caught.value).splitlines() if line.startswith(path)]
    assert lines and any(words in line for line in lines), str(caught.value)
    assert parse(edited("prod", lambda cfg: None)).maas.url.startswith("https://")
