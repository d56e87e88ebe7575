"""Pooling to a fixed output size: global average/max and adaptive average pooling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import dims_equal, floordiv, mul
from dslnet.core.types import TensorType
from dslnet.ops.channels import Channels
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import NoAttrs, OpDef, ShapeError, register
from dslnet.ops.window import IntOrTuple, WindowAttrs, check_input, int64, per_axis, torch_arg


class _GlobalPool(OpDef):
    family = "pool"
    Attrs = NoAttrs
    method: ClassVar[str]
    onnx_op: ClassVar[str]

    def channels(self, attrs: object, inputs: Sequence[TensorType]) -> Channels | None:
        return Channels("keep", axis=1)

    def infer(self, attrs: NoAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank < 3:
            raise ShapeError(f"{self.name} needs an input [N, C, *spatial] of rank >= 3, got {x}")
        if not x.dtype.is_float:
            raise ShapeError(f"{self.name} needs a floating-point input, got {x}")
        return (x.with_shape((*x.shape[:2], *(1,) * (x.rank - 2))),)

    def torch_expr(self, attrs: NoAttrs, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        axes = tuple(range(2, inputs[0].rank))
        dims = str(axes[0]) if len(axes) == 1 else str(axes)
        return f"{args[0]}.{self.method}({dims}, keepdim=True)"

    def onnx(self, attrs: NoAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node(self.onnx_op, ctx.inputs, ctx.outputs)


@register
class GlobalAvgPool(_GlobalPool):
    name = "global_avgpool"
    doc = "Mean over every spatial axis, kept as size 1: [N, C, H, W] -> [N, C, 1, 1]."
    method = "mean"
    onnx_op = "GlobalAveragePool"
    examples = (
        "in x: float32[N, C, H, W]\nout y = x -> global_avgpool",
        "in x: float32[N, 4, T]\nout y = global_avgpool(x)",
        "in x: float32[2, 3, 4, 5, 6]\nout y = global_avgpool(x)",
    )


@register
class GlobalMaxPool(_GlobalPool):
    name = "global_maxpool"
    doc = "Maximum over every spatial axis, kept as size 1: [N, C, H, W] -> [N, C, 1, 1]."
    method = "amax"
    onnx_op = "GlobalMaxPool"
    examples = (
        "in x: float32[N, C, H, W]\nout y = x -> global_maxpool",
        "in x: float32[N, 4, T]\nout y = global_maxpool(x)",
    )


class AdaptiveAttrs(WindowAttrs):
    positive = frozenset({"output_size"})

    output_size: IntOrTuple = Field(
        description="output size: one int for every axis or one per axis"
    )


def _adaptive_attrs(spatial: int) -> type[AdaptiveAttrs]:
    name = f"Adaptive{spatial}dAttrs"
    return type(name, (AdaptiveAttrs,), {"__module__": __name__, "spatial": spatial})


class _AdaptiveAvgPool(OpDef):
    """Output cell i of an axis of size L averages [floor(i*L/O), ceil((i+1)*L/O))."""

    family = "pool"
    positional = ("output_size",)
    spatial: ClassVar[int]

    def channels(self, attrs: object, inputs: Sequence[TensorType]) -> Channels | None:
        return Channels("keep", axis=1)

    def infer(self, attrs: AdaptiveAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        check_input(self.name, x, self.spatial)
        sizes = per_axis(attrs.output_size, self.spatial)
        for axis, size in enumerate(sizes, start=2):
            length = x.shape[axis]
            if isinstance(length, int) or size == 1:
                continue
            if not dims_equal(mul(floordiv(length, size), size), length):
                raise ShapeError(
                    f"{self.name}: output size {size} on axis {axis} must divide the symbolic "
                    f"input size {length} of {x} (or be 1): the ONNX lowering needs windows "
                    "of one size; give the input a fixed size or a divisible shape"
                )
        return (x.with_shape((*x.shape[:2], *sizes)),)

    def torch_expr(
        self, attrs: AdaptiveAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        size = torch_arg(per_axis(attrs.output_size, self.spatial))
        return f"F.adaptive_avg_pool{self.spatial}d({args[0]}, {size})"

    def onnx(self, attrs: AdaptiveAttrs, ctx: OnnxNodeContext) -> None:
        x_type = ctx.input_types[0]
        sizes = per_axis(attrs.output_size, self.spatial)
        if all(s == 1 for s in sizes):
            ctx.add_node("GlobalAveragePool", ctx.inputs, ctx.outputs)
            return
        # One axis at a time, the last first: the mean over a box is the mean of means.
        todo = [
            axis
            for axis, size in enumerate(sizes, start=2)
            if not dims_equal(x_type.shape[axis], size)
        ]
        current = ctx.inputs[0]
        if not todo:
            ctx.add_node("Identity", [current], ctx.outputs)
        for axis in reversed(todo):
            out = list(ctx.outputs) if axis == todo[0] else None
            current = self._axis(ctx, current, x_type, axis, sizes, out)

    def _axis(
        self,
        ctx: OnnxNodeContext,
        x: str,
        x_type: TensorType,
        axis: int,
        sizes: tuple[int, ...],
        out: list[str] | None,
    ) -> str:
        """Pool `x` along `axis` to sizes[axis - 2]; the axes after it are done already."""
        length, size = x_type.shape[axis], sizes[axis - 2]
        if size == 1:
            return ctx.add_node("ReduceMean", [x, int64(ctx, "axes", [axis])], out, keepdims=1)[0]
        if isinstance(length, int) and length % size:
            # Windows of unequal lengths: gather each window's elements into a row, padded
            # to the longest, and sum the row with weights 1/length (0 on the padding).
            # A few nodes whatever the sizes; a Slice per window could be thousands.
            index, weight = _window_table(length, size)
            rest = (1,) * (x_type.rank - axis - 1)  # the weights broadcast over later axes
            (rows,) = ctx.add_node("Gather", [x, ctx.add_initializer("windows", index)], axis=axis)
            weights = ctx.add_initializer("window_weights", weight.reshape(weight.shape + rest))
            (typed,) = ctx.add_node("CastLike", [weights, x])
            (weighted,) = ctx.add_node("Mul", [rows, typed])
            axes = int64(ctx, "axes", [axis + 1])
            return ctx.add_node("ReduceSum", [weighted, axes], out, keepdims=0)[0]
        # Equal windows: split the axis into [size, length/size] and average the second.
        target = [0] * axis + [size, -1] + list(sizes[axis - 1 :])
        (split,) = ctx.add_node("Reshape", [x, int64(ctx, "split_shape", target)])
        axes = int64(ctx, "axes", [axis + 1])
        return ctx.add_node("ReduceMean", [split, axes], out, keepdims=0)[0]


def _window_table(length: int, size: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """For pooling `length` elements to `size` windows: the indices [size, widest] of each
    window's elements (the padding repeats its last one) and their weights (1/its length,
    0 on the padding)."""
    starts = np.arange(size) * length // size
    ends = -(-(np.arange(size) + 1) * length // size)
    widest = int((ends - starts).max())
    offsets = np.arange(widest)
    inside = offsets[None, :] < (ends - starts)[:, None]
    index = np.minimum(starts[:, None] + offsets[None, :], ends[:, None] - 1).astype(np.int64)
    weight = np.where(inside, 1.0 / (ends - starts)[:, None], 0.0).astype(np.float32)
    return index, weight


@register
class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    name = "adaptive_avgpool1d"
    spatial = 1
    Attrs = _adaptive_attrs(1)
    doc = "Average pooling of [N, C, L] to a given length (PyTorch's windows)."
    examples = (
        "in x: float32[N, C, T]\nout y = x -> adaptive_avgpool1d(1)",
        "in x: float32[2, 3, 10]\nout y = x -> adaptive_avgpool1d(4)",
    )


@register
class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    name = "adaptive_avgpool2d"
    spatial = 2
    Attrs = _adaptive_attrs(2)
    doc = "Average pooling of [N, C, H, W] to a given size (PyTorch's windows)."
    examples = (
        "in x: float32[N, C, H, W]\nout y = x -> adaptive_avgpool2d(1)",
        "in x: float32[N, 3, 10, 7]\nout y = x -> adaptive_avgpool2d((5, 3))",
        "in x: float32[N, 2, 6, W]\nout y = x -> adaptive_avgpool2d((4, 1))",
    )


@register
class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    name = "adaptive_avgpool3d"
    spatial = 3
    Attrs = _adaptive_attrs(3)
    doc = "Average pooling of [N, C, D, H, W] to a given size (PyTorch's windows)."
    examples = (
        "in x: float32[N, C, T, H, W]\nout y = x -> adaptive_avgpool3d(1)",
        "in x: float32[2, 3, 4, 9, 5]\nout y = x -> adaptive_avgpool3d((2, 3, 5))",
    )
