"""Tensors made from sizes (zeros, ones, full, arange, eye), tril/triu, the bare learned
tensor `parameter`, and drop_path: values against numpy through the generated torch
module and ONNX Runtime, symbolic sizes read at run time, their errors, and a
ConvNeXt block with a layer scale against a hand-written torch module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.testing import check_op

OPS = ["zeros", "ones", "full", "arange", "eye", "tril", "triu", "parameter", "drop_path"]


def spec(body: str, name: str = "S") -> str:
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    return f"network {name}() {{\n{indented}\n}}\n"


def compute(body: str, *feeds: np.ndarray) -> list[np.ndarray]:
    """The outputs from the generated torch module (eval mode); ONNX Runtime must give
    the same values and dtypes."""
    prog = dslnet.loads(spec(body))
    module = prog.torch("S").eval()
    with torch.no_grad():
        out = module(*(torch.from_numpy(f) for f in feeds))
    got = [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]
    graph = prog.ir("S")
    ort = run_onnx(emit_onnx(graph, module.state_dict()), dict(zip(graph.inputs, feeds)))
    for ours, (name, _) in zip(got, graph.outputs, strict=True):
        assert ort[name].dtype == ours.dtype
        np.testing.assert_array_equal(ort[name], ours)
    return got


def compile_error(body: str) -> str:
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.loads(spec(body), filename="t.net").ir("S")
    return info.value.render()


@pytest.mark.parametrize("name", OPS)
def test_check_op_passes(name: str) -> None:
    check_op(name)


def test_symbolic_sizes_are_read_at_run_time() -> None:
    body = """
in x: float32[N, T, 2]
out mask = tril(ones([T, T]))
out steps = arange(T)
out eye = eye(T, 2 * T, dtype="int64")
out filled = full([N, T * 2], -3, dtype="int32")
"""
    for t in (1, 4):
        x = np.zeros((3, t, 2), dtype=np.float32)
        mask, steps, eye, filled = compute(body, x)
        np.testing.assert_array_equal(mask, np.tril(np.ones((t, t), np.float32)))
        np.testing.assert_array_equal(steps, np.arange(t))
        np.testing.assert_array_equal(eye, np.eye(t, 2 * t, dtype=np.int64))
        np.testing.assert_array_equal(filled, np.full((3, 2 * t), -3, np.int32))


def test_literal_sizes_make_a_buffer_once() -> None:
    prog = dslnet.loads(spec('in x: float32[N, 4]\nout y = x + arange(4, dtype="float32")'))
    source = prog.torch_source("S")
    assert "self.arange1 = ConstantTensor(torch.arange(4, dtype=torch.float32))" in source
    assert "arange1 = self.arange1.value" in source
    module = prog.torch("S")
    assert list(module.state_dict()) == []  # a buffer, but no weight
    assert torch.equal(module.arange1.value, torch.arange(4.0))
    assert module.double().arange1.value.dtype == torch.float64  # it moves with the module


def test_triangles_and_constants_against_numpy() -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 5)).astype(np.float32)
    x[0, 0, 0] = np.nan
    lower, upper, r, e = compute(
        "in x: float32[N, 3, 5]\nout a = tril(x, 1)\nout b = triu(x, k=-1)\n"
        "out r = arange(10, 1, -3)\nout e = eye(2, 3) + zeros([2, 3]) * full([3], 2.0)",
        x,
    )
    np.testing.assert_array_equal(lower, np.tril(x, 1))
    np.testing.assert_array_equal(upper, np.triu(x, -1))
    np.testing.assert_array_equal(r, np.arange(10, 1, -3))
    np.testing.assert_array_equal(e, np.eye(2, 3, dtype=np.float32))


def test_sizes_come_from_a_block_input() -> None:
    text = """
block Causal() {
    in x: [N, T, C]
    out y = matmul(tril(ones([T, T])), x)
}
network S() {
    in x: float32[N, L, 3]
    out y = x -> Causal()
}
"""
    prog = dslnet.loads(text)
    x = torch.ones(2, 4, 3)
    assert torch.equal(prog.torch("S")(x)[:, :, 0], torch.arange(1.0, 5.0).expand(2, 4))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("in x: float32[N, 3]\nout y = x -> ones([3])", "ones takes no input tensor, got 1"),
        ("in x: float32[N, 3]\nout y = zeros([3, -2])", "sizes must not be negative"),
        ("in x: float32[N, 3]\nout y = arange(5, step=0)", "step must not be 0"),
        ("in x: float32[N, T]\nout y = arange(1, T)", "a symbolic size must be the whole"),
        ('in x: float32[N, 3]\nout y = full([2], 0.5, dtype="int64")', "whole number"),
        ('in x: float32[N, 3]\nout y = ones([2], dtype="float31")', "must be a dtype name"),
        ("in x: float32[3]\nout y = tril(x)", "rank 2 or more"),
        ("in x: float32[N, 3]\nout y = parameter([N, 3])", "parameter"),
        ("in x: float32[N, 3]\nout y = drop_path(x, 1.0)", "less than 1"),
    ],
)
def test_errors(body: str, message: str) -> None:
    assert message in compile_error(body)


def test_a_size_no_tensor_has_is_refused() -> None:
    text = """
block B(T: int = 3) {
    in x: [N, C]
    out y = x
}
network S() {
    in x: float32[N, T]
    in z: float32[N, 2]
    out y = z -> Inner()
}
block Inner() {
    in z: [N, C]
    out y = ones([C, C])
}
"""
    assert dslnet.loads(text).ir("S").outputs  # C is z's own size: found
    message = compile_error("in x: float32[N, T]\nout y = ones([T + 1])")
    assert "no tensor in scope has it" in message


# --- parameter ---------------------------------------------------------------------------


def test_parameter_is_a_shared_weight_in_the_state_dict() -> None:
    body = """
