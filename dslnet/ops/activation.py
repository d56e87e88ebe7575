"""Activations and dropout: one input, same type out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from dslnet.ir.types import TensorType
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, normalize_axis, register


class _SameType(OpDef):
    """An op whose output has its input's type; floating point only.

    Simple ones name their torch function and ONNX op and need nothing else.
    """

    family = "activation"
    torch_fn: ClassVar[str] = ""
    onnx_op: ClassVar[str] = ""

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if not x.dtype.is_float:
            raise ShapeError(f"{self.name} needs a floating-point input, got {x}")
        return (x,)

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{self.torch_fn}({args[0]})"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        ctx.add_node(self.onnx_op, ctx.inputs, ctx.outputs)


@register
class ReLU(_SameType):
    examples = ("in x: float32[N, 7]\nout y = relu(x)",)
    name = "relu"
    doc = "max(x, 0)."
    torch_fn = "torch.relu"
    onnx_op = "Relu"


@register
class Sigmoid(_SameType):
    examples = ("in x: float32[N, 3, 4]\nout y = sigmoid(x)",)
    name = "sigmoid"
    doc = "1 / (1 + exp(-x))."
    torch_fn = "torch.sigmoid"
    onnx_op = "Sigmoid"


@register
class Tanh(_SameType):
    examples = ("in x: float32[N, 5]\nout y = tanh(x)",)
    name = "tanh"
    doc = "Hyperbolic tangent."
    torch_fn = "torch.tanh"
    onnx_op = "Tanh"


class GeluAttrs(OpAttrs):
    approximate: Literal["none", "tanh"] = Field("none", description="exact (erf) or tanh form")


@register
class GELU(_SameType):
    name = "gelu"
    doc = "Gaussian error linear unit, x * Phi(x)."
    Attrs = GeluAttrs
    examples = (
        "in x: float32[N, 6]\nout y = gelu(x)",
        'in x: float32[N, 6]\nout y = gelu(x, approximate="tanh")',
    )

    def torch_expr(
        self, attrs: GeluAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        if attrs.approximate == "tanh":
            return f'F.gelu({args[0]}, approximate="tanh")'
        return f"F.gelu({args[0]})"

    def onnx(self, attrs: GeluAttrs, ctx: OnnxNodeContext) -> None:
        # Opset 18 has no Gelu; these are the patterns ONNX Runtime fuses back into one.
        (x,), (y,) = ctx.inputs, ctx.outputs
        dtype = ctx.input_types[0].dtype

        def const(hint: str, value: float) -> str:
            import numpy as np

            return ctx.add_initializer(hint, np.array(value, dtype=dtype.value))

        half, one = const("gelu_half", 0.5), const("gelu_one", 1.0)
        if attrs.approximate == "tanh":
            (x3,) = ctx.add_node("Mul", [x, x])
            (x3,) = ctx.add_node("Mul", [x3, x])
            (inner,) = ctx.add_node("Mul", [x3, const("gelu_c", 0.044715)])
            (inner,) = ctx.add_node("Add", [x, inner])
            (inner,) = ctx.add_node("Mul", [inner, const("gelu_k", math.sqrt(2.0 / math.pi))])
            (t,) = ctx.add_node("Tanh", [inner])
        else:
            (scaled,) = ctx.add_node("Div", [x, const("gelu_sqrt2", math.sqrt(2.0))])
            (t,) = ctx.add_node("Erf", [scaled])
        (t,) = ctx.add_node("Add", [t, one])
        (xt,) = ctx.add_node("Mul", [x, t])
        ctx.add_node("Mul", [xt, half], [y])


class SoftmaxAttrs(OpAttrs):
    axis: int = Field(-1, description="axis that sums to one")


@register
class Softmax(_SameType):
    name = "softmax"
    doc = "exp(x) / sum(exp(x)) along `axis`."
    Attrs = SoftmaxAttrs
    examples = (
        "in x: float32[N, 10]\nout y = softmax(x)",
        "in x: float32[N, 4, 3]\nout y = softmax(x, axis=1)",
    )

    def infer(self, attrs: SoftmaxAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = super().infer(attrs, inputs)
        normalize_axis(attrs.axis, x.rank, self.name, x)
        return (x,)

    def torch_expr(
        self, attrs: SoftmaxAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"torch.softmax({args[0]}, dim={attrs.axis})"

    def onnx(self, attrs: SoftmaxAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Softmax", ctx.inputs, ctx.outputs, axis=attrs.axis)


class DropoutAttrs(OpAttrs):
    p: float = Field(0.5, ge=0.0, lt=1.0, description="probability of zeroing an element")


@register
class Dropout(_SameType):
    name = "dropout"
    family = "regularization"
    doc = "Zeroes elements with probability p while training (scaled by 1/(1-p)); identity in eval."
    Attrs = DropoutAttrs
    examples = ("in x: float32[N, 8]\nout y = dropout(x, 0.3)",)

    def torch_module(self, attrs: DropoutAttrs, inputs: Sequence[TensorType]) -> str:
        return f"nn.Dropout({attrs.p})"

    def onnx(self, attrs: DropoutAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Identity", ctx.inputs, ctx.outputs)  # ONNX models are for inference
