"""Norm, activation, shape, matmul, distance and VAE ops: shape rules against torch,
error messages, state_dict names, torch vs ONNX Runtime, training-mode behaviour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.core.symbolic import SymExpr
from dslnet.core.types import DType, TensorType
from dslnet.ir.graph import Graph
from dslnet.ir.printer import print_graph
from dslnet.ir.weights import init_weights
from dslnet.ops import registry
from dslnet.ops.registry import AttrError, ShapeError

N, C, H, W, T = (SymExpr.symbol(s) for s in "NCHWT")
ENVS = ({"N": 2, "C": 3, "H": 4, "W": 5, "T": 6}, {"N": 1, "C": 2, "H": 1, "W": 3, "T": 2})


def t(*shape: int | SymExpr, dtype: DType = DType.float32) -> TensorType:
    return TensorType(dtype=dtype, shape=shape)


def compile_net(body: str) -> tuple[Graph, Any]:
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    prog = dslnet.loads(f"network Net() {{\n{lines}\n}}\n", filename="more.net")
    return prog.ir("Net"), prog.torch("Net")


def infer(name: str, *inputs: TensorType, **attrs: Any) -> list[str]:
    op = registry.get(name)
    assert op is not None
    return [str(o) for o in op.infer(op.bind_attrs([], attrs), list(inputs))]


def concrete(ttype: TensorType, env: dict[str, int]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else d.evaluate(env) for d in ttype.shape)


def check_torch_and_onnx(body: str, prepare: Callable[[Any], None] | None = None) -> Any:
    """Inferred shapes == torch's, and ONNX Runtime == torch in eval mode, at ENVS sizes."""
    graph, module = compile_net(body)
    if prepare is not None:
        prepare(module)
    module.eval()
    model = emit_onnx(graph, module.state_dict())
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(1)
    for env in ENVS:
        feeds = {
            v: rng.standard_normal(concrete(graph.type_of(v), env)).astype(np.float32)
            for v in graph.inputs
        }
        with torch.no_grad():
            ours = module(*(torch.from_numpy(a) for a in feeds.values()))
        ours_list = [ours] if isinstance(ours, torch.Tensor) else list(ours)
        ort = run_onnx(model, feeds)
        for (out, value), got in zip(graph.outputs, ours_list, strict=True):
            assert tuple(got.shape) == concrete(graph.type_of(value), env), (body, env)
            np.testing.assert_allclose(ort[out], got.numpy(), atol=1e-4, rtol=1e-4)
    return module


# --- shapes against torch, and ONNX Runtime against torch ---------------------------------

SPECS = [
    # reshape: literal sizes, -1, 0 (copy), symbolic sizes, flatten/unflatten and x.shape forms
    "in x: float32[N, C, H, W]\nout y = reshape(x, [N, -1])",
    "in x: float32[N, C, H, W]\nout y = reshape(x, [0, 0, -1, 1])",
    "in x: float32[N, C, H, W]\nout y = reshape(x, [N*C, H, W])",
    "in x: float32[N, C, H, W]\nout y = reshape(x, [C, N, H, W])",
    "in x: float32[N, T, C]\nout y = reshape(x, [T, N*C])",
    "in x: float32[N, C]\nout y = reshape(x, [N, 1, C])",
    "in x: float32[N, C, 1]\nout y = reshape(x, [N, C])",
    "in x: float32[N, 6]\nout y = reshape(x, [N, 2, 3]) -> reshape([N, 6])",
    "in x: float32[2, 3, 4]\nout y = reshape(x, [4, -1])",
    "in x: float32[N, 12]\nout y = reshape(x, [-1, 3, 2, 2])",
    # slices: negative, clamped and empty bounds on static axes
    "in x: float32[N, 5]\nout y = slice(x, 1, start=-3, end=100)",
    "in x: float32[N, 5]\nout y = slice(x, 1, start=4, end=1)",
    "in x: float32[N, 5]\nout y = slice(x, 1, start=-100, end=2, step=3)",
    "in x: float32[N, 5, W]\nout y = slice(x, 1, start=3, end=-4)",
    "in x: float32[N, T, 5]\nout y = slice(x, 1, start=0, end=1)",
    "in x: float32[N, 3, 7]\nout y = slice(x, 2, start=-6, end=-1, step=3)",
    # matmul's 1-D rules and batch broadcasting
    "in a: float32[4]\nin b: float32[4]\nout y = matmul(a, b)",
    "in a: float32[4]\nin b: float32[N, 4, 3]\nout y = matmul(a, b)",
    "in a: float32[N, 1, 2, 4]\nin b: float32[C, 4, 3]\nout y = matmul(a, b)",
    # activations and the rest
    "in x: float32[N, 3, T]\nout y = prelu(x, channels=true)",
    "in x: float32[N, 3, H, W, 2]\nout y = dropout(x, 0.5, channel=true)",
    "in x: float32[N, 4, T]\nout y = groupnorm(x, 4)",
    "in x: float32[N, 4, T]\nout y = groupnorm(x, 1, affine=false)",
    "in x: float32[N, 2, 3]\nout y = layernorm(x, [2, 3], bias=false)",
    "in a: float32[N, 1, 5]\nin b: float32[C, 5]\nout y = cosine_similarity(a, b, axis=-1)",
    "in a: float32[N, 5]\nin b: float32[N, 5]\nout y = pairwise_distance(a, b, p=0.5)",
    "in x: float32[N, C]\nout y = identity(x) -> sign -> silu",
]


