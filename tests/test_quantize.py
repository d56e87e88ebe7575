"""Quantization passes: numerics under ONNX Runtime CPU and the shape of the graphs.

No timing is asserted here (bench/quantize.py measures speed); models are kept small
(small batches, a few calibration feeds) so the file runs in well under a minute.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import dslnet
from dslnet.backends.onnx_emit import run_onnx
from dslnet.backends.quantize import (
    CalibrationError,
    QuantizeError,
    QuantReport,
    load_calibration,
    marked_skip,
    measure,
    quantize_dynamic_int8,
    quantize_static_int8,
    to_fp16,
)
from dslnet.backends.quantize.report import OutputDrift

ROOT = Path(__file__).resolve().parents[1]

SMALL_CNN = """
network SmallCNN(classes: int = 10) {
    in x: float32[N, 3, 32, 32]
    h = x -> conv2d(16, k=3, p=1) -> batchnorm -> relu -> maxpool2d(2)
    h = h -> conv2d(32, k=3, p=1) -> relu
    h = h + (h -> conv2d(32, k=3, p=1))
    out logits = h -> relu -> adaptive_avgpool2d(1) -> flatten -> linear(classes)
}
"""

TWO_INPUTS = """
network Pair() {
    in a: float32[N, 4]
    in b: float32[N, 4]
    out y = linear(a, 3) + linear(b, 3)
}
"""

Feed = dict[str, np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def resnet() -> onnx.ModelProto:
    optimized = dslnet.load(ROOT / "specs/resnet.net").optimize("ResNet18", fold=True)
    model: onnx.ModelProto = optimized.onnx()
    return model


@pytest.fixture(scope="module")
def gpt() -> onnx.ModelProto:
    model: onnx.ModelProto = dslnet.load(ROOT / "specs/transformer.net").onnx("GPT")
    return model


@pytest.fixture(scope="module")
def cnn() -> onnx.ModelProto:
    model: onnx.ModelProto = dslnet.loads(SMALL_CNN).optimize("SmallCNN", fold=True).onnx()
    return model


def _outputs(model: onnx.ModelProto, feeds: list[Feed]) -> np.ndarray[Any, Any]:
    name = model.graph.output[0].name
    return np.concatenate([run_onnx(model, feed)[name] for feed in feeds])


def _top1(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float((a.argmax(-1) == b.argmax(-1)).mean())


def _cast_pairs(model: onnx.ModelProto) -> list[str]:
    made = {o: n for n in model.graph.node for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "Cast" and getattr(made.get(n.input[0]), "op_type", "") == "Cast"
    ]


# --- float16 ---------------------------------------------------------------------------


def test_fp16_resnet18_close_to_fp32(resnet: onnx.ModelProto) -> None:
    half = to_fp16(resnet)
    onnx.checker.check_model(half, full_check=True)
    assert all(t.data_type != onnx.TensorProto.FLOAT for t in half.graph.initializer)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    feeds = load_calibration(None, resnet, count=2, seed=3, symbols={"N": 2})
    ref, got = _outputs(resnet, feeds), _outputs(half, feeds)
    assert np.isfinite(got).all()
    assert np.abs(ref - got).max() < 1e-2


def test_fp16_gpt_close_to_fp32(gpt: onnx.ModelProto) -> None:
    half = to_fp16(gpt)
    onnx.checker.check_model(half, full_check=True)
    feeds = load_calibration(None, gpt, count=2, seed=1, symbols={"N": 2, "T": 32})
    ref, got = _outputs(gpt, feeds), _outputs(half, feeds)
    assert np.isfinite(got).all()
    assert np.abs(ref - got).max() < 1e-2
    assert _top1(ref, got) > 0.99
    softmax = {n.output[0] for n in half.graph.node if n.op_type == "Softmax"}
    types = {v.name: v.type.tensor_type.elem_type for v in half.graph.value_info}
    assert softmax and all(types.get(s, onnx.TensorProto.FLOAT) == 1 for s in softmax)


def test_fp16_casts_only_at_region_borders(gpt: onnx.ModelProto) -> None:
    half = to_fp16(gpt)
    assert _cast_pairs(half) == []
    casts = Counter((n.input[0], n.attribute[0].i) for n in half.graph.node if n.op_type == "Cast")
    assert casts and max(casts.values()) == 1  # one Cast per tensor and direction
    softmax_in = {n.input[0] for n in half.graph.node if n.op_type == "Softmax"}
    made = {o: n for n in half.graph.node for o in n.output}
    assert all(made[s].op_type == "Cast" for s in softmax_in)  # fp16 scores cast up once


def test_fp16_without_io_types(resnet: onnx.ModelProto) -> None:
    half = to_fp16(resnet, keep_io_types=False)
    onnx.checker.check_model(half, full_check=True)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert half.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    feeds = load_calibration(None, resnet, count=1, seed=4)
    report = measure(resnet, half, feeds, threads=1, repeat=1)  # measure casts the feeds
    assert report.outputs[0].max_abs < 1e-2 and not report.outputs[0].nonfinite


def test_fp16_skip_keeps_a_layer_fp32(resnet: onnx.ModelProto) -> None:
    half = to_fp16(resnet, skip={"head1.linear1"})
    gemm = next(n for n in half.graph.node if n.op_type == "Gemm")
    weights = {t.name: t for t in half.graph.initializer}
    assert weights[gemm.input[1]].data_type == onnx.TensorProto.FLOAT
    assert _cast_pairs(half) == []
    onnx.checker.check_model(half, full_check=True)


def test_fp16_lstm_model_runs() -> None:
    model = dslnet.load(ROOT / "specs/seq2seq.net").onnx("LSTMSeq2Seq")
    half = to_fp16(model)
    assert _cast_pairs(half) == []
    feed = load_calibration(None, model, count=1, symbols={"N": 2, "S": 5, "T": 5})[0]
    out = run_onnx(half, feed)["logits"]
    assert np.isfinite(out).all()
    assert np.abs(out - run_onnx(model, feed)["logits"]).max() < 1e-2


def test_spec_annotations_reach_skip() -> None:
    program = dslnet.loads(
        "network Marked() {\n    in x: float32[N, 64]\n"
        "    @quantize(skip) h = x -> linear(64) -> relu\n    out y = linear(h, 64)\n}\n"
    )
    skip = marked_skip(program.ir("Marked"))
    assert skip == {"linear1", "relu1"}
    quantized = quantize_dynamic_int8(program.onnx("Marked"), skip=skip)
    assert [n.op_type for n in quantized.graph.node] == ["Gemm", "Relu", "DynamicQuantizeMatMul"]


def test_block_functions_are_inlined_with_their_names() -> None:
    model = dslnet.load(ROOT / "specs/resnet.net").onnx("ResNet18", functions=True, size=32)
    half = to_fp16(model, skip={"head1.linear1", "basic_stage4"})
    assert not half.functions
    kept = [n for n in half.graph.node if n.name.startswith(("head1.linear1/", "basic_stage4."))]
    weights = {t.name: t.data_type for t in half.graph.initializer}
    assert kept and all(weights.get(n.input[1]) == 1 for n in kept if n.op_type in ("Conv", "Gemm"))
    feed = load_calibration(None, model, count=1, seed=2)[0]
    assert np.abs(run_onnx(half, feed)["logits"] - run_onnx(model, feed)["logits"]).max() < 1e-2


def test_unknown_skip_name_is_an_error(resnet: onnx.ModelProto) -> None:
    with pytest.raises(QuantizeError, match="no_such_layer"):
        to_fp16(resnet, skip={"no_such_layer"})
    with pytest.raises(QuantizeError, match="no_such_layer"):
        quantize_dynamic_int8(resnet, skip={"no_such_layer"})


# --- dynamic int8 ----------------------------------------------------------------------


def test_dynamic_int8_wide_mlp() -> None:
    model = dslnet.load(ROOT / "specs/mlp.net").onnx("MLP", hidden=1024, depth=6)
    quantized = quantize_dynamic_int8(model)
    onnx.checker.check_model(quantized, full_check=True)
    ops = Counter(n.op_type for n in quantized.graph.node)
    assert ops["DynamicQuantizeMatMul"] == 7 and not ops["Gemm"] and not ops["MatMul"]
    int8 = [t for t in quantized.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert sorted(len(t.dims) for t in int8) == [0] * 7 + [2] * 7  # weights, zero points
    scales = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    node = next(n for n in quantized.graph.node if n.op_type == "DynamicQuantizeMatMul")
    assert scales[node.input[2]].shape == ()  # one scale per layer, as ORT's default
    feeds = load_calibration(None, model, count=2, seed=5, symbols={"N": 64})
    for form in (quantized, quantize_dynamic_int8(model, per_channel=True)):
        report = measure(model, form, feeds, threads=1, repeat=1)
        assert report.outputs[0].top1 is not None and report.outputs[0].top1 >= 0.99
    per_column = quantize_dynamic_int8(model, per_channel=True)
    node = next(n for n in per_column.graph.node if n.op_type == "DynamicQuantizeMatMul")
    found = {t.name: numpy_helper.to_array(t) for t in per_column.graph.initializer}
    assert found[node.input[2]].shape == (1024,)  # one scale per output column


def test_dynamic_int8_matmul_form_and_skip(gpt: onnx.ModelProto) -> None:
    quantized = quantize_dynamic_int8(gpt, skip={"tok@2"})
    ops = Counter(n.op_type for n in quantized.graph.node)
    # q/k/v, output and two feed-forward projections per block; the tied output
    # projection was skipped and attention's activation-by-activation MatMuls stay.
    assert ops["DynamicQuantizeMatMul"] == 4 * 4
    assert any(n.name.startswith("tok@2/") and n.op_type == "MatMul" for n in quantized.graph.node)
    feed = load_calibration(None, gpt, count=1, symbols={"N": 2, "T": 16})[0]
    ref, got = run_onnx(gpt, feed)["logits"], run_onnx(quantized, feed)["logits"]
    assert _top1(ref, got) > 0.9


def test_dynamic_int8_reaches_cross_attention_weights() -> None:
    """Cross-attention splits its packed weight at run time; the split is folded."""
    program = dslnet.load(ROOT / "specs/transformer.net")
    small = {"d": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "ffn": 64}
    model = program.onnx("Transformer", **small)
    quantized = quantize_dynamic_int8(model)
    ops = Counter(n.op_type for n in quantized.graph.node)
    # encoder: qkv, out, 2 feed-forward; decoder: qkv, out, cross q, cross kv, out, 2 ff
    assert ops["DynamicQuantizeMatMul"] == 11
    assert ops["Split"] == 3  # only the splits of computed q/k/v remain, not of weights
    feed = load_calibration(None, model, count=1, symbols={"N": 2, "S": 5, "T": 5})[0]
    assert np.abs(run_onnx(model, feed)["y"] - run_onnx(quantized, feed)["y"]).max() < 0.1


# --- static int8 -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_static_int8_small_cnn(cnn: onnx.ModelProto, method: Any, tmp_path: Path) -> None:
    calibration = load_calibration(None, cnn, count=8, seed=0, symbols={"N": 4})
    quantized = quantize_static_int8(cnn, calibration, method=method)
    onnx.checker.check_model(quantized, full_check=True)
    held_back = load_calibration(None, cnn, count=4, seed=99, symbols={"N": 16})
    assert _top1(_outputs(cnn, held_back), _outputs(quantized, held_back)) >= 0.95
    _check_qdq_layout(quantized)
    # ORT's QDQ fusions turn every conv, the residual add and the pool into QLinear ops.
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(quantized.SerializeToString(), options, providers=["CPUExecutionProvider"])
    fused = Counter(n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node)
    assert fused["QLinearConv"] == 3 and fused["QLinearAdd"] == 1
    assert fused["QLinearGlobalAveragePool"] == 1 and not fused["Conv"] and not fused["Relu"]


def _check_qdq_layout(model: onnx.ModelProto) -> None:
    graph = model.graph
    made = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        x, w, b = (made[i] for i in conv.input)
        assert x.op_type == w.op_type == b.op_type == "DequantizeLinear"
        assert weights[w.input[0]].dtype == np.int8
        assert next(a.i for a in w.attribute if a.name == "axis") == 0
        w_scale = weights[w.input[1]]
        assert w_scale.shape == (weights[w.input[0]].shape[0],)  # per output channel
        assert weights[b.input[0]].dtype == np.int32
        np.testing.assert_allclose(weights[b.input[1]], weights[x.input[1]] * w_scale, rtol=1e-6)
        # A conv followed by relu is quantized after the relu, never in between.
        after = readers[conv.output[0]]
        assert not any(r.op_type == "QuantizeLinear" for r in after) or len(after) == 1
        if after[0].op_type == "Relu":
            assert readers[after[0].output[0]][0].op_type == "QuantizeLinear"


@pytest.fixture(scope="module")
def resnet_held_back(resnet: onnx.ModelProto) -> tuple[list[Feed], np.ndarray[Any, Any]]:
    """Inputs no calibration saw, and the float model's outputs for them."""
    held_back = load_calibration(None, resnet, count=3, seed=7, symbols={"N": 16})
    return held_back, _outputs(resnet, held_back)


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_static_int8_resnet18(
    resnet: onnx.ModelProto,
    resnet_held_back: tuple[list[Feed], np.ndarray[Any, Any]],
    method: Any,
) -> None:
    """ResNet-18 at 224x224 with its default init. (At 64x64 inputs the random model's
    top-1/top-2 logit gap shrinks to the size of 8-bit noise and agreement drops to
    0.94-0.975, for ORT's own quantize_static as well.)"""
    calibration = load_calibration(None, resnet, count=4, seed=0, symbols={"N": 2})
    quantized = quantize_static_int8(resnet, calibration, method=method)
    held_back, ref = resnet_held_back
    got = _outputs(quantized, held_back)
    assert _top1(ref, got) >= 0.95
    assert np.abs(ref - got).max() < 0.1 * np.abs(ref).max()


