"""The GPU benchmark's own packages (benchmarks/gpu/requirements.txt) for its tests: missing in
CI fails the test, elsewhere it skips with the reason, as tests/conftest.py does for checkers."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import IN_CI


def require_modules(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (pip install -r benchmarks/gpu/requirements.txt)"
    if IN_CI:
        pytest.fail(f"{message}: CI must install it")
    pytest.skip(message)
