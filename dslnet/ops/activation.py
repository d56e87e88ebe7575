"""Activations and dropout: one input, same type out (prelu learns its slope)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from dslnet.core.lazy import numpy as np
from dslnet.core.types import DType, TensorType
from dslnet.ops.channels import ELEMENTWISE, Channels
from dslnet.ops.lowering import OnnxNodeContext, log_softmax_node
from dslnet.ops.registry import (
    OpAttrs,
    OpDef,
    ShapeError,
    need_static,
    normalize_axis,
    register,
)
from dslnet.ops.roles import ParamRoles


class _SameType(OpDef):
    """An op whose output has its input's type; floating point only.

    Simple ones name their torch function and ONNX op and need nothing else.
    """

    family = "activation"
    torch_fn: ClassVar[str] = ""
    onnx_op: ClassVar[str] = ""

    def channels(self, attrs: Any, inputs: Sequence[TensorType]) -> Channels | None:
        return ELEMENTWISE

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
    fusable_clamp = (0.0, math.inf)  # ONNX Runtime folds a Relu into the quantized range


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
    positional = ("approximate",)
    doc = 'Gaussian error linear unit, x * Phi(x); approximate="tanh" is GPT-2\'s form.'
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
        if ctx.opset >= 20:  # Gelu (with `approximate`) arrived in opset 20
            ctx.add_node("Gelu", ctx.inputs, ctx.outputs, approximate=attrs.approximate)
            return
        # Below 20 the formula; these are the patterns ONNX Runtime fuses back into one.
        (x,), (y,) = ctx.inputs, ctx.outputs
        dtype = ctx.input_types[0].dtype

        def const(hint: str, value: float) -> str:
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
    positional = ("axis",)
    doc = "exp(x) / sum(exp(x)) along `axis`."
    Attrs = SoftmaxAttrs
    examples = (
        "in x: float32[N, 10]\nout y = softmax(x)",
        "in x: float32[N, 4, 3]\nout y = softmax(x, axis=1)",
    )

    def channels(self, attrs: SoftmaxAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        return Channels("keep", mixes=(attrs.axis % inputs[0].rank,))

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
    channel: bool = Field(
        False,
        description="zero whole channels (axis 1) of a 3-, 4- or 5-D input, as "
        "nn.Dropout1d/2d/3d, instead of single elements",
    )

    @model_serializer(mode="wrap")
    def _omit_default_channel(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # `channel=false` is left out, so element dropout reads (and prints) as before.
        data: dict[str, Any] = handler(self)
        if not self.channel:
            data.pop("channel", None)
        return data


_CHANNEL_DROPOUT = {3: "nn.Dropout1d", 4: "nn.Dropout2d", 5: "nn.Dropout3d"}


@register
class Dropout(_SameType):
    name = "dropout"
    positional = ("p",)
    family = "regularization"
    doc = (
        "Zeroes elements (or with channel=true whole channels) with probability p while "
        "training, scaling the rest by 1/(1-p); identity in eval."
    )
    Attrs = DropoutAttrs
    examples = (
        "in x: float32[N, 8]\nout y = dropout(x, 0.3)",
        "in x: float32[N, C, H, W]\nout y = dropout(x, 0.2, channel=true)",
    )

    def identity_in_eval(self, attrs: DropoutAttrs) -> bool:
        return True

    def infer(self, attrs: DropoutAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = super().infer(attrs, inputs)
        if attrs.channel and x.rank not in _CHANNEL_DROPOUT:
            raise ShapeError(
                f"dropout with channel=true needs a 3-, 4- or 5-D input [N, C, ...] "
                f"(it zeroes whole channels of axis 1), got {x}"
            )
        return (x,)

    def torch_module(self, attrs: DropoutAttrs, inputs: Sequence[TensorType]) -> str:
        cls = _CHANNEL_DROPOUT[inputs[0].rank] if attrs.channel else "nn.Dropout"
        return f"{cls}({attrs.p})"

    def onnx(self, attrs: DropoutAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Identity", ctx.inputs, ctx.outputs)  # ONNX models are for inference


# --- more activations -------------------------------------------------------------------


def _scalar(ctx: OnnxNodeContext, hint: str, value: float) -> str:
    """A scalar constant of the node's input dtype."""
    return ctx.add_initializer(hint, np.array(value, dtype=ctx.input_types[0].dtype.value))