@pytest.mark.parametrize("body", SPECS)
def test_shapes_and_onnx_match_torch(body: str) -> None:
    check_torch_and_onnx(body)


def test_batchnorm_with_trained_statistics_matches_onnx() -> None:
    body = (
        "in x: float32[N, 3, H, W]\nin s: float32[N, 4]\n"
        "out y = batchnorm(x, momentum=0.5)\nout z = batchnorm(s, eps=0.01)"
    )

    def train_a_step(module: Any) -> None:
        module.train()
        with torch.no_grad():
            module(torch.randn(4, 3, 5, 6) * 3 + 1, torch.randn(8, 4) * 2 - 1)
            for p in module.parameters():
                p.uniform_(0.5, 1.5)

    module = check_torch_and_onnx(body, train_a_step)
    state = module.state_dict()
    assert int(state["batchnorm1.num_batches_tracked"]) == 1
    assert not torch.allclose(state["batchnorm1.running_var"], torch.ones(3))


def test_instancenorm_tracking_uses_running_stats_in_eval() -> None:
    def set_stats(module: Any) -> None:
        norm = module.instancenorm1
        norm.running_mean.copy_(torch.tensor([0.5, -1.0]))
        norm.running_var.copy_(torch.tensor([2.0, 0.25]))

    check_torch_and_onnx(
        "in x: float32[N, 2, T]\nout y = instancenorm(x, affine=true, track_running_stats=true)",
        set_stats,
    )


@pytest.mark.parametrize(
    ("name", "inputs", "attrs", "expected"),
    [
        ("reshape", [t(N, C, H, W)], {"shape": (N, -1)}, "float32[N, C*H*W]"),
        ("reshape", [t(N, 12)], {"shape": (0, 3, -1)}, "float32[N, 3, 4]"),
        ("permute", [t(N, C, H, W)], {"dims": (0, 2, 3, 1)}, "float32[N, H, W, C]"),
        ("transpose", [t(N, T, 5)], {"axis0": 0, "axis1": -1}, "float32[5, T, N]"),
        ("slice", [t(N, T)], {"axis": 1, "start": 2}, "float32[N, T - 2]"),
        ("slice", [t(N, T)], {"axis": 1, "start": -3}, "float32[N, 3]"),
        (
            "slice",
            [t(N, T)],
            {"axis": 1, "start": 1, "end": -1, "step": 2},
            "float32[N, floor((T - 1)/2)]",
        ),
        ("matmul", [t(N, 3, 4), t(4)], {}, "float32[N, 3]"),
        ("pairwise_distance", [t(N, 4), t(N, 4)], {"keepdim": True}, "float32[N, 1]"),
        ("cosine_similarity", [t(N, 4, H), t(4, 1)], {}, "float32[N, H]"),
        ("l2_normalize", [t(N, 4)], {"axis": -1}, "float32[N, 4]"),
        ("log_softmax", [t(N, 4)], {}, "float32[N, 4]"),
        ("identity", [t(N, 4, dtype=DType.int64)], {}, "int64[N, 4]"),
    ],
)
def test_symbolic_rules(
    name: str, inputs: list[TensorType], attrs: dict[str, Any], expected: str
) -> None:
    assert infer(name, *inputs, **attrs) == [expected]


