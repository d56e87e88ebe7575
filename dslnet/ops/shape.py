"""Shape ops: flatten and concat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from dslnet.ir.symbolic import Dim, add, dims_equal, mul
from dslnet.ir.types import TensorType, shape_str
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, normalize_axis, register


class FlattenAttrs(OpAttrs):
    start_axis: int = Field(1, description="first axis merged")
    end_axis: int = Field(-1, description="last axis merged")


@register
class Flatten(OpDef):
    name = "flatten"
    family = "shape"
    doc = "Merge axes start_axis..end_axis into one (the batch axis stays by default)."
    Attrs = FlattenAttrs
    examples = (
        "in x: float32[N, C, H, W]\nout y = flatten(x)",
        "in x: float32[N, 3, H, 4]\nout y = flatten(x, start_axis=2)",
        "in x: float32[N, 2, 3, 4]\nout y = flatten(x, 1, 2)",
    )

    def infer(self, attrs: FlattenAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank == 0:
            return (x.with_shape((1,)),)
        start = normalize_axis(attrs.start_axis, x.rank, self.name, x)
        end = normalize_axis(attrs.end_axis, x.rank, self.name, x)
        if start > end:
            raise ShapeError(
                f"flatten: start_axis {attrs.start_axis} comes after end_axis "
                f"{attrs.end_axis} for {x}"
            )
        merged: Dim = 1
        for d in x.shape[start : end + 1]:
            merged = mul(merged, d)
        return (x.with_shape((*x.shape[:start], merged, *x.shape[end + 1 :])),)

    def torch_expr(
        self, attrs: FlattenAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        extra = (
            f", {attrs.start_axis}"
            if attrs.end_axis == -1
            else f", {attrs.start_axis}, {attrs.end_axis}"
        )
        return f"torch.flatten({args[0]}{extra})"

    def onnx(self, attrs: FlattenAttrs, ctx: OnnxNodeContext) -> None:
        (x,), (y,) = ctx.inputs, ctx.outputs
        rank = ctx.input_types[0].rank
        start = attrs.start_axis % rank if rank else 0
        end = attrs.end_axis % rank if rank else 0
        if rank > 0 and start == 1 and end == rank - 1:
            # ONNX Flatten makes 2-D [prefix, rest]: exactly torch.flatten(x, 1).
            ctx.add_node("Flatten", [x], [y], axis=start if rank else 0)
            return
        # General case: keep the leading and trailing dims, merge the middle (-1).
        parts = []
        if start > 0:
            parts += ctx.add_node("Shape", [x], end=start)
        parts.append(ctx.add_initializer("flatten_merged", np.array([-1], dtype=np.int64)))
        if end + 1 < rank:
            parts += ctx.add_node("Shape", [x], start=end + 1)
        (target,) = ctx.add_node("Concat", parts, axis=0)
        ctx.add_node("Reshape", [x, target], [y])


class ConcatAttrs(OpAttrs):
    axis: int = Field(1, description="axis to join along")


@register
class Concat(OpDef):
    name = "concat"
    family = "shape"
    doc = "Join tensors along `axis`; every other axis must match."
    Attrs = ConcatAttrs
    examples = (
        "in a: float32[N, 3, 5]\nin b: float32[N, 2, 5]\nout y = concat(a, b, axis=1)",
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = concat(a, b, a, axis=-1)",
    )
    inputs = ("x",)
    variadic = True

    def infer(self, attrs: ConcatAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        first = inputs[0]
        axis = normalize_axis(attrs.axis, first.rank, self.name, first)
        total: Dim = 0
        for i, t in enumerate(inputs):
            if t.dtype != first.dtype or t.rank != first.rank:
                raise ShapeError(f"concat: input {i} is {t}, input 0 is {first}")
            for k, (a, b) in enumerate(zip(t.shape, first.shape)):
                if k != axis and not dims_equal(a, b):
                    raise ShapeError(
                        f"concat along axis {attrs.axis}: input {i} has shape "
                        f"{shape_str(t.shape)}, input 0 has {shape_str(first.shape)} "
                        f"(axis {k}: {a} vs {b})"
                    )
            total = add(total, t.shape[axis])
        return (first.with_shape((*first.shape[:axis], total, *first.shape[axis + 1 :])),)

    def torch_expr(
        self, attrs: ConcatAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"torch.cat([{', '.join(args)}], dim={attrs.axis})"

    def onnx(self, attrs: ConcatAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Concat", ctx.inputs, ctx.outputs, axis=attrs.axis)
