"""The `dslnet` command: exit codes, outputs, overrides, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dslnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "specs" / "mlp.net")


def test_check_clean_spec_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", MLP]) == 0
    assert "mlp.net: ok" in capsys.readouterr().err


def test_check_bad_spec_exits_1_with_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text("network A() {\n  in x: float32[N, 4]\n  out y = x -> relux\n}\n")
    assert main(["check", str(bad), MLP]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:16: error: unknown op or block 'relux' (did you mean 'relu'?)" in err
    assert "mlp.net: ok" in err  # the second file is still checked


def test_compile_emits_ir_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", MLP, "-n", "MLP", "--set", "hidden=64", "--emit", "ir"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("network MLP(hidden=64, depth=2, classes=10, p=0.1)\n")
    assert "param linear1.weight: float32[64, 784]" in out


def test_compile_emits_ast(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", MLP, "--emit", "ast"]) == 0
    out = capsys.readouterr().out
    assert "BlockDecl  @" in out and "name: 'ResidualMLP'" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compile", MLP], "choose a network with -n (this spec has: MLP, ResidualMLP)"),
        (["compile", MLP, "-n", "MLP", "--set", "hidden"], "--set expects NAME=VALUE"),
        (["compile", MLP, "-n", "MLP", "--set", "hidden=wide"], "expected int, got 'wide'"),
        (["check", "no/such/file.net"], "no such file: no/such/file.net"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_argparse_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["compile"])
    assert exit_.value.code == 2


def test_output_file_written_whole_and_untouched_on_error(tmp_path: Path) -> None:
    out = tmp_path / "mlp.ir"
    assert main(["compile", MLP, "-n", "MLP", "-o", str(out)]) == 0
    first = out.read_text()
    assert first.startswith("network MLP(")
    bad = tmp_path / "bad.net"
    bad.write_text("network MLP() {\n  in x: float32[N, 4]\n  out y = x + x -> nope\n}\n")
    assert main(["compile", str(bad), "-n", "MLP", "-o", str(out)]) == 1
    assert out.read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.net", "mlp.ir"]


def test_console_script_runs_as_a_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dslnet.cli", "check", MLP],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr


def test_a_reader_that_stops_early_is_not_an_internal_error() -> None:
    """`dslnet compile ... | head`: a closed pipe ends the command quietly, exit 0."""
    command = [sys.executable, "-m", "dslnet.cli", "compile", MLP, "-n", "MLP", "--emit", "ir"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # gone before the IR is written: the write meets a closed pipe
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert (code, err) == (0, "")