in x: float32[N, 4]
layer gamma = parameter([4], value=0.25)
out y = x * gamma() + gamma()
"""
    prog = dslnet.loads(spec(body))
    module = prog.torch("S")
    assert list(module.state_dict()) == ["gamma.weight"]
    assert prog.summary("S")["params"] == 4
    x = torch.ones(2, 4)
    assert torch.equal(module(x), torch.full((2, 4), 0.5))
    assert "self.gamma = LearnedTensor((4,), 0.25)" in prog.torch_source("S")
    (y,) = compute(body, np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(y, np.full((2, 4), 0.5, np.float32))


def test_parameter_init_scheme_draws_it() -> None:
    prog = dslnet.loads(
        spec('in x: float32[N, 4]\nout y = matmul(x, parameter([4, 4], init="normal"))')
    )
    weight = prog.torch("S").state_dict()["param1.weight"]
    assert 0.0 < float(weight.std()) < 0.1


# --- drop_path ---------------------------------------------------------------------------


def test_drop_path_drops_whole_samples_while_training() -> None:
    prog = dslnet.loads(spec("in x: float32[N, 3, 4]\nout y = drop_path(x, 0.5)"))
    module = prog.torch("S")
    x = torch.ones(200, 3, 4)
    torch.manual_seed(0)
    y = module.train()(x)
    per_sample = y.reshape(200, -1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)
    assert 50 < int((per_sample[:, 0] == 0).sum()) < 150
    assert torch.equal(module.eval()(x), x)
    assert [n.op_type for n in prog.onnx("S").graph.node] == ["Identity"]


# --- a ConvNeXt block with a layer scale ----------------------------------------------------

CONVNEXT = """
block ConvNeXtBlock(dim: int, scale: float = 1e-6) {
    in x: [N, dim, H, W]
    layer gamma = parameter([dim], value=scale)
    h = x -> conv2d(dim, 7, padding=3, groups=dim) -> permute([0, 2, 3, 1])
    h = h -> layernorm(eps=1e-6) -> linear(4 * dim) -> gelu -> linear(dim)
    h = (h * gamma()) -> permute([0, 3, 1, 2])
    out y = x + drop_path(h, 0.1)
}

network Net() {
    in x: float32[N, 8, H, W]
    out y = x -> ConvNeXtBlock(8, scale=0.5)
}
"""


class HandWrittenBlock(nn.Module):
    """ConvNeXt's block as its reference writes it (gamma registered first)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).permute(0, 2, 3, 1)
        h = self.pwconv2(nn.functional.gelu(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).permute(0, 3, 1, 2)


def test_convnext_block_matches_a_hand_written_module() -> None:
    prog = dslnet.loads(CONVNEXT)
    ours = prog.torch("Net").eval()
    theirs = HandWrittenBlock(8).eval()
    state = ours.state_dict()
    gammas = [k for k in state if k.endswith("gamma.weight")]
    assert len(gammas) == 1 and prog.summary("Net")["params"] == sum(
        p.numel() for p in theirs.parameters()
    )
    by_shape = {
        "gamma": state[gammas[0]],
        "dwconv": [v for k, v in state.items() if "conv2d" in k],
        "norm": [v for k, v in state.items() if "layernorm" in k],
        "pwconv1": [v for k, v in state.items() if "linear1" in k],
        "pwconv2": [v for k, v in state.items() if "linear2" in k],
    }
    with torch.no_grad():
        theirs.gamma.copy_(torch.randn(8))
        state[gammas[0]].copy_(theirs.gamma)
        for name in ("dwconv", "norm", "pwconv1", "pwconv2"):
            weight, bias = by_shape[name]
            getattr(theirs, name).weight.copy_(weight)
            getattr(theirs, name).bias.copy_(bias)
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        expected = theirs(x)
        assert torch.equal(ours(x), expected)
    graph = prog.ir("Net")
    ort = run_onnx(emit_onnx(graph, state), {"x": x.numpy()})
    np.testing.assert_allclose(ort["y"], expected.numpy(), rtol=1e-5, atol=1e-5)


MASKS = """
network S() {
    in x: float32[N, T, 4]
    layer scale = parameter([4], value=0.5)
    mask = tril(ones([T, T])) + eye(T) * full([1], 2.0) + zeros([T, 1])
    steps = arange(T, dtype="float32") -> reshape([T, 1])
    out y = matmul(mask, x) * scale() + steps + zeros([4])
}
"""


def test_ir_text_reads_back_and_made_tensors_follow_the_device() -> None:
    from dslnet.ir.parser import parse_graph
    from dslnet.ir.printer import print_graph

    graph = dslnet.loads(MASKS).ir("S")
    text = print_graph(graph)
    assert print_graph(parse_graph(text)) == text
    module = dslnet.loads(MASKS).torch("S").to("meta")
    y = module(torch.empty(2, 5, 4, device="meta"))  # made tensors live on x's device
    assert y.device.type == "meta" and y.shape == (2, 5, 4)


def test_an_input_read_only_for_its_sizes_is_not_unused() -> None:
    # x gives T to ones([T, T]): its shape is read at run time, so no "unused input";
    # y has only sizes another used input has too, so it is unused.
    prog = dslnet.loads(
        spec(
            "in x: float32[N, T]\nin y: float32[N]\nin z: float32[N, 2]\n"
            "out m = tril(ones([T, T])) * size(z, 0)"
        )
    )
    assert [w.message for w in prog.warnings] == ["unused input 'y' of network 'S'"]