def _kw(name: str, value: float, default: float) -> str:
    """`, name=value` when value is not torch's default, else nothing."""
    return "" if value == default else f", {name}={value!r}"


class LeakyReluAttrs(OpAttrs):
    negative_slope: float = Field(0.01, description="slope for x < 0")


@register
class LeakyReLU(_SameType):
    name = "leaky_relu"
    positional = ("negative_slope",)
    doc = "x for x >= 0, negative_slope * x below."
    Attrs = LeakyReluAttrs
    aliases = {"slope": "negative_slope"}
    examples = (
        "in x: float32[N, 7]\nout y = leaky_relu(x)",
        "in x: float32[N, 3, 4]\nout y = leaky_relu(x, 0.2)",
    )

    def torch_expr(
        self, attrs: LeakyReluAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        slope = "" if attrs.negative_slope == 0.01 else f", {attrs.negative_slope!r}"
        return f"F.leaky_relu({args[0]}{slope})"

    def onnx(self, attrs: LeakyReluAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node("LeakyRelu", ctx.inputs, ctx.outputs, alpha=attrs.negative_slope)


class PReluAttrs(OpAttrs):
    channels: bool = Field(
        False, description="one learned slope per channel (axis 1) instead of a single one"
    )


@register
class PReLU(_SameType):
    name = "prelu"
    # nn.PReLU(64) counts slopes, `channels` is a flag: keyword-only.
    positional = ()
    doc = "Leaky ReLU with a learned slope (one, or one per channel of axis 1); starts at 0.25."
    Attrs = PReluAttrs
    param_roles = ParamRoles(weight="weight")  # the slopes
    examples = (
        "in x: float32[N, 6]\nout y = prelu(x)",
        "in x: float32[N, 3, H, W]\nout y = prelu(x, channels=true)",
    )

    def channels(self, attrs: PReluAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        if not attrs.channels:
            return ELEMENTWISE
        return Channels("keep", axis=1, params={"weight": 0})

    def infer(self, attrs: PReluAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = super().infer(attrs, inputs)
        if attrs.channels:
            if x.rank < 2:
                raise ShapeError(
                    f"prelu with channels=true needs an input [N, C, ...] of rank >= 2, got {x}"
                )
            need_static(x.shape[1], "channel count (axis 1)", self.name, x)
        return (x,)

    def params(self, attrs: PReluAttrs, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        (x,) = inputs
        if not attrs.channels:
            return {"weight": (1,)}
        return {"weight": (need_static(x.shape[1], "channel count (axis 1)", self.name, x),)}

    def init_param(
        self, attrs: PReluAttrs, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        return np.full(self.params(attrs, inputs)[role], 0.25, dtype=np.float32)

    def torch_module(self, attrs: PReluAttrs, inputs: Sequence[TensorType]) -> str:
        return f"nn.PReLU({inputs[0].shape[1]})" if attrs.channels else "nn.PReLU()"

    def onnx(self, attrs: PReluAttrs, ctx: OnnxNodeContext) -> None:
        slope = ctx.param("weight")
        rank = ctx.input_types[0].rank
        if attrs.channels and rank > 2:
            # ONNX broadcasts from the right: the per-channel slopes become [C, 1, ...].
            axes = ctx.add_initializer("prelu_axes", np.arange(1, rank - 1, dtype=np.int64))
            (slope,) = ctx.add_node("Unsqueeze", [slope, axes])
        elif rank == 0:  # the one slope [1] would broadcast a scalar input to [1]
            (slope,) = ctx.add_node("Squeeze", [slope])
        ctx.add_node("PRelu", [ctx.inputs[0], slope], ctx.outputs)


class EluAttrs(OpAttrs):
    alpha: float = Field(1.0, description="scale of the negative part alpha * (exp(x) - 1)")


@register
class ELU(_SameType):
    name = "elu"
    positional = ("alpha",)
    doc = "x for x > 0, alpha * (exp(x) - 1) below."
    Attrs = EluAttrs
    examples = (
        "in x: float32[N, 5]\nout y = elu(x)",
        "in x: float32[N, 5]\nout y = elu(x, alpha=0.5)",
    )

    def torch_expr(self, attrs: EluAttrs, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"F.elu({args[0]}{_kw('alpha', attrs.alpha, 1.0)})"

    def onnx(self, attrs: EluAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Elu", ctx.inputs, ctx.outputs, alpha=attrs.alpha)


@register
class SiLU(_SameType):
    name = "silu"
    doc = "x * sigmoid(x) (swish)."
    examples = ("in x: float32[N, 3, 4]\nout y = silu(x)",)
    torch_fn = "F.silu"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        (x,), (y,) = ctx.inputs, ctx.outputs
        (s,) = ctx.add_node("Sigmoid", [x])
        ctx.add_node("Mul", [x, s], [y])


class HardtanhAttrs(OpAttrs):
    min_val: float = Field(-1.0, description="lower clamp")
    # Checked against min_val even when left at its default: hardtanh(min_val=2.0).
    max_val: float = Field(1.0, description="upper clamp; above min_val", validate_default=True)

    @field_validator("max_val")
    @classmethod
    def _above_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_val")
        if low is not None and not value > low:
            raise ValueError(f"must be greater than min_val {low!r}")
        return value


@register
class Hardtanh(_SameType):
    name = "hardtanh"
    positional = ("min_val", "max_val")
    doc = "Clamp x to [min_val, max_val]."
    Attrs = HardtanhAttrs
    aliases = {"min": "min_val", "max": "max_val"}
    examples = (
        "in x: float32[N, 6]\nout y = hardtanh(x)",
        "in x: float32[N, 6]\nout y = hardtanh(x, 0.0, 6.0)",
    )

    def torch_expr(
        self, attrs: HardtanhAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        extra = _kw("min_val", attrs.min_val, -1.0) + _kw("max_val", attrs.max_val, 1.0)
        return f"F.hardtanh({args[0]}{extra})"

    def onnx(self, attrs: HardtanhAttrs, ctx: OnnxNodeContext) -> None:
        low = _scalar(ctx, "hardtanh_min", attrs.min_val)
        high = _scalar(ctx, "hardtanh_max", attrs.max_val)
        ctx.add_node("Clip", [ctx.inputs[0], low, high], ctx.outputs)


@register
class LogSoftmax(Softmax):
    name = "log_softmax"
    positional = ("axis",)
    doc = "log(softmax(x)) along `axis`, computed stably."
    examples = (
        "in x: float32[N, 10]\nout y = log_softmax(x)",
        "in x: float32[N, 4, 3]\nout y = log_softmax(x, axis=1)",
    )

    def torch_expr(
        self, attrs: SoftmaxAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"torch.log_softmax({args[0]}, dim={attrs.axis})"

    def onnx(self, attrs: SoftmaxAttrs, ctx: OnnxNodeContext) -> None:
        log_softmax_node(ctx, ctx.inputs[0], attrs.axis, ctx.outputs)


@register
class Identity(_SameType):
    name = "identity"
    doc = "The input itself, of any dtype (a named pass-through)."
    examples = ("in x: float32[N, 3]\nout y = identity(x)",)
    onnx_op = "Identity"

    def identity_in_eval(self, attrs: Any) -> bool:
        return True

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (inputs[0],)

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return args[0]


@register
class Sign(_SameType):
    name = "sign"
    doc = "-1, 0 or 1 by the sign of x; any numeric dtype."
    examples = ("in x: float32[N, 4]\nout y = sign(x)",)
    torch_fn = "torch.sign"
    onnx_op = "Sign"

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.dtype == DType.bool:
            raise ShapeError(f"sign needs a numeric input, got {x}")
        return (x,)

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        if not ctx.input_types[0].dtype.is_float:
            super().onnx(attrs, ctx)
            return
        # torch.sign of NaN is 0, ONNX's Sign keeps the NaN: give torch's answer.
        (x,), (y,) = ctx.inputs, ctx.outputs
        (nan,) = ctx.add_node("IsNaN", [x])
        (sign,) = ctx.add_node("Sign", [x])
        ctx.add_node("Where", [nan, _scalar(ctx, "sign_nan", 0.0), sign], [y])
