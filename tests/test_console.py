"""Terminal output: colour when it is wanted and only then, JSON diagnostics for
editors, `ops --json`, the summary table on a terminal and progress bars."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dslnet
from dslnet.cli import main
from dslnet.core import console
from dslnet.core.console import progress, use_color
from dslnet.core.diagnostics import Diagnostic, Severity, SourceMap, Span
from dslnet.ops import registry
from dslnet.views.summary import render

ROOT = Path(__file__).resolve().parents[1]
ERRORS = ROOT / "tests" / "errors"
MLP = str(ROOT / "specs" / "mlp.net")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RED_ERROR = "\x1b[1;31merror\x1b[0m"


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def auto_color(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as if no --color was given (main sets it for the process)."""
    monkeypatch.setattr(console, "_color", "auto")
    yield


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def check_output(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What `dslnet check` prints on stdout (its findings); nothing goes to stderr."""
    capsys.readouterr()
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


# --- the colour decision ----------------------------------------------------------------


def test_colour_on_a_terminal_only_unless_the_environment_or_flag_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert use_color(Terminal()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Terminal())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert use_color(io.StringIO())
    monkeypatch.setenv("FORCE_COLOR", "0")  # zero means no, as in other tools
    assert not use_color(io.StringIO())
    monkeypatch.setenv("CLICOLOR_FORCE", "1")
    assert use_color(io.StringIO())
    console.set_color("never")  # the flag wins over the environment
    assert not use_color(Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    console.set_color("always")
    assert use_color(io.StringIO())


@pytest.mark.usefixtures("at_root")
@pytest.mark.parametrize(
    "argv",
    [
        ["--color", "always", "check", "tests/errors/block_nested_chain.net"],
        ["check", "--color=always", "tests/errors/block_nested_chain.net"],
    ],
)
def test_color_always_styles_location_severity_and_caret(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = check_output(argv, capsys)
    first, excerpt, caret = out.splitlines()[:3]
    assert first.startswith("\x1b[1mtests/errors/block_nested_chain.net:5:9:\x1b[0m ")
    assert f" {RED_ERROR}: add: shapes" in first
    assert caret.endswith("\x1b[1;31m^^^^^\x1b[0m")
    assert "\x1b[1;36mnote\x1b[0m: in block 'Inner' called here" in out
    assert excerpt.startswith("\x1b[34m   5 | \x1b[0m")


@pytest.mark.usefixtures("at_root")
def test_force_color_colours_a_pipe_and_warnings_are_yellow(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = check_output(["check", "tests/errors/out_missing.net"], capsys)
    assert RED_ERROR in out
    assert "\x1b[1;33mwarning\x1b[0m: unused value 'h'" in out
    assert "\x1b[1;31m1 error\x1b[0m, \x1b[1;33m1 warning\x1b[0m" in out


@pytest.mark.usefixtures("at_root")
@pytest.mark.parametrize(
    "case", ["block_nested_chain", "out_missing", "syntax_several", "import_error_inside"]
)
def test_piped_output_is_the_plain_text_and_colour_only_adds_styles(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = (ERRORS / f"{case}.expected").read_text()
    plain = check_output(["check", f"tests/errors/{case}.net"], capsys)
    assert plain + "exit: 1\n" == expected
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")  # NO_COLOR wins
    assert check_output(["check", f"tests/errors/{case}.net"], capsys) == plain
    monkeypatch.delenv("NO_COLOR")
    coloured = check_output(["check", f"tests/errors/{case}.net"], capsys)
    assert coloured != plain and ANSI.sub("", coloured) == plain


def test_uncoloured_render_is_unchanged_by_the_colour_option() -> None:
    sources = SourceMap()
    sources.add("a.net", "network A() {\n    out y = z\n}\n")
    d = Diagnostic(Severity.ERROR, "unknown name 'z'", Span("a.net", 2, 13, 2, 14))
    assert d.render(sources) == (
        "a.net:2:13: error: unknown name 'z'\n   2 |     out y = z\n                   ^"
    )
    assert ANSI.sub("", d.render(sources, color=True)) == d.render(sources)


# --- JSON diagnostics -------------------------------------------------------------------


def check_json(argv: list[str], capsys: pytest.CaptureFixture[str], code: int) -> Any:
    capsys.readouterr()
    assert main(argv) == code
    captured = capsys.readouterr()
    assert captured.err == ""  # check's document is its result: stdout, nothing else
    assert captured.out.count("\n") == 1  # one document on one line
    return json.loads(captured.out)


def test_json_parse_errors_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text("network Net() {\n    in x: float32[N, 16]\n    out y = x -> linear(8\n}\n")
    doc = check_json(["check", "--format", "json", str(bad)], capsys, 1)
    assert doc["version"] == 1
    assert doc["files"] == [{"file": str(bad), "ok": False, "errors": 1, "warnings": 0}]
    (d,) = doc["diagnostics"]
    assert d["file"] == str(bad) and d["severity"] == "error"
    assert "expected ')' to close '(' opened at 3:24" in d["message"]
    assert d["range"] == {"start": {"line": 4, "col": 1}, "end": {"line": 4, "col": 2}}
    assert d["notes"] == []


@pytest.mark.usefixtures("at_root")
def test_json_type_error_carries_the_block_call_chain(capsys: pytest.CaptureFixture[str]) -> None:
    file = "tests/errors/block_nested_chain.net"
    doc = check_json(["check", "--format", "json", file], capsys, 1)
    (d,) = doc["diagnostics"]
    assert d["range"] == {"start": {"line": 5, "col": 9}, "end": {"line": 5, "col": 14}}
    assert d["notes"] == [
        {
            "message": "in block 'Inner' called here",
            "file": file,
            "range": {"start": {"line": 10, "col": 14}, "end": {"line": 10, "col": 22}},
        },
        {
            "message": "in block 'Outer' called here",
            "file": file,
            "range": {"start": {"line": 15, "col": 18}, "end": {"line": 15, "col": 26}},
        },
    ]


@pytest.mark.usefixtures("at_root")
def test_json_warnings_and_per_file_status(capsys: pytest.CaptureFixture[str]) -> None:
    files = ["tests/errors/out_missing.net", "specs/mlp.net"]
    doc = check_json(["check", "--json", *files], capsys, 1)  # --json: the same document
    assert doc["files"] == [
        {"file": files[0], "ok": False, "errors": 1, "warnings": 1},
        {"file": files[1], "ok": True, "errors": 0, "warnings": 0},
    ]
    warning = next(d for d in doc["diagnostics"] if d["severity"] == "warning")
    assert warning["message"] == "unused value 'h' in network 'Net'"
    assert warning["range"] == {"start": {"line": 4, "col": 5}, "end": {"line": 4, "col": 31}}
    assert check_json(["check", "--format=json", "specs/mlp.net"], capsys, 0)["diagnostics"] == []


def test_json_range_is_null_where_the_position_is_unknown() -> None:
    d = Diagnostic(Severity.ERROR, "cannot read", Span.unknown("gone.net"))
    assert d.to_json() == {
        "file": "gone.net",
        "severity": "error",
        "message": "cannot read",
        "range": None,
        "notes": [],
    }


@pytest.mark.usefixtures("at_root")
def test_compile_json_diagnostics_go_to_stderr_and_stdout_stays_the_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["compile", "--format", "json", "tests/errors/syntax_several.net"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    doc = json.loads(captured.err)
    assert [d["range"]["start"] for d in doc["diagnostics"]] == [
        {"line": 4, "col": 23},
        {"line": 5, "col": 18},
        {"line": 7, "col": 5},
    ]
    assert main(["compile", "--format", "json", MLP, "-n", "MLP"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("network MLP(")
    assert json.loads(captured.err)["files"][0] == {
        "file": MLP,
        "ok": True,
        "errors": 0,
        "warnings": 0,
    }


def test_usage_errors_stay_text_in_json_mode(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file is a usage error on stderr; the others are still checked."""
    assert main(["check", "--format", "json", MLP, "no/such.net"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "dslnet: error: no such file or directory: no/such.net\n"
    assert [f["file"] for f in json.loads(captured.out)["files"]] == [MLP]


# --- ops --json and the summary table ---------------------------------------------------


def test_ops_json_lists_every_registered_op_as_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops", "--json"]) == 0
    ops = json.loads(capsys.readouterr().out)
    assert [op["name"] for op in ops] == list(registry.all_ops())
    for op in ops:
        definition = registry.all_ops()[op["name"]]
        assert op["family"] == definition.family and op["inputs"] == list(definition.inputs)
        assert [a["name"] for a in op["attributes"]] == list(definition.Attrs.model_fields)
    assert json.loads(json.dumps(ops)) == ops
    assert main(["ops", "linear", "--json"]) == 0
    linear = json.loads(capsys.readouterr().out)
    assert linear["family"] == "linear" and linear["outputs"] == ["y"]
    features, bias = linear["attributes"]
    assert features == {
        "name": "features",
        "type": "int",
        "required": True,
        "default": None,
        "doc": "output features",
    }
    assert bias["default"] is True and bias["type"] == "bool"


def test_summary_is_a_table_on_a_terminal_and_plain_text_on_a_pipe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["summary", MLP, "-n", "ResidualMLP"]) == 0
    assert capsys.readouterr().out == render(dslnet.load(MLP).summary("ResidualMLP"))
    assert main(["--color", "always", "summary", MLP, "-n", "ResidualMLP"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" in out and "┃" in out
    text = ANSI.sub("", out)
    total = next(line for line in text.splitlines() if "total" in line)
    assert "992,266" in total and "989,696*N" in total  # the totals row, digits grouped
    assert re.search(r"residual_block1 \(ResidualBlock\)\s+│\s+│ \[N, 256\]", text)
    assert re.search(r"│   linear1 +│ linear +│ \[N, 512\] +│ +131,584 │ +131,072\*N │", text)
    caption = " ".join(text.split("└")[-1].split())  # wrapped to the table's width
    assert "MACs (multiply-accumulates) for x: float32[N, 784]: 989,696*N (990 k" in caption


# --- progress ---------------------------------------------------------------------------


def test_progress_is_silent_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(progress(range(5), "counting")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""


def test_progress_draws_when_forced_and_nested_loops_share_one_bar(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = [(i, j) for i in progress(range(3), "outer", enabled=True) for j in progress("ab", "in")]
    assert seen == [(i, c) for i in range(3) for c in "ab"]
    err = capsys.readouterr().err
    assert "outer" in err and "0/3" in err and "in " in err
    assert console._active is None
    monkeypatch.setenv("DSLNET_PROGRESS", "1")
    assert sum(progress(iter(range(4)), "summing", total=4)) == 6
    assert "summing" in capsys.readouterr().err
    monkeypatch.delenv("DSLNET_PROGRESS")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(progress([1, 2], "on a terminal")) == [1, 2]
    assert "on a terminal" in terminal.getvalue()
    monkeypatch.setenv("DSLNET_PROGRESS", "0")
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert list(progress([1], "quiet")) == [1]
    assert quiet.getvalue() == ""


def test_calibration_and_lowrank_report_progress(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DSLNET_PROGRESS", "1")
    program = dslnet.load(MLP)
    program.optimize("MLP", lowrank=0.5, hidden=32)
    assert "low-rank factoring" in capsys.readouterr().err
    quantized = program.optimize(
        "MLP", quantize="int8-static", calibration_method="entropy", calibration_samples=3
    )
    quantized.onnx()
    err = capsys.readouterr().err
    assert "calibrating" in err and "0/3" in err and "entropy ranges" in err
