"""Hostile files: every malformed, tampered or special file a flag or a spec names
(`--weights`, `--calibrate`, `--data`, `data:`, `validation:`, `load_weights:`,
`--resume`) is refused with exit 2 and a message naming the file and the problem,
never an internal error (exit 3), a hang or an allocation of what the file claims.
The corpus is generated here, small, in tmp_path."""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dslnet.cli import main

NETWORK = """
network M {
    in x: float32[N, 4]
    out logits = x -> linear(3)
}
"""

TRAIN = """
train Fit {
    layer net = M()
    in x: float32[N, 4]
    in y: int64[N]
    out loss = cross_entropy(net(x), y)
    optimizer: adam(0.01)
    batch_size: 4
    epochs: 1
SETTINGS}
"""

Case = Callable[[Path], Path]  # writes a hostile file into a directory, returns its path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def _refused(code: int, err: str, file: Path, *problem: str) -> None:
    """Exit 2, one message naming the file and saying the problem."""
    assert code == 2, err
    assert "Traceback" not in err
    assert file.name in err, err
    for words in problem:
        assert words in err, err


def _spec(directory: Path, settings: str = "") -> Path:
    spec = directory / "spec.net"
    spec.write_text(NETWORK + TRAIN.replace("SETTINGS", settings))
    return spec


# --- safetensors --------------------------------------------------------------------------


def _safetensors(header: Any, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _tensor(dtype: str = "F32", shape: Any = (2,), offsets: Any = (0, 8)) -> dict[str, Any]:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


SAFETENSORS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "too short"),
    "four_bytes": (b"\x01\x00\x00\x00", "too short"),
    "header_length_huge": (_safetensors({}, length=2**63), "header claims"),
    "header_length_past_end": (_safetensors({}, length=1000), "header claims"),
    "header_not_utf8": (_safetensors(b"\xff\xfe{}"), "not JSON"),
    "header_not_json": (_safetensors(b"{not json"), "not JSON"),
    "header_deep_json": (_safetensors(b"[" * 100_000), "not JSON"),
    "header_a_list": (_safetensors([1, 2]), "not a JSON object"),
    "entry_not_object": (_safetensors({"w": 3}, bytes(8)), "tensor 'w'"),
    "entry_missing_shape": (_safetensors({"w": {"dtype": "F32"}}), "tensor 'w'"),
    "dtype_unknown": (_safetensors({"w": _tensor("F7")}, bytes(8)), "dtype 'F7'"),
    "dtype_float8": (_safetensors({"w": _tensor("F8_E4M3", offsets=(0, 2))}, bytes(2)), "F8_E4M3"),
    "shape_negative": (_safetensors({"w": _tensor(shape=(-2,))}, bytes(8)), "shape"),
    "shape_floats": (_safetensors({"w": _tensor(shape=(2.0,))}, bytes(8)), "shape"),
    "offsets_past_end": (_safetensors({"w": _tensor()}, bytes(4)), "data ranges end"),
    "offsets_reversed": (_safetensors({"w": _tensor(offsets=(8, 0))}, bytes(8)), "data_offsets"),
    "offsets_not_pair": (_safetensors({"w": _tensor(offsets=(0,))}, bytes(8)), "data_offsets"),
    "offsets_overlap": (
        _safetensors({"a": _tensor(), "b": _tensor(offsets=(4, 12))}, bytes(12)),
        "overlaps",
    ),
    "offsets_gap": (
        _safetensors({"a": _tensor(), "b": _tensor(offsets=(12, 20))}, bytes(20)),
        "gap",
    ),
    "shape_offsets_mismatch": (_safetensors({"w": _tensor(shape=(3,))}, bytes(8)), "needs 12"),
    "bytes_after_data": (_safetensors({"w": _tensor()}, bytes(16)), "data ranges end"),
    "claims_14_tib": (
        _safetensors({"w": _tensor("F64", (2**41,), (0, 2**44))}, bytes(8)),
        "data ranges end",
    ),
    "name_twice": (
        _safetensors(
            b'{"w": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, '
            b'"w": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}'
        ),
        "twice",
    ),
    "metadata_not_strings": (_safetensors({"__metadata__": {"a": 1}}), "__metadata__"),
}


@pytest.fixture
def network_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "net.net"
    spec.write_text(NETWORK)
    return spec


