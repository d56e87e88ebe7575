"""Vision-transformer inputs: patch embedding and the class token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, add, floordiv, mul
from dslnet.core.types import TensorType
from dslnet.ops.lowering import OnnxNodeContext, torch_bound_uniform
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, need_static, register

_PATCH_HELPER = '''
class PatchEmbedding(nn.Module):
    """Cuts an image into patch x patch squares and projects each to a token."""

    def __init__(self, channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [N, patches, dim]
'''


class PatchAttrs(OpAttrs):
    dim: int = Field(gt=0, description="width of each patch token")
    patch: int = Field(gt=0, description="side of the square patches (kernel and stride)")


@register
class PatchEmbed(OpDef):
    name = "patch_embed"
    positional = ("dim", "patch")
    family = "vision"
    doc = (
        "Image [N, C, H, W] to patch tokens [N, (H/p)*(W/p), dim]: a conv with kernel and "
        "stride p, flattened (ViT). Known sizes must divide by p; symbolic ones floor."
    )
    Attrs = PatchAttrs
    short_name = "patches"
    torch_helpers = _PATCH_HELPER
    examples = (
        "in x: float32[N, 3, 8, 12]\nout y = patch_embed(x, 5, 4)",
        "in x: float32[N, 2, H, W]\nout y = x -> patch_embed(dim=3, patch=2)",
    )

    def infer(self, attrs: PatchAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank != 4 or not x.dtype.is_float:
            raise ShapeError(f"patch_embed needs a float image [N, C, H, W], got {x}")
        need_static(x.shape[1], "channel count (axis 1)", self.name, x)
        for axis, size in (("H", x.shape[2]), ("W", x.shape[3])):
            if isinstance(size, int) and size % attrs.patch:
                raise ShapeError(
                    f"patch_embed: {axis} = {size} of {x} is not a multiple of the patch "
                    f"size {attrs.patch}"
                )
        grid = mul(floordiv(x.shape[2], attrs.patch), floordiv(x.shape[3], attrs.patch))
        return (x.with_shape((x.shape[0], grid, attrs.dim)),)

    def is_weight(self, role: str) -> bool:
        return role == "proj.weight"  # the projection's kernel; its bias is not

    def params(self, attrs: PatchAttrs, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        channels = need_static(inputs[0].shape[1], "channel count", self.name, inputs[0])
        return {
            "proj.weight": (attrs.dim, channels, attrs.patch, attrs.patch),
            "proj.bias": (attrs.dim,),
        }

    def init_param(
        self, attrs: PatchAttrs, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        fan_in = need_static(inputs[0].shape[1], "channels", self.name, inputs[0])
        return torch_bound_uniform(self.params(attrs, inputs)[role], fan_in * attrs.patch**2, rng)

    def flops(
        self, attrs: PatchAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        channels = need_static(inputs[0].shape[1], "channels", self.name, inputs[0])
        out = outputs[0].shape
        return mul(mul(out[0], out[1]), attrs.dim * channels * attrs.patch**2)

    def torch_module(self, attrs: PatchAttrs, inputs: Sequence[TensorType]) -> str:
        return f"PatchEmbedding({inputs[0].shape[1]}, {attrs.dim}, patch={attrs.patch})"

    def onnx(self, attrs: PatchAttrs, ctx: OnnxNodeContext) -> None:
        p = attrs.patch
        (conv,) = ctx.add_node(
            "Conv",
            [ctx.inputs[0], ctx.param("proj.weight"), ctx.param("proj.bias")],
            kernel_shape=(p, p),
            strides=(p, p),
        )
        shape = ctx.add_initializer("tokens_shape", np.array([0, 0, -1], dtype=np.int64))
        (flat,) = ctx.add_node("Reshape", [conv, shape])
        ctx.add_node("Transpose", [flat], ctx.outputs, perm=(0, 2, 1))


_TOKEN_HELPER = '''
class ClassToken(nn.Module):
    """Prepends one learned token to every sequence (ViT's [class])."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.normal_(self.token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.expand(x.size(0), -1, -1), x], dim=1)
'''


@register
class ClassTokenOp(OpDef):
    name = "class_token"
    family = "vision"
    doc = (
        "Prepend a learned token to x [N, T, D], giving [N, T+1, D] (ViT, BERT's [CLS]); "
        "initialised N(0, 0.02)."
    )
    short_name = "cls"
    torch_helpers = _TOKEN_HELPER
    examples = ("in x: float32[N, T, 6]\nout y = class_token(x)",)

    def infer(self, attrs: object, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank != 3 or not x.dtype.is_float:
            raise ShapeError(f"class_token needs float tokens [N, T, D], got {x}")
        need_static(x.shape[2], "width D", self.name, x)
        return (x.with_shape((x.shape[0], add(x.shape[1], 1), x.shape[2])),)

    def params(self, attrs: object, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        return {"token": (1, 1, need_static(inputs[0].shape[2], "width D", self.name, inputs[0]))}

    def init_param(
        self, attrs: object, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        shape = self.params(attrs, inputs)[role]
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def takes_init(self) -> bool:
        return True  # no weight: a scheme starts the token at zero, as it does a bias

    def torch_module(self, attrs: object, inputs: Sequence[TensorType]) -> str:
        return f"ClassToken({inputs[0].shape[2]})"

    def onnx(self, attrs: object, ctx: OnnxNodeContext) -> None:
        (x,) = ctx.inputs
        width = ctx.input_types[0].shape[2]
        assert isinstance(width, int)
        (batch,) = ctx.add_node("Shape", [x], start=0, end=1)
        rest = ctx.add_initializer("one_by_width", np.array([1, width], dtype=np.int64))
        (shape,) = ctx.add_node("Concat", [batch, rest], axis=0)
        (tokens,) = ctx.add_node("Expand", [ctx.param("token"), shape])
        ctx.add_node("Concat", [tokens, x], ctx.outputs, axis=1)
