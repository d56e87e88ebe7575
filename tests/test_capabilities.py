"""Capabilities an op declares (dslnet.ops.roles) and the behaviour they give a user's op.

Passes, the trainer and QAT ask an op for its parameter roles, running statistics and
fusable activation; they never go by names. So a user's op that declares them is
folded, pruned, factorised, frozen in eval and fused like a built-in, and a malformed
declaration is refused when the op registers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import Field

import dslnet
from dslnet.ir.printer import print_graph
from dslnet.ir.roles import bias_of, weight_of
from dslnet.ir.weights import init_weights
from dslnet.ops import (
    OnnxNodeContext,
    OpAttrs,
    OpDef,
    OpDefinitionError,
    ParamRoles,
    ShapeError,
    TensorType,
    need_static,
    register,
    registry,
)
from dslnet.ops.channels import Channels, units
from dslnet.ops.factoring import Factoring
from dslnet.passes.base import Model
from dslnet.passes.canonicalize import Canonicalize
from dslnet.passes.lowrank import LowRank
from dslnet.passes.prune import StructuredPrune
from dslnet.testing import torch_outputs

# --- a dense layer whose weight is `kernel` and whose bias is `offset` --------------------

DENSE_MODULE = """
class UserDense(nn.Module):
    def __init__(self, inputs: int, features: int, use_offset: bool) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(features, inputs) / inputs**0.5)
        self.offset = nn.Parameter(torch.zeros(features)) if use_offset else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.kernel.t()
        return y if self.offset is None else y + self.offset
"""


class DenseAttrs(OpAttrs):
    features: int = Field(gt=0)
    use_offset: bool = False


class UserDense(OpDef):
    name = "user_dense"
    family = "user"
    Attrs = DenseAttrs
    positional = ("features",)
    param_roles = ParamRoles(
        weight="kernel", out_axis=0, in_axis=1, bias="offset", bias_attr="use_offset"
    )
    torch_helpers = DENSE_MODULE

    def infer(self, attrs: DenseAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank != 2:
            raise ShapeError(f"user_dense needs [N, F], got {x}")
        return (x.with_shape((x.shape[0], attrs.features)),)

    def params(self, attrs: DenseAttrs, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        x = inputs[0]
        shapes = {"kernel": (attrs.features, need_static(x.shape[1], "features", self.name, x))}
        return shapes | ({"offset": (attrs.features,)} if attrs.use_offset else {})

    def init_param(
        self, attrs: DenseAttrs, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        return rng.normal(size=self.params(attrs, inputs)[role]).astype(np.float32)

    def channels(self, attrs: DenseAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        return units(1, "features", self.param_roles)

    def factoring(self, attrs: DenseAttrs, rank: int) -> Factoring | None:
        first = {"features": rank, "use_offset": False}
        return Factoring((self.name, first), (self.name, attrs.model_dump()))

    def torch_module(self, attrs: DenseAttrs, inputs: Sequence[TensorType]) -> str:
        return f"UserDense({inputs[0].shape[1]}, {attrs.features}, {attrs.use_offset})"

    def onnx(self, attrs: DenseAttrs, ctx: OnnxNodeContext) -> None:
        (kernel_t,) = ctx.add_node("Transpose", [ctx.param("kernel")], perm=(1, 0))
        if not attrs.use_offset:
            ctx.add_node("MatMul", [ctx.inputs[0], kernel_t], ctx.outputs)
            return
        (y,) = ctx.add_node("MatMul", [ctx.inputs[0], kernel_t])
        ctx.add_node("Add", [y, ctx.param("offset")], ctx.outputs)


@pytest.fixture
def dense() -> Iterator[None]:
    with registry.scoped():
        register(UserDense)
        yield


def _model(text: str, network: str, seed: int = 0) -> Model:
    graph = dslnet.loads(text).ir(network)
    return Model(graph, init_weights(graph, seed))


FOLDED = """
network Net() {
    in x: float32[N, 6]
    out y = x -> user_dense(8) -> batchnorm -> relu -> linear(3)
}
"""


def test_a_user_layer_declaring_weight_and_bias_takes_a_folded_batchnorm(dense: None) -> None:
    model = _model(FOLDED, "Net")
    weights = dict(model.weights)
    rng = np.random.default_rng(1)
    weights["batchnorm1.running_mean"] = rng.normal(size=8).astype(np.float32)
    weights["batchnorm1.running_var"] = rng.uniform(0.5, 2.0, size=8).astype(np.float32)
    model = Model(model.graph, weights)
    result = Canonicalize().run(model)
    graph = result.model.graph
    assert [n.op for n in graph.nodes] == ["user_dense", "relu", "linear"]
    (layer,) = [n for n in graph.nodes if n.op == UserDense.name]
    assert layer.attrs["use_offset"] is True  # the bias folding needs, switched on
    assert (weight_of(layer), bias_of(layer)) == ("user_dense1.kernel", "user_dense1.offset")
    assert "user_dense1.offset" in result.model.weights
    x = {"x": rng.normal(size=(4, 6)).astype(np.float32)}
    (expected,) = torch_outputs(model.graph, model.weights, x)
    (got,) = torch_outputs(graph, result.model.weights, x)
    np.testing.assert_allclose(got, expected, atol=1e-5)


PRUNED = """
network Net() {
    in x: float32[N, 6]
    out y = x -> user_dense(8, use_offset=true) -> relu -> linear(3)
}
"""


def test_pruning_scores_a_user_layer_by_its_weight_not_its_bias(dense: None) -> None:
    model = _model(PRUNED, "Net")
    weights = dict(model.weights)
    strong = np.arange(4)  # big weights, no offset; the other four: tiny weights, big offsets
    kernel = np.full((8, 6), 0.01, dtype=np.float32)
    kernel[strong] = 1.0
    offset = np.full(8, 100.0, dtype=np.float32)
    offset[strong] = 0.0
    weights |= {"user_dense1.kernel": kernel, "user_dense1.offset": offset}
    result = StructuredPrune(0.5).run(Model(model.graph, weights))
    pruned = result.model.weights
    assert pruned["user_dense1.kernel"].shape == (4, 6)
    np.testing.assert_array_equal(pruned["user_dense1.kernel"], kernel[strong])
    np.testing.assert_array_equal(pruned["user_dense1.offset"], offset[strong])
    assert pruned["linear1.weight"].shape == (3, 4)


FACTORED = """
network Net() {
    in x: float32[N, 16]
    out y = x -> user_dense(16, use_offset=true) -> relu -> linear(3)
}
"""


def test_lowrank_splits_a_user_layer_by_its_declared_weight(dense: None) -> None:
    model = _model(FACTORED, "Net")
    result = LowRank(rank=2).run(model)
    assert result.modified, result.notes
    weights = result.model.weights
    assert weights["user_dense1_down.kernel"].shape == (2, 16)
    assert weights["user_dense1_up.kernel"].shape == (16, 2)
    np.testing.assert_array_equal(
        weights["user_dense1_up.offset"], model.weights["user_dense1.offset"]
    )
    assert "user_dense1_down.offset" not in weights


def test_the_printer_marks_the_module_of_a_user_layer_owning_its_roles(dense: None) -> None:
    text = print_graph(dslnet.loads(PRUNED).ir("Net"))
    assert "use_offset=true)  @user_dense1  #" in text


def test_init_schemes_and_sparsity_treat_the_declared_weight_as_the_weight(dense: None) -> None:
    from dslnet.backends.torch_init import torch_lines
    from dslnet.passes.sparsity import MagnitudeSparsity

    text = """
