"""Ops that training specs need beside the model: constant tensors shaped like another
(GAN targets), cutting a value from the gradient (a discriminator step), and accuracy.

None of them has weights. The `*_like` ops read only their input's shape and dtype, so
they carry no gradient back to it; `accuracy` is a metric and is never differentiated.
They join existing families (elementwise, loss), which graph pictures already colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import dims_equal
from dslnet.core.types import DType, TensorType
from dslnet.ops.channels import ELEMENTWISE, Channels
from dslnet.ops.domains import ClassLabels
from dslnet.ops.elementwise import number_problem
from dslnet.ops.loss_base import LossGraph, check_batched, check_float, keyword_options
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, need_static, register

_ONNX_BFLOAT16 = 16  # onnx.TensorProto.BFLOAT16; ops import no backend


# --- constant tensors shaped like another ------------------------------------------------


def _fill_problem(value: float, x: TensorType) -> str | None:
    """Why x's dtype cannot hold `value` exactly as written, or None when it can (the
    rule the language applies to scalar constants such as `t * 2`)."""
    dtype = x.dtype
    if dtype is DType.bool:
        return None if value in (0, 1) else f"does not fit {x}: a bool holds only 0 and 1"
    fraction = f"and x is {x}: an integer tensor cannot hold it; fill a float tensor"
    return number_problem(value, dtype, fraction=fraction)


def _python_scalar(value: float, dtype: DType) -> float | int | bool:
    """The value as the Python scalar of x's kind, so torch keeps x's dtype."""
    if dtype is DType.bool:
        return bool(value)
    return value if dtype.is_float else int(value)


class _FilledLike(OpDef):
    """A tensor of x's shape and dtype, every element one value; x's values are unread."""

    family = "elementwise"  # beside `constant`
    torch_fn: ClassVar[str] = ""

    def fill(self, attrs: Any) -> float:
        raise NotImplementedError

    def channels(self, attrs: Any, inputs: Sequence[TensorType]) -> Channels | None:
        return ELEMENTWISE  # the output has x's channels (it has x's shape)

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        value = self.fill(attrs)
        problem = _fill_problem(value, x)
        if problem:
            raise ShapeError(f"{self.name}: the value {value:g} {problem}")
        return (x,)

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{self.torch_fn}({args[0]})"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        dtype = ctx.input_types[0].dtype
        (shape,) = ctx.add_node("Shape", [ctx.inputs[0]])
        if dtype is DType.bfloat16:  # ConstantOfShape takes bfloat16 from opset 20 only
            value = np.array([self.fill(attrs)], dtype=np.float32)
            (filled,) = ctx.add_node("ConstantOfShape", [shape], value=value)
            ctx.add_node("Cast", [filled], ctx.outputs, to=_ONNX_BFLOAT16)
            return
        value = np.array([self.fill(attrs)], dtype=dtype.value)
        ctx.add_node("ConstantOfShape", [shape], ctx.outputs, value=value)


@register
class ZerosLike(_FilledLike):
    name = "zeros_like"
    doc = "Zeros of x's shape and dtype (any dtype), as torch.zeros_like; no gradient to x."
    torch_fn = "torch.zeros_like"
    examples = (
        "in x: float32[N, 4]\nout y = zeros_like(x)",
        "in t: int64[N, T]\nout y = zeros_like(t)",
    )

    def fill(self, attrs: Any) -> float:
        return 0.0


@register
class OnesLike(_FilledLike):
    name = "ones_like"
    doc = "Ones of x's shape and dtype (true for bool), as torch.ones_like; no gradient to x."
    torch_fn = "torch.ones_like"
    examples = (
        "in x: float32[N, 3, H, W]\nout y = ones_like(x)",
        "in score: float32[N, 1]\nout loss = bce_loss(sigmoid(score), ones_like(score))",
    )

    def fill(self, attrs: Any) -> float:
        return 1.0


class FullLikeAttrs(OpAttrs):
    value: float = Field(
        description="every element; it must fit x's dtype (a whole number for an integer x, "
        "0 or 1 for a bool x)"
    )

    dtype_range = frozenset({"value"})  # checked against x's dtype


@register
class FullLike(_FilledLike):
    name = "full_like"
    positional = ("value",)
    doc = (
        "`value` everywhere, in x's shape and dtype, as torch.full_like; no gradient to x. "
        "Soft GAN targets: `bce_loss(p, full_like(p, 0.9))`."
    )
    Attrs = FullLikeAttrs
    examples = (
        "in score: float32[N, 1]\nout loss = bce_loss(sigmoid(score), full_like(score, 0.9))",
        "in t: int64[N, T]\nout y = full_like(t, -100)",
        "in mask: bool[N, T]\nout y = full_like(mask, 1)",
    )

    def fill(self, attrs: FullLikeAttrs) -> float:
        return attrs.value

    def torch_expr(
        self, attrs: FullLikeAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        value = _python_scalar(attrs.value, inputs[0].dtype)
        return f"torch.full_like({args[0]}, {value!r})"


# --- gradient control ---------------------------------------------------------------------


@register
class Detach(OpDef):
    name = "detach"
    family = "elementwise"
    doc = (
        "x's values, cut from the autograd graph: no gradient flows back through it (a "
        "GAN's discriminator step, `D(G(z) -> detach)`); torch's .detach(), ONNX Identity."
    )
    examples = (
        "in z: float32[N, 8]\nout y = z -> linear(4) -> detach -> linear(2)",
        "in t: int64[N, T]\nout y = detach(t)",
    )

    def identity_in_eval(self, attrs: Any) -> bool:
        return True  # without autograd, detaching changes nothing

    def channels(self, attrs: Any, inputs: Sequence[TensorType]) -> Channels | None:
        return ELEMENTWISE

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (inputs[0],)

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{args[0]}.detach()"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Identity", ctx.inputs, ctx.outputs)


# --- metrics ------------------------------------------------------------------------------

_ACCURACY = '''
@torch.no_grad()
def classification_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, top_k: int = 1, ignore_index: int = -100
) -> torch.Tensor:
    """Share of the labels found among the top_k scores of class axis 1 (a metric: no
    gradient). Labels equal to ignore_index count in neither part of the fraction."""
    if top_k == 1:
        right = logits.argmax(dim=1) == labels
    else:
        right = (logits.topk(top_k, dim=1).indices == labels.unsqueeze(1)).any(dim=1)
    counted = labels != ignore_index
    return (right & counted).sum().float() / counted.sum()
'''


class AccuracyAttrs(OpAttrs):
    top_k: int = Field(
        1, ge=1, description="a position is right when its label is among its top_k scores"
    )
    ignore_index: int = Field(
        -100, description="labels with this value count neither as right nor in the total"
    )


@register
class Accuracy(OpDef):
    name = "accuracy"
    positional = ("top_k",)
    family = "loss"  # listed and drawn with the losses it is reported beside
    doc = (
        "Fraction (a float32 scalar) of the positions whose int64 label [N, d...] is the "
        "argmax (or among the top_k) of the logits [N, C, d...] along class axis 1; labels "
        "equal to ignore_index are left out, as in cross_entropy (NaN if all are). A "
        "metric: it has no gradient."
    )
    Attrs = AccuracyAttrs
    inputs = ("logits", "labels")
    input_domains = {"labels": ClassLabels(scores="logits", ignore="ignore_index")}
    outputs = ("accuracy",)
    short_name = "acc"
    torch_helpers = _ACCURACY
    examples = (
        "in x: float32[N, 5]\nin t: int64[N]\nout loss = cross_entropy(x, t)\n"
        "out acc = accuracy(x, t)",
        "in x: float32[N, 6, T]\nin t: int64[N, T]\nout acc = accuracy(x, t, top_k=3, "
        "ignore_index=5)",
    )

    def infer(self, attrs: AccuracyAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        logits, labels = inputs
        check_float(self.name, "logits", logits)
        check_batched(self.name, "logits", logits)
        expected = (logits.shape[0], *logits.shape[2:])
        if labels.dtype != DType.int64 or not (
            labels.rank == len(expected)
            and all(dims_equal(a, b) for a, b in zip(labels.shape, expected, strict=True))
        ):
            shown = ", ".join(str(d) for d in expected)
            raise ShapeError(
                f"accuracy: labels must be int64 class ids [{shown}] (the logits {logits} "
                f"without their class axis 1), got {labels}"
            )
        if attrs.top_k > 1:
            what = f"number of classes C (axis 1) for top_k={attrs.top_k}"
            classes = need_static(logits.shape[1], what, self.name, logits)
            if attrs.top_k > classes:
                raise ShapeError(
                    f"accuracy: top_k={attrs.top_k} is more than the {classes} classes of "
                    f"the logits {logits}"
                )
        return (TensorType(dtype=DType.float32, shape=()),)

    def torch_expr(
        self, attrs: AccuracyAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        options = keyword_options(
            ("top_k", attrs.top_k, 1), ("ignore_index", attrs.ignore_index, -100)
        )
        return f"classification_accuracy({args[0]}, {args[1]}{options})"

    def onnx(self, attrs: AccuracyAttrs, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)  # its constants and casts take the float32 output's dtype
        logits, labels = ctx.inputs
        if attrs.top_k == 1:
            right = g.to_float(g("Equal", g("ArgMax", logits, axis=1, keepdims=0), labels))
        else:
            k = g.ints(attrs.top_k, hint="top_k")
            _, top = ctx.add_node("TopK", [logits, k], 2, axis=1)
            found = g("Equal", top, g("Unsqueeze", labels, g.ints(1)))
            right = g.sum(g.to_float(found), [1])  # the k ids differ: at most one matches
        ignored = g("Equal", labels, g.ints(attrs.ignore_index, hint="ignore_index"))
        counted = g.to_float(g("Not", ignored))
        hits = g("ReduceSum", g("Mul", right, counted), keepdims=0)
        ctx.add_node("Div", [hits, g("ReduceSum", counted, keepdims=0)], ctx.outputs)
