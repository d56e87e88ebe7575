"""The op reference: `dslnet ops` and docs/ops.md come from the registry and stay current."""

from __future__ import annotations

from pathlib import Path

import pytest

from dslnet import opdocs
from dslnet.cli import main
from dslnet.ops import registry

ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_reference_is_current() -> None:
    checked_in = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8")
    assert checked_in == opdocs.reference(), "docs/ops.md is stale: run `make docs`"


def test_every_op_is_listed_and_documented_with_compiled_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ops"]) == 0
    listing = capsys.readouterr().out
    for name, op in registry.all_ops().items():
        assert f"  {name} " in listing
        assert main(["ops", name]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"## {name}\n")
        for attr in op.Attrs.model_fields:
            assert f"| `{attr}` |" in text
        assert text.count("# -> ") >= len(op.examples) >= 1


def test_linear_reference_shows_inferred_shapes_and_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ops", "linear"]) == 0
    text = capsys.readouterr().out
    assert "| `bias` | bool | `true` |" in text
    assert "# param linear1.weight:" in text


def test_unknown_op_is_a_usage_error_with_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ops", "lineer"]) == 2
    assert "did you mean 'linear'" in capsys.readouterr().err
