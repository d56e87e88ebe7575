"""What every loss shares: the `reduction` attribute, the shape rules, the base op
classes and a small builder for the ONNX formulas (dslnet.ops.loss, loss_metric and
loss_divergence define the losses).

Every loss takes `reduction`: 'mean' (the default) or 'sum' give a scalar, 'none' the
loss of each item. An item is an element for the elementwise losses (mse_loss, bce...),
a target position for cross_entropy and nll_loss, and a sample (axis 0) for the losses
that sum over a sample first (dice_loss, iou_loss, gaussian_kl, vae_loss, the
metric-learning losses). torch lowers to torch.nn.functional where it has the loss, to a
short helper function otherwise; ONNX composes standard operators (opset 18).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.types import DType, TensorType
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError

Reduction = Literal["mean", "sum", "none"]
REDUCTION_HELP = "'mean' or 'sum' of the per-item losses (a scalar), or 'none' (them all)"

# Shared by the helper functions below (the code generator writes each source once).
REDUCE_HELPER = '''
def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """The mean or the sum of per-item losses, or them unchanged ('none')."""
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss
'''


# --- shape rules ---------------------------------------------------------------------


def check_float(op: str, role: str, t: TensorType) -> None:
    if not t.dtype.is_float:
        raise ShapeError(f"{op} needs a floating-point {role}, got {t}")


def same_type(op: str, names: Sequence[str], inputs: Sequence[TensorType]) -> TensorType:
    """Inputs that must have one float type (no broadcasting: a loss compares items)."""
    first = inputs[0]
    check_float(op, names[0], first)
    for name, t in zip(names[1:], inputs[1:], strict=True):
        if not first.same_as(t):
            raise ShapeError(f"{op}: {name} must have the type of {names[0]} {first}, got {t}")
    return first


def check_batched(op: str, name: str, t: TensorType) -> None:
    if t.rank < 2:
        raise ShapeError(f"{op} needs {name} of rank >= 2 ([N, ...], one sample per row), got {t}")


def loss_result(loss_type: TensorType, per_item: tuple[Any, ...], reduction: str) -> TensorType:
    return loss_type.with_shape(per_item if reduction == "none" else ())


# --- lowering helpers --------------------------------------------------------------------


def onnx_float(dtype: DType) -> int:
    return {DType.float16: 10, DType.float64: 11}.get(dtype, 1)


class LossGraph:
    """Terse ONNX building for loss formulas: each call adds one node, returns its value."""

    def __init__(self, ctx: OnnxNodeContext):
        self.ctx = ctx
        self.dtype = ctx.output_types[0].dtype

    def __call__(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        return self.ctx.add_node(op_type, list(inputs), **attrs)[0]

    def const(self, value: float, hint: str = "c") -> str:
        return self.ctx.add_initializer(hint, np.array(value, dtype=self.dtype.value))

    def ints(self, *values: int, hint: str = "axes") -> str:
        return self.ctx.add_initializer(hint, np.array(values, dtype=np.int64))

    def to_float(self, x: str) -> str:
        return self("Cast", x, to=onnx_float(self.dtype))

    def sum(self, x: str, axes: Sequence[int], keepdims: int = 0) -> str:
        return self("ReduceSum", x, self.ints(*axes), keepdims=keepdims)

    def per_sample_sum(self, x: str, rank: int) -> str:
        """Sum over every axis but the first: [N, ...] -> [N]."""
        return self.sum(x, range(1, rank))

    def softplus_neg(self, x: str) -> str:
        """log(1 + exp(-x)) without overflow: log(1 + exp(-|x|)) + max(-x, 0)."""
        neg = self("Neg", x)
        tail = self("Log", self("Add", self.const(1.0), self("Exp", self("Neg", self("Abs", x)))))
        return self("Add", tail, self("Relu", neg))

    def finish(self, loss: str, reduction: str) -> None:
        """Write the reduced loss to the node's output."""
        out = list(self.ctx.outputs)
        if reduction == "none":
            self.ctx.add_node("Identity", [loss], out)
        else:  # no axes: every axis, to a scalar
            kind = "ReduceMean" if reduction == "mean" else "ReduceSum"
            self.ctx.add_node(kind, [loss], out, keepdims=0)


def keyword_options(*items: tuple[str, Any, Any]) -> str:
    """`, name=value` for each (name, value, torch default) whose value differs."""
    return "".join(f", {name}={value!r}" for name, value, default in items if value != default)


def onnx_squared_error(g: LossGraph, x: str, target: str) -> str:
    diff = g("Sub", x, target)
    return g("Mul", diff, diff)


def onnx_binary_cross_entropy(g: LossGraph, probs: str, target: str) -> str:
    """-(t log p + (1 - t) log(1 - p)), each log clamped at -100 as torch does."""
    floor = g.const(-100.0, "log_floor")
    log_p = g("Max", g("Log", probs), floor)
    log_q = g("Max", g("Log", g("Sub", g.const(1.0), probs)), floor)
    miss = g("Sub", g.const(1.0), target)
    return g("Neg", g("Add", g("Mul", target, log_p), g("Mul", miss, log_q)))


def reduction_field() -> Any:
    """The `reduction` field, last in every loss's attributes (rarely given by position)."""
    return Field("mean", description=REDUCTION_HELP)


class ReductionAttrs(OpAttrs):
    reduction: Reduction = reduction_field()


class Loss(OpDef):
    """A loss; one written with a helper function also gets the shared `reduce_loss`."""

    family = "loss"
    Attrs: ClassVar[type[OpAttrs]] = ReductionAttrs
    outputs = ("loss",)

    def torch_helpers_for(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[str, ...]:
        return (REDUCE_HELPER, self.torch_helpers) if self.torch_helpers else ()


class PointwiseLoss(Loss):
    """A loss of each element of `input` against the same element of `target`."""

    inputs = ("input", "target")
    functional = ""  # the torch.nn.functional function

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = same_type(self.name, self.inputs, inputs)
        return (loss_result(x, x.shape, attrs.reduction),)

    def torch_options(self, attrs: Any, args: Sequence[str]) -> str:
        return keyword_options(("reduction", attrs.reduction, "mean"))

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"F.{self.functional}({', '.join(args)}{self.torch_options(attrs, args)})"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)
        g.finish(self.elementwise(attrs, g, *ctx.inputs), attrs.reduction)

    def elementwise(self, attrs: Any, g: LossGraph, x: str, target: str) -> str:
        raise NotImplementedError
