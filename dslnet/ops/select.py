"""Selection by a bool condition (where, masked_fill) and one-hot encoding.

A condition is a bool tensor, the result of a comparison (`x > 0`, dslnet.ops.compare).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import dims_equal
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ops.constant_tensors import ElementType
from dslnet.ops.domains import Indices
from dslnet.ops.elementwise import broadcast, number_problem
from dslnet.ops.lowering import ONNX_DTYPES, OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register


def _need_bool(op: str, what: str, ttype: TensorType) -> None:
    if ttype.dtype is not DType.bool:
        raise ShapeError(
            f"{op}: the {what} must be a bool tensor (a comparison such as x > 0), got {ttype}"
        )


@register
class Where(OpDef):
    name = "where"
    family = "selection"
    doc = "Elementwise `a` where the bool `cond` is true, else `b` (either may be a number)."
    inputs = ("cond", "a", "b")
    number_inputs = ("a", "b")
    examples = (
        "in c: float32[N, 4]\nin a: float32[N, 4]\nin b: float32[N, 4]\nout y = where(c > 0, a, b)",
        "in a: float32[N, 3, 4]\nin b: float32[4]\nout y = where(a < b, a, b)",
        "in a: int64[N, 5]\nin b: int64[N, 1]\nout y = where(a == 1, a, b)",
        "in x: float32[N, 4]\nout y = where(x > 0, x, 0.0) + where(x < 1, -1, x)",
    )

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        cond, a, b = inputs
        _need_bool(self.name, "condition (first input)", cond)
        values = broadcast(self.name, a, b)
        shape = broadcast(self.name, values.with_shape(cond.shape), values).shape
        return (values.with_shape(shape),)

    def torch_expr(self, attrs: object, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"torch.where({', '.join(args)})"

    def onnx(self, attrs: object, ctx: OnnxNodeContext) -> None:
        cond, a, b = ctx.inputs
        where(ctx, cond, a, b, ctx.output_types[0].dtype)


# ONNX Runtime's CPU Where has no kernel for these: they choose as a type it has one
# for that holds their values exactly (bfloat16 as float32), then cast back.
_WIDENED = {DType.int16: DType.int32, DType.bool: DType.uint8, DType.bfloat16: DType.float32}


def where(ctx: OnnxNodeContext, cond: str, a: str, b: str, dtype: DType) -> None:
    """ONNX Where(cond, a, b) into the node's output, for values of `dtype`."""
    if dtype not in _WIDENED:
        ctx.add_node("Where", [cond, a, b], ctx.outputs)
        return
    wide = ONNX_DTYPES[_WIDENED[dtype]]
    a, b = (ctx.add_node("Cast", [v], to=wide)[0] for v in (a, b))
    (chosen,) = ctx.add_node("Where", [cond, a, b])
    ctx.add_node("Cast", [chosen], ctx.outputs, to=ONNX_DTYPES[dtype])


class MaskedFillAttrs(OpAttrs):
    value: float | Literal["inf", "-inf"] = Field(
        description='the number written where mask is true ("-inf" or "inf" for infinities)'
    )

    dtype_range = frozenset({"value"})  # checked against x's dtype (MaskedFill.infer)


def _fill_value(attrs: MaskedFillAttrs) -> float:
    return float(attrs.value)


