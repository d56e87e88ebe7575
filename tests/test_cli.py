"""The `dslnet` command: exit codes, outputs, overrides, atomic writes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from dslnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "specs" / "mlp.net")
BAD = "network A() {\n  in x: float32[N, 4]\n  out y = x -> relux\n}\n"


def test_check_clean_spec_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", MLP]) == 0
    assert capsys.readouterr().out == f"{MLP}: ok\n"  # one file: no total line


def test_check_bad_spec_exits_1_with_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text(BAD)
    assert main(["check", str(bad), MLP]) == 1
    captured = capsys.readouterr()
    assert captured.err == ""  # the findings are check's result: stdout, like ruff and mypy
    assert f"{bad}:3:16: error: unknown op or block 'relux' (did you mean 'relu'?)" in captured.out
    assert f"{MLP}: ok\n" in captured.out  # the second file is still checked
    assert captured.out.endswith("Found 1 error in 1 file (checked 2 files)\n")


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
        (["check", "no/such/file.net"], "no such file or directory: no/such/file.net"),
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


# --- conventions of the ecosystem: --version, python -m, stdin, directories ---------------

NESTED = (ROOT / "tests" / "data" / "nested.net").read_text()
NEEDS_WIDTH = (
    "network W(width: int) {\n  in x: float32[N, 4]\n  out y = x -> linear(features=width)\n}\n"
)


def test_version_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"dslnet {version('dslnet')}\n"


def test_python_dash_m_dslnet_is_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dslnet", "--version"], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (0, f"dslnet {version('dslnet')}\n")


def test_dash_reads_standard_input_named_stdin_with_imports_from_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib.net").write_text(NESTED)
    spec = 'import "lib.net"\nnetwork Top() {\n  in x: float32[N, 8]\n  out y = x -> Inner(4)\n}\n'
    monkeypatch.setattr(sys, "stdin", io.StringIO(spec))
    assert main(["summary", "-", "-n", "Top"]) == 0
    assert "inner1 (Inner)" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(BAD))
    assert main(["check", "-"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("<stdin>:3:16: error: unknown op or block 'relux'")
    assert out.endswith("<stdin>: 1 error\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(spec))
    assert main(["compile", "-", "-n", "Top"]) == 0
    assert capsys.readouterr().out.startswith("network Top()")


def test_a_directory_is_its_net_files_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs" / "sub").mkdir(parents=True)
    (tmp_path / "specs" / ".hidden").mkdir()
    (tmp_path / "specs" / "b.net").write_text(NESTED)
    (tmp_path / "specs" / "sub" / "a.net").write_text(BAD)
    (tmp_path / "specs" / ".hidden" / "c.net").write_text(BAD)
    (tmp_path / "specs" / "notes.txt").write_text("not a spec")
    assert main(["check", "specs"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.endswith(("ok", "error"))] == [
        "specs/b.net: ok",
        "specs/sub/a.net: 1 error",
    ]
    assert lines[-1] == "Found 1 error in 1 file (checked 2 files)"


def test_several_files_a_missing_one_reported_and_the_worst_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.net", tmp_path / "bad.net"
    good.write_text(NESTED)
    bad.write_text(BAD)
    missing = str(tmp_path / "missing.net")
    assert main(["check", str(good), missing, str(bad)]) == 2  # usage beats spec errors
    captured = capsys.readouterr()
    assert captured.err == f"dslnet: error: no such file or directory: {missing}\n"
    assert f"{good}: ok" in captured.out and f"{bad}: 1 error" in captured.out
    assert captured.out.endswith("Found 1 error in 1 file (checked 2 files)\n")
    assert main(["check", str(good), str(bad)]) == 1
    assert main(["check", str(good), str(good)]) == 0  # each file once
    assert capsys.readouterr().out.endswith(f"{good}: ok\n")
    assert main(["summary", str(good), missing]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("Net(width=32)") and missing in captured.err
    assert main(["summary", str(bad), str(good)]) == 1  # errors on stderr, the rest summarized
    captured = capsys.readouterr()
    assert "error: unknown op or block 'relux'" in captured.err
    assert captured.out.startswith("Net(width=32)")


def test_check_summary_line_with_warnings_and_no_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warned = tmp_path / "warned.net"
    warned.write_text("network U() {\n  in x: float32[N, 4]\n  h = x -> relu\n  out y = x\n}\n")
    assert main(["check", str(warned), MLP]) == 0
    assert capsys.readouterr().out.endswith("No errors, 1 warning (checked 2 files)\n")


@pytest.mark.parametrize("command", [["compile"], ["graph"], ["bench", "--rounds", "1"]])
def test_commands_with_one_output_refuse_several_specs(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.net").write_text(NESTED)
    (tmp_path / "b.net").write_text(NESTED)
    assert main([*command, str(tmp_path)]) == 2
    name = command[0]
    assert f"{name} makes one output and reads exactly one spec; got 2: " in (
        capsys.readouterr().err
    )
    (tmp_path / "b.net").unlink()
    if name == "compile":  # a directory of one spec is that spec
        assert main([*command, str(tmp_path)]) == 0


# --- exit codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["compile", "summary", "graph"])
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-n", "MPL"], "no network 'MPL' (did you mean 'MLP'?); this spec has: MLP, ResidualMLP"),
        (
            ["-n", "MLP", "--set", "hiden=3"],
            "--set hiden: network 'MLP' has no parameter 'hiden' (did you mean 'hidden'?)",
        ),
        (["-n", "MLP", "--set", "hidden=wide"], "--set hidden: expected int, got 'wide'"),
        (["-n", "MLP", "--set", "hidden"], "--set expects NAME=VALUE, got 'hidden'"),
    ],
)
def test_network_choice_and_overrides_are_all_usage_errors(
    command: str, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, MLP, *extra]) == 2
    assert f"dslnet: error: {message}" in capsys.readouterr().err


def test_a_parameter_without_default_says_how_to_give_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "w.net"
    spec.write_text(NEEDS_WIDTH)
    for command in ("compile", "summary", "graph"):
        assert main([command, str(spec)]) == 2
        assert (
            "network 'W' needs parameter 'width' (int), which has no default: give it with "
            "--set width=..."
        ) in capsys.readouterr().err
    assert main(["compile", str(spec), "--set", "width=3"]) == 0


def test_exit_code_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dslnet.cli.common import EXIT_INTERNAL, EXIT_OK, EXIT_SPEC, EXIT_USAGE

    assert (EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL) == (0, 1, 2, 3)
    bad = tmp_path / "bad.net"
    bad.write_text(BAD)
    assert main(["check", MLP]) == EXIT_OK
    assert main(["check", str(bad)]) == EXIT_SPEC
    assert main(["check", str(tmp_path / "gone.net")]) == EXIT_USAGE
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--no-such-flag", MLP])
    assert exit_.value.code == EXIT_USAGE


def test_an_internal_error_exits_3_with_a_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dslnet.cli.check as check

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(check, "load_spec", broken)
    assert main(["check", MLP]) == 3
    assert "dslnet: internal error (this is a bug in dslnet" in capsys.readouterr().err


# --- outputs into missing directories ------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "name"), [(["compile", "-n", "MLP"], "mlp.ir"), (["graph", "-n", "MLP"], "mlp.dot")]
)
def test_output_into_a_missing_directory_creates_it_and_says_so(
    command: list[str], name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "deeper" / name
    assert main([command[0], MLP, *command[1:], "-o", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 0
    err = capsys.readouterr().err
    assert err == (
        f"dslnet: created directory {tmp_path / 'new'}{os.sep}\n"
        f"dslnet: created directory {tmp_path / 'new' / 'deeper'}{os.sep}\n"
    )
    assert main([command[0], MLP, *command[1:], "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""  # there now: nothing to say


def test_a_failed_write_leaves_no_directory_behind(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["compile", MLP, "-n", "MLP", "-o", str(blocker / "new" / "x.ir")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_train_out_into_a_missing_directory_creates_it_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs" / "first"
    mnist = str(ROOT / "specs" / "mnist.net")
    args = ["train", mnist, "--synthetic", "8", "--epochs", "1", "--no-export", "--out", str(out)]
    assert main(args) == 0
    assert capsys.readouterr().err.startswith(f"dslnet: created directory {out}{os.sep}\n")
    assert (out / "checkpoint.safetensors").is_file()


# --- flag values refused as usage errors, never an internal error ----------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["compile", "specs/mlp.net", "-n", "MLP", "--emit", "onnx", "--opset", "3"],
        ["compile", "specs/mlp.net", "-n", "MLP", "--emit", "onnx", "--opset", "999"],
        ["compile", "specs/mlp.net", "-n", "MLP", "--calibration-samples", "0"],
        ["train", "specs/mnist.net", "--synthetic", "0"],
        ["train", "specs/mnist.net", "--synthetic", "64", "--epochs", "0"],
        ["train", "specs/mnist.net", "--synthetic", "64", "--nproc", "0"],
    ],
    ids=["opset-old", "opset-new", "calibration-samples", "synthetic", "epochs", "nproc"],
)
def test_flag_values_out_of_range_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --" in err and "Traceback" not in err


def test_a_path_that_is_not_a_regular_file_says_what_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", os.devnull]) == 2
    assert capsys.readouterr().err == (
        f"dslnet: error: {os.devnull} is a character device, not a regular file\n"
    )
