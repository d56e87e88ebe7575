"""Variational autoencoder pieces: the reparameterization trick."""

from __future__ import annotations

from collections.abc import Sequence

from dslnet.core.types import TensorType
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpDef, ShapeError, register

_HELPER = '''
class Reparameterize(nn.Module):
    """z = mu + eps * exp(logvar / 2), eps ~ N(0, 1), while training; mu in eval mode."""

    def forward(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
'''


@register
class Reparameterize(OpDef):
    """A sample z ~ N(mu, exp(logvar)) that gradients flow through (Kingma & Welling).

    Training draws eps ~ N(0, 1) from torch's global RNG (torch.manual_seed makes it
    repeatable) and returns mu + eps * exp(logvar / 2). In eval mode the sample is its
    mean, mu, and so is the ONNX model's output: ONNX models are for inference. Sample
    explicitly (an input of noise) if an exported model must draw.
    """

    name = "reparameterize"
    family = "vae"
    doc = "mu + eps * exp(logvar / 2), eps ~ N(0, 1), while training; mu in eval mode (and ONNX)."
    inputs = ("mu", "logvar")
    torch_helpers = _HELPER
    examples = (
        "in mu: float32[N, 8]\nin logvar: float32[N, 8]\nout z = reparameterize(mu, logvar)",
    )

    def differs_in_training(self, attrs: object) -> bool:
        return True  # draws eps while training; mu in eval

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        mu, logvar = inputs
        if not mu.dtype.is_float:
            raise ShapeError(f"reparameterize needs floating-point inputs, got mu {mu}")
        if not mu.same_as(logvar):
            raise ShapeError(
                f"reparameterize: mu and logvar must have the same type, got mu {mu} and "
                f"logvar {logvar}"
            )
        return (mu,)

    def torch_module(self, attrs: object, inputs: Sequence[TensorType]) -> str:
        return "Reparameterize()"

    def onnx(self, attrs: object, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Identity", [ctx.inputs[0]], ctx.outputs)  # the eval-mode sample: mu
