"""Shared pytest options: `--accept` rewrites golden files instead of comparing."""

from __future__ import annotations

import os

import pytest

from dslnet.ops import NO_PLUGINS_ENV


def pytest_configure(config: pytest.Config) -> None:
    """dslnet's tests see only its own ops: an op package installed in the environment
    running them would change what `dslnet ops` lists, and a broken one would fail every
    test. tests/test_user_ops.py turns plugins back on where it tests them."""
    os.environ[NO_PLUGINS_ENV] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--accept", action="store_true", help="rewrite golden/expected files with current output"
    )


@pytest.fixture
def accept(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--accept"))


@pytest.fixture(autouse=True)
def _plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Expected outputs are the plain, piped text: colour and progress settings of the
    environment running the tests (FORCE_COLOR in CI, say) must not leak into them."""
    for name in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "DSLNET_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
