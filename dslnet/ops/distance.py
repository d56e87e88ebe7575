"""Distances and normalization along an axis: pairwise_distance, cosine_similarity,
l2_normalize (torch.nn.functional's formulas, eps handling included)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, dims_equal
from dslnet.core.types import TensorType
from dslnet.ops.elementwise import broadcast
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, normalize_axis, register


def _floats(op: str, inputs: Sequence[TensorType]) -> None:
    for t in inputs:
        if not t.dtype.is_float:
            raise ShapeError(f"{op} needs floating-point inputs, got {t}")


def _options(*items: tuple[str, Any, Any]) -> str:
    """`, name=value` for each (name, value, torch default) whose value differs."""
    return "".join(f", {name}={value!r}" for name, value, default in items if value != default)


def _scalar(ctx: OnnxNodeContext, hint: str, value: float) -> str:
    return ctx.add_initializer(hint, np.array(value, dtype=ctx.input_types[0].dtype.value))


def _axes(ctx: OnnxNodeContext, axis: int) -> str:
    return ctx.add_initializer("axes", np.array([axis], dtype=np.int64))


def _l2(ctx: OnnxNodeContext, x: str, axis: int, keepdims: int, out: str | None = None) -> str:
    """sqrt(sum(x * x)) along axis: ReduceSum takes its axes as an input from opset 13 on
    (ReduceL2 only from 18), so this holds for every opset the emitter targets."""
    (square,) = ctx.add_node("Mul", [x, x])
    (total,) = ctx.add_node("ReduceSum", [square, _axes(ctx, axis)], keepdims=keepdims)
    return ctx.add_node("Sqrt", [total], None if out is None else [out])[0]


class PairwiseDistanceAttrs(OpAttrs):
    p: float = Field(2.0, gt=0.0, allow_inf_nan=False, description="the norm's order")
    eps: float = Field(1e-6, ge=0.0, description="added to a - b before the norm")
    keepdim: bool = Field(False, description="keep the reduced last axis with size 1")


@register
class PairwiseDistance(OpDef):
    name = "pairwise_distance"
    positional = ("p",)
    family = "distance"
    doc = "p-norm of (a - b + eps) over the last axis (a and b broadcast), as F.pairwise_distance."
    Attrs = PairwiseDistanceAttrs
    inputs = ("a", "b")
    examples = (
        "in a: float32[N, 8]\nin b: float32[N, 8]\nout y = pairwise_distance(a, b)",
        "in a: float32[N, T, 5]\nin b: float32[5]\nout y = pairwise_distance(a, b, p=1.0, "
        "keepdim=true)",
        "in a: float32[N, 4]\nin b: float32[N, 4]\nout y = pairwise_distance(a, b, 3.0, eps=0.0)",
    )

    def infer(
        self, attrs: PairwiseDistanceAttrs, inputs: Sequence[TensorType]
    ) -> tuple[TensorType, ...]:
        _floats(self.name, inputs)
        both = broadcast(self.name, *inputs)
        if both.rank == 0:
            raise ShapeError(f"pairwise_distance needs inputs of rank >= 1, got {both}")
        kept = (1,) if attrs.keepdim else ()
        return (both.with_shape((*both.shape[:-1], *kept)),)

    def torch_expr(
        self, attrs: PairwiseDistanceAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        opts = _options(
            ("p", attrs.p, 2.0), ("eps", attrs.eps, 1e-6), ("keepdim", attrs.keepdim, False)
        )
        return f"F.pairwise_distance({args[0]}, {args[1]}{opts})"

    def onnx(self, attrs: PairwiseDistanceAttrs, ctx: OnnxNodeContext) -> None:
        (a, b), (y,) = ctx.inputs, ctx.outputs
        (diff,) = ctx.add_node("Sub", [a, b])
        if attrs.eps:
            (diff,) = ctx.add_node("Add", [diff, _scalar(ctx, "eps", attrs.eps)])
        axes, keep = _axes(ctx, -1), int(attrs.keepdim)
        if all(t.shape[-1:] in ((), (1,)) for t in ctx.input_types):
            # PyTorch's norm of one element is its magnitude, not (|x|^p)^(1/p), which
            # overflows or underflows for a large p: the same here.
            (mag,) = ctx.add_node("Abs", [diff])
            if keep:
                ctx.add_node("Identity", [mag], [y])
            else:
                ctx.add_node("Squeeze", [mag, axes], [y])
            return
        if attrs.p == 2.0:
            _l2(ctx, diff, -1, keep, y)
            return
        (mag,) = ctx.add_node("Abs", [diff])
        if attrs.p == 1.0:
            ctx.add_node("ReduceSum", [mag, axes], [y], keepdims=keep)
            return
        (powered,) = ctx.add_node("Pow", [mag, _scalar(ctx, "p", attrs.p)])
        (total,) = ctx.add_node("ReduceSum", [powered, axes], keepdims=keep)
        ctx.add_node("Pow", [total, _scalar(ctx, "inv_p", 1.0 / attrs.p)], [y])


def _unit(ctx: OnnxNodeContext, x: str, axis: int, eps: str) -> str:
    """x / max(||x||_2 along axis, eps)."""
    (norm,) = ctx.add_node("Max", [_l2(ctx, x, axis, keepdims=1), eps])
    return ctx.add_node("Div", [x, norm])[0]


class CosineSimilarityAttrs(OpAttrs):
    axis: int = Field(1, description="the axis of the vectors compared")
    eps: float = Field(1e-8, gt=0.0, description="lower bound of each vector's norm")


@register
class CosineSimilarity(OpDef):
    name = "cosine_similarity"
    positional = ("axis",)
    family = "distance"
    doc = (
        "Cosine of the angle between a and b along `axis`, as F.cosine_similarity: "
        "sum(a / max(||a||, eps) * b / max(||b||, eps)); other axes broadcast."
    )
    Attrs = CosineSimilarityAttrs
    inputs = ("a", "b")
    examples = (
        "in a: float32[N, 8]\nin b: float32[N, 8]\nout y = cosine_similarity(a, b)",
        "in a: float32[N, T, 6]\nin b: float32[1, T, 6]\nout y = cosine_similarity(a, b, axis=-1)",
    )

    def infer(
        self, attrs: CosineSimilarityAttrs, inputs: Sequence[TensorType]
    ) -> tuple[TensorType, ...]:
        _floats(self.name, inputs)
        a, b = inputs
        both = broadcast(self.name, a, b)
        axis = normalize_axis(attrs.axis, both.rank, self.name, both)
        sizes: list[Dim | None] = []
        for t in (a, b):
            own = axis - (both.rank - t.rank)
            sizes.append(t.shape[own] if own >= 0 else None)
        if sizes[0] is None or sizes[1] is None or not dims_equal(sizes[0], sizes[1]):
            raise ShapeError(
                f"cosine_similarity: a {a} and b {b} must both have axis {attrs.axis} with one "
                f"size (the vectors compared); broadcasting applies to the other axes only"
            )
        return (both.with_shape((*both.shape[:axis], *both.shape[axis + 1 :])),)

    def torch_expr(
        self, attrs: CosineSimilarityAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        opts = _options(("dim", attrs.axis, 1), ("eps", attrs.eps, 1e-8))
        return f"F.cosine_similarity({args[0]}, {args[1]}{opts})"

    def onnx(self, attrs: CosineSimilarityAttrs, ctx: OnnxNodeContext) -> None:
        (a, b), (y,) = ctx.inputs, ctx.outputs
        rank = ctx.output_types[0].rank + 1
        axis = attrs.axis % rank
        eps = _scalar(ctx, "eps", attrs.eps)
        # Each input's own axis (a lower-rank input lines up from the right).
        a_unit = _unit(ctx, a, axis - rank, eps)
        b_unit = _unit(ctx, b, axis - rank, eps)
        (prod,) = ctx.add_node("Mul", [a_unit, b_unit])
        ctx.add_node("ReduceSum", [prod, _axes(ctx, axis)], [y], keepdims=0)


class L2NormalizeAttrs(OpAttrs):
    axis: int = Field(1, description="the axis normalized to unit length")
    eps: float = Field(1e-12, gt=0.0, description="lower bound of the norm divided by")


@register
class L2Normalize(OpDef):
    name = "l2_normalize"
    # F.normalize(x, 2) would be its p: axis is keyword-only.
    positional = ()
    family = "distance"
    doc = "x / max(||x||_2 along axis, eps): unit vectors, as F.normalize."
    Attrs = L2NormalizeAttrs
    examples = (
        "in x: float32[N, 8]\nout y = l2_normalize(x)",
        "in x: float32[N, T, 6]\nout y = l2_normalize(x, axis=-1, eps=0.0001)",
    )

    def infer(
        self, attrs: L2NormalizeAttrs, inputs: Sequence[TensorType]
    ) -> tuple[TensorType, ...]:
        _floats(self.name, inputs)
        (x,) = inputs
        normalize_axis(attrs.axis, x.rank, self.name, x)
        return (x,)

    def torch_expr(
        self, attrs: L2NormalizeAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        opts = _options(("dim", attrs.axis, 1), ("eps", attrs.eps, 1e-12))
        return f"F.normalize({args[0]}{opts})"

    def onnx(self, attrs: L2NormalizeAttrs, ctx: OnnxNodeContext) -> None:
        eps = _scalar(ctx, "eps", attrs.eps)
        (x,), (y,) = ctx.inputs, ctx.outputs
        (norm,) = ctx.add_node("Max", [_l2(ctx, x, attrs.axis, keepdims=1), eps])
        ctx.add_node("Div", [x, norm], [y])