def test_split_outputs_and_rule() -> None:
    assert infer("split", t(N, 6), parts=3) == ["float32[N, 2]"] * 3
    assert infer("split", t(N, 2 * C), parts=2) == ["float32[N, C]"] * 2
    assert infer("split", t(N, 5, 2), parts=(1, 4), axis=-2) == [
        "float32[N, 1, 2]",
        "float32[N, 4, 2]",
    ]
    graph, _ = compile_net("in x: float32[N, 6]\na, b, c = split(x, parts=3)\nout y = a + b + c")
    (node,) = [n for n in graph.nodes if n.op == "split"]
    assert len(node.outputs) == 3


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "inputs", "attrs", "message"),
    [
        (
            "reshape",
            [t(N, 3, 4)],
            {"shape": (N, 5)},
            "reshape: the input float32[N, 3, 4] has 12*N elements, the target [N, 5] has 5*N",
        ),
        ("reshape", [t(N, 12)], {"shape": (-1, -1)}, "at most one size may be -1, got [-1, -1]"),
        ("reshape", [t(N, 10)], {"shape": (N, 3, -1)}, "which is not a multiple of 3*N"),
        ("reshape", [t(N, 10)], {"shape": (N, 10, 0)}, "size 0 at position 2 copies"),
        ("reshape", [t(N, 10)], {"shape": (N, -2)}, "size -2 in [N, -2] is negative"),
        ("reshape", [t(N * H, W)], {"shape": (N, H, W)}, "sizes N, H cannot be computed"),
        ("permute", [t(N, 3, 4)], {"dims": (0, 1, 1)}, "dims [0, 1, 1] is not a permutation"),
        (
            "permute",
            [t(N, 3, 4)],
            {"dims": (0, 1)},
            "has 2 entries, the input float32[N, 3, 4] has rank 3",
        ),
        ("transpose", [t(N, 3)], {"axis0": 0, "axis1": 2}, "transpose: axis 2 is out of range"),
        (
            "split",
            [t(N, 5)],
            {"parts": (2, 2)},
            "split: part sizes [2, 2] sum to 4, but axis 1 of float32[N, 5] has size 5",
        ),
        ("split", [t(N, 5)], {"parts": 2}, "does not divide into 2 equal parts"),
        ("split", [t(N, C)], {"parts": 2}, "axis 1 of float32[N, C] has size C"),
        (
            "layernorm",
            [t(N, 3, 6)],
            {"normalized_shape": (4, 6)},
            "normalized_shape [4, 6] must equal the last 2 dim(s) of the input "
            "float32[N, 3, 6] ([3, 6])",
        ),
        (
            "layernorm",
            [t(N, 3)],
            {"normalized_shape": (2, 3, 4)},
            "of the input float32[N, 3] (rank 2)",
        ),
        (
            "groupnorm",
            [t(N, 6, H)],
            {"groups": 4},
            "groupnorm: 4 groups do not divide the 6 channels (axis 1) of float32[N, 6, H]",
        ),
        ("batchnorm", [t(N, C, H)], {}, "batchnorm needs a known channel count (axis 1)"),
        ("batchnorm", [t(N, 3, H, W, 1, 1)], {}, "(rank 2 to 5), got float32[N, 3, H, W, 1, 1]"),
        ("instancenorm", [t(N, 3)], {}, "instancenorm needs an input [N, C, L]"),
        (
            "matmul",
            [t(N, 3, 4), t(5, 2)],
            {},
            "matmul: a float32[N, 3, 4] has 4 columns (last axis) but b float32[5, 2] has 5 "
            "rows (axis -2)",
        ),
        (
            "matmul",
            [t(2, 3, 4), t(3, 4, 2)],
            {},
            "batch axes of a float32[2, 3, 4] and b float32[3, 4, 2] do not broadcast",
        ),
        (
            "dropout",
            [t(N, 8)],
            {"channel": True},
            "dropout with channel=true needs a 3-, 4- or 5-D input",
        ),
        ("prelu", [t(N, C)], {"channels": True}, "prelu needs a known channel count"),
        ("cosine_similarity", [t(N, 4), t(N, 1)], {}, "must both have axis 1 with one size"),
        (
            "reparameterize",
            [t(N, 8), t(N, 4)],
            {},
            "reparameterize: mu and logvar must have the same type",
        ),
        ("sign", [t(N, dtype=DType.bool)], {}, "sign needs a numeric input"),
    ],
)
def test_shape_errors(
    name: str, inputs: list[TensorType], attrs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ShapeError) as err:
        infer(name, *inputs, **attrs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("name", "attrs", "message"),
    [
        ("slice", {"axis": 1, "step": 0}, "argument 'step' of slice must not be 0, got int 0"),
        (
            "hardtanh",
            {"min_val": 1.0, "max_val": -1.0},
            "'max_val' of hardtanh must be greater than min_val 1.0",
        ),
        ("reshape", {"shape": (N, 2.5)}, "argument 'shape' of reshape must be a list of sizes"),
        ("reshape", {"shape": 4}, "argument 'shape' of reshape must be a list of sizes"),
        ("groupnorm", {"groups": 0}, "argument 'groups' of groupnorm must be greater than 0"),
        ("dropout", {"p": 1.0}, "argument 'p' of dropout must be less than 1"),
    ],
)
def test_attribute_errors(name: str, attrs: dict[str, Any], message: str) -> None:
    op = registry.get(name)
    assert op is not None
    with pytest.raises(AttrError) as err:
        op.bind_attrs([], attrs)
    assert len(err.value.messages) == 1 and message in err.value.messages[0], err.value.messages