def test_static_int8_skip_and_per_tensor(cnn: onnx.ModelProto) -> None:
    calibration = load_calibration(None, cnn, count=2, symbols={"N": 2})
    quantized = quantize_static_int8(cnn, calibration, per_channel=False, skip={"conv2d1"})
    made = {o: n for n in quantized.graph.node for o in n.output}
    first = next(n for n in quantized.graph.node if n.name == "conv2d1/Conv")
    assert first.input[0] == "x" and first.input[1] not in made  # float input and weight
    weights = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    second = next(n for n in quantized.graph.node if n.name == "conv2d2/Conv")
    assert weights[made[second.input[1]].input[1]].shape == ()  # one scale per tensor


def test_static_int8_rejects_bad_requests(cnn: onnx.ModelProto) -> None:
    calibration = load_calibration(None, cnn, count=1)
    with pytest.raises(QuantizeError, match="method"):
        quantize_static_int8(cnn, calibration, method="median")  # type: ignore[arg-type]
    with pytest.raises(QuantizeError, match="percentile"):
        quantize_static_int8(cnn, calibration, method="percentile", percentile=0.0)
    with pytest.raises(QuantizeError, match="feed"):
        quantize_static_int8(cnn, [])


# --- calibration data ------------------------------------------------------------------


def test_generated_calibration_matches_inputs(gpt: onnx.ModelProto) -> None:
    feeds = load_calibration(None, gpt, count=3, seed=2, symbols={"N": 2, "T": 7})
    assert len(feeds) == 3
    tokens = feeds[0]["tokens"]
    assert tokens.shape == (2, 7) and tokens.dtype == np.int64
    assert tokens.min() >= 0 and tokens.max() < 1000  # indices into the embedding
    again = load_calibration(None, gpt, count=3, seed=2, symbols={"N": 2, "T": 7})
    assert np.array_equal(again[0]["tokens"], tokens)


