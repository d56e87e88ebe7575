"""Quantization-aware training: the fake-quantized torch model and the int8 QDQ ONNX
it exports (run by ONNX Runtime) agree, and QAT keeps the float accuracy."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import dslnet
from dslnet.backends.quantize import QuantizeError, quantize_static_int8
from dslnet.ir.graph import Graph
from dslnet.training.qat import (
    QatHandle,
    RangeObserver,
    export_qat_onnx,
    fake_quantize_weight,
    prepare_qat,
)
from dslnet.training.qat_export import quantize_static_with_params

ort = pytest.importorskip("onnxruntime")

SPEC = """
network SmallCNN(classes: int = 10) {
    in x: float32[N, 1, 12, 12]
    out logits = x
        -> conv2d(8, k=3, p=1) -> batchnorm -> relu -> maxpool2d(2)
        -> conv2d(16, k=3, p=1) -> relu -> maxpool2d(2)
        -> flatten -> linear(32) -> relu -> linear(classes)
}

network Marked(classes: int = 10) {
    in x: float32[N, 1, 12, 12]
    h = x -> conv2d(8, k=3, p=1) -> relu -> maxpool2d(2)
    @quantize(skip) s = h -> conv2d(16, k=3, p=1) -> relu
    out logits = s -> maxpool2d(2) -> flatten -> linear(classes)
}
"""
CLASSES = 10


def _data(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy copies of 10 fixed prototype images (the same prototypes for any seed)."""
    prototypes = torch.randn(CLASSES, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    rng = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (count,), generator=rng)
    noise = 1.6 * torch.randn(count, 1, 12, 12, generator=rng)
    return prototypes[labels] + noise, labels


def _batches(x: torch.Tensor, y: torch.Tensor, size: int, seed: int) -> Iterator[Any]:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(x), size):
        pick = order[start : start + size]
        yield x[pick], y[pick]


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        for xb, yb in _batches(x, y, 64, epoch):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()


def _logits(model: nn.Module, x: torch.Tensor) -> np.ndarray[Any, Any]:
    model.eval()
    with torch.no_grad():
        return model(x).numpy()


def _run_ort(model: onnx.ModelProto, x: torch.Tensor) -> np.ndarray[Any, Any]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return np.asarray(session.run(None, {"x": x.numpy()})[0])


def _accuracy(logits: np.ndarray[Any, Any], y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y.numpy()).mean())


@dataclass
class Trained:
    graph: Graph
    handle: QatHandle
    qat: nn.Module
    onnx: onnx.ModelProto
    float_accuracy: float
    test_x: torch.Tensor
    test_y: torch.Tensor


@pytest.fixture(scope="module")
def trained() -> Trained:
    """A float model trained 3 epochs, then fine-tuned 2 more in float and, from a
    copy, 2 with QAT."""
    torch.manual_seed(0)
    program = dslnet.loads(SPEC)
    graph = program.ir("SmallCNN")
    x, y = _data(2000, seed=1)
    test_x, test_y = _data(600, seed=2)
    net = program.torch("SmallCNN")
    _train(net, x, y, epochs=3, lr=3e-3)
    qat = copy.deepcopy(net)
    handle = prepare_qat(qat, graph, momentum=0.05)
    _train(qat, x, y, epochs=2, lr=1e-3)
    _train(net, x, y, epochs=2, lr=1e-3)  # the float reference gets the same epochs
    float_accuracy = _accuracy(_logits(net, test_x), test_y)
    handle.freeze_observers()
    qat.eval()
    return Trained(graph, handle, qat, export_qat_onnx(handle), float_accuracy, test_x, test_y)


def test_int8_onnx_agrees_with_fake_quant_torch(trained: Trained) -> None:
    torch_logits = _logits(trained.qat, trained.test_x)
    ort_logits = _run_ort(trained.onnx, trained.test_x)
    agreement = float((torch_logits.argmax(1) == ort_logits.argmax(1)).mean())
    drift = float(np.abs(torch_logits - ort_logits).max() / np.abs(torch_logits).max())
    print(f"\nargmax agreement int8 ORT vs fake-quant torch: {agreement:.4f} on 600 inputs")
    print(f"largest logit difference: {drift:.5f} of the largest logit")
    assert agreement >= 0.98
    assert drift < 0.015  # a 30% scale error gives ~0.05


