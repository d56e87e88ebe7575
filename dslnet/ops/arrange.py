"""Ops that rearrange elements without computing: stack, flip, roll and expand.

ONNX has no Roll: a roll is two slices joined in the other order (`roll_parts`), with
the split point computed at run time where the axis is symbolic. An expand to a symbolic
size (`q -> expand([N, -1, -1])`) takes, after x, tensors in scope that have it, as the
made tensors do (dslnet.ops.run_time_sizes).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, dims_equal
from dslnet.core.types import TensorType, shape_str
from dslnet.ops.constant_tensors import Sizes
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, normalize_axis, register
from dslnet.ops.run_time_sizes import onnx_shape, size_plan, torch_sizes

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


def _ints(ctx: OnnxNodeContext, hint: str, values: Sequence[int]) -> str:
    return ctx.add_initializer(hint, np.array(list(values), dtype=np.int64))


def _axes(op: str, axes: int | tuple[int, ...], x: TensorType) -> tuple[int, ...]:
    """`axes` normalized; each at most once."""
    listed = (axes,) if isinstance(axes, int) else axes
    found = tuple(normalize_axis(a, x.rank, op, x) for a in listed)
    if len(set(found)) != len(found):
        raise ShapeError(f"{op}: axes {list(listed)} name an axis of {x} twice")
    return found


class StackAttrs(OpAttrs):
    axis: int = Field(0, description="where the new axis goes (negative counts from the end)")


@register
class Stack(OpDef):
    name = "stack"
    positional = ("axis",)
    family = "arrange"
    doc = "Join tensors of one shape along a new axis (`stack(list, axis)` or `stack(a, b)`)."
    Attrs = StackAttrs
    inputs = ("x",)
    variadic = True
    examples = (
        "in a: float32[N, 3]\nin b: float32[N, 3]\nout y = stack(a, b, axis=1)",
        "in a: float32[N, T, 2]\nout y = stack([a, a * 2, a], axis=-1)",
    )

    def infer(self, attrs: StackAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        first = inputs[0]
        for index, t in enumerate(inputs):
            if not t.same_as(first):
                raise ShapeError(
                    f"stack: input {index} is {t}, input 0 is {first}; stacked tensors have "
                    f"one type"
                )
        if not -(first.rank + 1) <= attrs.axis <= first.rank:
            raise ShapeError(
                f"stack: axis {attrs.axis} is out of range for inputs {first} (the result has "
                f"rank {first.rank + 1})"
            )
        axis = attrs.axis % (first.rank + 1)
        shape = (*first.shape[:axis], len(inputs), *first.shape[axis:])
        return (first.with_shape(shape),)

    def torch_expr(
        self, attrs: StackAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"torch.stack([{', '.join(args)}], dim={attrs.axis})"

    def onnx(self, attrs: StackAttrs, ctx: OnnxNodeContext) -> None:
        axis = attrs.axis % (ctx.input_types[0].rank + 1)
        where = _ints(ctx, "stack_axis", [axis])
        parts = [ctx.add_node("Unsqueeze", [x, where])[0] for x in ctx.inputs]
        ctx.add_node("Concat", parts, ctx.outputs, axis=axis)


class FlipAttrs(OpAttrs):
    axes: int | tuple[int, ...] = Field(description="the axis or axes to reverse")


@register
class Flip(OpDef):
    name = "flip"
    positional = ("axes",)
    family = "arrange"
    doc = "Reverse the order of the elements along `axes`."
    Attrs = FlipAttrs
    aliases = {"dims": "axes", "axis": "axes"}
    examples = (
        "in x: float32[N, T, 4]\nout y = flip(x, [1, 2])",
        "in x: float32[N, 5]\nout y = flip(x, -1)",
    )

    def infer(self, attrs: FlipAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        _axes(self.name, attrs.axes, x)
        return (x,)

    def torch_expr(
        self, attrs: FlipAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        axes = _axes(self.name, attrs.axes, inputs[0])
        return f"torch.flip({args[0]}, {list(axes)})"

    def onnx(self, attrs: FlipAttrs, ctx: OnnxNodeContext) -> None:
        axes = _axes(self.name, attrs.axes, ctx.input_types[0])
        count = len(axes)
        args = [
            ctx.inputs[0],
            _ints(ctx, "flip_start", [-1] * count),
            _ints(ctx, "flip_end", [_INT64_MIN] * count),
            _ints(ctx, "flip_axes", axes),
            _ints(ctx, "flip_step", [-1] * count),
        ]
        ctx.add_node("Slice", args, ctx.outputs)


class RollAttrs(OpAttrs):
    shifts: int | tuple[int, ...] = Field(description="how far to shift along each axis")
    axes: int | tuple[int, ...] = Field(description="the axis or axes to roll")


@register
class Roll(OpDef):
    name = "roll"
    positional = ("shifts", "axes")
    family = "arrange"
    doc = "Shift elements along `axes` by `shifts`, wrapping around at the ends."
    Attrs = RollAttrs
    aliases = {"dims": "axes", "axis": "axes"}
    examples = (
        "in x: float32[N, 6]\nout y = roll(x, 2, 1)",
        "in x: float32[N, T, 5]\nout y = roll(x, [-1, 7], [1, 2])",
        "in x: float32[N, H, W]\nout y = roll(x, shifts=[3, -3], axes=[-2, -1])",
    )

    def pairs(self, attrs: RollAttrs, x: TensorType) -> list[tuple[int, int]]:
        """(axis, shift) for each rolled axis."""
        axes = _axes(self.name, attrs.axes, x)
        shifts = (attrs.shifts,) if isinstance(attrs.shifts, int) else attrs.shifts
        if len(shifts) != len(axes):
            raise ShapeError(
                f"roll: {len(shifts)} shift(s) {list(shifts)} for {len(axes)} axis(es) "
                f"{list(axes)}: give one shift per axis"
            )
        return list(zip(axes, shifts))

    def infer(self, attrs: RollAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        self.pairs(attrs, x)
        return (x,)

    def torch_expr(
        self, attrs: RollAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        axes, shifts = zip(*self.pairs(attrs, inputs[0]))
        return f"torch.roll({args[0]}, {list(shifts)}, {list(axes)})"

    def onnx(self, attrs: RollAttrs, ctx: OnnxNodeContext) -> None:
        x = ctx.inputs[0]
        ttype = ctx.input_types[0]
        pairs = self.pairs(attrs, ttype)
        for index, (axis, shift) in enumerate(pairs):
            last = index == len(pairs) - 1
            x = roll_parts(ctx, x, axis, shift, ttype.shape[axis], ctx.outputs if last else None)


def roll_parts(
    ctx: OnnxNodeContext, x: str, axis: int, shift: int, size: Dim, out: Sequence[str] | None
) -> str:
    """x rolled by `shift` along `axis`: its last (shift mod size) elements, then the rest."""
    where = _ints(ctx, "roll_axis", [axis])
    if isinstance(size, int):
        split = size - shift % size if size else 0
        if split in (0, size):
            return ctx.add_node("Identity", [x], out)[0]
        cut = _ints(ctx, "roll_split", [split])
    else:  # split = size - shift mod size, from the run-time size (mod 1 when empty)
        (dims,) = ctx.add_node("Shape", [x], start=axis, end=axis + 1)
        (at_least_1,) = ctx.add_node("Max", [dims, _ints(ctx, "roll_one", [1])])
        (moved,) = ctx.add_node("Mod", [_ints(ctx, "roll_shift", [shift]), at_least_1])
        (cut,) = ctx.add_node("Sub", [dims, moved])
    start, end = _ints(ctx, "roll_start", [0]), _ints(ctx, "roll_end", [_INT64_MAX])
    (tail,) = ctx.add_node("Slice", [x, cut, end, where])
    (head,) = ctx.add_node("Slice", [x, start, cut, where])
    return ctx.add_node("Concat", [tail, head], out, axis=axis)[0]


class ExpandAttrs(OpAttrs):
    shape: Sizes = Field(
        description="the result's shape: -1 or the input's size keeps an axis, a size-1 "
        "axis repeats to a size (symbolic ones allowed: [N, -1, -1]); new leading axes "
        "need a size"
    )


@register
class Expand(OpDef):
    name = "expand"
    positional = ("shape",)
    family = "arrange"
    doc = (
        "Broadcast x to `shape` (torch's expand): size-1 axes repeat, -1 keeps an axis; "
        "a symbolic size is read from a tensor in scope that has it."
    )
    Attrs = ExpandAttrs
    examples = (
        "in x: float32[N, 1, 4]\nout y = expand(x, [-1, 3, 4])",
        "in x: float32[N, T, 1]\nout y = expand(x, [2, N, T, 5])",
        "in x: float32[N, 8]\nin q: float32[1, 4, 8]\nout y = q -> expand([N, -1, -1])",
        "in x: float32[N, T]\nout y = parameter([4, 1]) -> expand([N, 4, T])",
    )

    def arity_ok(self, count: int) -> bool:
        return count >= 1  # x, then the expander's size sources (run_time_sizes)

    def run_time_sizes(self, attrs: ExpandAttrs) -> tuple[Dim, ...]:
        # Those x has are kept axes, found in x itself: the expander adds no source for them.
        return tuple(d for d in attrs.shape if not isinstance(d, int))

    def kept(self, attrs: ExpandAttrs, x: TensorType) -> list[bool]:
        """Whether each target axis keeps the input's size (the others repeat or are new)."""
        target = attrs.shape
        if len(target) < x.rank:
            raise ShapeError(
                f"expand: the shape {shape_str(target)} has fewer axes than the input {x}"
            )
        lead = len(target) - x.rank
        kept = []
        for index, want in enumerate(target):
            where = f"expand to {shape_str(target)}: axis {index}"
            if index < lead:
                if isinstance(want, int) and want < 0:
                    raise ShapeError(f"{where} is new and needs a size >= 0, got {want}")
                kept.append(False)
                continue
            have = x.shape[index - lead]
            if want == -1 or dims_equal(want, have):
                kept.append(True)
            elif have == 1 and (not isinstance(want, int) or want >= 0):
                kept.append(False)
            else:
                raise ShapeError(f"{where} is {want}, the input {x} has {have} there (not 1)")
        return kept

    def sizes(self, attrs: ExpandAttrs, x: TensorType, keep_as: int) -> list[Dim]:
        """The target sizes, with `keep_as` where an axis keeps the input's size."""
        kept = self.kept(attrs, x)
        return [keep_as if keep else want for want, keep in zip(attrs.shape, kept)]

    def infer(self, attrs: ExpandAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = inputs[0]
        kept = self.kept(attrs, x)
        lead = len(attrs.shape) - x.rank
        shape = tuple(
            x.shape[i - lead] if keep else want
            for i, (want, keep) in enumerate(zip(attrs.shape, kept))
        )
        if size_plan(self.sizes(attrs, x, -1), inputs) is None:
            raise ShapeError(
                f"expand to {shape_str(attrs.shape)}: no input gives its symbolic sizes at run time"
            )
        return (x.with_shape(shape),)

    def torch_expr(
        self, attrs: ExpandAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        sizes = torch_sizes(self.sizes(attrs, inputs[0], -1), args, inputs)
        return f"{args[0]}.expand({', '.join(sizes)})"

    def onnx(self, attrs: ExpandAttrs, ctx: OnnxNodeContext) -> None:
        # ONNX's Expand broadcasts both ways: a 1 keeps the input's size there.
        sizes = self.sizes(attrs, ctx.input_types[0], 1)
        fixed = [s for s in sizes if isinstance(s, int)]
        if len(fixed) == len(sizes):
            shape = _ints(ctx, "expand_shape", fixed)
        else:  # symbolic sizes, sliced from the inputs' shapes
            shape = onnx_shape(ctx, sizes)
        ctx.add_node("Expand", [ctx.inputs[0], shape], ctx.outputs)
