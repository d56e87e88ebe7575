"""reshape: the same elements in a new shape; sizes may be symbolic (`[N, -1]`, `[N, C, H*W]`).

The generated torch code holds no shape arithmetic: a reshape is written with
literal sizes and at most one -1, or as `flatten`/`unflatten` of the axes that
change, which reads as intent and traces with `torch.compile(fullgraph=True)`.
Only a reshape that moves several symbolic sizes around (`[N, T, C] -> [T, N*C]`)
reads sizes from `x.shape`, the one thing left that can compute them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import ConfigDict, Field, PlainValidator

from dslnet.core.symbolic import Dim, SymExpr, dims_equal, floordiv, mul
from dslnet.core.types import TensorType, shape_str
from dslnet.ops.lowering import OnnxNodeContext, RunTimeSize, onnx_sizes, torch_size_text
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register


def _target(value: Any) -> tuple[Dim, ...]:
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, tuple) and all(
        isinstance(d, SymExpr) or (isinstance(d, int) and not isinstance(d, bool)) for d in value
    ):
        return value
    raise ValueError("must be a list of sizes (ints, -1, 0 or symbolic sizes like N or H*W)")


class ReshapeAttrs(OpAttrs):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True
    )

    shape: Annotated[tuple[int | SymExpr, ...], PlainValidator(_target)] = Field(
        description="the new shape: sizes (symbolic ones allowed, e.g. N or H*W), one -1 "
        "for the size that makes the element count fit, 0 to copy the input's size at "
        "that position"
    )


def _numel(shape: Sequence[Dim]) -> Dim:
    total: Dim = 1
    for d in shape:
        total = mul(total, d)
    return total


def resolve_target(target: Sequence[Dim], x: TensorType) -> tuple[Dim, ...]:
    """The output shape of reshaping `x` to `target` (0 and -1 resolved); ShapeError if
    the element counts cannot be proven equal."""
    written = shape_str(tuple(target))
    if sum(1 for d in target if isinstance(d, int) and d == -1) > 1:
        raise ShapeError(f"reshape: at most one size may be -1, got {written}")
    dims: list[Dim] = []
    for i, d in enumerate(target):
        if isinstance(d, int) and d == 0:
            if i >= x.rank:
                raise ShapeError(
                    f"reshape: size 0 at position {i} copies the input's size there, but the "
                    f"input {x} has rank {x.rank}"
                )
            d = x.shape[i]
        elif isinstance(d, int) and d < -1:
            raise ShapeError(f"reshape: size {d} in {written} is negative (only -1 is allowed)")
        dims.append(d)
    total = _numel(x.shape)
    known = _numel([d for d in dims if not (isinstance(d, int) and d == -1)])
    if len([d for d in dims if isinstance(d, int) and d == -1]) == 0:
        if not dims_equal(known, total):
            raise ShapeError(
                f"reshape: the input {x} has {total} elements, the target {written} has "
                f"{known}; they must be equal"
            )
        return tuple(dims)
    missing = floordiv(total, known) if not dims_equal(known, 0) else None
    if missing is None or not dims_equal(mul(missing, known), total):
        raise ShapeError(
            f"reshape: cannot fill the -1 of {written}: the input {x} has {total} elements, "
            f"which is not a multiple of {known} (the other sizes)"
        )
    return tuple(missing if isinstance(d, int) and d == -1 else d for d in dims)


def express(dim: Dim, shape: Sequence[Dim]) -> tuple[int, list[int]] | None:
    """(k, axes) with dim == k * prod(shape[i] for i in axes), or None: how a symbolic
    output size is computed from the input's sizes at run time."""
    for i, d in enumerate(shape):
        if dims_equal(d, dim):
            return 1, [i]
    rest, axes = dim, []
    for i, d in enumerate(shape):
        if isinstance(rest, int):
            break
        if isinstance(d, int):
            continue
        quotient = floordiv(rest, d)
        if dims_equal(mul(quotient, d), rest):
            rest = quotient
            axes.append(i)
    return (rest, axes) if isinstance(rest, int) and rest > 0 else None


def _plan(src: Sequence[Dim], out: Sequence[Dim], copy: bool, wild: int | None) -> list[Any]:
    """How each output size is written: an int; 0 (copy the input's size at the same
    position, when `copy`); -1 for one symbolic size (one the input's sizes cannot
    compute, else where the spec wrote -1 (`wild`), else the first); or (k, axes) for a
    size computed from the input's sizes."""
    plan: list[Any] = []
    for i, d in enumerate(out):
        if isinstance(d, int):
            plan.append(d)
        elif copy and i < len(src) and dims_equal(src[i], d):
            plan.append(0)
        else:
            plan.append(express(d, src))
    pending = [i for i, e in enumerate(plan) if not isinstance(e, int)]
    if pending:
        fallback = wild if wild in pending else pending[0]
        free = next((i for i in pending if plan[i] is None), fallback)
        plan[free] = -1
    return plan


def _is_static(d: Dim) -> bool:
    return isinstance(d, int)