def test_export_holds_qdq_and_int8_weights(trained: Trained) -> None:
    ops = [n.op_type for n in trained.onnx.graph.node]
    assert ops.count("QuantizeLinear") >= 4 and ops.count("DequantizeLinear") >= 8
    assert "BatchNormalization" not in ops  # folded into conv2d1
    inits = {t.name: t for t in trained.onnx.graph.initializer}
    int8 = {n for n, t in inits.items() if t.data_type == onnx.TensorProto.INT8 and t.dims}
    layers = {"conv2d1", "conv2d2", "linear1", "linear2"}
    assert {f"{name}/weight_quantized" for name in layers} <= int8
    onnx.checker.check_model(trained.onnx, full_check=True)


def test_onnx_weights_are_the_fake_quantized_ones(trained: Trained) -> None:
    inits = {t.name: numpy_helper.to_array(t) for t in trained.onnx.graph.initializer}
    for path in ("conv2d2", "linear1"):
        layer = trained.qat.get_submodule(path)
        expected = fake_quantize_weight(layer.weight.detach()).numpy()
        q, scale = inits[f"{path}/weight_quantized"], inits[f"{path}/weight_scale"]
        shape = (-1,) + (1,) * (q.ndim - 1)
        np.testing.assert_allclose(q * scale.reshape(shape), expected, rtol=0, atol=1e-7)
    # conv2d1 carries the folded batchnorm: gamma / sqrt(var + eps) scales its rows.
    conv, bn = trained.qat.conv2d1, trained.qat.batchnorm1
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = fake_quantize_weight((conv.weight * factor.reshape(-1, 1, 1, 1)).detach())
    dequantized = inits["conv2d1/weight_quantized"] * inits["conv2d1/weight_scale"].reshape(
        -1, 1, 1, 1
    )
    np.testing.assert_allclose(dequantized, folded.numpy(), rtol=0, atol=1e-6)


def test_onnx_scales_are_the_observers(trained: Trained) -> None:
    inits = {t.name: numpy_helper.to_array(t) for t in trained.onnx.graph.initializer}
    params = trained.handle.qparams()
    assert set(params) == {"x", "relu1", "relu2", "relu3"}
    for tensor, (scale, zero) in params.items():
        assert float(inits[f"{tensor}/scale"]) == np.float32(scale)
        assert int(inits[f"{tensor}/zero_point"]) == zero
    observer = trained.handle.observers["relu3"]
    assert observer.lo is not None and observer.hi is not None
    hi = float(observer.hi)
    assert params["relu3"] == (pytest.approx(hi / 255, rel=1e-6), 0)
    assert not trained.handle.float_points and not trained.handle.float_weights


def test_qat_accuracy_close_to_float(trained: Trained) -> None:
    qat_accuracy = _accuracy(_logits(trained.qat, trained.test_x), trained.test_y)
    int8_accuracy = _accuracy(_run_ort(trained.onnx, trained.test_x), trained.test_y)
    print(f"\nfloat {trained.float_accuracy:.3f}, QAT {qat_accuracy:.3f}, int8 {int8_accuracy:.3f}")
    assert trained.float_accuracy > 0.6  # the task is learned, yet not trivially
    assert qat_accuracy >= trained.float_accuracy - 0.03
    assert int8_accuracy >= trained.float_accuracy - 0.03


def test_export_matches_the_pipeline_static_pass(trained: Trained) -> None:
    """The pipeline's own fold + int8-static, calibrated, writes the same nodes and
    the same int8 weights; only the activation ranges differ."""
    reduced = dslnet.loads(SPEC).optimize(
        "SmallCNN", trained.qat.state_dict(), fold=True, quantize="int8-static"
    )
    fp32 = reduced.float_onnx()
    calibrated = reduced.quantized(fp32, [{"x": trained.test_x[:64].numpy()}])
    assert [n.name for n in calibrated.graph.node] == [n.name for n in trained.onnx.graph.node]
    ours = {t.name: numpy_helper.to_array(t) for t in trained.onnx.graph.initializer}
    theirs = {t.name: numpy_helper.to_array(t) for t in calibrated.graph.initializer}
    for name in ("conv2d1", "conv2d2", "linear1", "linear2"):
        np.testing.assert_array_equal(
            ours[f"{name}/weight_quantized"], theirs[f"{name}/weight_quantized"]
        )


