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
            return _reduce_mean(ctx, x, axis, out, keepdims=1)
        divides = dims_equal(mul(floordiv(length, size), size), length)
        if not isinstance(length, int) and not divides:  # windows known at run time only
            return _runtime_windows(ctx, x, axis, size, out)
        if isinstance(length, int) and length % size:
            # Windows of unequal lengths: gather each window's elements into a row, padded
            # to the longest, zero the padding, sum the row and divide by the window's
            # length. A few nodes whatever the sizes; a Slice per window could be
            # thousands. (Zeroed with Where: a weight 0 would make inf * 0 = NaN.)
            index, inside, lengths = _window_table(length, size)
            rest = (1,) * (x_type.rank - axis - 1)  # broadcast over the later axes
            (rows,) = ctx.add_node("Gather", [x, ctx.add_initializer("windows", index)], axis=axis)
            mask = ctx.add_initializer("window_mask", inside.reshape(inside.shape + rest))
            lengths_column = lengths.reshape(lengths.shape + rest)
            return _window_means(ctx, x, rows, mask, axis, lengths_column, out)
        # Equal windows: split the axis into [size, length/size] and average the second.
        target = [0] * axis + [size, -1] + list(sizes[axis - 1 :])
        (split,) = ctx.add_node("Reshape", [x, int64(ctx, "split_shape", target)])
        return _reduce_mean(ctx, split, axis + 1, out, keepdims=0)


def _reduce_mean(
    ctx: OnnxNodeContext, x: str, axis: int, out: list[str] | None, *, keepdims: int
) -> str:
    """ReduceMean over one axis: its axes an attribute before opset 18, an input from it."""
    if ctx.opset < 18:
        return ctx.add_node("ReduceMean", [x], out, axes=[axis], keepdims=keepdims)[0]
    return ctx.add_node("ReduceMean", [x, int64(ctx, "axes", [axis])], out, keepdims=keepdims)[0]


def _runtime_windows(
    ctx: OnnxNodeContext, x: str, axis: int, size: int, out: list[str] | None
) -> str:
    """Pool a symbolic axis of run-time length L to `size` cells: cell i averages
    [floor(i*L/size), ceil((i+1)*L/size)), windows of several lengths (L < size too).

    _window_table's table computed from L at run time, then the means as for a fixed
    length (_window_means). A fixed number of nodes whatever `size`.
    """
    rank = ctx.input_types[0].rank
    (length,) = ctx.add_node("Shape", [x], start=axis, end=axis + 1)  # [L]
    cells = np.arange(size, dtype=np.int64)
    divisor = int64(ctx, "cells", [size])
    (scaled,) = ctx.add_node("Mul", [int64(ctx, "cell_index", cells.tolist()), length])
    (starts,) = ctx.add_node("Div", [scaled, divisor])  # floor: every term is >= 0
    (scaled,) = ctx.add_node("Mul", [int64(ctx, "cell_end", (cells + 1).tolist()), length])
    (rounded,) = ctx.add_node("Add", [scaled, int64(ctx, "cells_less_one", [size - 1])])
    (ends,) = ctx.add_node("Div", [rounded, divisor])  # ceil
    (counts,) = ctx.add_node("Sub", [ends, starts])  # each >= 1 when L >= 1
    (widest,) = ctx.add_node("ReduceMax", [counts], keepdims=0)
    zero, one = int64(ctx, "zero", 0), int64(ctx, "one", 1)
    (offsets,) = ctx.add_node("Range", [zero, widest, one])  # [w]
    column = int64(ctx, "column_shape", [size, 1])
    (first,) = ctx.add_node("Reshape", [starts, column])
    (last,) = ctx.add_node("Sub", [ends, one])
    (last,) = ctx.add_node("Reshape", [last, column])
    (index,) = ctx.add_node("Add", [first, offsets])  # [size, w]
    (index,) = ctx.add_node("Min", [index, last])
    (rows,) = ctx.add_node("Gather", [x, index], axis=axis)  # [..., size, w, ...]
    (counts_column,) = ctx.add_node("Reshape", [counts, column])
    (inside,) = ctx.add_node("Less", [offsets, counts_column])  # [size, w]
    later = [1] * (rank - axis - 1)  # broadcast over the axes after this one
    (inside,) = ctx.add_node("Reshape", [inside, int64(ctx, "mask_shape", [size, -1, *later])])
    (lengths,) = ctx.add_node("Reshape", [counts, int64(ctx, "count_shape", [size, *later])])
    return _window_means(ctx, x, rows, inside, axis, lengths, out)


