"""Divergences and the VAE objective: kl_div (log-probabilities against probabilities),
gaussian_kl (mu and logvar against N(0, 1)) and vae_loss (reconstruction + beta KL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from dslnet.core.symbolic import dims_equal
from dslnet.core.types import TensorType
from dslnet.ops.loss_base import (
    REDUCE_HELPER,
    Loss,
    LossGraph,
    Reduction,
    ReductionAttrs,
    check_batched,
    keyword_options,
    loss_result,
    onnx_binary_cross_entropy,
    onnx_squared_error,
    reduction_field,
    same_type,
)
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, ShapeError, register

# --- divergences and the VAE objective ---------------------------------------------------


class KlDivAttrs(OpAttrs):
    log_target: bool = Field(False, description="the target is given as log-probabilities")
    reduction: Literal["batchmean", "mean", "sum", "none"] = Field(
        "batchmean",
        description="'batchmean': the sum / N, the true KL per sample; 'mean' divides by "
        "every element (torch warns); 'sum'; 'none': each element's term",
    )


@register
class KlDiv(Loss):
    name = "kl_div"
    doc = (
        "KL(target || input) terms target (log target - input) of log-probabilities input, "
        "as F.kl_div; 'batchmean' (the default here) divides the sum by the batch size."
    )
    Attrs = KlDivAttrs
    inputs = ("log_probs", "target")
    examples = (
        "in x: float32[N, 5]\nin t: float32[N, 5]\nout loss = kl_div(log_softmax(x), softmax(t))",
        "in x: float32[N, 3, T]\nin t: float32[N, 3, T]\nout loss = kl_div(log_softmax(x, "
        'axis=1), log_softmax(t, axis=1), log_target=true, reduction="none")',
        "in x: float32[N, 4]\nin t: float32[N, 4]\nout loss = kl_div(log_softmax(x), "
        'softmax(t), reduction="sum")',
    )

    def infer(self, attrs: KlDivAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = same_type(self.name, self.inputs, inputs)
        if attrs.reduction == "batchmean" and x.rank == 0:
            raise ShapeError("kl_div: 'batchmean' needs a batch axis, got a scalar input")
        return (loss_result(x, x.shape, attrs.reduction),)

    def torch_expr(
        self, attrs: KlDivAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        opts = f", reduction={attrs.reduction!r}"  # torch's own default is 'mean'
        opts += keyword_options(("log_target", attrs.log_target, False))
        return f"F.kl_div({args[0]}, {args[1]}{opts})"

    def onnx(self, attrs: KlDivAttrs, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)
        x, target = ctx.inputs
        if attrs.log_target:
            terms = g("Mul", g("Exp", target), g("Sub", target, x))
        else:  # torch's xlogy: a zero target contributes nothing, log 0 notwithstanding
            t_log_t = g("Mul", target, g("Log", target))
            zero = g.const(0.0)
            t_log_t = g("Where", g("Equal", target, zero), zero, t_log_t)
            terms = g("Sub", t_log_t, g("Mul", target, x))
        if attrs.reduction != "batchmean":
            g.finish(terms, attrs.reduction)
            return
        batch = g.to_float(g("Shape", x, start=0, end=1))
        total = g("ReduceSum", terms, keepdims=0)
        ctx.add_node("Div", [total, g("Squeeze", batch)], ctx.outputs)


_GAUSSIAN_KL = '''
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, reduction: str) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) of each sample, summed over its latent axes."""
    per_element = -0.5 * (1 + logvar - mu**2 - logvar.exp())
    return reduce_loss(per_element.flatten(1).sum(1), reduction)
