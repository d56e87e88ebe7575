"""Binary elementwise ops with numpy broadcasting, scalar constants, and matmul."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, dims_equal, mul
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ops.channels import Channels
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.opdef import FLOAT32_MAX
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register


def broadcast(op: str, a: TensorType, b: TensorType) -> TensorType:
    """numpy broadcasting; symbolic dims must be provably equal (or one side is 1)."""
    if a.dtype != b.dtype:
        raise ShapeError(f"{op}: dtypes differ: {a} and {b}")
    rank = max(a.rank, b.rank)
    pa = (1,) * (rank - a.rank) + a.shape
    pb = (1,) * (rank - b.rank) + b.shape
    out: list[Dim] = []
    for i, (x, y) in enumerate(zip(pa, pb)):
        if dims_equal(x, y) or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(
                f"{op}: shapes {shape_str(a.shape)} and {shape_str(b.shape)} do not match "
                f"(axis {i - rank}: {x} vs {y})"
            )
    return TensorType(dtype=a.dtype, shape=tuple(out))


class _Binary(OpDef):
    family = "elementwise"
    inputs = ("a", "b")
    operator: ClassVar[str]
    onnx_op: ClassVar[str]

    def channels(self, attrs: object, inputs: Sequence[TensorType]) -> Channels | None:
        a, b = inputs
        # Broadcasting one side over the other would tie channels to a size-1 axis.
        return Channels("keep", inputs=(0, 1)) if a.shape == b.shape else None

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        a, b = inputs
        if DType.bool in (a.dtype, b.dtype):  # torch would compute it, ONNX has no kernel
            raise ShapeError(f"{self.name}: no arithmetic on bool tensors, got {a} and {b}")
        return (broadcast(self.name, a, b),)

    def torch_expr(self, attrs: object, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{args[0]} {self.operator} {args[1]}"

    def onnx(self, attrs: object, ctx: OnnxNodeContext) -> None:
        ctx.add_node(self.onnx_op, ctx.inputs, ctx.outputs)


@register
class Add(_Binary):
    name = "add"
    operator = "+"
    onnx_op = "Add"
    examples = (
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = add(a, b)",
        "in a: float32[N, 3, 4]\nin b: float32[4]\nout y = a + b",
    )
    doc = "a + b, broadcasting (`+` in a spec)."


@register
class Sub(_Binary):
    name = "sub"
    operator = "-"
    onnx_op = "Sub"
    examples = (
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = sub(a, b)",
        "in a: float32[N, 3, 4]\nin b: float32[4]\nout y = a - b",
    )
    doc = "a - b, broadcasting (`-` in a spec)."


@register
class Mul(_Binary):
    name = "mul"
    operator = "*"
    onnx_op = "Mul"
    examples = (
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = mul(a, b)",
        "in a: float32[N, 3, 4]\nin b: float32[4]\nout y = a * b",
    )
    doc = "a * b, broadcasting (`*` in a spec)."


@register
class Div(_Binary):
    name = "div"
    operator = "/"
    onnx_op = "Div"
    examples = (
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = div(a, b)",
        "in a: float32[N, 3, 4]\nin b: float32[4]\nout y = a / b",
    )
    doc = "a / b, broadcasting (`/` in a spec); float tensors only."

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (out,) = super().infer(attrs, inputs)
        if not out.dtype.is_float:  # torch divides truly (a float result), ONNX rounds
            raise ShapeError(
                f"div: {out.dtype} tensors do not divide the same way in PyTorch (a float "
                f"result) and ONNX (rounded to {out.dtype}); divide float tensors"
            )
        return (out,)


class ConstantAttrs(OpAttrs):
    value: float = Field(description="the scalar")
    dtype: DType = Field(DType.float32, description="element type")

    dtype_range = frozenset({"value"})  # checked against dtype (Constant.infer)


@register
class Constant(OpDef):
    name = "constant"
    positional = ("value",)
    family = "elementwise"
    doc = "A scalar tensor; `x * 0.5` in a spec makes one."
    Attrs = ConstantAttrs
    examples = ("in x: float32[N, 3]\nout y = x * 0.5 + 2",)
    inputs = ()
    torch_inline = True  # `h * 0.5`, not a local holding 0.5

    def infer(self, attrs: ConstantAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        problem = _unrepresentable(attrs.value, attrs.dtype)
        if problem:
            raise ShapeError(f"the constant {attrs.value:g} {problem}")
        return (TensorType(dtype=attrs.dtype, shape=()),)

    def torch_expr(
        self, attrs: ConstantAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        # A Python scalar: torch keeps the other operand's dtype, and `h * 0.5` reads well.
        # An int tensor takes an int (`x * 2.0` would make torch's result float).
        return repr(attrs.value if attrs.dtype.is_float else int(attrs.value))

    def onnx(self, attrs: ConstantAttrs, ctx: OnnxNodeContext) -> None:
        value = np.array(attrs.value, dtype=attrs.dtype.value)
        ctx.add_node("Constant", [], ctx.outputs, value=value)

    def scalar_value(self, attrs: ConstantAttrs) -> float | None:
        return attrs.value


def _unrepresentable(value: float, dtype: DType) -> str | None:
    """Why `value` cannot be a `dtype` scalar exactly as written, or None when it can."""
    if dtype is DType.bool:
        return "cannot combine with a bool tensor (no arithmetic on bools)"
    return number_problem(
        value,
        dtype,
        fraction=f"and the other operand is {dtype}: PyTorch would make a float result, "
        f"ONNX round the constant; use a float tensor",
    )


# The largest value of each float dtype (numpy's finfo(...).max; bfloat16's is a little
# under its true 3.3895e38) and the range of each integer dtype (numpy's iinfo), written
# out so that checking a spec does not import numpy (tests/test_lazy_imports.py compares).
FLOAT_MAX = {
    DType.float16: 65504.0,
    DType.bfloat16: 3.39e38,
    DType.float32: FLOAT32_MAX,
    DType.float64: sys.float_info.max,
}
INT_RANGE = {
    DType.int8: (-(2**7), 2**7 - 1),
    DType.uint8: (0, 2**8 - 1),
    DType.int16: (-(2**15), 2**15 - 1),
    DType.int32: (-(2**31), 2**31 - 1),
    DType.int64: (-(2**63), 2**63 - 1),
}


def number_problem(value: float, dtype: DType, *, fraction: str) -> str | None:
    """Why a number or integer `dtype` cannot hold `value` exactly as written (out of
    its range; or a fraction in an integer dtype, `fraction` saying why that matters),
    or None when it can. The one rule for constants written next to a tensor."""
    if math.isnan(value):
        return "is not a number"
    if dtype.is_float:
        largest = FLOAT_MAX[dtype]
        if abs(value) > largest:
            return f"is out of {dtype}'s range (largest {largest:g})"
        return None
    if not float(value).is_integer():
        return f"is not a whole number, {fraction}"
    least, most = INT_RANGE[dtype]
    if not least <= value <= most:
        return f"is out of {dtype}'s range ({least} to {most})"
    return None


@register
class MatMul(OpDef):
    name = "matmul"
    family = "elementwise"
    doc = (
        "Matrix product with torch.matmul's rules: batch axes broadcast; a 1-D operand is "
        "a vector (dot product for two)."
    )
    inputs = ("a", "b")
    examples = (
        "in a: float32[N, 3, 4]\nin b: float32[4, 5]\nout y = matmul(a, b)",
        "in a: float32[N, 1, T, 4]\nin b: float32[2, 4, T]\nout y = matmul(a, b)",
        "in a: float32[N, 4]\nin b: float32[4]\nout y = matmul(a, b)",
    )

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        a, b = inputs
        if a.dtype != b.dtype:
            raise ShapeError(f"matmul: dtypes differ: {a} and {b}")
        if a.rank == 0 or b.rank == 0:
            raise ShapeError(f"matmul needs inputs of rank >= 1, got {a} and {b}")
        ka = a.shape[-1]
        kb = b.shape[0] if b.rank == 1 else b.shape[-2]
        if not dims_equal(ka, kb):
            where = "its only axis" if b.rank == 1 else "axis -2"
            raise ShapeError(
                f"matmul: a {a} has {ka} columns (last axis) but b {b} has {kb} rows "
                f"({where}); they must be equal"
            )
        if a.rank == 1 and b.rank == 1:
            return (a.with_shape(()),)
        rows = () if a.rank == 1 else (a.shape[-2],)
        cols = () if b.rank == 1 else (b.shape[-1],)
        batch_a = TensorType(dtype=a.dtype, shape=a.shape[:-2])
        batch_b = TensorType(dtype=b.dtype, shape=b.shape[:-2])
        try:
            batch = broadcast(self.name, batch_a, batch_b).shape
        except ShapeError:
            raise ShapeError(
                f"matmul: the batch axes of a {a} and b {b} do not broadcast "
                f"({shape_str(batch_a.shape)} vs {shape_str(batch_b.shape)})"
            ) from None
        return (a.with_shape((*batch, *rows, *cols)),)

    def flops(
        self, attrs: object, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        macs: Dim = inputs[0].shape[-1]  # one multiply-accumulate per output and inner index
        for d in outputs[0].shape:
            macs = mul(macs, d)
        return macs

    def torch_expr(self, attrs: object, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{args[0]} @ {args[1]}"

    def onnx(self, attrs: object, ctx: OnnxNodeContext) -> None:
        ctx.add_node("MatMul", ctx.inputs, ctx.outputs)
