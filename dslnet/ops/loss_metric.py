"""Losses over samples: soft dice and IoU for segmentation, and the metric-learning
losses (contrastive, triplet margin, NT-Xent for SimCLR)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import dims_equal
from dslnet.core.types import TensorType
from dslnet.ops.domains import Probabilities
from dslnet.ops.loss_base import (
    Loss,
    LossGraph,
    Reduction,
    check_batched,
    keyword_options,
    loss_result,
    reduction_field,
    same_type,
)
from dslnet.ops.lowering import OnnxNodeContext, reduce_node
from dslnet.ops.registry import OpAttrs, ShapeError, register

# --- segmentation overlap ----------------------------------------------------------------

_DICE = '''
def soft_dice_loss(
    probs: torch.Tensor, target: torch.Tensor, smooth: float, reduction: str
) -> torch.Tensor:
    """1 - (2 |p t| + smooth) / (|p| + |t| + smooth) of each sample (sums over axes 1...)."""
    overlap = (probs * target).flatten(1).sum(1)
    total = probs.flatten(1).sum(1) + target.flatten(1).sum(1)
    return reduce_loss(1 - (2 * overlap + smooth) / (total + smooth), reduction)
'''

_IOU = '''
def soft_iou_loss(
    probs: torch.Tensor, target: torch.Tensor, smooth: float, reduction: str
) -> torch.Tensor:
    """1 - (|p t| + smooth) / (|p| + |t| - |p t| + smooth) of each sample (sums over axes 1...)."""
    overlap = (probs * target).flatten(1).sum(1)
    total = probs.flatten(1).sum(1) + target.flatten(1).sum(1)
    return reduce_loss(1 - (overlap + smooth) / (total - overlap + smooth), reduction)
'''


class OverlapAttrs(OpAttrs):
    smooth: float = Field(
        1.0, ge=0.0, allow_inf_nan=False, description="added to both sides of the ratio"
    )
    reduction: Reduction = reduction_field()


class _SoftOverlap(Loss):
    """A soft set-overlap score of each sample's probabilities against its target."""

    Attrs = OverlapAttrs
    inputs = ("probs", "target")
    input_domains = {"target": Probabilities()}
    helper: ClassVar[str]  # the torch helper function's name

    def infer(self, attrs: OverlapAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        probs = same_type(self.name, self.inputs, inputs)
        check_batched(self.name, "probs", probs)
        return (loss_result(probs, probs.shape[:1], attrs.reduction),)

    def torch_expr(
        self, attrs: OverlapAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"{self.helper}({args[0]}, {args[1]}, {attrs.smooth!r}, {attrs.reduction!r})"

    def onnx(self, attrs: OverlapAttrs, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)
        (probs, target), rank = ctx.inputs, ctx.input_types[0].rank
        overlap = g.per_sample_sum(g("Mul", probs, target), rank)
        total = g("Add", g.per_sample_sum(probs, rank), g.per_sample_sum(target, rank))
        smooth = g.const(attrs.smooth, "smooth")
        ratio = g("Div", *self.ratio(g, overlap, total, smooth))
        g.finish(g("Sub", g.const(1.0), ratio), attrs.reduction)

    def ratio(self, g: LossGraph, overlap: str, total: str, smooth: str) -> tuple[str, str]:
        raise NotImplementedError


@register
class DiceLoss(_SoftOverlap):
    name = "dice_loss"
    positional = ("smooth",)
    doc = (
        "1 - soft Dice of each sample: (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth), "
        "summed over every axis but the batch axis 0; p are probabilities."
    )
    helper = "soft_dice_loss"
    torch_helpers = _DICE
    examples = (
        "in x: float32[N, 1, H, W]\nin t: float32[N, 1, H, W]\nout loss = "
        "dice_loss(sigmoid(x), sigmoid(t))",
        "in x: float32[N, C, T]\nin t: float32[N, C, T]\nout loss = dice_loss(softmax(x, "
        'axis=1), sigmoid(t), smooth=0.001, reduction="none")',
    )

    def ratio(self, g: LossGraph, overlap: str, total: str, smooth: str) -> tuple[str, str]:
        doubled = g("Mul", g.const(2.0), overlap)
        return g("Add", doubled, smooth), g("Add", total, smooth)


@register
class IouLoss(_SoftOverlap):
    name = "iou_loss"
    positional = ("smooth",)
    doc = (
        "1 - soft IoU (Jaccard) of each sample: (sum(p t) + smooth) / (sum(p) + sum(t) - "
        "sum(p t) + smooth), summed over every axis but the batch axis 0."
    )
    helper = "soft_iou_loss"
    torch_helpers = _IOU
    examples = (
        "in x: float32[N, 1, H, W]\nin t: float32[N, 1, H, W]\nout loss = "
        "iou_loss(sigmoid(x), sigmoid(t))",
        "in x: float32[N, 8]\nin t: float32[N, 8]\nout loss = iou_loss(sigmoid(x), sigmoid(t), "
        'smooth=0.0, reduction="sum")',
    )

    def ratio(self, g: LossGraph, overlap: str, total: str, smooth: str) -> tuple[str, str]:
        union = g("Sub", total, overlap)
        return g("Add", overlap, smooth), g("Add", union, smooth)


# --- metric learning ---------------------------------------------------------------------


def _pnorm(g: LossGraph, a: str, b: str, p: float, eps: float) -> str:
    """||a - b + eps||_p over the last axis, as F.pairwise_distance."""
    diff = g("Add", g("Sub", a, b), g.const(eps, "eps"))
    if p == 2.0:
        return g("Sqrt", g.sum(g("Mul", diff, diff), [-1]))
    size = g("Abs", diff)
    if p == 1.0:
        return g.sum(size, [-1])
    total = g.sum(g("Pow", size, g.const(p, "p")), [-1])
    return g("Pow", total, g.const(1.0 / p, "inv_p"))


_CONTRASTIVE = '''
def contrastive_loss(
    a: torch.Tensor, b: torch.Tensor, similar: torch.Tensor, margin: float, reduction: str
) -> torch.Tensor:
    """Hadsell et al.: d^2 for similar pairs (label 1), max(margin - d, 0)^2 for others."""
    distance = F.pairwise_distance(a, b)
    same = similar.to(distance.dtype)
    per_pair = same * distance**2 + (1 - same) * F.relu(margin - distance) ** 2
    return reduce_loss(per_pair, reduction)
'''


class ContrastiveAttrs(OpAttrs):
    margin: float = Field(
        1.0,
        ge=0.0,
        allow_inf_nan=False,
        description="distance past which dissimilar pairs cost nothing",
    )
    reduction: Reduction = reduction_field()


@register
class ContrastiveLoss(Loss):
    name = "contrastive_loss"
    positional = ("margin",)
    doc = (
        "Pairs of embeddings a, b [..., D] and a label [...] (1: similar, 0: not; float, "
        "int or bool): label d^2 + (1 - label) max(margin - d, 0)^2, d = "
        "pairwise_distance(a, b)."
    )
    Attrs = ContrastiveAttrs
    inputs = ("a", "b", "label")
    torch_helpers = _CONTRASTIVE
    examples = (
        "in a: float32[N, 8]\nin b: float32[N, 8]\nin same: int64[N]\n"
        "out loss = contrastive_loss(a, b, same)",
        "in a: float32[N, T, 4]\nin b: float32[N, T, 4]\nin same: float32[N, T]\n"
        'out loss = contrastive_loss(a, b, sigmoid(same), margin=2.0, reduction="none")',
    )

    def infer(
        self, attrs: ContrastiveAttrs, inputs: Sequence[TensorType]
    ) -> tuple[TensorType, ...]:
        a = same_type(self.name, self.inputs[:2], inputs[:2])
        label = inputs[2]
        pairs = a.shape[:-1]
        if (
            a.rank < 1
            or label.rank != len(pairs)
            or not all(dims_equal(x, y) for x, y in zip(label.shape, pairs, strict=True))
        ):
            raise ShapeError(
                f"contrastive_loss: label must have one value per pair, the shape of a {a} "
                f"without its last axis, got {label}"
            )
        return (loss_result(a, pairs, attrs.reduction),)

    def torch_expr(
        self, attrs: ContrastiveAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"contrastive_loss({', '.join(args)}, {attrs.margin!r}, {attrs.reduction!r})"

    def onnx(self, attrs: ContrastiveAttrs, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)
        a, b, label = ctx.inputs
        distance = _pnorm(g, a, b, 2.0, 1e-6)
        same = label if ctx.input_types[2].dtype == g.dtype else g.to_float(label)
        gap = g("Relu", g("Sub", g.const(attrs.margin, "margin"), distance))
        pulled = g("Mul", same, g("Mul", distance, distance))
        pushed = g("Mul", g("Sub", g.const(1.0), same), g("Mul", gap, gap))
        g.finish(g("Add", pulled, pushed), attrs.reduction)


class TripletAttrs(OpAttrs):
    margin: float = Field(1.0, gt=0.0, allow_inf_nan=False, description="the gap required")
    p: float = Field(2.0, gt=0.0, allow_inf_nan=False, description="the distance's norm order")
    eps: float = Field(1e-6, ge=0.0, description="added to differences before the norm")
    swap: bool = Field(
        False, description="use the closer of d(anchor, negative) and d(positive, negative)"
    )
    reduction: Reduction = reduction_field()


@register
class TripletMarginLoss(Loss):
    name = "triplet_margin_loss"
    positional = ("margin",)
    doc = (
        "max(d(anchor, positive) - d(anchor, negative) + margin, 0) per row of [N, D] "
        "embeddings, d the p-norm distance, as F.triplet_margin_loss."
    )
    Attrs = TripletAttrs
    inputs = ("anchor", "positive", "negative")
    examples = (
        "in a: float32[N, 8]\nin p: float32[N, 8]\nin n: float32[N, 8]\n"
        "out loss = triplet_margin_loss(a, p, n)",
        "in a: float32[N, 5]\nin p: float32[N, 5]\nin n: float32[N, 5]\n"
        "out loss = triplet_margin_loss(a, p, n, margin=0.5, p=1.0, swap=true, "
        'reduction="none")',
        "in a: float32[N, 4]\nin p: float32[N, 4]\nin n: float32[N, 4]\n"
        'out loss = triplet_margin_loss(a, p, n, p=3.0, reduction="sum")',
    )

    def infer(self, attrs: TripletAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        anchor = same_type(self.name, self.inputs, inputs)
        if anchor.rank != 2:
            raise ShapeError(f"{self.name} needs embeddings [N, D], got {anchor}")
        return (loss_result(anchor, anchor.shape[:1], attrs.reduction),)

    def torch_expr(
        self, attrs: TripletAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        opts = keyword_options(
            ("margin", attrs.margin, 1.0),
            ("p", attrs.p, 2.0),
            ("eps", attrs.eps, 1e-6),
            ("swap", attrs.swap, False),
            ("reduction", attrs.reduction, "mean"),
        )
        return f"F.triplet_margin_loss({', '.join(args)}{opts})"

    def onnx(self, attrs: TripletAttrs, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)
        anchor, positive, negative = ctx.inputs
        near = _pnorm(g, anchor, positive, attrs.p, attrs.eps)
        far = _pnorm(g, anchor, negative, attrs.p, attrs.eps)
        if attrs.swap:
            far = g("Min", far, _pnorm(g, positive, negative, attrs.p, attrs.eps))
        gap = g("Add", g("Sub", near, far), g.const(attrs.margin, "margin"))
        g.finish(g("Relu", gap), attrs.reduction)


_NT_XENT = '''
def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, reduction: str
) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2N views must pick its pair among the other 2N - 1
    by cosine similarity / temperature; a pair's loss is the mean of its two views'."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    itself = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(itself, float("-inf"))
    pair = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    per_view = F.cross_entropy(logits, pair, reduction="none")
    return reduce_loss((per_view[:n] + per_view[n:]) / 2, reduction)
'''


class NtXentAttrs(OpAttrs):
    temperature: float = Field(
        0.5, gt=0.0, allow_inf_nan=False, description="divides the cosine similarities"
    )
    reduction: Reduction = reduction_field()


@register
class NtXentLoss(Loss):
    name = "nt_xent_loss"
    positional = ("temperature",)
    doc = (
        "SimCLR's NT-Xent (InfoNCE over a batch): two views z1, z2 [N, D] of N samples; "
        "each view's positive is its pair, the other 2N - 2 views are negatives. Per "
        "pair: the mean of its two views' losses."
    )
    Attrs = NtXentAttrs
    inputs = ("z1", "z2")
    torch_helpers = _NT_XENT
    examples = (
        "in z1: float32[N, 8]\nin z2: float32[N, 8]\nout loss = nt_xent_loss(z1, z2)",
        "in z1: float32[N, 6]\nin z2: float32[N, 6]\nout loss = nt_xent_loss(z1, z2, "
        'temperature=0.1, reduction="none")',
    )

    def infer(self, attrs: NtXentAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        z1 = same_type(self.name, self.inputs, inputs)
        if z1.rank != 2:
            raise ShapeError(f"{self.name} needs projections [N, D], got {z1}")
        return (loss_result(z1, z1.shape[:1], attrs.reduction),)

    def torch_expr(
        self, attrs: NtXentAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"nt_xent_loss({args[0]}, {args[1]}, {attrs.temperature!r}, {attrs.reduction!r})"

    def onnx(self, attrs: NtXentAttrs, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)
        floor = g.const(1e-12, "eps")  # F.normalize's

        def unit(z: str) -> str:
            norm = g("Sqrt", g.sum(g("Mul", z, z), [1], keepdims=1))
            return g("Div", z, g("Max", norm, floor))

        u1, u2 = (unit(z) for z in ctx.inputs)
        inv_t = g.const(1.0 / attrs.temperature, "inv_temperature")
        views = g("Concat", u1, u2, axis=0)
        logits = g("Mul", g("MatMul", views, g("Transpose", views, perm=[1, 0])), inv_t)
        itself = g("Cast", g("EyeLike", logits), to=9)  # BOOL
        logits = g("Where", itself, g.const(-np.inf, "minus_inf"), logits)
        # logsumexp of each row, shifted by its max for stability
        top = reduce_node(ctx, "ReduceMax", logits, [1], keep=True)
        spread = g.sum(g("Exp", g("Sub", logits, top)), [1])
        log_total = g("Add", g("Log", spread), g("Squeeze", top, g.ints(1)))
        # rows i and N + i are the two views of pair i: [2N] -> [2, N] -> mean -> [N]
        halves = g("Reshape", log_total, g.ints(2, -1, hint="two_views"))
        per_pair = g("Mul", g.sum(halves, [0]), g.const(0.5))
        positive = g("Mul", g.sum(g("Mul", u1, u2), [1]), inv_t)
        g.finish(g("Sub", per_pair, positive), attrs.reduction)