'''


def _gaussian_kl(g: LossGraph, mu: str, logvar: str, rank: int) -> str:
    """-0.5 sum(1 + logvar - mu^2 - exp(logvar)) of each sample: [N, ...] -> [N]."""
    inside = g("Sub", g("Add", g.const(1.0), logvar), g("Mul", mu, mu))
    inside = g("Sub", inside, g("Exp", logvar))
    return g("Mul", g.const(-0.5), g.per_sample_sum(inside, rank))


@register
class GaussianKl(Loss):
    name = "gaussian_kl"
    doc = (
        "KL(N(mu, exp(logvar)) || N(0, 1)) of each sample [N, ...], summed over its latent "
        "axes: the VAE's regulariser; 'mean' averages over the batch."
    )
    inputs = ("mu", "logvar")
    torch_helpers = _GAUSSIAN_KL
    examples = (
        "in mu: float32[N, 8]\nin logvar: float32[N, 8]\nout kl = gaussian_kl(mu, logvar)",
        "in mu: float32[N, 4, 2]\nin logvar: float32[N, 4, 2]\nout kl = gaussian_kl(mu, "
        'logvar, reduction="none")',
    )

    def infer(self, attrs: ReductionAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        mu = same_type(self.name, self.inputs, inputs)
        check_batched(self.name, "mu", mu)
        return (loss_result(mu, mu.shape[:1], attrs.reduction),)

    def torch_expr(
        self, attrs: ReductionAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"gaussian_kl({args[0]}, {args[1]}, {attrs.reduction!r})"

    def onnx(self, attrs: ReductionAttrs, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)
        mu, logvar = ctx.inputs
        g.finish(_gaussian_kl(g, mu, logvar, ctx.input_types[0].rank), attrs.reduction)


_VAE = '''
def vae_loss(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    reconstruction: str,
    beta: float,
    reduction: str,
) -> torch.Tensor:
    """The negative ELBO of each sample: its reconstruction error + beta * its KL."""
    if reconstruction == "bce":
        error = F.binary_cross_entropy(recon, x, reduction="none")
    else:
        error = F.mse_loss(recon, x, reduction="none")
    kl = gaussian_kl(mu, logvar, "none")
    return reduce_loss(error.flatten(1).sum(1) + beta * kl, reduction)
'''


class VaeAttrs(OpAttrs):
    reconstruction: Literal["bce", "mse"] = Field(
        "bce", description="the reconstruction error: 'bce' of probabilities, or 'mse'"
    )
    beta: float = Field(1.0, ge=0.0, allow_inf_nan=False, description="weight of the KL term")
    reduction: Reduction = reduction_field()


@register
class VaeLoss(Loss):
    name = "vae_loss"
    positional = ("reconstruction",)
    doc = (
        "The VAE objective (negative ELBO; beta-VAE with beta): per sample, the summed "
        "reconstruction error of recon against x plus beta gaussian_kl(mu, logvar)."
    )
    Attrs = VaeAttrs
    inputs = ("recon", "x", "mu", "logvar")
    torch_helpers = _VAE
    examples = (
        "in r: float32[N, 12]\nin x: float32[N, 12]\nin mu: float32[N, 4]\n"
        "in logvar: float32[N, 4]\nout loss = vae_loss(sigmoid(r), sigmoid(x), mu, logvar)",
        "in r: float32[N, 1, H, W]\nin x: float32[N, 1, H, W]\nin mu: float32[N, 3]\n"
        "in logvar: float32[N, 3]\nout loss = vae_loss(r, x, mu, logvar, "
        'reconstruction="mse", beta=4.0, reduction="none")',
    )

    def torch_helpers_for(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[str, ...]:
        return (REDUCE_HELPER, _GAUSSIAN_KL, _VAE)

    def infer(self, attrs: VaeAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        recon = same_type(self.name, self.inputs[:2], inputs[:2])
        mu = same_type(self.name, self.inputs[2:], inputs[2:])
        check_batched(self.name, "recon", recon)
        check_batched(self.name, "mu", mu)
        if recon.dtype != mu.dtype or not dims_equal(recon.shape[0], mu.shape[0]):
            raise ShapeError(
                f"vae_loss: recon {recon} and mu {mu} must have one dtype and batch size (axis 0)"
            )
        return (loss_result(recon, recon.shape[:1], attrs.reduction),)

    def torch_expr(self, attrs: VaeAttrs, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return (
            f"vae_loss({', '.join(args)}, {attrs.reconstruction!r}, {attrs.beta!r}, "
            f"{attrs.reduction!r})"
        )

    def onnx(self, attrs: VaeAttrs, ctx: OnnxNodeContext) -> None:
        g = LossGraph(ctx)
        recon, x, mu, logvar = ctx.inputs
        if attrs.reconstruction == "bce":
            error = onnx_binary_cross_entropy(g, recon, x)
        else:
            error = onnx_squared_error(g, recon, x)
        per_sample = g.per_sample_sum(error, ctx.input_types[0].rank)
        kl = _gaussian_kl(g, mu, logvar, ctx.input_types[2].rank)
        weighted = g("Mul", g.const(attrs.beta, "beta"), kl)
        g.finish(g("Add", per_sample, weighted), attrs.reduction)
