"""drop_path: stochastic depth, dropout of whole samples on a residual branch.

While training, each sample (index of axis 0) is zeroed with probability p and the kept
ones scaled by 1/(1-p), as timm's DropPath; in eval, and in ONNX models (which are for
inference), it is the identity, as dropout is (OpDef.identity_in_eval).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from dslnet.core.types import TensorType
from dslnet.ops.channels import ELEMENTWISE, Channels
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register

_DROP_PATH = '''
class DropPath(nn.Module):
    """Stochastic depth: while training, zero whole samples (axis 0) with probability p
    and scale the others by 1/(1-p); the identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep
'''


class DropPathAttrs(OpAttrs):
    p: float = Field(ge=0.0, lt=1.0, description="probability of dropping a sample")


@register
class DropPath(OpDef):
    name = "drop_path"
    positional = ("p",)
    family = "regularization"
    doc = (
        "Stochastic depth: zeroes whole samples (axis 0) with probability p while "
        "training, scaling the rest by 1/(1-p); identity in eval."
    )
    Attrs = DropPathAttrs
    torch_helpers = _DROP_PATH
    examples = (
        "in x: float32[N, C, H, W]\nout y = drop_path(x, 0.2)",
        "in x: float32[N, 8]\nout y = x + drop_path(linear(x, 8), 0.1)",
    )

    def identity_in_eval(self, attrs: DropPathAttrs) -> bool:
        return True

    def channels(self, attrs: DropPathAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        return ELEMENTWISE

    def infer(self, attrs: DropPathAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank == 0 or not x.dtype.is_float:
            raise ShapeError(f"drop_path drops samples of axis 0 of a float tensor, got {x}")
        return (x,)

    def torch_module(self, attrs: DropPathAttrs, inputs: Sequence[TensorType]) -> str:
        return f"DropPath({attrs.p})"

    def onnx(self, attrs: DropPathAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Identity", ctx.inputs, ctx.outputs)  # ONNX models are for inference
