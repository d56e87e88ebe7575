"""tril and triu: the lower or upper triangle of the last two axes, the rest zero.

With a made tensor they write masks: `tril(ones([T, T]))` is a causal mask (made at
each call when T is symbolic; with literal sizes, `ones` is a buffer made once and the
triangle is taken of it at each call, which costs one pass over T*T elements).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.types import DType, TensorType
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register


class TriangleAttrs(OpAttrs):
    diagonal: int = Field(
        0, description="which diagonal bounds it: 0 the main one, k > 0 above, k < 0 below"
    )


class _Triangle(OpDef):
    family = "shape"
    positional = ("diagonal",)
    Attrs = TriangleAttrs
    aliases = {"k": "diagonal"}
    upper: ClassVar[bool] = False

    def infer(self, attrs: TriangleAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank < 2:
            raise ShapeError(
                f"{self.name} takes a triangle of the last two axes, so it needs an input of "
                f"rank 2 or more, got {x}"
            )
        if x.dtype in (DType.bfloat16, DType.int8, DType.uint8, DType.int16):
            # ONNX Runtime's Trilu has no kernel for these (it has for float16).
            raise ShapeError(
                f"{self.name}: ONNX Runtime has no kernel for {x.dtype}; give a float16, "
                f"float32, float64, int32, int64 or bool tensor, got {x}"
            )
        return (x,)

    def torch_expr(
        self, attrs: TriangleAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        k = f", diagonal={attrs.diagonal}" if attrs.diagonal else ""
        return f"torch.{self.name}({args[0]}{k})"

    def onnx(self, attrs: TriangleAttrs, ctx: OnnxNodeContext) -> None:
        k = ctx.add_initializer("diagonal", np.array(attrs.diagonal, dtype=np.int64))
        ctx.add_node("Trilu", [ctx.inputs[0], k], ctx.outputs, upper=int(self.upper))


@register
class Tril(_Triangle):
    name = "tril"
    doc = "The lower triangle of the last two axes (on and below `diagonal`), zeros above."
    examples = (
        "in x: float32[N, 4, 4]\nout y = tril(x)",
        "in x: float32[N, T, 8]\nout y = tril(x, -1)",
        "in x: float32[N, T, 4]\nout y = matmul(tril(ones([T, T])), x)",
    )


@register
class Triu(_Triangle):
    name = "triu"
    upper = True
    doc = "The upper triangle of the last two axes (on and above `diagonal`), zeros below."
    examples = (
        "in x: float32[N, 3, 5]\nout y = triu(x, 1)",
        "in x: int64[N, T, T]\nout y = triu(x, k=2)",
    )
