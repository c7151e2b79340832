"""No secret value appears in plaintext in any recorded input, output or artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import STACKS, stack_file
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
    for instance in plan.by_type("maas:index/instance:Instance"):
        assert instance.inputs["deployParams"] == "[secret]", "user-data carries the join token"
    assert plan.outputs["kubeconfig"] == "[secret]"
    assert "kubeconfig" in plan.secret_outputs


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_hold_no_plaintext_secret(stack: str) -> None:
    sf = stack_file(stack)
    assert set(sf.secret_keys) == {"akiba:maasApiKey", "akiba:powerPassword", "akiba:goldenDbSourceUrl"}
    text = sf.path.read_text()
    assert "secure: v1:placeholder:" in text
