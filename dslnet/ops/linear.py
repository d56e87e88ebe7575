"""Dense layers."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dslnet.ir.types import TensorType
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, need_static, register


class LinearAttrs(OpAttrs):
    features: int = Field(gt=0, description="output features")
    bias: bool = Field(True, description="learn an additive bias")


@register
class Linear(OpDef):
    name = "linear"
    family = "linear"
    doc = "Dense layer y = x W^T + b over the last axis; input features are inferred."
    Attrs = LinearAttrs

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
