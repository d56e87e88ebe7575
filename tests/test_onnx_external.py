"""ONNX models over protobuf's 2 GiB limit: weights as external data (`F` + `F.data`).

The limit is lowered so that a small MLP crosses it; the paths are the ones a
3 GB model takes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import dslnet
from dslnet.backends import onnx_external
from dslnet.backends.onnx_emit import ModelTooLarge, emit_onnx, emit_onnx_bytes, emit_onnx_files
from dslnet.cli import main
from dslnet.fileio import atomic

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "specs" / "mlp.net")
HIDDEN = 64  # linear1.weight is 784 x 64 floats, 200 kB
LOWERED = 100_000


@pytest.fixture
def lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_external, "PROTOBUF_LIMIT", LOWERED)


@pytest.fixture
def module_and_weights(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    """The torch module of MLP and its weights in a file, for --weights."""
    from safetensors.torch import save_file

    module = dslnet.load(MLP).torch("MLP", hidden=HIDDEN).eval()
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    return module, path


def compile_args(out: str, weights: Path, *extra: str) -> list[str]:
    return [
        "compile", MLP, "-n", "MLP", "--set", f"hidden={HIDDEN}", "--emit", "onnx",
        "--weights", str(weights), "-o", out, *extra,
    ]  # fmt: skip


def loaded(path: Path) -> onnx.ModelProto:
    """The model at `path` with its external data read in, as a model written whole
    reads (onnx.load marks each tensor it reads in as DEFAULT, explicitly)."""
    model = onnx.load(str(path))
    for tensor in model.graph.initializer:
        tensor.ClearField("data_location")
    return model


def assert_pair_loads_and_matches_torch(path: Path, module: torch.nn.Module) -> None:
    data = path.with_name(path.name + ".data")
    assert data.is_file()
    onnx.checker.check_model(str(path))
    bare = onnx.load(str(path), load_external_data=False)
    external = [t for t in bare.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external, "no initializer was moved to the data file"
    for tensor in external:
        entries = {e.key: e.value for e in tensor.external_data}
        assert entries["location"] == data.name  # the base name: the pair can move
        assert int(entries["offset"]) % onnx_external.ALIGNMENT == 0
    assert any(not t.external_data for t in bare.graph.initializer)  # small ones stay inline
    assert all(not t.external_data for t in onnx.load(str(path)).graph.initializer)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_cli_over_the_limit_writes_model_and_data_that_load_and_match_torch(
    tmp_path: Path, lowered: None, module_and_weights: tuple[torch.nn.Module, Path]
) -> None:
    module, weights = module_and_weights
    out = tmp_path / "mlp.onnx"
    assert main(compile_args(str(out), weights)) == 0
    assert out.stat().st_size < LOWERED
    assert_pair_loads_and_matches_torch(out, module)


def test_cli_external_data_on_request_below_the_limit(
    tmp_path: Path, module_and_weights: tuple[torch.nn.Module, Path]
) -> None:
    module, weights = module_and_weights
    whole = tmp_path / "whole.onnx"
    assert main(compile_args(str(whole), weights)) == 0
    assert not whole.with_name("whole.onnx.data").exists()
    out = tmp_path / "split.onnx"
    assert main(compile_args(str(out), weights, "--external-data")) == 0
    assert_pair_loads_and_matches_torch(out, module)
    # The same model: the pair loaded is the whole file's model but for its name.
    assert loaded(out) == loaded(whole)


def test_cli_stdout_refuses_a_model_over_the_limit_and_writes_nothing(
    tmp_path: Path,
    lowered: None,
    module_and_weights: tuple[torch.nn.Module, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    _, weights = module_and_weights
    monkeypatch.chdir(tmp_path)
    assert main(compile_args("-", weights)) == 2
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert b"-o FILE.onnx, not -o -" in captured.err
    assert main(compile_args("-", weights, "--external-data")) == 2
    assert capsysbinary.readouterr().out == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.safetensors"]


def test_cli_stdout_takes_a_model_under_the_limit_whole(
    tmp_path: Path,
    module_and_weights: tuple[torch.nn.Module, Path],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    _, weights = module_and_weights
    out = tmp_path / "mlp.onnx"
    assert main(compile_args(str(out), weights)) == 0
    capsysbinary.readouterr()
    assert main(compile_args("-", weights)) == 0
    assert capsysbinary.readouterr().out == out.read_bytes()


def test_an_interrupted_write_leaves_neither_file(
    tmp_path: Path,
    lowered: None,
    module_and_weights: tuple[torch.nn.Module, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, weights = module_and_weights
    written = []
    real = atomic.write_temporary

    def interrupted_on_the_second(target: Path, data: bytes) -> Path:
        if written:
            raise KeyboardInterrupt
        written.append(target)
        return real(target, data)

    monkeypatch.setattr(atomic, "write_temporary", interrupted_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        dslnet.save_onnx(dslnet.load(MLP).onnx("MLP", weights, hidden=HIDDEN), tmp_path / "m.onnx")
    assert written
    assert sorted(os.listdir(tmp_path)) == ["weights.safetensors"]


def test_small_models_are_written_whole_as_before() -> None:
    graph = dslnet.load(MLP).ir("MLP", hidden=HIDDEN)
    files = emit_onnx_files(graph, data_name="mlp.onnx.data")
    assert files.data is None
    assert files.model == emit_onnx_bytes(graph)
    assert onnx.load_from_string(files.model) == emit_onnx(graph)


def test_one_protobuf_is_refused_over_the_limit(lowered: None) -> None:
    with pytest.raises(ModelTooLarge, match="external data"):
        emit_onnx_bytes(dslnet.load(MLP).ir("MLP", hidden=HIDDEN))


def test_save_onnx_of_a_model_over_the_limit(
    tmp_path: Path, lowered: None, module_and_weights: tuple[torch.nn.Module, Path]
) -> None:
    module, weights = module_and_weights
    model = dslnet.load(MLP).onnx("MLP", weights, hidden=HIDDEN)
    before = model.SerializeToString()
    path = tmp_path / "api.onnx"
    assert dslnet.save_onnx(model, path) == [path, tmp_path / "api.onnx.data"]
    assert_pair_loads_and_matches_torch(path, module)
    assert model.SerializeToString() == before  # the caller's model is left as it was
    # The API's pair and the CLI's are the same model.
    cli = tmp_path / "cli.onnx"
    assert main(compile_args(str(cli), weights)) == 0
    assert loaded(cli) == loaded(path)


def test_save_onnx_under_the_limit_writes_one_file_or_external_data_on_request(
    tmp_path: Path,
) -> None:
    model = dslnet.load(MLP).onnx("MLP", hidden=HIDDEN)
    whole = tmp_path / "whole.onnx"
    assert dslnet.save_onnx(model, whole) == [whole]
    assert whole.read_bytes() == model.SerializeToString()
    split = tmp_path / "split.onnx"
    assert dslnet.save_onnx(model, split, external=True) == [split, tmp_path / "split.onnx.data"]
    assert loaded(split) == model


def test_training_exports_go_to_external_data_over_the_limit(tmp_path: Path, lowered: None) -> None:
    from dslnet.training.export import onnx_files

    model = dslnet.load(MLP).onnx("MLP", hidden=HIDDEN)
    files = onnx_files(tmp_path / "MLP.onnx", model)
    assert sorted(files) == [tmp_path / "MLP.onnx", tmp_path / "MLP.onnx.data"]
    atomic.write_all(files)
    assert loaded(tmp_path / "MLP.onnx") == model