network Net() {
    in x: float32[N, 64]
    out y = x -> user_dense(32, use_offset=true, init="kaiming") -> relu -> linear(3)
}
"""
    model = _model(text, "Net")
    kernel, offset = model.weights["user_dense1.kernel"], model.weights["user_dense1.offset"]
    assert abs(float(kernel.std()) - math.sqrt(2 / 64)) < 0.02  # drawn by the scheme
    assert not offset.any()  # a bias starts at zero under a scheme
    lines = torch_lines("kaiming", "layer", {"kernel": (32, 64), "offset": (32,)}, UserDense())
    assert lines == [
        'nn.init.kaiming_normal_(self.layer.kernel, nonlinearity="relu")',
        "nn.init.zeros_(self.layer.offset)",
    ]
    thinned = MagnitudeSparsity(0.5).run(model).model.weights
    assert float((thinned["user_dense1.kernel"] == 0).mean()) == pytest.approx(0.5, abs=0.01)


class UndeclaredDense(UserDense):
    """The same layer, saying nothing of its parameters' roles."""

    name = "undeclared_dense"
    param_roles = ParamRoles()
    channels = OpDef.channels  # type: ignore[assignment]
    factoring = OpDef.factoring  # type: ignore[assignment]


def test_an_op_saying_no_weight_refuses_init_and_keeps_its_own_under_a_block() -> None:
    with registry.scoped():
        register(UndeclaredDense)
        call = 'x -> undeclared_dense(32, init="kaiming")'
        with pytest.raises(dslnet.CompileError, match="init= cannot apply to it"):
            dslnet.loads(f"network Net() {{ in x: float32[N, 64]\n out y = {call} }}").ir("Net")
        text = """
block Dense() {
    in x: float32[N, 64]
    out y = x -> undeclared_dense(32)
}
network Net() {
    in x: float32[N, 64]
    out y = x -> Dense(init="zeros")
}
"""
        graph = dslnet.loads(text).ir("Net")
        kernel = init_weights(graph, 0)["dense1.undeclared_dense1.kernel"]
        assert kernel.any()  # its own draw, not zeroed by the block's scheme
        assert "zeros_" not in dslnet.loads(text).torch_source("Net")


# --- registration refuses a malformed declaration ------------------------------------------


