"""Dense layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, mul
from dslnet.core.types import TensorType
from dslnet.ops.channels import Channels, units
from dslnet.ops.factoring import Factoring
from dslnet.ops.lowering import OnnxNodeContext, torch_bound_uniform
from dslnet.ops.positional import InferredSize
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, need_static, register
from dslnet.ops.roles import TORCH_LAYER


class LinearAttrs(OpAttrs):
    features: int = Field(gt=0, description="output features")
    bias: bool = Field(True, description="learn an additive bias")


@register
class Linear(OpDef):
    name = "linear"
    positional = ("features",)
    inferred = InferredSize("input feature count", axis=-1)
    family = "linear"
    doc = "Dense layer y = x W^T + b over the last axis; input features are inferred."
    Attrs = LinearAttrs
    param_roles = TORCH_LAYER
    examples = (
        "in x: float32[N, 5]\nout y = x -> linear(8)",
        "in x: float32[N, T, 6]\nout y = linear(x, 4, bias=false)",
    )

    def channels(self, attrs: LinearAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        rank = inputs[0].rank
        return units(rank - 1, "features", self.param_roles)

    def factoring(self, attrs: LinearAttrs, rank: int) -> Factoring | None:
        first = {**attrs.model_dump(), "features": rank, "bias": False}
        return Factoring(("linear", first), ("linear", attrs.model_dump()))

    def infer(self, attrs: LinearAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank < 1:
            raise ShapeError(f"linear needs an input of rank >= 1, got {x}")
        if not x.dtype.is_float:
            raise ShapeError(f"linear needs a floating-point input, got {x}")
        need_static(x.shape[-1], "input feature size (last axis)", "linear", x)
        return (x.with_shape((*x.shape[:-1], attrs.features)),)

    def params(
        self, attrs: LinearAttrs, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[int, ...]]:
        (x,) = inputs
        in_features = need_static(x.shape[-1], "input feature size (last axis)", "linear", x)
        shapes: dict[str, tuple[int, ...]] = {"weight": (attrs.features, in_features)}
        if attrs.bias:
            shapes["bias"] = (attrs.features,)
        return shapes

    def init_param(
        self, attrs: LinearAttrs, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        shape = self.params(attrs, inputs)[role]
        return torch_bound_uniform(
            shape, need_static(inputs[0].shape[-1], "input size", "linear", inputs[0]), rng
        )

    def flops(
        self, attrs: LinearAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        macs: Dim = inputs[0].shape[-1]
        for d in outputs[0].shape:
            macs = mul(macs, d)
        return macs

    def torch_module(self, attrs: LinearAttrs, inputs: Sequence[TensorType]) -> str:
        in_features = inputs[0].shape[-1]
        bias = "" if attrs.bias else ", bias=False"
        return f"nn.Linear({in_features}, {attrs.features}{bias})"

    def onnx(self, attrs: LinearAttrs, ctx: OnnxNodeContext) -> None:
        (x,), (y,) = ctx.inputs, ctx.outputs
        weight = ctx.param("weight")
        if ctx.input_types[0].rank == 2:
            args = [x, weight, ctx.param("bias")] if attrs.bias else [x, weight]
            ctx.add_node("Gemm", args, [y], transB=1)
            return
        # MatMul wants W^T: a Transpose of the initializer, which ORT folds once at load.
        (w_t,) = ctx.add_node("Transpose", [weight], perm=(1, 0))
        if not attrs.bias:
            ctx.add_node("MatMul", [x, w_t], [y])
            return
        (xw,) = ctx.add_node("MatMul", [x, w_t])
        ctx.add_node("Add", [xw, ctx.param("bias")], [y])