@pytest.mark.parametrize("kind", sorted(SAFETENSORS))
def test_malformed_safetensors_weights_exit_2(
    kind: str, network_spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, problem = SAFETENSORS[kind]
    weights = tmp_path / f"{kind}.safetensors"
    weights.write_bytes(content)
    out = tmp_path / "out.onnx"
    args = ["compile", str(network_spec), "--emit", "onnx", "--weights", str(weights)]
    code, err = _run([*args, "-o", str(out)], capsys)
    _refused(code, err, weights, problem)
    assert not out.exists()


# --- torch files -------------------------------------------------------------------------


def _saved(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("never",))


TORCH_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "float8": (lambda: _saved({"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}), "float8"),
    "meta": (lambda: _saved({"w": torch.zeros(2, device="meta")}), "meta tensor"),
    "sparse": (lambda: _saved({"w": torch.eye(2).to_sparse()}), "sparse"),
    "complex": (lambda: _saved({"w": torch.zeros(2, dtype=torch.complex64)}), "complex64"),
    "not_a_tensor": (lambda: _saved({"w": 3}), "not a tensor"),
    "a_list": (lambda: _saved([torch.zeros(2)]), "not a state_dict"),
    "pickled_code": (lambda: _saved({"w": _Payload()}), "plain tensors"),
    "junk": (lambda: b"not a torch file", "plain tensors"),
    "empty": (lambda: b"", "torch file"),
    "truncated": (lambda: _saved({"w": torch.zeros(64)})[:300], "torch file"),
}


@pytest.mark.parametrize("kind", sorted(TORCH_FILES))
def test_hostile_torch_weights_exit_2(
    kind: str, network_spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, problem = TORCH_FILES[kind]
    weights = tmp_path / f"{kind}.pt"
    weights.write_bytes(make())
    args = ["compile", str(network_spec), "--emit", "onnx", "--weights", str(weights)]
    code, err = _run([*args, "-o", str(tmp_path / "out.onnx")], capsys)
    _refused(code, err, weights, problem)


@pytest.mark.parametrize("kind", ["header_not_json", "offsets_overlap", "dtype_float8"])
def test_malformed_safetensors_in_load_weights_exit_2(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "pre.safetensors"
    weights.write_bytes(SAFETENSORS[kind][0])
    spec = _spec(tmp_path, '    load_weights: [("net", "pre.safetensors")]\n')
    args = ["train", str(spec), "--synthetic", "8", "--no-export", "--out", str(tmp_path / "o")]
    code, err = _run(args, capsys)
    _refused(code, err, weights, "load_weights", SAFETENSORS[kind][1])


@pytest.mark.parametrize("kind", ["float8", "meta", "junk", "not_a_tensor"])
def test_hostile_torch_file_in_load_weights_exit_2(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, problem = TORCH_FILES[kind]
    weights = tmp_path / "pre.pt"
    weights.write_bytes(make())
    spec = _spec(tmp_path, '    load_weights: [("net", "pre.pt")]\n')
    args = ["train", str(spec), "--synthetic", "8", "--no-export", "--out", str(tmp_path / "o")]
    code, err = _run(args, capsys)
    _refused(code, err, weights, "load_weights", problem)


def test_a_torch_state_dict_loads_through_load_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "pre.pt"
    torch.save({"linear1.weight": torch.ones(3, 4), "linear1.bias": torch.zeros(3)}, weights)
    spec = _spec(tmp_path, '    load_weights: [("net", "pre.pt")]\n')
    args = ["train", str(spec), "--synthetic", "8", "--no-export", "--out", str(tmp_path / "o")]
    code, err = _run(args, capsys)
    assert code == 0, err


# --- NumPy data ----------------------------------------------------------------------------


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _bad_crc() -> bytes:
    good = bytearray(_npz(x=np.zeros((8, 4), np.float32), y=np.zeros(8, np.int64)))
    good[120] ^= 0xFF  # a byte of x's data
    return bytes(good)


X = np.zeros((8, 4), np.float32)
Y = np.zeros(8, np.int64)
NPZ: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "not a readable .npz"),
    "truncated": (lambda: _npz(x=X, y=Y)[:200], "not a readable .npz"),
    "bad_crc": (_bad_crc, "CRC"),
    "corrupt_zip": (lambda: b"PK\x03\x04" + bytes(60), "not a readable .npz"),
    "strings": (lambda: _npz(x=np.array(["a"] * 32).reshape(8, 4), y=Y), "strings"),
    "structured": (
        lambda: _npz(x=np.zeros((8, 4), [("a", "f4"), ("b", "i4")]), y=Y),
        "structured records",
    ),
    "datetimes": (lambda: _npz(x=X, y=np.zeros(8, "datetime64[s]")), "datetimes"),
    "objects": (lambda: _npz(x=X, y=np.array([None] * 8, dtype=object)), "Python objects"),
    "complex": (lambda: _npz(x=X.astype(np.complex64), y=Y), "complex"),
    "claims_14_tib": (
        lambda: _zip({"x.npy": _npy_header("<f8", (2**41,)) + bytes(64), "y.npy": b""}),
        "claims shape",
    ),
    "member_not_npy": (lambda: _zip({"notes.txt": b"hi"}), "notes.txt"),
    "npy_not_npz": (lambda: _npy_header("<f4", (2,)) + bytes(8), ".npy file"),
    "labels_too_big": (lambda: _npz(x=X, y=np.full(8, 3)), "class labels from 3 to 3"),
    "labels_negative": (lambda: _npz(x=X, y=np.full(8, -1)), "class labels from -1"),
}


@pytest.mark.parametrize("kind", sorted(NPZ))
def test_hostile_training_data_exits_2(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, problem = NPZ[kind]
    data = tmp_path / f"{kind}.npz"
    data.write_bytes(make())
    spec = _spec(tmp_path)
    args = ["train", str(spec), "--data", str(data), "--no-export", "--out", str(tmp_path / "o")]
    code, err = _run(args, capsys)
    _refused(code, err, data, problem)
    assert not (tmp_path / "o").exists()  # nothing left behind by a run that never started


def test_labels_equal_to_the_ignore_index_are_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.npz"
    data.write_bytes(_npz(x=X, y=np.array([0, 1, 2, -100] * 2)))
    args = ["train", str(_spec(tmp_path)), "--data", str(data), "--no-export"]
    code, err = _run([*args, "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err


CALIBRATION: dict[str, tuple[Callable[[Path], object], str]] = {
    "objects": (
        lambda p: np.save(p, np.array([[None] * 4] * 2, dtype=object), allow_pickle=True),
        "Python objects",
    ),
    "claims_14_tib": (
        lambda p: p.write_bytes(_npy_header("<f8", (2**40, 4)) + bytes(64)),
        "claims shape",
    ),
    "npz_inside": (lambda p: p.write_bytes(_npz(x=X)), "not a readable .npy"),
    "truncated": (lambda p: np.save(p, np.zeros((64, 4), np.float32)), "claims shape"),
}


@pytest.mark.parametrize("kind", sorted(CALIBRATION))
def test_hostile_calibration_data_exits_2(
    kind: str, network_spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, problem = CALIBRATION[kind]
    calibration = tmp_path / "calib.npy"
    make(calibration)
    if kind == "truncated":
        calibration.write_bytes(calibration.read_bytes()[:-10])
    args = ["compile", str(network_spec), "--emit", "onnx", "--quantize", "int8-static"]
    code, err = _run([*args, "--calibrate", str(calibration), "-o", str(tmp_path / "q")], capsys)
    _refused(code, err, calibration, problem)


# --- special files -------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Makes FIFOs; should a reader block on one, a writer opened after 20 s lets it go
    (the test then fails on its time, instead of hanging)."""
    made: list[Path] = []
    done = threading.Event()

    def make(path: Path) -> Path:
        os.mkfifo(path)
        made.append(path)
        return path

    def unblock() -> None:
        if done.wait(20):
            return
        for path in made:
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    watchdog = threading.Thread(target=unblock, daemon=True)
    watchdog.start()
    yield make
    done.set()
    watchdog.join()


SPECIAL = ["fifo", "link_loop", "directory", "device"]


def _special(kind: str, path: Path, fifo: Callable[[Path], Path]) -> tuple[Path, str]:
    if kind == "fifo":
        return fifo(path), "FIFO"
    if kind == "link_loop":
        path.symlink_to(path.name)
        return path, "link"
    if kind == "directory":
        path.mkdir()
        return path, "directory"
    path.symlink_to("/dev/zero")  # a device is never below a spec's directory: a link is
    return path, "outside"


@pytest.mark.parametrize("setting", ["data", "validation", "load_weights"])
@pytest.mark.parametrize("kind", SPECIAL)
def test_special_files_named_by_a_spec_exit_2_at_once(
    kind: str,
    setting: str,
    tmp_path: Path,
    fifo: Callable[[Path], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    suffix = ".safetensors" if setting == "load_weights" else ".npz"
    target, problem = _special(kind, tmp_path / f"special{suffix}", fifo)
    (tmp_path / "ok.npz").write_bytes(_npz(x=X, y=Y))
    line = {
        "data": f'    data: "{target.name}"\n',
        "validation": f'    data: "ok.npz"\n    validation: "{target.name}"\n',
        "load_weights": f'    data: "ok.npz"\n    load_weights: [("net", "{target.name}")]\n',
    }[setting]
    spec = _spec(tmp_path, line)
    started = time.monotonic()
    code, err = _run(["train", str(spec), "--no-export", "--out", str(tmp_path / "o")], capsys)
    assert time.monotonic() - started < 15
    _refused(code, err, target, problem)


@pytest.mark.parametrize("flag", ["--data", "--val-data"])
@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "link_loop"])
def test_special_files_named_by_a_train_flag_exit_2_at_once(
    kind: str,
    flag: str,
    tmp_path: Path,
    fifo: Callable[[Path], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    if kind == "device":
        target, problem = Path("/dev/zero"), "character device"
    else:
        target, problem = _special(kind, tmp_path / "special.npz", fifo)
    (tmp_path / "ok.npz").write_bytes(_npz(x=X, y=Y))
    data = ["--data", str(tmp_path / "ok.npz")] if flag == "--val-data" else []
    args = ["train", str(_spec(tmp_path)), *data, flag, str(target), "--no-export"]
    started = time.monotonic()
    code, err = _run([*args, "--out", str(tmp_path / "o")], capsys)
    assert time.monotonic() - started < 15
    _refused(code, err, target, problem)


@pytest.mark.parametrize("flag", ["--weights", "--calibrate"])
def test_a_fifo_named_by_a_compile_flag_exits_2_at_once(
    flag: str,
    network_spec: Path,
    tmp_path: Path,
    fifo: Callable[[Path], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = fifo(tmp_path / ("w.safetensors" if flag == "--weights" else "c.npy"))
    args = ["compile", str(network_spec), "--emit", "onnx", flag, str(target)]
    if flag == "--calibrate":
        args += ["--quantize", "int8-static"]
    started = time.monotonic()
    code, err = _run([*args, "-o", str(tmp_path / "out.onnx")], capsys)
    assert time.monotonic() - started < 15
    _refused(code, err, target, "FIFO")


# --- checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A spec and the directory of a finished one-epoch run of it."""
    directory = tmp_path_factory.mktemp("run")
    spec = _spec(directory)
    out = directory / "out"
    assert main(["train", str(spec), "--synthetic", "8", "--no-export", "--out", str(out)]) == 0
    return spec, out


Change = Callable[[dict[str, torch.Tensor], dict[str, Any]], Any]


def _tampered(checkpoint: Path, change: Change) -> None:
    with safe_open(str(checkpoint), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        metadata = dict(f.metadata())
    state = json.loads(metadata["state"])
    result = change(tensors, state)
    metadata["state"] = result if isinstance(result, str) else json.dumps(state)
    save_file(tensors, str(checkpoint), metadata=metadata)


CHECKPOINTS: dict[str, tuple[Change, str]] = {
    "state_not_json": (lambda t, s: "{not json", "not JSON"),
    "state_a_list": (lambda t, s: "[1]", "not a JSON object"),
    "no_progress": (lambda t, s: s.pop("progress"), "no 'progress'"),
    "no_state_key": (lambda t, s: s.pop("optimizers"), "no 'optimizers'"),
    "epoch_a_string": (lambda t, s: s["progress"].update(epoch="one"), "'epoch' must be"),
    "no_history": (lambda t, s: s["progress"].pop("history"), "no 'history'"),
    "losses_malformed": (lambda t, s: s["progress"].update(losses=[[1]]), "'losses'"),
    "lr_a_string": (
        lambda t, s: s["optimizers"]["train"]["param_groups"][0].update(lr="fast"),
        "param_groups[0].lr",
    ),
    "no_rng": (lambda t, s: t.pop("rng/torch"), "rng/torch"),
    "rng_wrong_size": (lambda t, s: t.update({"rng/torch": t["rng/torch"][:100]}), "rng/torch"),
    "rng_wrong_dtype": (lambda t, s: t.update({"rng/noise": t["rng/noise"].float()}), "rng/noise"),
    "optimizer_state_wrong_shape": (
        lambda t, s: t.update({k: torch.zeros(7) for k in t if k.endswith("exp_avg")}),
        "exp_avg",
    ),
    "optimizer_state_bad_index": (
        lambda t, s: t.update({"optim/train/99/exp_avg": torch.zeros(3)}),
        "optim/train/99",
    ),
}


@pytest.mark.parametrize("kind", sorted(CHECKPOINTS))
def test_tampered_checkpoints_exit_2_on_resume(
    kind: str,
    finished_run: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, done = finished_run
    out = tmp_path / "out"
    out.mkdir()
    checkpoint = out / "checkpoint.safetensors"
    checkpoint.write_bytes((done / "checkpoint.safetensors").read_bytes())
    change, problem = CHECKPOINTS[kind]
    _tampered(checkpoint, change)
    args = ["train", str(spec), "--synthetic", "8", "--no-export", "--resume", "--epochs", "2"]
    code, err = _run([*args, "--out", str(out)], capsys)
    _refused(code, err, checkpoint, problem)


@pytest.mark.parametrize("kind", ["truncated", "not_safetensors", "not_a_checkpoint", "fifo"])
def test_unreadable_checkpoints_exit_2_on_resume(
    kind: str,
    finished_run: tuple[Path, Path],
    tmp_path: Path,
    fifo: Callable[[Path], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, done = finished_run
    out = tmp_path / "out"
    out.mkdir()
    checkpoint = out / "checkpoint.safetensors"
    good = (done / "checkpoint.safetensors").read_bytes()
    problem = {
        "truncated": "data ranges end",
        "not_safetensors": "header claims",
        "not_a_checkpoint": "not a dslnet training checkpoint",
        "fifo": "FIFO",
    }[kind]
    if kind == "fifo":
        fifo(checkpoint)
    elif kind == "not_a_checkpoint":
        save_file({"w": torch.zeros(2)}, str(checkpoint))
    else:
        checkpoint.write_bytes(good[: len(good) // 2] if kind == "truncated" else b"x" * 64)
    args = ["train", str(spec), "--synthetic", "8", "--no-export", "--resume"]
    code, err = _run([*args, "--out", str(out)], capsys)
    _refused(code, err, checkpoint, problem)


# --- races -----------------------------------------------------------------------------


@contextlib.contextmanager
def _swapping(target: Path, own: bytes, outside: Path) -> Iterator[None]:
    """While the block runs, a thread swaps `target` between a regular file holding
    `own` and a link to `outside`, each swap one atomic rename."""
    stop = threading.Event()

    def swap() -> None:
        scratch = target.with_name(".swap")
        for i in range(100_000):
            if stop.is_set():
                return
            scratch.unlink(missing_ok=True)
            if i % 2:
                scratch.symlink_to(outside)
            else:
                scratch.write_bytes(own)
            os.replace(scratch, target)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        yield
    finally:
        stop.set()
        swapper.join()


def test_an_import_swapped_for_a_link_out_never_loads_the_outside_file(tmp_path: Path) -> None:
    """A thread swaps `lib.net` between a regular file and a link to a file outside the
    importing directory while the spec is loaded again and again: what is opened is
    checked, so the outside file is never loaded (before that check: ~1 load in 100)."""
    import dslnet

    inside = tmp_path / "project"
    inside.mkdir()
    outside = tmp_path / "outside.net"
    outside.write_text("network Outside {\n    in x: float32[N, 4]\n    out y = x\n}\n")
    own = "network Inside {\n    in x: float32[N, 4]\n    out y = x\n}\n"
    lib = inside / "lib.net"
    lib.write_text(own)
    spec = inside / "main.net"
    spec.write_text('import "lib.net"\n')
    seen: dict[str, int] = {"Inside": 0, "Outside": 0, "refused": 0}
    with _swapping(lib, own.encode(), outside):
        for _ in range(400):
            program = dslnet.load(spec, strict=False)
            names = program.networks
            seen["refused"] += not names
            for name in names:
                seen[name] += 1
    assert seen["Outside"] == 0, seen
    assert seen["Inside"] > 0 and seen["refused"] > 0, seen  # both sides of the swap were met


def test_a_data_file_swapped_for_a_link_out_is_never_read(tmp_path: Path) -> None:
    """The same race for a file a train declaration names: `data:` checked by
    `spec_file`, then swapped for a link out before it is opened."""
    import dslnet
    from dslnet.training.data import load_npz
    from dslnet.training.errors import TrainError
    from dslnet.training.spec_files import spec_file

    inside = tmp_path / "project"
    inside.mkdir()
    (tmp_path / "outside.npz").write_bytes(_npz(x=X + 7, y=Y))
    own = _npz(x=X, y=Y)
    data = inside / "data.npz"
    data.write_bytes(own)
    spec = _spec(inside, '    data: "data.npz"\n')
    plan = dslnet.load(spec).training("Fit")
    seen = {"inside": 0, "outside": 0, "refused": 0}
    with _swapping(data, own, tmp_path / "outside.npz"):
        for _ in range(400):
            try:
                path = spec_file(plan, "data.npz")
                arrays = load_npz(path, plan.data_inputs, plan.spec_roots)
            except TrainError:
                seen["refused"] += 1
                continue
            seen["outside" if arrays["x"].max() == 7 else "inside"] += 1
    assert seen["outside"] == 0, seen
    assert seen["inside"] > 0 and seen["refused"] > 0, seen
