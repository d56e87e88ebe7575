"""Resampling and padding: upsample (F.interpolate) and pad (F.pad)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal

from pydantic import Field, field_validator

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, add, floordiv, mul
from dslnet.core.types import DType, TensorType
from dslnet.ops.channels import Channels
from dslnet.ops.elementwise import number_problem
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register
from dslnet.ops.window import float_literal, int64, torch_arg

_MODE_RANK = {"linear": 3, "bilinear": 4, "trilinear": 5}


class UpsampleAttrs(OpAttrs):
    size: int | tuple[int, ...] | None = Field(
        None, description="output spatial size: one int for every axis or one per axis"
    )
    scale_factor: float | tuple[float, ...] | None = Field(
        None, description="multiplier of each spatial size (output = floor(size * factor))"
    )
    mode: Literal["nearest", "linear", "bilinear", "trilinear"] = Field(
        "nearest",
        description="nearest (any rank), linear (3-D), bilinear (4-D) or trilinear (5-D)",
    )
    align_corners: bool = Field(
        False, description="linear modes: map corner pixel centres onto each other"
    )

    @field_validator("size", "scale_factor")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        items = value if isinstance(value, tuple) else (value,)
        if value is not None and not all(v > 0 for v in items):
            raise ValueError("must be positive")
        if value is not None and not all(math.isfinite(v) for v in items):
            raise ValueError("must be finite")  # 1e309 reads as infinity
        return value


def _inexact_repeat(factor: float) -> bool:
    """A whole factor above 1 that is not a power of 2 (its reciprocal is inexact)."""
    whole = factor.is_integer() and factor > 1
    return whole and int(factor) & (int(factor) - 1) != 0


def _scaled(length: Dim, factor: float) -> Dim | None:
    """floor(length * factor) as PyTorch computes it; None when a symbolic length
    times this factor has no exact form (it is not a multiple of a power of 1/2)."""
    if isinstance(length, int):
        return math.floor(float(length) * factor)
    exact = Fraction(factor)
    if exact.denominator & (exact.denominator - 1) or exact.denominator > 1 << 20:
        return None
    return floordiv(mul(length, exact.numerator), exact.denominator)


@register
class Upsample(OpDef):
    name = "upsample"
    positional = ("size",)
    family = "resample"
    doc = "Resize the spatial axes of [N, C, *spatial] (F.interpolate): by size or factor."
    Attrs = UpsampleAttrs
    examples = (
        "in x: float32[N, C, H, W]\nout y = x -> upsample(scale_factor=2)",
        'in x: float32[N, 3, H, W]\nout y = x -> upsample(scale_factor=1.5, mode="bilinear")',
        'in x: float32[N, 2, 6, 5]\nout y = x -> upsample((9, 4), mode="bilinear", '
        "align_corners=true)",
        'in x: float32[N, 2, T]\nout y = x -> upsample(scale_factor=2.5, mode="linear")',
        'in x: float32[2, 3, 3, 4, 5]\nout y = x -> upsample(size=(5, 2, 7), mode="trilinear")',
    )

    def spatial(self, attrs: UpsampleAttrs, x: TensorType) -> int:
        """The number of spatial axes, after checking the attributes against `x`."""
        if not 3 <= x.rank <= 5 or not x.dtype.is_float:
            raise ShapeError(
                f"upsample needs a floating-point [N, C, *spatial] input of rank 3 to 5, got {x}"
            )
        if (attrs.size is None) == (attrs.scale_factor is None):
            raise ShapeError(f"upsample takes exactly one of size and scale_factor (input {x})")
        wanted = _MODE_RANK.get(attrs.mode)
        if wanted is not None and x.rank != wanted:
            raise ShapeError(f"upsample: mode '{attrs.mode}' needs a {wanted}-D input, got {x}")
        if wanted is None and attrs.align_corners:
            raise ShapeError(
                f"upsample: align_corners is for the linear modes, not 'nearest' (input {x})"
            )
        spatial = x.rank - 2
        for name in ("size", "scale_factor"):
            value = getattr(attrs, name)
            if isinstance(value, tuple) and len(value) != spatial:
                raise ShapeError(
                    f"upsample: {name} has {len(value)} values, {x} has {spatial} spatial axes"
                )
        return spatial

    def out_sizes(self, attrs: UpsampleAttrs, x: TensorType) -> list[Dim]:
        spatial = self.spatial(attrs, x)
        if attrs.size is not None:
            return list(attrs.size) if isinstance(attrs.size, tuple) else [attrs.size] * spatial
        factors = self.factors(attrs, spatial)
        sizes: list[Dim] = []
        for axis, factor in enumerate(factors, start=2):
            size = _scaled(x.shape[axis], factor)
            if size is None:
                raise ShapeError(
                    f"upsample: the size of axis {axis} of {x} times {factor} has no exact "
                    "symbolic form; use a fixed size or a factor like 2, 1.5 or 0.25"
                )
            if isinstance(size, int) and size < 1:
                raise ShapeError(f"upsample: axis {axis} of {x} times {factor} is empty")
            sizes.append(size)
        return sizes

    @staticmethod
    def factors(attrs: UpsampleAttrs, spatial: int) -> tuple[float, ...]:
        factor = attrs.scale_factor
        assert factor is not None
        return factor if isinstance(factor, tuple) else (factor,) * spatial

    def channels(self, attrs: UpsampleAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        return Channels("keep", axis=1)

    def infer(self, attrs: UpsampleAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        return (x.with_shape((*x.shape[:2], *self.out_sizes(attrs, x))),)

    def torch_expr(
        self, attrs: UpsampleAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        if attrs.size is None and attrs.mode == "nearest":
            factors = self.factors(attrs, self.spatial(attrs, inputs[0]))
            whole = all(f.is_integer() and f >= 1 for f in factors)
            if whole and any(map(_inexact_repeat, factors)):
                # Integer factors whose reciprocal float32 cannot hold (3, 41): PyTorch's
                # source index floor(i * (1/41)) misses i = 41, where ONNX divides.
                # Repeating each element is the exact nearest upsampling of both.
                repeats = [
                    f".repeat_interleave({int(f)}, dim={axis})"
                    for axis, f in enumerate(factors, start=2)
                    if f != 1.0
                ]
                return args[0] + "".join(repeats)
        call = [args[0]]
        if attrs.size is not None:
            call.append(f"size={torch_arg(attrs.size)}")
        else:
            factor = attrs.scale_factor
            assert factor is not None
            text = repr(factor) if not isinstance(factor, tuple) else str(tuple(factor))
            call.append(f"scale_factor={text}")
        if attrs.mode != "nearest":
            call.append(f'mode="{attrs.mode}"')
        if attrs.align_corners:
            call.append("align_corners=True")
        return f"F.interpolate({', '.join(call)})"

    def onnx(self, attrs: UpsampleAttrs, ctx: OnnxNodeContext) -> None:
        x_type = ctx.input_types[0]
        spatial = self.spatial(attrs, x_type)
        if attrs.mode == "nearest":
            how = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"}
            how["nearest_mode"] = "floor"
        else:
            corners = "align_corners" if attrs.align_corners else "half_pixel"
            how = {"mode": "linear", "coordinate_transformation_mode": corners}
        axes = list(range(2, 2 + spatial))
        if attrs.size is not None:
            sizes = int64(ctx, "sizes", self.out_sizes(attrs, x_type))  # type: ignore[arg-type]
            ctx.add_node("Resize", [ctx.inputs[0], "", "", sizes], ctx.outputs, axes=axes, **how)
            return
        scales = self.scales(attrs, ctx, spatial)
        ctx.add_node("Resize", [ctx.inputs[0], "", scales], ctx.outputs, axes=axes, **how)

    def scales(self, attrs: UpsampleAttrs, ctx: OnnxNodeContext, spatial: int) -> str:
        """The `scales` input. PyTorch leaves an axis whose size does not change as it
        is (whatever the factor); ONNX Runtime would resample it, so its scale is 1."""
        x_type = ctx.input_types[0]
        factors = self.factors(attrs, spatial)
        fixed, parts = [], []
        for axis, factor in enumerate(factors, start=2):
            length = x_type.shape[axis]
            if isinstance(length, int):
                fixed.append(1.0 if _scaled(length, factor) == length else factor)
            elif not 1.0 < factor < 2.0:  # floor(L * factor) == L cannot happen
                fixed.append(factor)
            else:  # small inputs keep their size: decide at run time
                if fixed:
                    parts.append(ctx.add_initializer("scales", np.array(fixed, np.float32)))
                    fixed = []
                parts.append(self._runtime_scale(ctx, axis, factor))
        if fixed:
            parts.append(ctx.add_initializer("scales", np.array(fixed, np.float32)))
        if len(parts) == 1:
            return parts[0]
        return ctx.add_node("Concat", parts, axis=0)[0]

    @staticmethod
    def _runtime_scale(ctx: OnnxNodeContext, axis: int, factor: float) -> str:
        def const(hint: str, value: float) -> str:
            return ctx.add_initializer(hint, np.array([value], np.float32))

        (length,) = ctx.add_node("Shape", [ctx.inputs[0]], start=axis, end=axis + 1)
        (length,) = ctx.add_node("Cast", [length], to=1)  # FLOAT
        (scaled,) = ctx.add_node("Mul", [length, const("factor", factor)])
        (scaled,) = ctx.add_node("Floor", [scaled])
        (same,) = ctx.add_node("Equal", [scaled, length])
        return ctx.add_node("Where", [same, const("one", 1.0), const("factor", factor)])[0]


class PadAttrs(OpAttrs):
    padding: tuple[int, ...] = Field(
        description="(begin, end) pairs, the last axis first, as F.pad takes them; "
        "negative amounts crop (constant mode)"
    )
    mode: Literal["constant", "reflect", "replicate", "circular"] = Field(
        "constant",
        description="fill with `value`, mirror without the edge, repeat the edge, or wrap",
    )
    value: float = Field(0.0, description="the fill of constant mode; may be ±inf")

    dtype_range = frozenset({"value"})  # checked against x (Pad.pairs); -inf may pad floats

    @field_validator("padding")
    @classmethod
    def _pairs(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(value) % 2:
            raise ValueError("needs (begin, end) pairs: an even number of ints")
        return value


@register
class Pad(OpDef):
    name = "pad"
    positional = ("padding",)
    family = "resample"
    doc = "Pad the last axes (F.pad): constant, reflect, replicate or circular."
    Attrs = PadAttrs
    examples = (
        "in x: float32[N, C, H, W]\nout y = x -> pad((1, 2, 0, 3))",
        'in x: float32[N, 3, H, W]\nout y = x -> pad((2, 1, 3, 2), mode="reflect")',
        'in x: float32[N, 2, 5, 6, 4]\nout y = x -> pad((1, 2, 3, 0, 2, 2), mode="replicate")',
        'in x: float32[N, 2, H, W]\nout y = x -> pad((2, 3, 1, 2), mode="circular")',
        "in x: float32[N, 4, 7]\nout y = x -> pad((-1, 2, 1, 0), value=-1.5)",
    )

    def pairs(self, attrs: PadAttrs, x: TensorType) -> dict[int, tuple[int, int]]:
        """Axis -> (begin, end), checked against `x` by PyTorch's rules."""
        pad, count = attrs.padding, len(attrs.padding) // 2
        if count > x.rank:
            raise ShapeError(f"pad: {len(pad)} amounts pad {count} axes, but {x} has {x.rank}")
        pairs = {x.rank - 1 - j: (pad[2 * j], pad[2 * j + 1]) for j in range(count)}
        if attrs.mode == "constant":
            fill = attrs.value
            if x.dtype == DType.bool:
                problem = None if fill in (0.0, 1.0) else "is not 0 or 1 (false or true)"
            elif x.dtype.is_float and math.isinf(fill):
                problem = None
            else:
                problem = number_problem(
                    fill, x.dtype, fraction="and an integer tensor is padded with integers"
                )
            if problem:
                raise ShapeError(f"pad: value {fill!r} {problem} (the input is {x})")
            for axis, (begin, end) in pairs.items():
                size = add(x.shape[axis], begin + end)
                if isinstance(size, int) and size < 0:
                    raise ShapeError(f"pad: axis {axis} of {x} would have size {size}")
            return pairs
        if attrs.value != 0.0:
            raise ShapeError(f"pad: mode '{attrs.mode}' takes no value")
        if count > 3 or x.rank not in (count + 1, count + 2):
            raise ShapeError(
                f"pad: mode '{attrs.mode}' pads the last 1 to 3 axes of an input with one or "
                f"two more axes (PyTorch's rule); {count} axes of {x} is not supported"
            )
        for axis, (begin, end) in pairs.items():
            length = x.shape[axis]
            if min(begin, end) < 0:
                raise ShapeError(f"pad: mode '{attrs.mode}' needs amounts >= 0, got {pad}")
            if isinstance(length, int):
                limit = {"reflect": length - 1, "circular": length}.get(attrs.mode, 1 << 62)
                if max(begin, end) > limit:
                    raise ShapeError(
                        f"pad: {attrs.mode} padding {max(begin, end)} on axis {axis} of {x} "
                        f"must be at most {limit}"
                    )
        return pairs

    def infer(self, attrs: PadAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        shape = list(x.shape)
        for axis, (begin, end) in self.pairs(attrs, x).items():
            shape[axis] = add(shape[axis], begin + end)
        return (x.with_shape(tuple(shape)),)

    def torch_helpers_for(self, attrs: PadAttrs, inputs: Sequence[TensorType]) -> tuple[str, ...]:
        return (_WRAP_PAD,) if self._wraps(attrs, inputs[0]) else ()

    def _wraps(self, attrs: PadAttrs, x: TensorType) -> dict[int, tuple[int, int]]:
        """Circular padding on symbolic axes: those axes and their amounts. An amount
        over the size wraps around again in both backends (F.pad refuses it, and an
        ONNX slice would give fewer elements), as the run-time size cannot be checked."""
        if attrs.mode != "circular":
            return {}
        pairs = self.pairs(attrs, x)
        return {a: p for a, p in pairs.items() if p != (0, 0) and not isinstance(x.shape[a], int)}

    def torch_expr(self, attrs: PadAttrs, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        wraps = self._wraps(attrs, inputs[0])
        if wraps:
            padded = {a: p for a, p in self.pairs(attrs, inputs[0]).items() if p != (0, 0)}
            pairs = tuple((a, b, e) for a, (b, e) in sorted(padded.items()))
            return f"_wrap_pad({args[0]}, {pairs})"
        call = [args[0], str(tuple(attrs.padding))]
        if attrs.mode != "constant":
            call.append(f'mode="{attrs.mode}"')
        elif attrs.value != 0.0:
            call.append(f"value={float_literal(attrs.value)}")
        return f"F.pad({', '.join(call)})"

    def onnx(self, attrs: PadAttrs, ctx: OnnxNodeContext) -> None:
        x_type = ctx.input_types[0]
        pairs = self.pairs(attrs, x_type)
        if attrs.mode == "circular":
            self._circular(ctx, pairs)
            return
        rank = x_type.rank
        pads = [pairs.get(a, (0, 0))[0] for a in range(rank)]
        pads += [pairs.get(a, (0, 0))[1] for a in range(rank)]
        args = [ctx.inputs[0], int64(ctx, "pads", pads)]
        if attrs.mode == "constant" and attrs.value != 0.0:
            value = np.array(attrs.value, dtype=x_type.dtype.value)
            args.append(ctx.add_initializer("pad_value", value))
        mode = {"replicate": "edge"}.get(attrs.mode, attrs.mode)
        ctx.add_node("Pad", args, ctx.outputs, mode=mode)

    @staticmethod
    def _circular(ctx: OnnxNodeContext, pairs: dict[int, tuple[int, int]]) -> None:
        """Wrap-around padding (ONNX Pad has no 'wrap' before opset 19): per axis,
        concatenate the input's last `begin` and first `end` elements around it."""
        current = ctx.inputs[0]
        todo = [(axis, pad) for axis, pad in sorted(pairs.items()) if pad != (0, 0)]
        if not todo:
            ctx.add_node("Identity", [current], ctx.outputs)
        for axis, (begin, end) in todo:
            out = list(ctx.outputs) if axis == todo[-1][0] else None
            if not isinstance(ctx.input_types[0].shape[axis], int):  # see Pad._wraps
                (size,) = ctx.add_node("Shape", [current], start=axis, end=axis + 1)
                (size,) = ctx.add_node("Squeeze", [size])
                (limit,) = ctx.add_node("Add", [size, int64(ctx, "end", end)])
                (index,) = ctx.add_node(
                    "Range", [int64(ctx, "start", -begin), limit, int64(ctx, "one", 1)]
                )
                (index,) = ctx.add_node("Mod", [index, size])
                (current,) = ctx.add_node("Gather", [current, index], out, axis=axis)
                continue
            axes = int64(ctx, "axes", [axis])
            parts = [current]
            if begin:
                bounds = [int64(ctx, "start", [-begin]), int64(ctx, "end", [2**62])]
                parts.insert(0, ctx.add_node("Slice", [current, *bounds, axes])[0])
            if end:
                bounds = [int64(ctx, "start", [0]), int64(ctx, "end", [end])]
                parts.append(ctx.add_node("Slice", [current, *bounds, axes])[0])
            (current,) = ctx.add_node("Concat", parts, out, axis=axis)


_WRAP_PAD = """
def _wrap_pad(x: torch.Tensor, pairs: tuple[tuple[int, int, int], ...]) -> torch.Tensor:
    \"\"\"Circular padding, (axis, begin, end) per axis, wrapping around as often as the
    amounts need (F.pad's wraps once).\"\"\"
    for axis, begin, end in pairs:
        size = x.shape[axis]
        index = torch.arange(-begin, size + end, device=x.device) % size
        x = x.index_select(axis, index)
    return x
"""