def test_calibration_from_npy(cnn: onnx.ModelProto, tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((10, 3, 32, 32))  # float64 converts
    np.save(tmp_path / "cal.npy", data)
    feeds = load_calibration(tmp_path / "cal.npy", cnn, symbols={"N": 4})
    assert [f["x"].shape[0] for f in feeds] == [4, 4, 2]
    assert feeds[0]["x"].dtype == np.float32
    assert len(load_calibration(tmp_path / "cal.npy", cnn, count=2)) == 2


def test_calibration_from_npz(tmp_path: Path) -> None:
    model = dslnet.loads(TWO_INPUTS).onnx("Pair")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    np.savez(tmp_path / "pair.npz", a=a, b=b)
    feeds = load_calibration(tmp_path / "pair.npz", model, symbols={"N": 3})
    assert len(feeds) == 2 and set(feeds[0]) == {"a", "b"}
    np.testing.assert_allclose(feeds[1]["b"], b[3:].astype(np.float32))


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((4, 3, 16, 16), np.float32)}, r"shape \(samples, 3, 32, 32\)"),
        ({"x": np.zeros((3, 32, 32), np.float32)}, "samples along the first axis"),
        ({"x": np.zeros((2, 3, 32, 32), np.int64)}, "wrong kind"),
        ({"x": np.full((2, 3, 32, 32), np.nan, np.float32)}, "NaN"),
        ({"y": np.zeros((2, 3, 32, 32), np.float32)}, "missing: x, unknown: y"),
    ],
)
def test_calibration_errors_name_file_and_mismatch(
    cnn: onnx.ModelProto, tmp_path: Path, arrays: dict[str, Any], match: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(CalibrationError, match=match) as info:
        load_calibration(path, cnn)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_calibration_file_errors(cnn: onnx.ModelProto, tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="no such calibration file"):
        load_calibration(tmp_path / "missing.npy", cnn)
    (tmp_path / "data.txt").write_text("1 2 3")
    with pytest.raises(CalibrationError, match=r"\.npy or \.npz"):
        load_calibration(tmp_path / "data.txt", cnn)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(CalibrationError, match=r"junk\.npy: not a readable"):
        load_calibration(tmp_path / "junk.npy", cnn)
    model = dslnet.loads(TWO_INPUTS).onnx("Pair")
    np.save(tmp_path / "one.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(CalibrationError, match="2 inputs"):
        load_calibration(tmp_path / "one.npy", model)


# --- report ----------------------------------------------------------------------------


def test_measure_reports_drift_and_latency(cnn: onnx.ModelProto) -> None:
    feeds = load_calibration(None, cnn, count=2, symbols={"N": 2})
    report = measure(cnn, cnn, feeds, threads=1, repeat=2)
    (out,) = report.outputs
    assert out.max_abs == 0.0 and out.top1 == 1.0 and not out.nonfinite
    assert report.fp32_ms > 0 and report.quantized_ms > 0
    assert "top-1 agreement 1.0000" in report.render()


def test_report_warns_when_not_faster() -> None:
    drift = (OutputDrift("logits", 0.5, 0.1, 0.97, False),)
    slow = QuantReport(drift, fp32_ms=1.0, quantized_ms=1.5, threads=1)
    assert not slow.faster and "WARNING" in slow.render()
    fast = QuantReport(drift, fp32_ms=3.0, quantized_ms=1.0, threads=1)
    assert fast.faster and fast.speedup == pytest.approx(3.0) and "WARNING" not in fast.render()
