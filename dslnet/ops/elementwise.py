"""Binary elementwise ops with numpy broadcasting, and scalar constants."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dslnet.ir.symbolic import Dim, dims_equal
from dslnet.ir.types import DType, TensorType, shape_str
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

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        a, b = inputs
        return (broadcast(self.name, a, b),)


@register
class Add(_Binary):
    name = "add"
    doc = "a + b, broadcasting (`+` in a spec)."


@register
class Sub(_Binary):
    name = "sub"
    doc = "a - b, broadcasting (`-` in a spec)."


@register
class Mul(_Binary):
    name = "mul"
    doc = "a * b, broadcasting (`*` in a spec)."


@register
class Div(_Binary):
    name = "div"
    doc = "a / b, broadcasting (`/` in a spec)."


class ConstantAttrs(OpAttrs):
    value: float = Field(description="the scalar")
    dtype: DType = Field(DType.float32, description="element type")


@register
class Constant(OpDef):
    name = "constant"
    family = "elementwise"
    doc = "A scalar tensor; `x * 0.5` in a spec makes one."
    Attrs = ConstantAttrs
    inputs = ()

    def infer(self, attrs: ConstantAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (TensorType(dtype=attrs.dtype, shape=()),)
