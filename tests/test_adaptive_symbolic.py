"""Adaptive average pooling of a symbolic input size to any output size: the ONNX
windows are computed from the run-time size, and agree with PyTorch at every size
(smaller than the output, not divisible by it, divisible)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dslnet

SPEC = """
network Pool2d() {
    in x: float32[N, 3, H, W]
    out y = x -> adaptive_avgpool2d(7)
}
network Rows() {
    in x: float32[N, 3, H, W]
    out y = x -> adaptive_avgpool2d((1, 3))
}
network Pool1d() {
    in x: float32[N, 2, T]
    out y = x -> adaptive_avgpool1d(5)
}
network Pool3d() {
    in x: float32[N, 2, D, H, W]
    out y = x -> adaptive_avgpool3d((2, 3, 4))
}
network Huge() {
    in x: float32[N, 2, T]
    out y = x -> adaptive_avgpool1d(65536)
}
"""


def _ort(model: object, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(
        model.SerializeToString(),  # type: ignore[attr-defined]
        providers=["CPUExecutionProvider"],
    )
    (y,) = session.run(None, {"x": x})
    return np.asarray(y)


@pytest.fixture(scope="module")
def prog() -> dslnet.Program:
    return dslnet.loads(SPEC)


@pytest.mark.parametrize("opset", [15, 17, 18, 21])
def test_2d_agrees_with_torch_at_every_run_time_size(prog: dslnet.Program, opset: int) -> None:
    rng = np.random.default_rng(0)
    for network, size in [("Pool2d", (7, 7)), ("Rows", (1, 3))]:
        model = prog.onnx(network, opset=opset)
        for h, w in [(1, 1), (3, 5), (7, 7), (8, 13), (14, 14), (23, 6), (224, 100)]:
            x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
            expected = F.adaptive_avg_pool2d(torch.from_numpy(x), size).numpy()
            got = _ort(model, x)
            assert got.shape == (2, 3, *size)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"{h}x{w}")


def test_1d_and_3d_agree_with_torch(prog: dslnet.Program) -> None:
    rng = np.random.default_rng(1)
    one = prog.onnx("Pool1d")
    for t in (1, 4, 5, 6, 11, 40):
        x = rng.standard_normal((1, 2, t)).astype(np.float32)
        expected = F.adaptive_avg_pool1d(torch.from_numpy(x), 5).numpy()
        np.testing.assert_allclose(_ort(one, x), expected, rtol=1e-5, atol=1e-6)
    three = prog.onnx("Pool3d")
    for shape in [(1, 1, 1), (3, 4, 5), (5, 7, 9)]:
        x = rng.standard_normal((2, 2, *shape)).astype(np.float32)
        expected = F.adaptive_avg_pool3d(torch.from_numpy(x), (2, 3, 4)).numpy()
        np.testing.assert_allclose(_ort(three, x), expected, rtol=1e-5, atol=1e-6)


def test_a_window_sees_only_its_own_elements(prog: dslnet.Program) -> None:
    """inf and NaN stay in the cells whose windows hold them (the padding of a short
    window is zeroed, not weighted by 0: inf * 0 would be NaN)."""
    x = np.arange(2 * 7, dtype=np.float32).reshape(1, 2, 7)
    x[0, 0, 6] = np.inf
    x[0, 1, 0] = np.nan
    expected = F.adaptive_avg_pool1d(torch.from_numpy(x), 5).numpy()
    np.testing.assert_allclose(_ort(prog.onnx("Pool1d"), x), expected)
    assert np.isfinite(expected[0, 0, :4]).all() and np.isnan(expected[0, 1, 0])


def test_the_graph_does_not_grow_with_the_output_size(prog: dslnet.Program) -> None:
    small, huge = prog.onnx("Pool1d"), prog.onnx("Huge")
    assert len(huge.graph.node) == len(small.graph.node) <= 40
    x = np.random.default_rng(2).standard_normal((1, 2, 9)).astype(np.float32)
    expected = F.adaptive_avg_pool1d(torch.from_numpy(x), 65536).numpy()
    np.testing.assert_allclose(_ort(huge, x), expected, rtol=1e-5, atol=1e-6)


def test_torch_module_matches_the_reference(prog: dslnet.Program) -> None:
    module = prog.torch("Pool2d")
    x = torch.randn(2, 3, 10, 9)
    assert torch.equal(module(x), F.adaptive_avg_pool2d(x, 7))


def test_static_and_divisible_sizes_keep_their_lowering() -> None:
    """A fixed or divisible size still reshapes or gathers a constant table: no Shape."""
    text = """
network Fixed() {
    in x: float32[N, 3, 10, 9]
    out y = x -> adaptive_avgpool2d(7)
}
network Divisible() {
    in x: float32[N, 3, H, W]
    out y = x -> adaptive_avgpool2d(1)
}
"""
    prog = dslnet.loads(text)
    for network in ("Fixed", "Divisible"):
        ops = {n.op_type for n in prog.onnx(network).graph.node}
        assert "Shape" not in ops and "Range" not in ops, (network, ops)


def test_fixed_unequal_windows_keep_inf_in_their_own_cells() -> None:
    """The padding of a fixed short window was weighted by 0 (inf * 0 = NaN)."""
    prog = dslnet.loads(
        "network Fixed() {\n    in x: float32[1, 1, 7]\n    out y = x -> adaptive_avgpool1d(5)\n}\n"
    )
    x = np.arange(7, dtype=np.float32).reshape(1, 1, 7)
    x[0, 0, 6] = np.inf
    expected = F.adaptive_avg_pool1d(torch.from_numpy(x), 5).numpy()
    assert expected[0, 0, -1] == np.inf
    np.testing.assert_allclose(_ort(prog.onnx("Fixed"), x), expected)
