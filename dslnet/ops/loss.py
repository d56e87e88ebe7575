"""Losses for regression and classification: mse, l1, huber, nll, cross entropy, binary
cross entropy (on probabilities or logits) and focal loss. What all losses share is in
dslnet.ops.loss_base."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import dims_equal
from dslnet.core.types import DType, TensorType
from dslnet.ops.domains import ClassLabels, Probabilities
from dslnet.ops.loss_base import (
    Loss,
    LossGraph,
    PointwiseLoss,
    Reduction,
    check_batched,
    check_float,
    keyword_options,
    loss_result,
    onnx_binary_cross_entropy,
    onnx_squared_error,
    reduction_field,
)
from dslnet.ops.lowering import OnnxNodeContext, log_softmax_node
from dslnet.ops.registry import OpAttrs, ShapeError, need_static, register

# --- regression ------------------------------------------------------------------------


@register
class MseLoss(PointwiseLoss):
    name = "mse_loss"
    doc = "(input - target)^2 per element, as F.mse_loss."
    functional = "mse_loss"
    examples = (
        "in x: float32[N, 8]\nin t: float32[N, 8]\nout loss = mse_loss(x, t)",
        "in x: float32[N, C, 4]\nin t: float32[N, C, 4]\nout loss = mse_loss(x, t, "
        'reduction="none")',
    )

    def elementwise(self, attrs: Any, g: LossGraph, x: str, target: str) -> str:
        return onnx_squared_error(g, x, target)


@register
class L1Loss(PointwiseLoss):
    name = "l1_loss"
    doc = "|input - target| per element (mean absolute error), as F.l1_loss."
    functional = "l1_loss"
    examples = (
        "in x: float32[N, 8]\nin t: float32[N, 8]\nout loss = l1_loss(x, t)",
        'in x: float32[N, 3]\nin t: float32[N, 3]\nout loss = l1_loss(x, t, reduction="sum")',
    )

    def elementwise(self, attrs: Any, g: LossGraph, x: str, target: str) -> str:
        return g("Abs", g("Sub", x, target))


class HuberAttrs(OpAttrs):
    delta: float = Field(1.0, gt=0.0, allow_inf_nan=False, description="where |d| turns linear")
    reduction: Reduction = reduction_field()


@register
class HuberLoss(PointwiseLoss):
    name = "huber_loss"
    doc = (
        "0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta), d = input - target, "
        "as F.huber_loss."
    )
    Attrs = HuberAttrs
    functional = "huber_loss"
    examples = (
        "in x: float32[N, 8]\nin t: float32[N, 8]\nout loss = huber_loss(x, t)",
        "in x: float32[N, 5]\nin t: float32[N, 5]\nout loss = huber_loss(x, t, delta=0.5, "
        'reduction="none")',
    )

    def torch_options(self, attrs: HuberAttrs, args: Sequence[str]) -> str:
        return keyword_options(("reduction", attrs.reduction, "mean"), ("delta", attrs.delta, 1.0))

    def elementwise(self, attrs: HuberAttrs, g: LossGraph, x: str, target: str) -> str:
        size = g("Abs", g("Sub", x, target))
        quadratic = g("Mul", g.const(0.5), g("Mul", size, size))
        linear = g("Mul", g.const(attrs.delta), g("Sub", size, g.const(0.5 * attrs.delta)))
        return g("Where", g("Less", size, g.const(attrs.delta)), quadratic, linear)


# --- classification --------------------------------------------------------------------


class _ClassIdAttrs(OpAttrs):
    class_weights: tuple[float, ...] | None = Field(
        None,
        description="a weight per class (C of them) scaling its targets' losses; 'mean' "
        "divides by the summed weights of the targets",
    )
    ignore_index: int = Field(
        -100, description="targets with this class id add nothing, nor count in the mean"
    )


class NllAttrs(_ClassIdAttrs):
    reduction: Reduction = reduction_field()


class CrossEntropyAttrs(_ClassIdAttrs):
    label_smoothing: float = Field(
        0.0, ge=0.0, le=1.0, description="share of the target mass spread evenly over classes"
    )
    reduction: Reduction = reduction_field()


ClassIdAttrs = NllAttrs | CrossEntropyAttrs


def _smoothing(attrs: ClassIdAttrs) -> float:
    return attrs.label_smoothing if isinstance(attrs, CrossEntropyAttrs) else 0.0


@register
class NllLoss(Loss):
    name = "nll_loss"
    positional = ("class_weights",)
    doc = (
        "-log_probs[n, target[n]] of log-probabilities [N, C, d...] and int64 class ids "
        "[N, d...], as F.nll_loss (with class weights and ignore_index)."
    )
    Attrs: ClassVar[type[OpAttrs]] = NllAttrs
    aliases = {"weight": "class_weights"}
    inputs = ("log_probs", "target")
    input_domains = {"target": ClassLabels(scores="log_probs", ignore="ignore_index")}
    functional = "nll_loss"
    examples: ClassVar[tuple[str, ...]] = (
        "in x: float32[N, 5]\nin t: int64[N]\nout loss = nll_loss(log_softmax(x), t)",
        "in x: float32[N, 3, T]\nin t: int64[N, T]\nout loss = nll_loss(log_softmax(x, "
        'axis=1), t, class_weights=[0.2, 1.0, 3.0], reduction="sum")',
        "in x: float32[N, 4]\nin t: int64[N]\nout loss = nll_loss(x, t, ignore_index=1, "
        'reduction="none")',
    )

    def infer(self, attrs: ClassIdAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, target = inputs
        check_float(self.name, self.inputs[0], x)
        check_batched(self.name, self.inputs[0], x)
        classes = need_static(x.shape[1], "number of classes C (axis 1)", self.name, x)
        expected = (x.shape[0], *x.shape[2:])
        if target.dtype != DType.int64 or not (
            target.rank == len(expected)
            and all(dims_equal(a, b) for a, b in zip(target.shape, expected, strict=True))
        ):
            shown = ", ".join(str(d) for d in expected)
            raise ShapeError(
                f"{self.name}: target must be int64 class ids [{shown}] (the input {x} "
                f"without its class axis 1), got {target}"
            )
        weights = attrs.class_weights
        if weights is not None and len(weights) != classes:
            raise ShapeError(
                f"{self.name}: class_weights has {len(weights)} values, the input {x} has "
                f"{classes} classes"
            )
        return (loss_result(x, expected, attrs.reduction),)

    def torch_expr(
        self, attrs: ClassIdAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        weight = attrs.class_weights
        opts = f", weight={args[0]}.new_tensor({list(weight)!r})" if weight is not None else ""
        opts += keyword_options(
            ("ignore_index", attrs.ignore_index, -100),
            ("reduction", attrs.reduction, "mean"),
            ("label_smoothing", _smoothing(attrs), 0.0),
        )
        return f"F.{self.functional}({args[0]}, {args[1]}{opts})"

    def log_probs(self, g: LossGraph, x: str) -> str:
        return x

    def onnx(self, attrs: ClassIdAttrs, ctx: OnnxNodeContext) -> None:
        # Composed rather than ONNX's NegativeLogLikelihoodLoss, so that label smoothing
        # (cross_entropy) shares one formula with it: per target position,
        # loss = -w[t] * log_probs[t], and 'mean' divides by the summed w[t].
        g = LossGraph(ctx)
        x_type = ctx.input_types[0]
        classes = need_static(x_type.shape[1], "number of classes C", self.name, x_type)
        log_probs = self.log_probs(g, ctx.inputs[0])
        target = ctx.inputs[1]
        ignored = g("Equal", target, g.ints(attrs.ignore_index, hint="ignore_index"))
        safe = g("Where", ignored, g.ints(0, hint="zero"), target)  # a valid id to gather
        picked = g("GatherElements", log_probs, g("Unsqueeze", safe, g.ints(1)), axis=1)
        picked = g("Squeeze", picked, g.ints(1))
        keep = g.to_float(g("Not", ignored))
        table = np.array(attrs.class_weights or [1.0] * classes, dtype=g.dtype.value)
        weight = g("Mul", g("Gather", ctx.add_initializer("class_weights", table), safe), keep)
        loss = g("Mul", g("Neg", picked), weight)
        smoothing = _smoothing(attrs)
        if smoothing:
            # torch: (1 - s) * nll + s / C * (-sum_c w_c log_probs_c), ignored ones zeroed.
            column = table.reshape((classes,) + (1,) * (x_type.rank - 2))
            spread = g("Mul", log_probs, ctx.add_initializer("class_weights", column))
            uniform = g("Mul", g("Neg", g.sum(spread, [1])), keep)
            loss = g(
                "Add",
                g("Mul", g.const(1.0 - smoothing), loss),
                g("Mul", g.const(smoothing / classes), uniform),
            )
        if attrs.reduction == "mean":
            total = g("ReduceSum", loss, keepdims=0)
            ctx.add_node("Div", [total, g("ReduceSum", weight, keepdims=0)], ctx.outputs)
        else:
            g.finish(loss, attrs.reduction)


@register
class CrossEntropy(NllLoss):
    name = "cross_entropy"
    positional = ("class_weights",)
    doc = (
        "Softmax cross-entropy of logits [N, C, d...] against int64 class ids [N, d...], "
        "as F.cross_entropy (class weights, ignore_index, label smoothing)."
    )
    Attrs = CrossEntropyAttrs
    inputs = ("logits", "target")
    input_domains = {"target": ClassLabels(scores="logits", ignore="ignore_index")}
    functional = "cross_entropy"
    examples = (
        "in x: float32[N, 5]\nin t: int64[N]\nout loss = cross_entropy(x, t)",
        "in x: float32[N, 3, H, W]\nin t: int64[N, H, W]\nout loss = cross_entropy(x, t, "
        "class_weights=[0.5, 2.0, 1.0], label_smoothing=0.1)",
        "in x: float32[N, 4]\nin t: int64[N]\nout loss = cross_entropy(x, t, ignore_index=0, "
        'label_smoothing=0.2, reduction="none")',
        "in x: float32[N, 2, T]\nin t: int64[N, T]\nout loss = cross_entropy(x, t, "
        'class_weights=[1.0, 3.0], ignore_index=1, reduction="sum")',
    )

    def log_probs(self, g: LossGraph, x: str) -> str:
        return log_softmax_node(g.ctx, x, axis=1)


_BCE = '''
def binary_cross_entropy(
    probs: torch.Tensor, target: torch.Tensor, reduction: str
) -> torch.Tensor:
    """F.binary_cross_entropy's formula, each log clamped at -100, without its check that
    the values lie in [0, 1]: the ONNX model has none, and the two agree on any data."""
    log_p = torch.log(probs).clamp(min=-100)
    log_q = torch.log(1 - probs).clamp(min=-100)
    return reduce_loss(-(target * log_p + (1 - target) * log_q), reduction)
'''


@register
class BceLoss(PointwiseLoss):
    name = "bce_loss"
    doc = (
        "-(t log p + (1 - t) log(1 - p)) of probabilities p in [0, 1], each log clamped "
        "at -100, as F.binary_cross_entropy (without its run-time check that p and t lie "
        "in [0, 1], which ONNX has no way to make)."
    )
    inputs = ("probs", "target")
    input_domains = {"target": Probabilities()}
    torch_helpers = _BCE
    examples = (
        "in x: float32[N, 6]\nin t: float32[N, 6]\nout loss = bce_loss(sigmoid(x), sigmoid(t))",
        "in x: float32[N, 1, H, W]\nin t: float32[N, 1, H, W]\nout loss = "
        'bce_loss(sigmoid(x), sigmoid(t), reduction="none")',
    )

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f'binary_cross_entropy({args[0]}, {args[1]}, "{attrs.reduction}")'

    def elementwise(self, attrs: Any, g: LossGraph, x: str, target: str) -> str:
        return onnx_binary_cross_entropy(g, x, target)


class BceWithLogitsAttrs(OpAttrs):
    pos_weight: tuple[float, ...] | None = Field(
        None,
        min_length=1,
        description="weights of the positive term: one, or one per class of the last axis",
    )
    reduction: Reduction = reduction_field()


@register
class BceWithLogits(PointwiseLoss):
    name = "bce_with_logits"
    doc = (
        "bce_loss(sigmoid(x), t) computed stably from logits x, with an optional weight "
        "of the positive term, as F.binary_cross_entropy_with_logits."
    )
    Attrs = BceWithLogitsAttrs
    inputs = ("logits", "target")
    input_domains = {"target": Probabilities()}
    functional = "binary_cross_entropy_with_logits"
    examples = (
        "in x: float32[N, 6]\nin t: float32[N, 6]\nout loss = bce_with_logits(x, t)",
        "in x: float32[N, 3]\nin t: float32[N, 3]\nout loss = bce_with_logits(x, sigmoid(t), "
        'pos_weight=[1.0, 2.0, 0.5], reduction="none")',
        "in x: float32[N, T]\nin t: float32[N, T]\nout loss = bce_with_logits(x, t, "
        'pos_weight=[3.0], reduction="sum")',
    )

    def infer(
        self, attrs: BceWithLogitsAttrs, inputs: Sequence[TensorType]
    ) -> tuple[TensorType, ...]:
        (result,) = super().infer(attrs, inputs)
        x = inputs[0]
        weights = attrs.pos_weight
        if weights is not None and len(weights) != 1:
            last = x.shape[-1] if x.rank else 1
            if not isinstance(last, int) or last != len(weights):
                raise ShapeError(
                    f"bce_with_logits: pos_weight has {len(weights)} values; it needs one, or "
                    f"one per class of the last axis of {x}"
                )
        return (result,)

    def torch_options(self, attrs: BceWithLogitsAttrs, args: Sequence[str]) -> str:
        weight = attrs.pos_weight
        # new_tensor: the weights follow the logits' dtype and device.
        opts = f", pos_weight={args[0]}.new_tensor({list(weight)!r})" if weight else ""
        return opts + keyword_options(("reduction", attrs.reduction, "mean"))

    def elementwise(self, attrs: BceWithLogitsAttrs, g: LossGraph, x: str, target: str) -> str:
        # (1 - t) x + (1 + (pw - 1) t) log(1 + exp(-x)), torch's stable form.
        miss = g("Sub", g.const(1.0), target)
        softplus = g.softplus_neg(x)
        if attrs.pos_weight is not None:
            extra = np.array(attrs.pos_weight, dtype=g.dtype.value) - 1.0
            scale = g(
                "Add", g.const(1.0), g("Mul", g.ctx.add_initializer("pos_weight", extra), target)
            )
            softplus = g("Mul", scale, softplus)
        return g("Add", g("Mul", miss, x), softplus)


_FOCAL = '''
def sigmoid_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float, reduction: str
) -> torch.Tensor:
    """Focal loss (Lin et al.): binary cross-entropy scaled by (1 - p_t)^gamma."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return reduce_loss(loss, reduction)
