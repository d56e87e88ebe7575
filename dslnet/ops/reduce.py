"""Reductions over axes: mean, sum, amax, amin, var, std, logsumexp (the p-norms norm
and normalize are in dslnet.ops.reduce_norm).

Each reduces the axes of `axis` (an int, a list, or none for every axis; negative axes
count from the end) and drops them unless `keepdim`. The ONNX lowerings give the axes
as an input from opset 18 and as an attribute before (dslnet.ops.lowering.reduce_node);
var and std are composed, with the count of reduced elements read from the run-time
shape when an axis is symbolic.

`amax`/`amin` take torch's names for the reductions: `max`/`min` are the language's
compile-time builtins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, mul
from dslnet.core.types import DType, TensorType
from dslnet.ops.lowering import ONNX_DTYPES, OnnxNodeContext, reduce_node
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, normalize_axis, register

_INTS = (DType.int32, DType.int64)  # the integer dtypes both backends sum and compare


class ReduceAttrs(OpAttrs):
    axis: int | tuple[int, ...] | None = Field(
        None, description="the axis or axes reduced; none: every axis"
    )
    keepdim: bool = Field(False, description="keep the reduced axes with size 1")


class VarianceAttrs(ReduceAttrs):
    correction: int = Field(
        1, ge=0, description="divide by n - correction (1: unbiased, 0: population)"
    )


def reduced_axes(op: str, axis: int | tuple[int, ...] | None, x: TensorType) -> tuple[int, ...]:
    """The axes `axis` names, non-negative and sorted; every axis for none."""
    if axis is None:
        return tuple(range(x.rank))
    given = (axis,) if isinstance(axis, int) else axis
    if not given:
        raise ShapeError(f"{op}: the axis list is empty (leave axis out to reduce every axis)")
    axes = [normalize_axis(a, x.rank, op, x) for a in given]
    twice = sorted({a for a in axes if axes.count(a) > 1})
    if twice:
        raise ShapeError(
            f"{op}: axis {list(given)} names axis {twice[0]} twice for {x} (rank {x.rank})"
        )
    return tuple(sorted(axes))


def _numel(dims: Sequence[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = mul(out, d)
    return out


def _dims(axes: Sequence[int]) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


def _int64(ctx: OnnxNodeContext, hint: str, values: Sequence[int]) -> str:
    return ctx.add_initializer(hint, np.array(list(values), dtype=np.int64))


def _scalar(ctx: OnnxNodeContext, hint: str, value: float) -> str:
    return ctx.add_initializer(hint, np.array(value, dtype=ctx.input_types[0].dtype.value))


class _Reduction(OpDef):
    """Reduces `x` over its axes; float only unless `ints` says otherwise."""

    family = "reduce"
    positional: ClassVar[tuple[str, ...]] = ("axis",)
    Attrs: ClassVar[type[OpAttrs]] = ReduceAttrs
    ints: ClassVar[bool] = False
    torch_method: ClassVar[str] = ""
    onnx_op: ClassVar[str] = ""

    def axes(self, attrs: Any, x: TensorType) -> tuple[int, ...]:
        return reduced_axes(self.name, attrs.axis, x)

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if not (x.dtype.is_float or (self.ints and x.dtype in _INTS)):
            kinds = "a floating-point or int32/int64" if self.ints else "a floating-point"
            raise ShapeError(f"{self.name} needs {kinds} input, got {x}")
        axes = self.axes(attrs, x)
        if attrs.keepdim:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return (x.with_shape(shape),)

    def flops(self, attrs: Any, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> Dim:
        return _numel(inputs[0].shape)  # one accumulation per input element

    def dim_args(self, attrs: Any, x: TensorType, *, every: bool = False) -> str:
        """`dim=..., keepdim=...` for torch; empty when every axis is reduced without
        keepdim (torch's default), unless `every` asks for the axes anyway."""
        axes = self.axes(attrs, x)
        if attrs.axis is None and not attrs.keepdim and not every:
            return ""
        keep = ", keepdim=True" if attrs.keepdim else ""
        return f"dim={_dims(axes)}{keep}"

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{args[0]}.{self.torch_method}({self.dim_args(attrs, inputs[0])})"

    def reduce(
        self,
        attrs: Any,
        ctx: OnnxNodeContext,
        op: str,
        x: str,
        keep: bool,
        out: Sequence[str] | None = None,
    ) -> str:
        """One ONNX Reduce* node over the call's axes (given as an input)."""
        axes = self.axes(attrs, ctx.input_types[0])
        return reduce_node(ctx, op, x, axes or None, keep, out)

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        self.reduce(attrs, ctx, self.onnx_op, ctx.inputs[0], attrs.keepdim, ctx.outputs)


@register
class Mean(_Reduction):
    name = "mean"
    doc = "Mean over `axis` (every axis by default), as x.mean(dim, keepdim)."
    torch_method = "mean"
    onnx_op = "ReduceMean"
    examples = (
        "in x: float32[N, 4, 5]\nout y = mean(x, 1)",
        "in x: float32[N, 4, 5]\nout y = mean(x, [-1, 1], keepdim=true)",
        "in x: float32[N, 6]\nout y = mean(x)",
        "in x: float32[N, T, 3]\nout y = mean(x, axis=1)",
    )


@register
class Sum(_Reduction):
    name = "sum"
    doc = "Sum over `axis` (every axis by default); int32/int64 keep their dtype."
    ints = True
    torch_method = "sum"
    onnx_op = "ReduceSum"
    examples = (
        "in x: float32[N, 4, 5]\nout y = sum(x, -1)",
        "in x: float32[N, 4, 5]\nout y = sum(x, [0, 2], keepdim=true)",
        "in x: int32[N, 3]\nout y = sum(x, 1)",
        "in x: float32[N, T]\nout y = sum(x)",
    )

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        dims = self.dim_args(attrs, inputs[0])
        if inputs[0].dtype is DType.int32:  # torch sums small ints as int64
            dims = f"{dims}, dtype=torch.int32" if dims else "dtype=torch.int32"
        return f"{args[0]}.sum({dims})"


class _Extreme(_Reduction):
    """The largest or smallest element: NaN when one of those reduced is NaN, as in
    torch (ONNX Runtime's ReduceMax/ReduceMin pass over a NaN)."""

    ints = True

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        if not ctx.input_types[0].dtype.is_float:
            super().onnx(attrs, ctx)
            return
        x = ctx.inputs[0]
        found = self.reduce(attrs, ctx, self.onnx_op, x, attrs.keepdim)
        (nan,) = ctx.add_node("IsNaN", [x])
        (nans,) = ctx.add_node("Where", [nan, x, _scalar(ctx, "zero", 0.0)])  # NaN or 0
        total = self.reduce(attrs, ctx, "ReduceSum", nans, attrs.keepdim)
        (any_nan,) = ctx.add_node("IsNaN", [total])
        ctx.add_node("Where", [any_nan, total, found], ctx.outputs)


@register
class AMax(_Extreme):
    name = "amax"
    doc = "Largest element over `axis` (every axis by default), as torch.amax."
    torch_method = "amax"
    onnx_op = "ReduceMax"
    examples = (
        "in x: float32[N, 4, 5]\nout y = amax(x, 1)",
        "in x: float32[N, T, 5]\nout y = amax(x, [1, 2], keepdim=true)",
        "in x: int64[N, 7]\nout y = amax(x, -1)",
    )


@register
class AMin(_Extreme):
    name = "amin"
    doc = "Smallest element over `axis` (every axis by default), as torch.amin."
    torch_method = "amin"
    onnx_op = "ReduceMin"
    examples = (
        "in x: float32[N, 4, 5]\nout y = amin(x, -2)",
        "in x: float32[N, 3]\nout y = amin(x, keepdim=true)",
        "in x: int32[N, 6]\nout y = amin(x, 0)",
    )


@register
class LogSumExp(_Reduction):
    name = "logsumexp"
    doc = "log(sum(exp(x))) over `axis` (every axis by default), computed stably."
    onnx_op = "ReduceLogSumExp"
    examples = (
        "in x: float32[N, 10]\nout y = logsumexp(x, 1)",
        "in x: float32[N, T, 4]\nout y = logsumexp(x, [1, -1], keepdim=true)",
        "in x: float32[N, 3]\nout y = logsumexp(x)",
    )

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"torch.logsumexp({args[0]}, {self.dim_args(attrs, inputs[0], every=True)})"


@register
class Var(_Reduction):
    name = "var"
    doc = "Variance over `axis` (every axis by default), dividing by n - correction."
    Attrs = VarianceAttrs
    examples = (
        "in x: float32[N, 8]\nout y = var(x, 1)",
        "in x: float32[N, T, 4]\nout y = var(x, [0, 1], correction=0, keepdim=true)",
        "in x: float32[N, 5]\nout y = var(x)",
    )

    def flops(self, attrs: Any, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> Dim:
        return mul(2, _numel(inputs[0].shape))  # the mean, then the squared deviations

    def torch_expr(
        self, attrs: VarianceAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        opts = [self.dim_args(attrs, inputs[0])]
        if attrs.correction != 1:
            opts.append(f"correction={attrs.correction}")
        return f"{args[0]}.{self.name}({', '.join(o for o in opts if o)})"

    def variance(
        self, attrs: VarianceAttrs, ctx: OnnxNodeContext, out: Sequence[str] | None
    ) -> str:
        """The variance in the accumulation dtype (out: when that is the input's)."""
        x, ttype = ctx.inputs[0], ctx.input_types[0]
        wide = _ACCUMULATE.get(ttype.dtype, ttype.dtype)
        if wide != ttype.dtype:
            (x,) = ctx.add_node("Cast", [x], to=ONNX_DTYPES[wide])
        mean = self.reduce(attrs, ctx, "ReduceMean", x, True)
        (dev,) = ctx.add_node("Sub", [x, mean])
        (square,) = ctx.add_node("Mul", [dev, dev])
        if attrs.correction == 0:
            return self.reduce(attrs, ctx, "ReduceMean", square, attrs.keepdim, out)
        total = self.reduce(attrs, ctx, "ReduceSum", square, attrs.keepdim)
        return ctx.add_node("Div", [total, self.dof(attrs, ctx, x, wide)], out)[0]

    def dof(self, attrs: VarianceAttrs, ctx: OnnxNodeContext, x: str, dtype: DType) -> str:
        """n - correction in `dtype`, n the count of reduced elements (from the run-time
        shape when one of the axes is symbolic)."""
        ttype = ctx.input_types[0]
        axes = self.axes(attrs, ttype)
        n = _numel([ttype.shape[a] for a in axes])

        def number(hint: str, value: float) -> str:
            return ctx.add_initializer(hint, np.array(value, dtype=dtype.value))

        if isinstance(n, int):
            return number("dof", float(n - attrs.correction))
        (shape,) = ctx.add_node("Shape", [x])
        (sizes,) = ctx.add_node("Gather", [shape, _int64(ctx, "axes", axes)])
        (count,) = ctx.add_node("ReduceProd", [sizes], keepdims=0)
        (count,) = ctx.add_node("Cast", [count], to=ONNX_DTYPES[dtype])
        return ctx.add_node("Sub", [count, number("correction", attrs.correction)])[0]

    def onnx(self, attrs: VarianceAttrs, ctx: OnnxNodeContext) -> None:
        dtype = ctx.input_types[0].dtype
        if dtype not in _ACCUMULATE:
            self.variance(attrs, ctx, ctx.outputs)
            return
        wide = self.variance(attrs, ctx, None)
        ctx.add_node("Cast", [wide], ctx.outputs, to=ONNX_DTYPES[dtype])


@register
class Std(Var):
    name = "std"
    doc = "Standard deviation over `axis` (every axis by default): sqrt of var."
    examples = (
        "in x: float32[N, 8]\nout y = std(x, -1)",
        "in x: float32[N, T, 4]\nout y = std(x, [1, 2], correction=0)",
        "in x: float32[N, T]\nout y = std(x, keepdim=true)",
    )

    def onnx(self, attrs: VarianceAttrs, ctx: OnnxNodeContext) -> None:
        dtype = ctx.input_types[0].dtype
        if dtype not in _ACCUMULATE:
            ctx.add_node("Sqrt", [self.variance(attrs, ctx, None)], ctx.outputs)
            return
        (root,) = ctx.add_node("Sqrt", [self.variance(attrs, ctx, None)])
        ctx.add_node("Cast", [root], ctx.outputs, to=ONNX_DTYPES[dtype])


# torch accumulates a variance in a wider dtype on CPU: squares past the input dtype's
# range (|x| over 1.8e19 in float32) do not make it inf there, nor here.
_ACCUMULATE = {
    DType.float32: DType.float64,
    DType.float16: DType.float32,
    DType.bfloat16: DType.float32,
}


# The compile-time builtins max/min on a tensor: which ops a PyTorch user means. Neither
# is taken as one: torch.max(x, dim) returns indices too, torch.max(a, b) is elementwise.
_TENSOR_FORMS = {
    "max": (AMax.name, "largest", "maximum", "larger"),
    "min": (AMin.name, "smallest", "minimum", "smaller"),
}


def builtin_on_tensor_hint(builtin: str) -> str | None:
    """What to call instead of the compile-time builtin `builtin` (max, min) given a
    tensor, or None when no op does what it would."""
    forms = _TENSOR_FORMS.get(builtin)
    if forms is None:
        return None
    reduction, element, elementwise, larger = forms
    return (
        f"the {element} element along an axis is {reduction}(x, axis) (torch.{reduction}), "
        f"the {larger} of two tensors elementwise {elementwise}(a, b)"
    )
