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


def test_editor_grammar_is_current_and_covers_the_language() -> None:
    import json
    import re

    from dslnet.editor import textmate_json

    path = ROOT / "editors" / "vscode" / "syntaxes" / "dslnet.tmLanguage.json"
    assert path.read_text(encoding="utf-8") == textmate_json(), "stale: run `make docs`"
    patterns = {p["name"]: re.compile(p["match"]) for p in json.loads(textmate_json())["patterns"]}
    ops = patterns["support.function.op.dslnet"]
    assert all(ops.fullmatch(name) for name in registry.all_ops())
    # Every word the grammar knows as a keyword is highlighted as one.
    grammar = (ROOT / "grammar" / "dslnet.lark").read_text(encoding="utf-8")
    words = set(re.findall(r'"([a-z]+)"', grammar))
    keywords = [p for name, p in patterns.items() if name.startswith(("keyword", "constant.lang"))]
    assert words and all(any(p.fullmatch(w) for p in keywords) for w in words)
    line = "@freeze layer fc = linear(10)  # head"
    assert patterns["storage.modifier.annotation.dslnet"].search(line)
    assert patterns["comment.line.number-sign.dslnet"].search(line).group() == "# head"
