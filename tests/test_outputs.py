"""Every file dslnet writes is written whole or not at all: to a temporary file beside
it, then renamed. A failure or an interrupt half-way leaves the previous file as it
was and no temporary file behind (issue 9)."""

from __future__ import annotations

import errno
import io
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dslnet.cli import main
from dslnet.cli.common import OutputError, write_atomic, write_files

ROOT = Path(__file__).resolve().parents[1]
SPEC = (
    "network Net() {\n    in x: float32[N, 4]\n    h = x -> linear(8)\n"
    "    h = h -> batchnorm -> relu\n    out y = h -> linear(3)\n}\n"
)
PREVIOUS = b"the previous output\n"


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "net.net"
    path.write_text(SPEC)
    return path


def _outputs(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix != ".net"}


class _FailingFile(io.BufferedWriter):
    """A file whose disk fills up half-way through a write."""

    def write(self, data: Any) -> int:
        super().write(bytes(data)[: len(data) // 2])
        self.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_write(monkeypatch: pytest.MonkeyPatch, at: int = 1) -> None:
    """The `at`-th file opened by os.fdopen (1: the first) fails half-way."""
    opened = 0
    fdopen = os.fdopen

    def failing(fd: int, *args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        opened += 1
        if opened == at:
            return _FailingFile(io.FileIO(fd, "wb"))
        return fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", failing)


@pytest.mark.parametrize("emit", ["onnx", "ir", "torch"])
def test_a_failed_write_leaves_the_previous_file(
    spec: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emit: str,
) -> None:
    out = tmp_path / f"out.{emit}"
    out.write_bytes(PREVIOUS)
    _fail_write(monkeypatch)
    assert main(["compile", str(spec), "--emit", emit, "-o", str(out)]) == 2
    assert out.read_bytes() == PREVIOUS
    assert _outputs(tmp_path) == {out.name}
    assert capsys.readouterr().err == (
        f"dslnet: error: cannot write {out.resolve()}: No space left on device\n"
    )


def test_a_failed_first_write_leaves_no_file(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_write(monkeypatch)
    assert main(["compile", str(spec), "--emit", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    assert _outputs(tmp_path) == set()


@pytest.mark.parametrize("failing", [1, 2])
def test_a_source_and_its_weights_are_written_together(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    source, weights = tmp_path / "model.py", tmp_path / "model.safetensors"
    source.write_bytes(PREVIOUS)
    weights.write_bytes(PREVIOUS)
    args = ["compile", str(spec), "--emit", "torch", "--fold", "-o", str(source)]
    with monkeypatch.context() as patch:
        _fail_write(patch, at=failing)
        assert main(args) == 2
    assert source.read_bytes() == PREVIOUS and weights.read_bytes() == PREVIOUS
    assert _outputs(tmp_path) == {source.name, weights.name}
    assert main(args) == 0
    assert source.read_bytes() != PREVIOUS and weights.read_bytes() != PREVIOUS


def test_fmt_rewrites_in_place_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messy = tmp_path / "messy.net"
    text = SPEC.replace("    h = x", "  h   =   x")
    messy.write_text(text)
    with monkeypatch.context() as patch:
        _fail_write(patch)
        assert main(["fmt", str(messy)]) != 0
    assert messy.read_text() == text
    assert {p.name for p in tmp_path.iterdir()} == {"messy.net"}
    assert main(["fmt", str(messy)]) == 0
    assert messy.read_text() != text


def test_write_files_keeps_the_mode_and_writes_through_links(tmp_path: Path) -> None:
    kept = tmp_path / "kept.py"
    kept.write_bytes(PREVIOUS)
    kept.chmod(0o640)
    target = tmp_path / "real.onnx"
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    fresh = tmp_path / "sub" / "fresh.ir"
    write_files({kept: b"a", link: b"b", fresh: b"c"})
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    assert link.is_symlink() and target.read_bytes() == b"b"
    assert (kept.read_bytes(), fresh.read_bytes()) == (b"a", b"c")


def test_an_unwritable_output_is_a_usage_error_and_an_os_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(PREVIOUS)
    with pytest.raises(OutputError) as info:
        write_atomic(blocker / "out.onnx", b"x")  # its folder is a file
    assert isinstance(info.value, OSError) and info.value.strerror
    assert str(info.value).startswith(f"cannot write {blocker / 'out.onnx'}: ")


# --- interrupts ---------------------------------------------------------------------------

# Runs `dslnet ARGS`, after `PATCH` (Python source) has set up the interruption.
RUNNER = """
import io, os, signal, sys, time
from dslnet.cli import main
{patch}
sys.exit(main(sys.argv[1:]))
"""
SIGINT_MID_WRITE = """
fdopen = os.fdopen
class Interrupted(io.BufferedWriter):
    def write(self, data):
        super().write(bytes(data)[: len(data) // 2])
        self.flush()
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, half the bytes written
        return super().write(bytes(data)[len(data) // 2 :])
os.fdopen = lambda fd, *a, **k: Interrupted(io.FileIO(fd, "wb"))
"""
SIGINT_WHILE_COMPILING = """
import dslnet.backends.onnx_emit as onnx_emit
def slow(*args, **kwargs):
    print("emitting", flush=True)
    time.sleep(120)
onnx_emit.emit_onnx_files = slow
"""


def _run(patch: str, args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER.format(patch=patch), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C interrupts the child even when the tests run as a background job
        # (whose shell started them with SIGINT ignored, which children inherit).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _interrupted(
    spec: Path, tmp_path: Path, patch: str, then: Callable[[subprocess.Popen[str]], None]
) -> None:
    out = tmp_path / "out.onnx"
    out.write_bytes(PREVIOUS)
    process = _run(patch, ["compile", str(spec), "--emit", "onnx", "-o", str(out)])
    then(process)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.endswith("dslnet: interrupted\n")
    assert out.read_bytes() == PREVIOUS
    assert _outputs(tmp_path) == {out.name}


def test_an_interrupt_mid_write_leaves_the_previous_file(spec: Path, tmp_path: Path) -> None:
    _interrupted(spec, tmp_path, SIGINT_MID_WRITE, lambda process: None)


def test_ctrl_c_while_compiling_leaves_the_previous_file(spec: Path, tmp_path: Path) -> None:
    def interrupt(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        assert process.stdout.readline() == "emitting\n"
        process.send_signal(signal.SIGINT)

    _interrupted(spec, tmp_path, SIGINT_WHILE_COMPILING, interrupt)