def test_errors_point_at_the_spec_line() -> None:
    with pytest.raises(dslnet.CompileError) as err:
        compile_net("in x: float32[N, 3, 4]\nout y = reshape(x, [N, 5])")
    assert "more.net:3" in str(err.value) and "has 12*N elements" in str(err.value)


# --- parameters, buffers, initial values -----------------------------------------------------

STATE_SPECS = [
    "in x: float32[N, 3, H, W]\nout y = batchnorm(x)",
    "in x: float32[N, 3, T]\nout y = batchnorm(x, affine=false)",
    "in x: float32[N, 2, 3, 4, 5]\nout y = batchnorm(x)",
    "in x: float32[N, T, 8]\nout y = layernorm(x)",
    "in x: float32[N, 4, 5]\nout y = layernorm(x, [4, 5], bias=false)",
    "in x: float32[N, 6]\nout y = layernorm(x, elementwise_affine=false)",
    "in x: float32[N, 3, H, W]\nout y = instancenorm(x)",
    "in x: float32[N, 3, T]\nout y = instancenorm(x, affine=true, track_running_stats=true)",
    "in x: float32[N, 6, H, W]\nout y = groupnorm(x, 2)",
    "in x: float32[N, 6, H, W]\nout y = groupnorm(x, 3, affine=false)",
    "in x: float32[N, 4, T]\nout y = prelu(x, channels=true) -> prelu",
]


@pytest.mark.parametrize("body", STATE_SPECS)
def test_parameters_and_buffers_are_torchs_state_dict(body: str) -> None:
    graph, module = compile_net(body)
    state = module.state_dict()
    assert list(graph.parameters) == list(state)
    for name, param in graph.parameters.items():
        assert param.shape == tuple(state[name].shape), name
        assert param.dtype.value == str(state[name].dtype).removeprefix("torch."), name
        assert param.buffer == (name not in dict(module.named_parameters())), name
    # fresh values follow torch's defaults exactly (norms and prelu have no randomness)
    fresh = init_weights(graph)
    for name, value in fresh.items():
        np.testing.assert_array_equal(value, state[name].numpy(), err_msg=name)
        assert value.dtype == state[name].numpy().dtype, name
    assert graph.num_parameters == sum(p.numel() for p in module.parameters())


def test_matmul_flops_are_multiply_accumulates() -> None:
    op = registry.get("matmul")
    assert op is not None
    a, b = t(N, 3, 4), t(4, 5)
    (out,) = op.infer(op.bind_attrs([], {}), [a, b])
    assert op.flops(None, [a, b], [out]) == 60 * N
    assert op.flops(None, [t(4), t(4)], [t()]) == 4
    for name in ("batchnorm", "reshape", "cosine_similarity"):
        other = registry.get(name)
        assert other is not None and type(other).flops is registry.OpDef.flops