'''


class FocalAttrs(OpAttrs):
    alpha: float = Field(
        0.25,
        le=1.0,
        allow_inf_nan=False,
        description="weight of the positive class (1 - alpha: of the negative); a negative "
        "alpha weighs neither (torchvision's convention)",
    )
    gamma: float = Field(2.0, ge=0.0, allow_inf_nan=False, description="focusing exponent")
    reduction: Reduction = reduction_field()


@register
class FocalLoss(PointwiseLoss):
    name = "focal_loss"
    positional = ("alpha",)
    doc = (
        "Binary focal loss from logits (Lin et al., RetinaNet), as torchvision's "
        "sigmoid_focal_loss: alpha_t (1 - p_t)^gamma bce_with_logits(x, t)."
    )
    Attrs = FocalAttrs
    inputs = ("logits", "target")
    input_domains = {"target": Probabilities()}
    torch_helpers = _FOCAL
    examples = (
        "in x: float32[N, 6]\nin t: float32[N, 6]\nout loss = focal_loss(x, sigmoid(t))",
        "in x: float32[N, 2, H, W]\nin t: float32[N, 2, H, W]\nout loss = focal_loss(x, "
        'sigmoid(t), alpha=-1.0, gamma=1.5, reduction="none")',
    )

    def torch_expr(
        self, attrs: FocalAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return (
            f"sigmoid_focal_loss({args[0]}, {args[1]}, {attrs.alpha!r}, {attrs.gamma!r}, "
            f"{attrs.reduction!r})"
        )

    def elementwise(self, attrs: FocalAttrs, g: LossGraph, x: str, target: str) -> str:
        one = g.const(1.0)
        miss = g("Sub", one, target)
        ce = g("Add", g("Mul", miss, x), g.softplus_neg(x))
        p = g("Sigmoid", x)
        p_t = g("Add", g("Mul", p, target), g("Mul", g("Sub", one, p), miss))
        loss = g("Mul", ce, g("Pow", g("Sub", one, p_t), g.const(attrs.gamma, "gamma")))
        if attrs.alpha < 0:
            return loss
        alpha = g.const(attrs.alpha, "alpha")
        alpha_t = g("Add", g("Mul", alpha, target), g("Mul", g("Sub", one, alpha), miss))
        return g("Mul", alpha_t, loss)
