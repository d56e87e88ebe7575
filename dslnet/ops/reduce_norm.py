"""Norms over axes: norm (as torch.linalg.vector_norm) and normalize (F.normalize),
the reduce family's p-norms (dslnet.ops.reduce for the axes they take)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dslnet.core.symbolic import Dim, mul
from dslnet.core.types import TensorType
from dslnet.ops.lowering import OnnxNodeContext, reduce_node
from dslnet.ops.reduce import _numel, _Reduction, _scalar
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, normalize_axis, register


class NormAttrs(OpAttrs):
    p: float = Field(2.0, gt=0.0, description="the norm's order")
    axis: int | tuple[int, ...] | None = Field(
        None, description="the axis or axes reduced; none: every axis"
    )
    keepdim: bool = Field(False, description="keep the reduced axes with size 1")


def _p_norm(
    ctx: OnnxNodeContext,
    x: str,
    p: float,
    axes: Sequence[int] | None,
    keep: bool,
    out: Sequence[str] | None,
) -> str:
    """(sum |x|^p)^(1/p) over axes (None: every axis)."""
    if p == 2.0:
        return reduce_node(ctx, "ReduceL2", x, axes, keep, out)
    if p == 1.0:
        return reduce_node(ctx, "ReduceL1", x, axes, keep, out)
    (mag,) = ctx.add_node("Abs", [x])
    (powered,) = ctx.add_node("Pow", [mag, _scalar(ctx, "p", p)])
    total = reduce_node(ctx, "ReduceSum", powered, axes, keep)
    return ctx.add_node("Pow", [total, _scalar(ctx, "inv_p", 1.0 / p)], out)[0]


@register
class Norm(_Reduction):
    name = "norm"
    positional = ("p", "axis")
    doc = "p-norm (sum |x|^p)^(1/p) over `axis` (every axis by default), as vector_norm."
    Attrs = NormAttrs
    examples = (
        "in x: float32[N, 8]\nout y = norm(x, axis=1)",
        "in x: float32[N, T, 4]\nout y = norm(x, 1.0, [1, 2], keepdim=true)",
        "in x: float32[N, 5]\nout y = norm(x, 3.0, -1)",
        "in x: float32[N, 3]\nout y = norm(x)",
    )

    def torch_expr(
        self, attrs: NormAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        order = "" if attrs.p == 2.0 else f", ord={attrs.p!r}"
        dims = self.dim_args(attrs, inputs[0])
        return f"torch.linalg.vector_norm({args[0]}{order}{', ' + dims if dims else ''})"

    def onnx(self, attrs: NormAttrs, ctx: OnnxNodeContext) -> None:
        axes = self.axes(attrs, ctx.input_types[0])
        _p_norm(ctx, ctx.inputs[0], attrs.p, axes or None, attrs.keepdim, ctx.outputs)


class NormalizeAttrs(OpAttrs):
    p: float = Field(2.0, gt=0.0, description="the norm's order")
    axis: int = Field(1, description="the axis normalized")
    eps: float = Field(1e-12, gt=0.0, description="lower bound of the norm divided by")


@register
class Normalize(OpDef):
    name = "normalize"
    positional = ("p", "axis")
    family = "reduce"
    doc = "x / max(||x||_p along axis, eps), as F.normalize."
    Attrs = NormalizeAttrs
    examples = (
        "in x: float32[N, 8]\nout y = normalize(x)",
        "in x: float32[N, T, 6]\nout y = normalize(x, 1.0, -1, eps=0.0001)",
        "in x: float32[N, 4, 3]\nout y = normalize(x, axis=0)",
    )

    def infer(self, attrs: NormalizeAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if not x.dtype.is_float:
            raise ShapeError(f"normalize needs a floating-point input, got {x}")
        normalize_axis(attrs.axis, x.rank, self.name, x)
        return (x,)

    def flops(self, attrs: Any, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> Dim:
        return mul(2, _numel(inputs[0].shape))  # the norm, then the division

    def torch_expr(
        self, attrs: NormalizeAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        opts = "".join(
            f", {name}={value!r}"
            for name, value, default in (
                ("p", attrs.p, 2.0),
                ("dim", attrs.axis, 1),
                ("eps", attrs.eps, 1e-12),
            )
            if value != default
        )
        return f"F.normalize({args[0]}{opts})"

    def onnx(self, attrs: NormalizeAttrs, ctx: OnnxNodeContext) -> None:
        x, ttype = ctx.inputs[0], ctx.input_types[0]
        norm = _p_norm(ctx, x, attrs.p, [attrs.axis % ttype.rank], True, None)
        (norm,) = ctx.add_node("Max", [norm, _scalar(ctx, "eps", attrs.eps)])
        ctx.add_node("Div", [x, norm], ctx.outputs)