def test_element_dropout_prints_as_before() -> None:
    graph, _ = compile_net(
        "in x: float32[N, 4, T]\nh = dropout(x, 0.1)\nout y = dropout(h, 0.1, channel=true)"
    )
    text = print_graph(graph)
    assert "dropout(x, p=0.1)  #" in text
    assert "dropout(h, p=0.1, channel=true)" in text


# --- training-mode behaviour and tracing ------------------------------------------------------


def test_reparameterize_samples_in_training_and_is_mu_in_eval() -> None:
    graph, module = compile_net(
        "in mu: float32[N, 8]\nin logvar: float32[N, 8]\nout z = reparameterize(mu, logvar)"
    )
    mu, logvar = torch.randn(4000, 8), torch.full((4000, 8), np.log(4.0))
    module.train()
    torch.manual_seed(0)
    z1 = module(mu, logvar)
    z2 = module(mu, logvar)
    assert not torch.equal(z1, z2)
    noise = (z1 - mu) / 2.0  # std exp(logvar / 2) == 2
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1.0) < 0.05
    torch.manual_seed(0)
    assert torch.equal(module(mu, logvar), z1)  # torch's RNG: seeding repeats the draw
    module.eval()
    assert torch.equal(module(mu, logvar), mu)
    ort = run_onnx(emit_onnx(graph), {"mu": mu.numpy(), "logvar": logvar.numpy()})
    np.testing.assert_array_equal(ort["z"], mu.numpy())


def test_channel_dropout_zeroes_whole_channels() -> None:
    _, module = compile_net("in x: float32[N, 16, H, W]\nout y = dropout(x, 0.5, channel=true)")
    module.train()
    y = module(torch.ones(4, 16, 3, 3))
    per_channel = y.flatten(2)
    assert torch.all(per_channel.amin(-1) == per_channel.amax(-1))  # each channel all 0 or 2
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0}


def test_module_traces_with_fullgraph_compile() -> None:
    torch._dynamo.reset()
    _, module = compile_net(
        """
in x: float32[N, 4, H, W]
h = x -> batchnorm -> prelu(channels=true) -> groupnorm(2) -> instancenorm
h = reshape(h, [N, 4, H*W]) -> permute([0, 2, 1]) -> layernorm
a, b = split(h, parts=[1, 3], axis=-1)
s = slice(b, -1, start=0, end=1) -> transpose(1, 2)
m = matmul(a, s) -> leaky_relu -> hardtanh -> elu -> log_softmax
out y = reparameterize(l2_normalize(m, axis=-1), m)
out d = cosine_similarity(a, a, axis=-1) + pairwise_distance(a, a)
out e = reshape(x, [H, N, 4, W])
"""
    )
    module.eval()
    compiled = torch.compile(module, fullgraph=True, backend="eager", dynamic=True)
    for n, hw in ((2, 3), (3, 5)):
        x = torch.randn(n, 4, hw, hw)
        for got, want in zip(compiled(x), module(x), strict=True):
            torch.testing.assert_close(got, want)
    module.train()
    compiled(torch.randn(2, 4, 3, 3))  # training mode (batch statistics, sampling) too


def test_eps_handling_of_distances_matches_torch() -> None:
    # torch clamps each norm (a / max(||a||, eps)), not the product of the norms: with
    # ||a|| = ||b|| = 5e-5 and eps 1e-4 the cosine is 0.25, where clamping the product
    # would give 2.5e-5. Zero vectors give 0, not NaN.
    graph, module = compile_net(
        "in a: float32[N, 2]\nin b: float32[N, 2]\n"
        "out c = cosine_similarity(a, b, eps=0.0001)\nout n = l2_normalize(a, eps=0.0001)\n"
        "out d = pairwise_distance(a, b)"
    )
    a = np.array([[3e-5, 4e-5], [0, 0], [3e-3, 4e-3]], np.float32)
    b = np.array([[3e-5, 4e-5], [1, 0], [0.3, 0.4]], np.float32)
    with torch.no_grad():
        want = [o.numpy() for o in module.eval()(torch.from_numpy(a), torch.from_numpy(b))]
    np.testing.assert_allclose(want[0], [0.25, 0.0, 1.0], rtol=1e-5)
    got = run_onnx(emit_onnx(graph), {"a": a, "b": b})
    for name, value in zip("cnd", want, strict=True):
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-7)
