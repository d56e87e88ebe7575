"""Elementwise comparisons of tensors (`a < b` in a spec), broadcasting, giving bool
tensors: what `where` and `masked_fill` (dslnet.ops.select) take as a condition.

NaN compares as IEEE 754 says in both backends: unequal to everything, itself too,
so `!=` is true and the others false; -0.0 equals 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from dslnet.core.types import DType, TensorType
from dslnet.ops.elementwise import broadcast
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpDef, ShapeError, register


class _Compare(OpDef):
    family = "compare"
    inputs = ("a", "b")
    operator: ClassVar[str]
    onnx_op: ClassVar[str]
    # Whether the comparison needs an order: ONNX has no Less/Greater kernel for bools.
    ordered: ClassVar[bool] = True

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        a, b = inputs
        if self.ordered and DType.bool in (a.dtype, b.dtype):
            raise ShapeError(
                f"{self.name} ('{self.operator}'): bool tensors have no order, got {a} and "
                f"{b}; compare them with == or !="
            )
        shape = broadcast(f"{self.name} ('{self.operator}')", a, b).shape
        return (TensorType(dtype=DType.bool, shape=shape),)

    def torch_expr(self, attrs: object, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{args[0]} {self.operator} {args[1]}"

    def onnx(self, attrs: object, ctx: OnnxNodeContext) -> None:
        ctx.add_node(self.onnx_op, ctx.inputs, ctx.outputs)


def _examples(operator: str, name: str) -> tuple[str, ...]:
    return (
        f"in a: float32[N, 4]\nin b: float32[N, 4]\nout y = {name}(a, b)",
        f"in a: float32[N, 3, 4]\nin b: float32[4]\nout y = a {operator} b",
        f"in x: int64[N, 5]\nout y = x {operator} 2",
    )


@register
class Equal(_Compare):
    name = "equal"
    operator = "=="
    onnx_op = "Equal"
    ordered = False
    examples = (
        *_examples("==", "equal"),
        "in a: float32[N, 3]\nin b: float32[N, 3]\nout y = (a > 0) == (b > 0)",
    )
    doc = "a == b elementwise, a bool tensor (`==` in a spec), broadcasting."


@register
class NotEqual(_Compare):
    name = "not_equal"
    operator = "!="
    onnx_op = "Equal"
    ordered = False
    examples = _examples("!=", "not_equal")
    doc = "a != b elementwise, a bool tensor (`!=` in a spec), broadcasting; true where NaN."

    def onnx(self, attrs: object, ctx: OnnxNodeContext) -> None:
        (same,) = ctx.add_node("Equal", ctx.inputs)
        ctx.add_node("Not", [same], ctx.outputs)


@register
class Less(_Compare):
    name = "less"
    operator = "<"
    onnx_op = "Less"
    examples = _examples("<", "less")
    doc = "a < b elementwise, a bool tensor (`<` in a spec), broadcasting."


@register
class LessEqual(_Compare):
    name = "less_equal"
    operator = "<="
    onnx_op = "LessOrEqual"
    examples = _examples("<=", "less_equal")
    doc = "a <= b elementwise, a bool tensor (`<=` in a spec), broadcasting."


@register
class Greater(_Compare):
    name = "greater"
    operator = ">"
    onnx_op = "Greater"
    examples = _examples(">", "greater")
    doc = "a > b elementwise, a bool tensor (`>` in a spec), broadcasting."


@register
class GreaterEqual(_Compare):
    name = "greater_equal"
    operator = ">="
    onnx_op = "GreaterOrEqual"
    examples = _examples(">=", "greater_equal")
    doc = "a >= b elementwise, a bool tensor (`>=` in a spec), broadcasting."