def _problems(**declared: Any) -> str:
    cls = type("Broken", (UserDense,), {"name": "broken", **declared})
    with registry.scoped(), pytest.raises(OpDefinitionError) as err:
        register(cls)
    return str(err.value)


def test_registration_checks_the_parameter_roles() -> None:
    assert "its param_roles must be a dslnet.ops.ParamRoles" in _problems(param_roles="kernel")
    bad_attr = _problems(param_roles=ParamRoles(weight="kernel", bias="offset", bias_attr="bias"))
    assert "param_roles.bias_attr 'bias' is not one of its attributes" in bad_attr
    not_bool = _problems(
        param_roles=ParamRoles(weight="kernel", bias="offset", bias_attr="features")
    )
    assert "param_roles.bias_attr 'features' must be a bool attribute" in not_bool
    assert "give a bias_attr but no bias" in _problems(
        param_roles=ParamRoles(weight="kernel", bias_attr="use_offset")
    )
    same = _problems(param_roles=ParamRoles(weight="kernel", out_axis=1, in_axis=1))
    assert "output units and input channels on the same axis (1)" in same
    assert "param_roles.out_axis must count from the front" in _problems(
        param_roles=ParamRoles(weight="kernel", out_axis=-1)
    )
    assert "defines factoring but its param_roles name no weight" in _problems(
        param_roles=ParamRoles(bias="offset")
    )


def test_registration_checks_running_statistics_and_fusable_clamps() -> None:
    assert "declares running_statistics but no buffers" in _problems(
        running_statistics=lambda self, attrs: True
    )
    assert "fusable_clamp must be a pair of numbers" in _problems(fusable_clamp=0.0)
    assert "fusable_clamp must have low < high" in _problems(fusable_clamp=(6.0, 0.0))
    assert "has no parameters, but it has params" in _problems(fusable_clamp=(0.0, 6.0))


# --- a user norm with running statistics stays in eval when frozen -------------------------

MEAN_NORM_MODULE = '''
class MeanNorm(nn.Module):
    """x minus a running mean of each feature (updated in training only)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(0.9).add_(0.1 * x.mean(0))
        return x - self.running_mean
'''


class MeanNorm(OpDef):
    name = "mean_norm"
    family = "user"
    torch_helpers = MEAN_NORM_MODULE

    def running_statistics(self, attrs: Any) -> bool:
        return True

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (inputs[0],)

    def buffers(self, attrs: Any, inputs: Sequence[TensorType]) -> dict[str, Any]:
        x = inputs[0]
        return {"running_mean": ((need_static(x.shape[-1], "features", self.name, x),), x.dtype)}

    def init_param(
        self, attrs: Any, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        return np.zeros(self.buffers(attrs, inputs)[role][0], dtype=np.float32)

    def torch_module(self, attrs: Any, inputs: Sequence[TensorType]) -> str:
        return f"MeanNorm({inputs[0].shape[-1]})"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Sub", [ctx.inputs[0], ctx.param("running_mean")], ctx.outputs)


FROZEN = """
network Backbone() {
    in x: float32[N, 8]
    out h = x -> linear(8) -> mean_norm -> relu
}

network Net() {
    in x: float32[N, 8]
    @freeze
    layer backbone = Backbone()
    out logits = x -> backbone -> linear(3)
}

train Fit() {
    layer net = Net()
    in x: float32[N, 8]
    in y: int64[N]
    out loss = cross_entropy(net(x), y)
    epochs: 1
    batch_size: 16
}
"""


def test_a_frozen_user_norm_with_running_statistics_keeps_them() -> None:
    from dslnet.training.trainer import Trainer

    with registry.scoped():
        register(MeanNorm)
        trainer = Trainer(dslnet.loads(FROZEN).training("Fit"), samples=64)
        before = trainer.state_dict("net")["backbone.mean_norm1.running_mean"].clone()
        trainer.fit()
        after = trainer.state_dict("net")["backbone.mean_norm1.running_mean"]
    assert torch.equal(before, after)


# --- a user activation that quantization fuses into the layer before it ------------------


class ClampedRelu(OpDef):
    name = "user_relu"
    family = "user"
    fusable_clamp = (0.0, math.inf)

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (inputs[0],)

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"torch.relu({args[0]})"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Relu", ctx.inputs, ctx.outputs)


FUSED = """
network Net() {
    in x: float32[N, 8]
    out y = x -> linear(16) -> user_relu -> linear(4)
}
"""


def test_qat_applies_a_fusable_user_activation_at_the_layer_before_it() -> None:
    pytest.importorskip("onnxruntime")
    from dslnet.training.qat import prepare_qat

    with registry.scoped():
        register(ClampedRelu)
        program = dslnet.loads(FUSED)
        net = program.torch("Net")
        handle = prepare_qat(net, program.ir("Net"))
    fused = [p for p in handle.points if p.clamp is not None]
    assert [(p.modules, p.clamp) for p in fused] == [(("linear1",), (0.0, math.inf))]
    assert handle.float_points == ()