def _window_table(
    length: int, size: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """For pooling `length` elements to `size` windows: the indices [size, widest] of each
    window's elements (the padding repeats its last one), which of them are inside the
    window (not padding), and each window's length."""
    starts = np.arange(size) * length // size
    ends = -(-(np.arange(size) + 1) * length // size)
    widest = int((ends - starts).max())
    offsets = np.arange(widest)
    inside = offsets[None, :] < (ends - starts)[:, None]
    index = np.minimum(starts[:, None] + offsets[None, :], ends[:, None] - 1).astype(np.int64)
    return index, inside, (ends - starts).astype(np.float32)


def _window_means(
    ctx: OnnxNodeContext,
    x: str,
    rows: str,
    inside: str,
    axis: int,
    lengths: np.ndarray[Any, Any] | str,
    out: list[str] | None,
) -> str:
    """The mean of each window from its gathered row (on axis + 1, padded): the padding
    zeroed (Where), the row summed and divided by the window's length (`lengths`, a
    constant or a value, broadcast over the axes after `axis`)."""
    (nothing,) = ctx.add_node("CastLike", [ctx.add_initializer("zero", np.array(0.0)), x])
    (kept,) = ctx.add_node("Where", [inside, rows, nothing])
    (total,) = ctx.add_node("ReduceSum", [kept, int64(ctx, "axes", [axis + 1])], keepdims=0)
    if not isinstance(lengths, str):
        lengths = ctx.add_initializer("window_lengths", lengths)
    (typed,) = ctx.add_node("CastLike", [lengths, x])
    return ctx.add_node("Div", [total, typed], out)[0]


@register
class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    name = "adaptive_avgpool1d"
    spatial = 1
    Attrs = _adaptive_attrs(1)
    doc = "Average pooling of [N, C, L] to a given length (PyTorch's windows; symbolic sizes too)."
    examples = (
        "in x: float32[N, 2, T]\nout y = x -> adaptive_avgpool1d(3)",
        "in x: float32[N, C, T]\nout y = x -> adaptive_avgpool1d(1)",
        "in x: float32[2, 3, 10]\nout y = x -> adaptive_avgpool1d(4)",
    )


@register
class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    name = "adaptive_avgpool2d"
    spatial = 2
    Attrs = _adaptive_attrs(2)
    doc = "Average pooling of [N, C, H, W] to a given size (PyTorch's windows; symbolic sizes too)."
    examples = (
        "in x: float32[N, 3, H, W]\nout y = x -> adaptive_avgpool2d((3, 7))",
        "in x: float32[N, C, H, W]\nout y = x -> adaptive_avgpool2d(1)",
        "in x: float32[N, 3, 10, 7]\nout y = x -> adaptive_avgpool2d((5, 3))",
        "in x: float32[N, 2, 6, W]\nout y = x -> adaptive_avgpool2d((4, 1))",
    )


@register
class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    name = "adaptive_avgpool3d"
    spatial = 3
    Attrs = _adaptive_attrs(3)
    doc = "Average pooling of [N, C, D, H, W] to a given size (PyTorch's windows; symbolic too)."
    examples = (
        "in x: float32[N, C, T, H, W]\nout y = x -> adaptive_avgpool3d(1)",
        "in x: float32[2, 3, 4, 9, 5]\nout y = x -> adaptive_avgpool3d((2, 3, 5))",
        "in x: float32[N, 2, T, H, 2]\nout y = x -> adaptive_avgpool3d((3, 4, 1))",
    )