def _middle(src: Sequence[Dim], dst: Sequence[Dim]) -> tuple[int, int]:
    """Lengths of the common prefix and suffix of two shapes, leaving a middle of at
    least one axis on each side (when the shapes differ)."""
    limit = min(len(src), len(dst))
    p = 0
    while p < limit and dims_equal(src[p], dst[p]):
        p += 1
    s = 0
    while s < limit - p and dims_equal(src[-1 - s], dst[-1 - s]):
        s += 1
    if len(src) == len(dst) == p + s:
        return p, s  # no change at all
    while (len(src) - p - s == 0 or len(dst) - p - s == 0) and (p or s):
        if s:  # only 1s inserted or removed: take a neighbouring axis into the middle
            s -= 1
        else:
            p -= 1
    return p, s


def _sizes(dims: Sequence[Dim]) -> list[str]:
    """Written sizes: literal ints, with -1 for the one symbolic size."""
    return [str(d) if _is_static(d) else "-1" for d in dims]


def _flatten(arg: str, start: int, end: int, rank: int) -> str:
    if end == rank - 1:
        return f"{arg}.flatten({start})" if start else f"{arg}.flatten()"
    return f"{arg}.flatten({start}, {end})"


def _wild(target: Sequence[Dim]) -> int | None:
    """Where the spec wrote -1, if it did."""
    return next((i for i, d in enumerate(target) if isinstance(d, int) and d == -1), None)


def torch_reshape(arg: str, x: TensorType, out: Sequence[Dim], wild: int | None = None) -> str:
    """Source of `arg` reshaped from x's shape to `out` (see the module docstring)."""
    src = x.shape
    symbolic = sum(1 for d in out if not _is_static(d))
    if symbolic == 0:
        return f"{arg}.reshape({', '.join(str(d) for d in out)})"
    p, s = _middle(src, out)
    src_mid, out_mid = src[p : len(src) - s], out[p : len(out) - s]
    mid_symbolic = sum(1 for d in out_mid if not _is_static(d))
    if not src_mid and not out_mid:
        return arg
    if len(out_mid) == 1:
        return _flatten(arg, p, p + len(src_mid) - 1, len(src))
    if len(src_mid) == 1 and mid_symbolic <= 1:
        return f"{arg}.unflatten({p}, ({', '.join(_sizes(out_mid))}))"
    if symbolic == 1:
        return f"{arg}.reshape({', '.join(_sizes(out))})"
    if mid_symbolic <= 1:
        merged = _flatten(arg, p, p + len(src_mid) - 1, len(src))
        return f"{merged}.unflatten({p}, ({', '.join(_sizes(out_mid))}))"
    # Several symbolic sizes move: compute them from the input's sizes.
    sizes = []
    for entry in _plan(src, out, copy=False, wild=wild):
        if isinstance(entry, int):
            sizes.append(str(entry))
        else:
            k, axes = entry
            sizes.append(torch_size_text(k, arg, axes))
    return f"{arg}.reshape({', '.join(sizes)})"


def onnx_target(
    ctx: OnnxNodeContext, x: str, src: Sequence[Dim], out: Sequence[Dim], wild: int | None = None
) -> str:
    """The shape tensor for ONNX Reshape: literal sizes, 0 for a size copied from the same
    position, one -1, and Shape-computed sizes for any further symbolic ones."""
    sizes: list[RunTimeSize] = [
        entry if isinstance(entry, int) else (entry[0], x, entry[1])
        for entry in _plan(src, out, copy=True, wild=wild)
    ]
    return onnx_sizes(ctx, sizes, factor_hint="reshape_k", sizes_hint="reshape_shape")


@register
class Reshape(OpDef):
    name = "reshape"
    positional = ("shape",)
    family = "shape"
    doc = (
        "The same elements in a new shape: sizes may be symbolic (N, H*W), "
        "one -1 fills in, 0 copies the input's size at that position."
    )
    Attrs = ReshapeAttrs
    examples = (
        "in x: float32[N, C, H, W]\nout y = reshape(x, [N, C, H*W])",
        "in x: float32[N, 12]\nout y = reshape(x, [N, 3, -1])",
        "in x: float32[N, T, 8]\nout y = reshape(x, [N, T, 2, -1])",
    )

    def infer(self, attrs: ReshapeAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        out = resolve_target(attrs.shape, x)
        stuck = [d for d in out if not _is_static(d) and express(d, x.shape) is None]
        if len(stuck) > 1:
            raise ShapeError(
                f"reshape to {shape_str(out)}: the sizes {', '.join(map(str, stuck))} cannot be "
                f"computed from the input's sizes {shape_str(x.shape)} at run time; at most "
                f"one such size (written -1) is possible"
            )
        return (x.with_shape(out),)

    def torch_expr(
        self, attrs: ReshapeAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        (x,) = inputs
        return torch_reshape(args[0], x, resolve_target(attrs.shape, x), _wild(attrs.shape))

    def onnx(self, attrs: ReshapeAttrs, ctx: OnnxNodeContext) -> None:
        src, out = ctx.input_types[0].shape, ctx.output_types[0].shape
        if src == out:
            ctx.add_node("Identity", ctx.inputs, ctx.outputs)
            return
        target = onnx_target(ctx, ctx.inputs[0], src, out, _wild(attrs.shape))
        ctx.add_node("Reshape", [ctx.inputs[0], target], ctx.outputs)
