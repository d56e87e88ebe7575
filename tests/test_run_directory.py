"""What `dslnet train` does with its run directory (--out): one run at a time (a lock),
output failures (full disk, read-only directory) as exit 2 with the old checkpoint
intact, temporary files named for their process and removed once it is gone, files
with the mode a plain open() gives."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dslnet.cli import main
from dslnet.fileio import atomic

SPEC = """
network M {
    in x: float32[N, 4]
    out logits = x -> linear(3)
}

train Fit {
    layer net = M()
    in x: float32[N, 4]
    in y: int64[N]
    out loss = cross_entropy(net(x), y)
    optimizer: sgd(0.1)
    batch_size: 4
    epochs: 1
}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.net"
    path.write_text(SPEC)
    return path


def _train(spec: Path, out: Path, *extra: str) -> int:
    return main(["train", str(spec), "--synthetic", "8", "--no-export", "--out", str(out), *extra])


def _failing_writes(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    """Writes of files called `name` fail with OSError(`code`), as on a full disk."""
    write = atomic.write_temporary

    def failing(target: Path, data: bytes) -> Path:
        if target.name == name:
            raise OSError(code, os.strerror(code))
        return write(target, data)

    monkeypatch.setattr(atomic, "write_temporary", failing)


def test_a_full_disk_keeps_the_old_checkpoint_and_exits_2(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _train(spec, out) == 0
    checkpoint = out / "checkpoint.safetensors"
    before = checkpoint.read_bytes()
    _failing_writes(monkeypatch, "checkpoint.safetensors", errno.ENOSPC)
    capsys.readouterr()
    assert _train(spec, out, "--resume", "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert f"cannot write checkpoint {checkpoint}: no space left on device" in err, err
    assert checkpoint.read_bytes() == before
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_a_read_only_run_directory_exits_2(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: the file system says no instead
        _failing_writes(monkeypatch, "checkpoint.safetensors", errno.EROFS)
        reason = "read-only file system"
    else:
        out.chmod(0o500)
        reason = "permission denied"
    try:
        capsys.readouterr()
        assert _train(spec, out) == 2
    finally:
        out.chmod(0o700)
    err = capsys.readouterr().err
    assert str(out) in err and reason in err.lower(), err


def test_a_second_run_into_a_held_directory_exits_2_naming_the_holder(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with atomic.locked(out):
        capsys.readouterr()
        assert _train(spec, out) == 2
    err = capsys.readouterr().err
    assert f"{out} is in use by another run (pid {os.getpid()})" in err, err
    assert not (out / "checkpoint.safetensors").exists()
    assert _train(spec, out) == 0  # released


def test_two_processes_never_train_into_one_directory_at_once(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom dslnet.fileio import atomic\n"
            "from pathlib import Path\nwith atomic.locked(Path(sys.argv[1])):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert _train(spec, out) == 2
    finally:
        holder.kill()
        holder.wait()
    assert _train(spec, out) == 0  # the lock went with the process


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporary_files_of_dead_processes_are_removed_at_the_next_write(
    spec: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".checkpoint.safetensors.tmp-{_dead_pid()}-0123abcd"
    live = out / f".checkpoint.safetensors.tmp-{os.getppid()}-0123abcd"
    other = out / ".notes.tmp"  # not one of ours
    for path in (stale, live, other):
        path.write_bytes(b"x" * 100)
    assert _train(spec, out) == 0
    assert not stale.exists() and live.exists() and other.exists()


def test_compile_outputs_also_clear_stale_temporary_files(tmp_path: Path) -> None:
    spec = tmp_path / "net.net"
    spec.write_text(SPEC.split("train")[0])
    stale = tmp_path / f".out.py.tmp-{_dead_pid()}-0123abcd"
    stale.write_text("partial")
    assert main(["compile", str(spec), "--emit", "torch", "-o", str(tmp_path / "out.py")]) == 0
    assert not stale.exists()


def test_a_checkpoint_has_the_mode_a_plain_open_gives(spec: Path, tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        assert _train(spec, tmp_path / "out") == 0
    finally:
        os.umask(umask)
    mode = (tmp_path / "out" / "checkpoint.safetensors").stat().st_mode & 0o777
    assert mode == 0o644


def test_temporary_names_say_whose_they_are(tmp_path: Path) -> None:
    name = atomic.temporary_name(tmp_path / "model.onnx").name
    assert name.startswith(f".model.onnx.tmp-{os.getpid()}-")


def test_resuming_a_one_cycle_schedule_over_other_epochs_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.net"
    spec.write_text(SPEC.replace("sgd(0.1)", "sgd(0.1)\n    schedule: one_cycle(0.1)"))
    out = tmp_path / "out"
    assert _train(spec, out) == 0
    capsys.readouterr()
    assert _train(spec, out, "--resume", "--epochs", "3") == 2
    assert "holds a schedule of 2 steps; this run needs 6" in capsys.readouterr().err
