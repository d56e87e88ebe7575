"""Shape ops: flatten, concat, permute, transpose, split and slice (reshape has its own
module)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, add, ceildiv, dims_equal, floordiv, mul, sub
from dslnet.core.types import TensorType, shape_str
from dslnet.ops.channels import Channels
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, normalize_axis, register


class FlattenAttrs(OpAttrs):
    start_axis: int = Field(1, description="first axis merged")
    end_axis: int = Field(-1, description="last axis merged")


@register
class Flatten(OpDef):
    name = "flatten"
    positional = ("start_axis", "end_axis")
    family = "shape"
    doc = "Merge axes start_axis..end_axis into one (the batch axis stays by default)."
    Attrs = FlattenAttrs
    examples = (
        "in x: float32[N, C, H, W]\nout y = flatten(x)",
        "in x: float32[N, 3, H, 4]\nout y = flatten(x, start_axis=2)",
        "in x: float32[N, 2, 3, 4]\nout y = flatten(x, 1, 2)",
    )

    def channels(self, attrs: FlattenAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        (x,) = inputs
        if x.rank == 0:
            return None
        start, end = attrs.start_axis % x.rank, attrs.end_axis % x.rank
        merged = [d for d in x.shape[start + 1 : end + 1] if isinstance(d, int)]
        if len(merged) != end - start:
            return None
        # Channels on the first merged axis become runs of the later axes' volume.
        repeat: int = math.prod(merged)
        return Channels("keep", axis=start, repeat=repeat)

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
        if inputs[0].rank == 0:  # [1] whatever the axes, where torch.flatten(x, 1) raises
            return f"{args[0]}.reshape(1)"
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
    positional = ("axis",)
    family = "shape"
    doc = "Join tensors along `axis`; every other axis must match."
    Attrs = ConcatAttrs
    examples = (
        "in a: float32[N, 3, 5]\nin b: float32[N, 2, 5]\nout y = concat(a, b, axis=1)",
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = concat(a, b, a, axis=-1)",
    )
    inputs = ("x",)
    variadic = True

    def channels(self, attrs: ConcatAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        rank = inputs[0].rank
        return Channels("join", axis=attrs.axis % rank, inputs=tuple(range(len(inputs))))

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


class PermuteAttrs(OpAttrs):
    dims: tuple[int, ...] = Field(
        description="the input axis each output axis takes, a permutation of 0..rank-1 "
        "(negative axes count from the end)"
    )


@register
class Permute(OpDef):
    name = "permute"
    positional = ("dims",)
    family = "shape"
    doc = "Reorder the axes: output axis i is input axis dims[i]."
    Attrs = PermuteAttrs
    aliases = {"perm": "dims"}
    examples = (
        "in x: float32[N, C, H, W]\nout y = permute(x, [0, 2, 3, 1])",
        "in x: float32[N, T, 5]\nout y = permute(x, [1, 0, -1])",
    )

    def perm(self, attrs: PermuteAttrs, x: TensorType) -> tuple[int, ...]:
        if len(attrs.dims) != x.rank:
            raise ShapeError(
                f"permute: dims {list(attrs.dims)} has {len(attrs.dims)} entries, the input "
                f"{x} has rank {x.rank}"
            )
        perm = tuple(normalize_axis(d, x.rank, self.name, x) for d in attrs.dims)
        if sorted(perm) != list(range(x.rank)):
            raise ShapeError(
                f"permute: dims {list(attrs.dims)} is not a permutation of the axes "
                f"0..{x.rank - 1} of {x} (each axis exactly once)"
            )
        return perm

    def infer(self, attrs: PermuteAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        return (x.with_shape(tuple(x.shape[i] for i in self.perm(attrs, x))),)

    def torch_expr(
        self, attrs: PermuteAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"{args[0]}.permute({', '.join(map(str, attrs.dims))})"

    def onnx(self, attrs: PermuteAttrs, ctx: OnnxNodeContext) -> None:
        perm = self.perm(attrs, ctx.input_types[0])
        ctx.add_node("Transpose", ctx.inputs, ctx.outputs, perm=perm)


class TransposeAttrs(OpAttrs):
    axis0: int = Field(description="one axis to swap")
    axis1: int = Field(description="the other axis")


@register
class Transpose(OpDef):
    name = "transpose"
    positional = ("axis0", "axis1")
    family = "shape"
    doc = "Swap two axes."
    Attrs = TransposeAttrs
    aliases = {"dim0": "axis0", "dim1": "axis1"}
    examples = (
        "in x: float32[N, T, 6]\nout y = transpose(x, 1, 2)",
        "in x: float32[N, C, H, W]\nout y = transpose(x, -1, -2)",
    )

    def perm(self, attrs: TransposeAttrs, x: TensorType) -> list[int]:
        a = normalize_axis(attrs.axis0, x.rank, self.name, x)
        b = normalize_axis(attrs.axis1, x.rank, self.name, x)
        perm = list(range(x.rank))
        perm[a], perm[b] = b, a
        return perm

    def infer(self, attrs: TransposeAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        return (x.with_shape(tuple(x.shape[i] for i in self.perm(attrs, x))),)

    def torch_expr(
        self, attrs: TransposeAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"{args[0]}.transpose({attrs.axis0}, {attrs.axis1})"

    def onnx(self, attrs: TransposeAttrs, ctx: OnnxNodeContext) -> None:
        perm = tuple(self.perm(attrs, ctx.input_types[0]))
        ctx.add_node("Transpose", ctx.inputs, ctx.outputs, perm=perm)


MAX_SPLIT = 64  # outputs y0 ... y63


class SplitAttrs(OpAttrs):
    parts: int | tuple[int, ...] = Field(
        description="a number of equal parts, or the list of part sizes (summing to the axis)"
    )
    axis: int = Field(1, description="axis to split along")


@register
class Split(OpDef):
    name = "split"
    # torch.split(x, 2) cuts pieces of size 2, parts=2 two parts: never positional.
    positional = ()
    family = "shape"
    doc = (
        "Cut x along `axis` into equal parts or parts of given sizes; outputs y0, y1, ... "
        "(unpack them: `a, b = split(x, parts=2)`)."
    )
    Attrs = SplitAttrs
    aliases = {"sizes": "parts", "chunks": "parts"}
    outputs = tuple(f"y{i}" for i in range(MAX_SPLIT))
    examples = (
        "in x: float32[N, 6, T]\na, b = split(x, parts=2)\nout y0 = a\nout y1 = b",
        "in x: float32[N, H, 5]\na, b, c = split(x, parts=[1, 3, 1], axis=-1)\n"
        "out y0 = a\nout y1 = b\nout y2 = c",
        "in x: float32[N, H]\nh, g = split(concat(x, x * 2), parts=2)\nout y0 = h\nout y1 = g",
    )

    def sizes(self, attrs: SplitAttrs, x: TensorType) -> tuple[int, tuple[Dim, ...]]:
        """The normalized axis and each part's size."""
        axis = normalize_axis(attrs.axis, x.rank, self.name, x)
        size = x.shape[axis]
        where = f"axis {attrs.axis} of {x} has size {size}"
        if isinstance(attrs.parts, int):
            count = attrs.parts
            if not 1 <= count <= MAX_SPLIT:
                raise ShapeError(
                    f"split: the number of parts must be 1 to {MAX_SPLIT}, got {count}"
                )
            part = floordiv(size, count)
            if not dims_equal(mul(part, count), size):
                raise ShapeError(f"split: {where}, which does not divide into {count} equal parts")
            return axis, (part,) * count
        parts = attrs.parts
        if not 1 <= len(parts) <= MAX_SPLIT or any(p <= 0 for p in parts):
            raise ShapeError(
                f"split: part sizes must be 1 to {MAX_SPLIT} positive sizes, got {list(parts)}"
            )
        if not dims_equal(sum(parts), size):
            raise ShapeError(f"split: part sizes {list(parts)} sum to {sum(parts)}, but {where}")
        return axis, parts

    def infer(self, attrs: SplitAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        axis, sizes = self.sizes(attrs, x)
        return tuple(x.with_shape((*x.shape[:axis], d, *x.shape[axis + 1 :])) for d in sizes)

    def torch_expr(
        self, attrs: SplitAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        _, sizes = self.sizes(attrs, inputs[0])
        if len(sizes) == 1:
            return args[0]
        if isinstance(attrs.parts, int):
            return f"torch.chunk({args[0]}, {attrs.parts}, dim={attrs.axis})"
        return f"torch.split({args[0]}, {list(attrs.parts)}, dim={attrs.axis})"

    def onnx(self, attrs: SplitAttrs, ctx: OnnxNodeContext) -> None:
        axis, sizes = self.sizes(attrs, ctx.input_types[0])
        if len(sizes) == 1:
            ctx.add_node("Identity", ctx.inputs, ctx.outputs)
        elif all(isinstance(d, int) for d in sizes):
            split = ctx.add_initializer("split_sizes", np.array(sizes, dtype=np.int64))
            ctx.add_node("Split", [ctx.inputs[0], split], ctx.outputs, axis=axis)
        else:  # equal parts of a symbolic size: opset 18's num_outputs
            ctx.add_node("Split", ctx.inputs, ctx.outputs, axis=axis, num_outputs=len(sizes))


_INT64_MAX = 2**63 - 1


class SliceAttrs(OpAttrs):
    axis: int = Field(description="axis to slice")
    start: int | None = Field(
        0,
        description="first index (negative counts from the end); with a negative step, "
        "none (the default then) starts at the last element",
    )
    end: int | None = Field(
        None,
        description="index after the last (negative counts from the end); none: to the end. "
        "A symbolic axis is assumed to reach it (a shorter one gives fewer elements)",
    )
    step: int = Field(1, description="stride, not 0; a negative one walks backwards")

    @model_validator(mode="before")
    @classmethod
    def _backwards_from_the_end(cls, values: Any) -> Any:
        # Python's x[::-1]: without a start, a negative step starts at the last element.
        if isinstance(values, dict) and "start" not in values:
            step = values.get("step", 1)
            if isinstance(step, int) and step < 0:
                return {**values, "start": None}
        return values

    @field_validator("step")
    @classmethod
    def _nonzero(cls, value: int, info: ValidationInfo) -> int:
        if value == 0:
            raise ValueError("must not be 0")
        return value

    def forwards(self) -> tuple[int, int | None, int]:
        """(start, end, step > 0) of the same slice of the axis reversed: x[s:e:-k] is
        flip(x)[-s-1 : -e-1 : k], with Python's bounds, for every size."""
        if self.step > 0:
            return self.start or 0, self.end, self.step
        start = 0 if self.start is None else -self.start - 1
        end = None if self.end is None else -self.end - 1
        return start, end, -self.step


@register
class Slice(OpDef):
    name = "slice"
    positional = ("axis",)
    family = "shape"
    doc = (
        "x[start:end:step] along `axis`, with Python's negative and clamped bounds and "
        "steps; on a symbolic axis the size assumes the axis is long enough for the bounds."
    )
    Attrs = SliceAttrs
    examples = (
        "in x: float32[N, 10]\nout y = slice(x, 1, start=2, end=7)",
        "in x: float32[N, T, 8]\nout y = slice(x, -1, start=-5, step=2)",
        "in x: float32[N, T, 4]\nout y = slice(x, axis=1, start=-1)",
        "in x: float32[N, 7]\nout y = slice(x, 1, step=-1)",
        "in x: float32[N, T, 5]\nout y = slice(x, 1, start=-2, end=0, step=-2)",
        "in x: float32[N, 9, T]\nout y = slice(x, 1, start=7, end=-9, step=-3)",
    )

    def infer(self, attrs: SliceAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        axis = normalize_axis(attrs.axis, x.rank, self.name, x)
        size = x.shape[axis]
        start, end, step = attrs.forwards()  # the same length as on the axis reversed
        length: Dim
        if isinstance(size, int):
            length = len(range(*slice(start, end, step).indices(size)))
        else:
            low: Dim = start if start >= 0 else add(size, start)
            high: Dim = size if end is None else (end if end >= 0 else add(size, end))
            length = ceildiv(sub(high, low), step)
            if isinstance(length, int):
                length = max(length, 0)
        return (x.with_shape((*x.shape[:axis], length, *x.shape[axis + 1 :])),)

    def least_sizes(
        self, attrs: SliceAttrs, inputs: Sequence[TensorType]
    ) -> dict[tuple[int, int], int]:
        axis = attrs.axis % inputs[0].rank
        if isinstance(inputs[0].shape[axis], int):
            return {}
        start, end, _ = attrs.forwards()
        return {(0, axis): max(-start, end if end is not None else 0)}

    def torch_expr(
        self, attrs: SliceAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        rank = inputs[0].rank
        axis = attrs.axis % rank
        # torch slices have no negative step: slice the axis reversed, forwards.
        start, end, step = attrs.forwards()
        text = (str(start) if start else "") + ":"
        text += "" if end is None else str(end)
        text += f":{step}" if step != 1 else ""
        lead = "..., " if axis == rank - 1 and axis > 1 else ":, " * axis
        source = args[0] if attrs.step > 0 else f"torch.flip({args[0]}, [{axis}])"
        return f"{source}[{lead}{text}]"

    def onnx(self, attrs: SliceAttrs, ctx: OnnxNodeContext) -> None:
        axis = attrs.axis % ctx.input_types[0].rank
        backwards = attrs.step < 0  # missing bounds: from the last element, past the first
        start = (_INT64_MAX if backwards else 0) if attrs.start is None else attrs.start
        end = (-_INT64_MAX - 1 if backwards else _INT64_MAX) if attrs.end is None else attrs.end

        def const(hint: str, value: int) -> str:
            return ctx.add_initializer(hint, np.array([value], dtype=np.int64))

        args = [
            ctx.inputs[0],
            const("slice_start", start),
            const("slice_end", end),
            const("slice_axis", axis),
        ]
        if attrs.step != 1:
            args.append(const("slice_step", attrs.step))
        ctx.add_node("Slice", args, ctx.outputs)