def test_skip_mark_keeps_layers_float() -> None:
    torch.manual_seed(0)
    program = dslnet.loads(SPEC)
    graph = program.ir("Marked")
    net = program.torch("Marked")
    handle = prepare_qat(net, graph)
    assert set(handle.weights) == {"conv2d1", "linear1"}  # conv2d2 is marked skip
    assert not hasattr(net.conv2d2, "_dslnet_qat")
    x, _ = _data(256, seed=3)
    net.train()
    for xb in x.split(64):
        net(xb)
    model = export_qat_onnx(handle)
    inits = {t.name: t for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.name == "conv2d2/Conv")
    assert inits[conv.input[1]].data_type == onnx.TensorProto.FLOAT
    assert not any(
        n.name.startswith("conv2d2/") and "Linear" in n.op_type for n in model.graph.node
    )
    agreement = (_logits(net, x).argmax(1) == _run_ort(model, x).argmax(1)).mean()
    assert agreement >= 0.98


def test_remove_restores_the_float_model() -> None:
    torch.manual_seed(0)
    program = dslnet.loads(SPEC)
    net = program.torch("SmallCNN")
    x, _ = _data(32, seed=4)
    before = _logits(net, x)
    handle = prepare_qat(net, program.ir("SmallCNN"))  # eval mode: batchnorm stats kept
    assert not np.array_equal(_logits(net, x), before)
    handle.remove()
    np.testing.assert_array_equal(_logits(net, x), before)
    assert set(net.state_dict()) == set(program.torch("SmallCNN").state_dict())


def test_submodule_of_a_bigger_model_is_prepared_in_place() -> None:
    torch.manual_seed(0)
    program = dslnet.loads(SPEC)
    wrapper = nn.Sequential(nn.Identity(), program.torch("SmallCNN"))
    handle = prepare_qat(wrapper[1], program.ir("SmallCNN"))
    wrapper.train()
    wrapper(_data(16, seed=5)[0])
    assert handle.module is wrapper[1] and all(o.lo is not None for o in handle.observers.values())
    saved = handle.observer_state()
    fresh = prepare_qat(program.torch("SmallCNN"), program.ir("SmallCNN"))
    fresh.load_observer_state(saved)
    assert fresh.qparams() == handle.qparams()
    copied = copy.deepcopy(wrapper)  # a copy quantizes with its own weights
    with torch.no_grad():
        copied[1].linear2.weight.mul_(2.0)
    assert not torch.equal(
        copied.eval()(torch.ones(2, 1, 12, 12)), wrapper.eval()(torch.ones(2, 1, 12, 12))
    )


def test_observer_keeps_zero_exact_and_freezes() -> None:
    observer = RangeObserver(momentum=0.5)
    observer.fake_quantize(torch.tensor([1.0, 3.0]), observe=True)
    assert observer.qparams() == (pytest.approx(3.0 / 255), 0)  # lo widened to 0
    observer.fake_quantize(torch.tensor([-2.0, 5.0]), observe=True)  # lo -0.5, hi 4
    scale, zero = observer.qparams()
    assert scale == pytest.approx(4.5 / 255) and zero == round(0.5 / scale) == 28
    observer.frozen = True
    observer.fake_quantize(torch.tensor([-100.0, 100.0]), observe=True)
    assert observer.qparams() == (scale, zero)


def test_fixed_params_must_cover_every_range() -> None:
    program = dslnet.loads(SPEC)
    model = program.onnx("SmallCNN")
    with pytest.raises(QuantizeError, match="no range given"):
        quantize_static_with_params(model, {"x": (0.1, 128)})


RESIDUAL = """
network Residual() {
    in x: float32[N, 16]
    a = x -> linear(32) -> relu
    c = relu(a + linear(a, 32))
    d = relu(c + linear(c, 32))
    out y = linear(d, 10)
}
"""


def test_tensor_read_by_a_functional_add_stays_float() -> None:
    """`c` feeds linear3 and the residual `c + ...`: no module hook sees every reader,
    so it stays float in training and export, with linear3 and the second Add."""
    torch.manual_seed(0)
    program = dslnet.loads(RESIDUAL)
    net = program.torch("Residual")
    handle = prepare_qat(net, program.ir("Residual"))
    assert handle.float_points == ("c",) and set(handle.weights) == {
        "linear1",
        "linear2",
        "linear4",
    }
    x = torch.randn(512, 16)
    net.train()
    for xb in x.split(64):
        net(xb)
    model = export_qat_onnx(handle)
    full = quantize_static_int8(
        program.onnx("Residual", weights=net.state_dict()), [{"x": x.numpy()}]
    )
    counts = [[n.op_type for n in m.graph.node].count("QuantizeLinear") for m in (model, full)]
    assert counts == [5, 6]
    inits = {t.name for t in model.graph.initializer}
    assert "linear3/weight_quantized" not in inits and "linear4/weight_quantized" in inits
    agreement = (_logits(net, x).argmax(1) == _run_ort(model, x).argmax(1)).mean()
    assert agreement >= 0.98
