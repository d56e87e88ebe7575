"""A size as a value: the scalar tensor holding a size of a tensor, read at run time.

`loss / N`, `x * size(x, 1)`: where a spec combines a tensor with a symbolic size (N,
known only at run time), the expander makes this op's node on a tensor that has that
size (or sizes whose product it is: N*T, 2*N), and the size becomes a rank-0 tensor of
the other operand's dtype: `x.shape[0]` in PyTorch, Shape, Mul, Squeeze and Cast in
ONNX. The model keeps its symbolic sizes: nothing is fixed when it is exported.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ConfigDict, Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, dim_str
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ops.constant_tensors import ElementType, Size
from dslnet.ops.lowering import ONNX_DTYPES, OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register
from dslnet.ops.reshape import express


class SizeValueAttrs(OpAttrs):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True
    )

    size: Size = Field(
        description="the size: one of the input's sizes, or k times a product of them"
    )
    dtype: ElementType = Field(DType.float32, description="element type of the scalar")


def _plan(size: Dim, source: TensorType) -> tuple[int, list[int]]:
    """(k, axes): size == k * prod(source's sizes at axes)."""
    if isinstance(size, int):
        return size, []
    found = express(size, source.shape)
    assert found is not None, "infer checked that the input has the size"
    return found


@register
class SizeValue(OpDef):
    name = "size_value"
    positional = ("size",)
    family = "shape"
    doc = (
        "A size of the input (N, or k times a product of its sizes) as a rank-0 tensor "
        "read at run time; `y / N` in a spec makes one."
    )
    Attrs = SizeValueAttrs
    examples = (
        "in x: float32[N, 3]\nout y = x / N",
        "in x: float32[N, T, 2]\nout y = x * (2 * N * T)",
        'in x: int64[N, 4]\nout y = size_value(x, N, dtype="int64")',
    )

    def infer(self, attrs: SizeValueAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if attrs.dtype is DType.bool:
            raise ShapeError(f"{self.name}: a size is a number, not a bool")
        if not isinstance(attrs.size, int) and express(attrs.size, x.shape) is None:
            raise ShapeError(
                f"{self.name}: {dim_str(attrs.size)} is not a size of {x} (nor a "
                f"multiple of a product of its sizes {shape_str(x.shape)}), so it cannot "
                f"be read from it at run time"
            )
        if isinstance(attrs.size, int) and attrs.size < 0:
            raise ShapeError(f"{self.name}: a size must not be negative, got {attrs.size}")
        return (TensorType(dtype=attrs.dtype, shape=()),)

    def torch_expr(
        self, attrs: SizeValueAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        k, axes = _plan(attrs.size, inputs[0])
        factors = [str(k)] if k != 1 or not axes else []
        factors += [f"{args[0]}.shape[{a}]" for a in axes]
        return (
            f"torch.scalar_tensor({' * '.join(factors)}, dtype=torch.{attrs.dtype.value}, "
            f"device={args[0]}.device)"
        )

    def onnx(self, attrs: SizeValueAttrs, ctx: OnnxNodeContext) -> None:
        k, axes = _plan(attrs.size, ctx.input_types[0])
        factors = [ctx.add_node("Shape", [ctx.inputs[0]], start=a, end=a + 1)[0] for a in axes]
        if k != 1 or not factors:
            factors.append(ctx.add_initializer("size_factor", np.array([k], dtype=np.int64)))
        size = factors[0]
        for factor in factors[1:]:
            (size,) = ctx.add_node("Mul", [size, factor])
        (scalar,) = ctx.add_node("Squeeze", [size])  # [1] -> [], the only axis
        ctx.add_node("Cast", [scalar], ctx.outputs, to=ONNX_DTYPES[attrs.dtype])
