"""Elementwise math: functions of one tensor (exp, log, sqrt, abs...), clamp, and
minimum/maximum and pow (`**`) of two tensors broadcasting as add does.

Where the backends' kernels part ways on edge values the lowerings pick one answer for
both: 1 / x gives +inf at a zero of either sign (which sign a zero has depends on how
each backend computed it, e.g. gelu far below 0), a missing clamp bound is infinite
(ONNX Runtime's Clip would stop at the dtype's largest finite value), and `x ** 0.5`
is sqrt, as torch computes a number exponent of +-0.5.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator

from dslnet.core.lazy import numpy as np
from dslnet.core.types import DType, TensorType
from dslnet.ops.activation import _SameType
from dslnet.ops.channels import Channels
from dslnet.ops.elementwise import _Binary, broadcast, number_problem
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register


class _FloatMath(_SameType):
    """A float-only function of one tensor (torch would make an int input's result
    float, ONNX has no integer kernel)."""

    family = "elementwise"


@register
class Exp(_FloatMath):
    name = "exp"
    doc = "e ** x."
    examples = ("in x: float32[N, 5]\nout y = exp(x)",)
    torch_fn = "torch.exp"
    onnx_op = "Exp"


@register
class Log(_FloatMath):
    name = "log"
    doc = "Natural logarithm; NaN below 0, -inf at 0."
    examples = ("in x: float32[N, 5]\nout y = (abs(x) + 0.01) -> log",)
    torch_fn = "torch.log"
    onnx_op = "Log"


@register
class Sqrt(_FloatMath):
    name = "sqrt"
    doc = "Square root; NaN below 0."
    examples = ("in x: float32[N, 5]\nout y = abs(x) -> sqrt",)
    torch_fn = "torch.sqrt"
    onnx_op = "Sqrt"


def _scalar(ctx: OnnxNodeContext, hint: str, value: float) -> str:
    """A scalar constant of the node's first input's dtype."""
    return ctx.add_initializer(hint, np.array(value, dtype=ctx.input_types[0].dtype.value))


def _unsigned_zero(ctx: OnnxNodeContext, x: str) -> str:
    """x with -0 made +0: a Where, since ONNX Runtime removes an addition of 0."""
    zero = _scalar(ctx, "zero", 0.0)
    (is_zero,) = ctx.add_node("Equal", [x, zero])
    return ctx.add_node("Where", [is_zero, zero, x])[0]


class _PoleAtZero(_FloatMath):
    """A reciprocal (of x, of its root): +inf at a zero of either sign in both backends
    (the torch code adds 0.0, which makes -0 +0)."""

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{self.torch_fn}({args[0]} + 0.0)"


@register
class Rsqrt(_PoleAtZero):
    name = "rsqrt"
    doc = "1 / sqrt(x); NaN below 0, +inf at 0 of either sign."
    examples = ("in x: float32[N, 5]\nout y = (abs(x) + 0.1) -> rsqrt",)
    torch_fn = "torch.rsqrt"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        (root,) = ctx.add_node("Sqrt", [_unsigned_zero(ctx, ctx.inputs[0])])
        ctx.add_node("Reciprocal", [root], ctx.outputs)


@register
class Reciprocal(_PoleAtZero):
    name = "reciprocal"
    doc = "1 / x; +inf at 0 of either sign."
    examples = ("in x: float32[N, 5]\nout y = (abs(x) + 0.5) -> reciprocal",)
    torch_fn = "torch.reciprocal"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Reciprocal", [_unsigned_zero(ctx, ctx.inputs[0])], ctx.outputs)


class _NumericMath(_SameType):
    """A function of one tensor with an integer meaning too: any dtype but bool."""

    family = "elementwise"

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.dtype == DType.bool:
            raise ShapeError(f"{self.name} needs a numeric input, got {x}")
        return (x,)


@register
class Abs(_NumericMath):
    name = "abs"
    doc = "|x|; any numeric dtype."
    examples = (
        "in x: float32[N, 5]\nout y = abs(x)",
        "in x: int64[N, 5]\nout y = abs(x - 1)",
    )
    torch_fn = "torch.abs"
    onnx_op = "Abs"


@register
class Neg(_NumericMath):
    name = "neg"
    doc = "-x; any signed numeric dtype."
    examples = (
        "in x: float32[N, 5]\nout y = neg(x)",
        "in x: int32[N, 5]\nout y = neg(x - 1)",
    )
    torch_fn = "torch.neg"
    onnx_op = "Neg"

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = super().infer(attrs, inputs)
        if x.dtype == DType.uint8:  # torch wraps around, ONNX has no unsigned Neg
            raise ShapeError(f"neg needs a signed input, got {x}")
        return (x,)


class ClampAttrs(OpAttrs):
    min: float | None = Field(None, description="lower bound; none: no lower bound")
    # Checked even when left out: clamp(x) bounds nothing.
    max: float | None = Field(
        None, description="upper bound, at least min; none: no upper bound", validate_default=True
    )

    dtype_range = frozenset({"min", "max"})  # checked against the input's dtype (Clamp.infer)

    @field_validator("max")
    @classmethod
    def _bounds(cls, value: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min")
        if value is None and low is None:
            raise ValueError("must be given when min is not: clamp needs at least one bound")
        if value is not None and low is not None and value < low:
            raise ValueError(f"must be at least min {low!r}")
        return value


@register
class Clamp(_NumericMath):
    name = "clamp"
    positional = ("min", "max")
    doc = "x limited to [min, max] (either bound may be left out); any numeric dtype."
    Attrs = ClampAttrs
    examples = (
        "in x: float32[N, 6]\nout y = clamp(x, -0.5, 0.5)",
        "in x: float32[N, 6]\nout y = clamp(x, min=0.0)",
        "in x: int64[N, 6]\nout y = clamp(x - 1, max=0)",
    )

    def infer(self, attrs: ClampAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = super().infer(attrs, inputs)
        for which, bound in (("min", attrs.min), ("max", attrs.max)):
            problem = (
                None
                if bound is None
                else number_problem(
                    bound, x.dtype, fraction=f"and the input is {x.dtype}; give a whole number"
                )
            )
            if problem:
                raise ShapeError(f"clamp: {which}={bound:g} {problem}")
        return (x,)

    def torch_expr(
        self, attrs: ClampAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        as_number = float if inputs[0].dtype.is_float else int
        bounds = [
            f"{which}={as_number(bound)!r}"
            for which, bound in (("min", attrs.min), ("max", attrs.max))
            if bound is not None
        ]
        return f"torch.clamp({args[0]}, {', '.join(bounds)})"

    def onnx(self, attrs: ClampAttrs, ctx: OnnxNodeContext) -> None:
        dtype = ctx.input_types[0].dtype
        # A float's missing bound is infinite: Clip's default, the largest finite
        # value, would clamp an infinite x where torch keeps it.
        missing = {"min": -math.inf, "max": math.inf} if dtype.is_float else {}
        bounds = []
        for which, bound in (("min", attrs.min), ("max", attrs.max)):
            value = missing.get(which) if bound is None else bound
            bounds.append(
                ""
                if value is None
                else ctx.add_initializer(f"clamp_{which}", np.array(value, dtype.value))
            )
        while bounds and not bounds[-1]:  # an optional input left out at the end
            bounds.pop()
        ctx.add_node("Clip", [ctx.inputs[0], *bounds], ctx.outputs)


class _Extremum(_Binary):
    """The smaller or larger of two tensors, elementwise, broadcasting."""

    torch_fn: ClassVar[str]

    def torch_expr(self, attrs: object, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{self.torch_fn}({args[0]}, {args[1]})"


@register
class Minimum(_Extremum):
    name = "minimum"
    doc = "The smaller of a and b, elementwise, broadcasting; any numeric dtype."
    examples = (
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = minimum(a, b)",
        "in a: float32[N, 3, 4]\nin b: float32[4]\nout y = minimum(a, b)",
    )
    torch_fn = "torch.minimum"
    onnx_op = "Min"


@register
class Maximum(_Extremum):
    name = "maximum"
    doc = "The larger of a and b, elementwise, broadcasting; any numeric dtype."
    examples = (
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = maximum(a, b)",
        "in a: int64[N, 3, 4]\nin b: int64[4]\nout y = maximum(a, b)",
    )
    torch_fn = "torch.maximum"
    onnx_op = "Max"


_ROOTS = {0.5: "torch.sqrt", -0.5: "torch.rsqrt"}  # exponents computed as roots
_NUMBER = re.compile(r"-?\d+(\.\d*)?(e[-+]?\d+)?")


def _number(text: str) -> float | None:
    """The value of a number literal (how the torch code writes a constant), else None."""
    return float(text) if _NUMBER.fullmatch(text) else None


@register
class Pow(OpDef):
    name = "pow"
    operator = "**"
    family = "elementwise"
    doc = "x ** exponent, a tensor or a number, broadcasting as add does (`**` in a spec)."
    inputs = ("x", "exponent")
    examples = (
        "in a: float32[N, 3, 4]\nin b: float32[4]\nout y = (abs(a) + 0.5) -> pow(b)",
        "in x: float32[N, 5]\nout y = x ** 3.0 + abs(x) ** 0.5",
        "in x: float32[N, 5]\nout y = (abs(x) + 0.5) ** -0.5 + (x + 8.0) ** -1",
        "in x: float32[N, 5]\nout y = 2.0 ** x + abs(x) ** 2.5",
        "in a: float32[N, 5]\nin b: float32[N, 5]\nout y = (abs(a) + 0.5) ** b",
    )

    def channels(self, attrs: object, inputs: Sequence[TensorType]) -> Channels | None:
        x, exponent = inputs
        return Channels("keep", inputs=(0, 1)) if x.shape == exponent.shape else None

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        for t in inputs:
            if not t.dtype.is_float:  # torch refuses negative int exponents, ONNX does not
                raise ShapeError(f"pow needs floating-point tensors, got {t}")
        return (broadcast(self.name, *inputs),)

    def torch_expr(self, attrs: object, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        x, exponent = args
        # A number exponent (a constant is written as its literal) of +-0.5 is a root,
        # as the ONNX lowering computes it; torch's own `** 0.5` is one for some dtypes
        # only (not float16 on CPU), and differs from pow at -inf and -0.
        number = _number(exponent)
        root = _ROOTS.get(number) if number is not None else None
        if root:
            return f"{root}({x})"
        return f"({x}) ** {exponent}" if x.startswith("-") else f"{x} ** {exponent}"

    def onnx(self, attrs: object, ctx: OnnxNodeContext) -> None:
        number = ctx.scalar_input(1)
        if number not in _ROOTS:
            ctx.add_node("Pow", ctx.inputs, ctx.outputs)
            return
        (root,) = ctx.add_node("Sqrt", ctx.inputs[:1], None if number < 0 else ctx.outputs)
        if number < 0:
            ctx.add_node("Reciprocal", [root], ctx.outputs)
