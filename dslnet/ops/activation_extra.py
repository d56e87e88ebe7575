"""More activations (mobile networks' hard forms, softplus, mish): one float input,
same type out, defined as torch.nn.functional defines them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dslnet.core.types import TensorType
from dslnet.ops.activation import _kw, _SameType, _scalar
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, register


@register
class Hardswish(_SameType):
    name = "hardswish"
    doc = "x * relu6(x + 3) / 6 (MobileNetV3)."
    examples = ("in x: float32[N, 3, 4]\nout y = (x * 4) -> hardswish",)
    torch_fn = "F.hardswish"
    onnx_op = "HardSwish"


@register
class Hardsigmoid(_SameType):
    name = "hardsigmoid"
    doc = "relu6(x + 3) / 6: 0 below -3, 1 above 3, linear between."
    examples = ("in x: float32[N, 3, 4]\nout y = (x * 4) -> hardsigmoid",)
    torch_fn = "F.hardsigmoid"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        # ONNX's default slope is 0.2; torch's form is x / 6 + 1 / 2.
        ctx.add_node("HardSigmoid", ctx.inputs, ctx.outputs, alpha=1.0 / 6.0, beta=0.5)


@register
class ReLU6(_SameType):
    name = "relu6"
    doc = "min(max(x, 0), 6)."
    examples = ("in x: float32[N, 7]\nout y = (x * 5) -> relu6",)
    torch_fn = "F.relu6"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        low, high = _scalar(ctx, "relu6_min", 0.0), _scalar(ctx, "relu6_max", 6.0)
        ctx.add_node("Clip", [ctx.inputs[0], low, high], ctx.outputs)


class SoftplusAttrs(OpAttrs):
    beta: float = Field(1.0, gt=0.0, description="sharpness: log(1 + exp(beta * x)) / beta")
    threshold: float = Field(
        20.0, description="x itself where beta * x exceeds it (the curve is linear there)"
    )


@register
class Softplus(_SameType):
    name = "softplus"
    positional = ("beta", "threshold")
    doc = "log(1 + exp(beta * x)) / beta; x where beta * x > threshold."
    Attrs = SoftplusAttrs
    examples = (
        "in x: float32[N, 6]\nout y = (x * 12) -> softplus",
        "in x: float32[N, 6]\nout y = softplus(x, beta=10.0, threshold=2.0)",
    )

    def torch_expr(
        self, attrs: SoftplusAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        extra = _kw("beta", attrs.beta, 1.0) + _kw("threshold", attrs.threshold, 20.0)
        return f"F.softplus({args[0]}{extra})"

    def onnx(self, attrs: SoftplusAttrs, ctx: OnnxNodeContext) -> None:
        # ONNX's Softplus has neither beta nor threshold: scale around it, then take x
        # itself past the threshold as torch does.
        (x,), (y,) = ctx.inputs, ctx.outputs
        bx = x
        if attrs.beta != 1.0:
            (bx,) = ctx.add_node("Mul", [x, _scalar(ctx, "softplus_beta", attrs.beta)])
        (soft,) = ctx.add_node("Softplus", [bx])
        if attrs.beta != 1.0:
            (soft,) = ctx.add_node("Div", [soft, _scalar(ctx, "softplus_beta", attrs.beta)])
        limit = _scalar(ctx, "softplus_threshold", attrs.threshold)
        (linear,) = ctx.add_node("Greater", [bx, limit])
        ctx.add_node("Where", [linear, x, soft], [y])


@register
class Mish(_SameType):
    name = "mish"
    doc = "x * tanh(softplus(x))."
    examples = ("in x: float32[N, 3, 4]\nout y = (x * 10) -> mish",)
    torch_fn = "F.mish"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        # ONNX's Mish needs opset 18; its definition runs on every supported opset.
        (x,), (y,) = ctx.inputs, ctx.outputs
        (soft,) = ctx.add_node("Softplus", [x])
        (t,) = ctx.add_node("Tanh", [soft])
        ctx.add_node("Mul", [x, t], [y])