@register
class MaskedFill(OpDef):
    name = "masked_fill"
    positional = ("value",)
    family = "selection"
    doc = 'x with `value` where the bool `mask` (broadcast to x) is true; value may be "-inf".'
    Attrs = MaskedFillAttrs
    inputs = ("x", "mask")
    examples = (
        'in x: float32[N, T, 5]\nin m: bool[N, 1, 5]\nout y = masked_fill(x, m, "-inf")',
        'in x: float32[N, T]\nin s: float32[N, 1]\nout y = masked_fill(x, s > 0, "inf")',
        "in x: float32[N, 4]\nout y = masked_fill(x, x < 0, 0.5)",
        "in x: int64[N, 4]\nout y = masked_fill(x, x == 3, -1)",
    )

    def infer(self, attrs: MaskedFillAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, mask = inputs
        _need_bool(self.name, "mask (second input)", mask)
        value = _fill_value(attrs)
        if math.isinf(value) and not x.dtype.is_float:
            raise ShapeError(f"masked_fill: the value {value:g} is not a value of {x}")
        if not math.isinf(value):
            problem = (
                "is neither 0 nor 1, the values of a bool tensor"
                if x.dtype is DType.bool and value not in (0.0, 1.0)
                else None
                if x.dtype is DType.bool
                else number_problem(
                    value, x.dtype, fraction=f"and x is {x.dtype}; use a float tensor"
                )
            )
            if problem:
                raise ShapeError(f"masked_fill: the value {value:g} {problem}")
        joined = broadcast(self.name, x.with_shape(mask.shape), x)
        if joined.rank != x.rank or not all(
            dims_equal(a, b) for a, b in zip(joined.shape, x.shape)
        ):
            raise ShapeError(
                f"masked_fill: the mask {shape_str(mask.shape)} must broadcast to x's shape "
                f"{shape_str(x.shape)} (the result has x's shape)"
            )
        return (x,)

    def torch_expr(
        self, attrs: MaskedFillAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        value = _fill_value(attrs)
        dtype = inputs[0].dtype
        if math.isinf(value):
            text = f"float('{'-' if value < 0 else ''}inf')"
        elif dtype is DType.bool:
            text = repr(bool(value))
        else:
            text = repr(value if dtype.is_float else int(value))
        return f"{args[0]}.masked_fill({args[1]}, {text})"

    def onnx(self, attrs: MaskedFillAttrs, ctx: OnnxNodeContext) -> None:
        x, mask = ctx.inputs
        dtype = ctx.input_types[0].dtype
        fill = ctx.add_initializer(
            "masked_fill_value", np.array(_fill_value(attrs), dtype=dtype.value)
        )
        where(ctx, mask, fill, x, dtype)


class OneHotAttrs(OpAttrs):
    num_classes: int = Field(ge=1, description="C, the length of the new last axis")
    dtype: ElementType = Field(DType.float32, description="element type of the result")


@register
class OneHot(OpDef):
    name = "one_hot"
    positional = ("num_classes",)
    family = "selection"
    doc = (
        "Integer class ids in [0, C) to vectors of a new last axis of length C: 1 at the "
        "id, 0 elsewhere (float32 unless dtype= says otherwise)."
    )
    Attrs = OneHotAttrs
    aliases = {"C": "num_classes"}
    input_domains = {"x": Indices(size="num_classes", what="classes")}
    examples = (
        "in x: int64[N, T]\nout y = one_hot(x, 5)",
        'in x: int32[N]\nout y = one_hot(x, num_classes=3, dtype="int64")',
    )

    def infer(self, attrs: OneHotAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.dtype.is_float or x.dtype is DType.bool:
            raise ShapeError(f"one_hot takes integer class ids, got {x}")
        if attrs.dtype is DType.bool:
            raise ShapeError('one_hot: dtype "bool" is not a number type; compare ids instead')
        return (TensorType(dtype=attrs.dtype, shape=(*x.shape, attrs.num_classes)),)

    def torch_expr(
        self, attrs: OneHotAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        ids = args[0] if inputs[0].dtype is DType.int64 else f"{args[0]}.long()"
        return f"F.one_hot({ids}, {attrs.num_classes}).to(torch.{attrs.dtype.value})"

    def onnx(self, attrs: OneHotAttrs, ctx: OnnxNodeContext) -> None:
        (x,) = ctx.inputs
        if ctx.input_types[0].dtype is not DType.int64:
            (x,) = ctx.add_node("Cast", [x], to=ONNX_DTYPES[DType.int64])
        depth = ctx.add_initializer("one_hot_depth", np.array(attrs.num_classes, dtype=np.int64))
        values = ctx.add_initializer("one_hot_values", np.array([0.0, 1.0], dtype=np.float32))
        if attrs.dtype is DType.float32:
            ctx.add_node("OneHot", [x, depth, values], ctx.outputs, axis=-1)
            return
        (hot,) = ctx.add_node("OneHot", [x, depth, values], axis=-1)
        ctx.add_node("Cast", [hot], ctx.outputs, to=ONNX_DTYPES[attrs.dtype])
