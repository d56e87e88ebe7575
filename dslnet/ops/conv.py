"""Convolutions and transposed convolutions over 1, 2 or 3 spatial axes.

Input channels come from the input type (like PyTorch's LazyConv), so they must be
known at compile time; the spatial sizes may stay symbolic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, add, mul, sub
from dslnet.core.types import TensorType
from dslnet.ops.channels import Channels, units
from dslnet.ops.factoring import Factoring
from dslnet.ops.lowering import OnnxNodeContext, torch_bound_uniform
from dslnet.ops.positional import InferredSize
from dslnet.ops.registry import OpDef, ShapeError, need_static, register
from dslnet.ops.roles import TORCH_LAYER, TORCH_TRANSPOSED
from dslnet.ops.window import (
    AXIS_NAMES,
    IntOrTuple,
    WindowAttrs,
    check_input,
    numel,
    onnx_pads,
    per_axis,
    same_pads,
    torch_arg,
    window_size,
)

_KERNEL = "window size: one int for every spatial axis, or one per axis"
_STRIDE = "step between windows (int or one per axis)"
_DILATION = "spacing between kernel taps (int or one per axis)"
_GROUPS = "split channels into this many independent groups (in_channels for depthwise)"


class ConvAttrs(WindowAttrs):
    positive = frozenset({"kernel_size", "stride", "dilation"})
    words = {"padding": ("same", "valid")}

    out_channels: int = Field(gt=0, description="output channels")
    kernel_size: IntOrTuple = Field(description=_KERNEL)
    stride: IntOrTuple = Field(1, description=_STRIDE)
    padding: IntOrTuple | Literal["same", "valid"] = Field(
        0,
        description="zeros added at both ends of each spatial axis (int or one per axis); "
        "'same' keeps the size (stride 1 only), 'valid' adds none",
    )
    dilation: IntOrTuple = Field(1, description=_DILATION)
    groups: int = Field(1, gt=0, description=_GROUPS)
    bias: bool = Field(True, description="learn an additive bias per output channel")


class Conv1dAttrs(ConvAttrs):
    spatial = 1


class Conv2dAttrs(ConvAttrs):
    spatial = 2


class Conv3dAttrs(ConvAttrs):
    spatial = 3


class ConvTransposeAttrs(WindowAttrs):
    positive = frozenset({"kernel_size", "stride", "dilation"})

    out_channels: int = Field(gt=0, description="output channels")
    kernel_size: IntOrTuple = Field(description=_KERNEL)
    stride: IntOrTuple = Field(1, description="upsampling factor (int or one per axis)")
    padding: IntOrTuple = Field(
        0, description="removes dilation*(kernel_size-1)-padding from both ends of each axis"
    )
    output_padding: IntOrTuple = Field(
        0, description="extra size added at the end of each axis; below the stride"
    )
    groups: int = Field(1, gt=0, description=_GROUPS)
    bias: bool = Field(True, description="learn an additive bias per output channel")
    dilation: IntOrTuple = Field(1, description=_DILATION)


class ConvTranspose1dAttrs(ConvTransposeAttrs):
    spatial = 1


class ConvTranspose2dAttrs(ConvTransposeAttrs):
    spatial = 2


class ConvTranspose3dAttrs(ConvTransposeAttrs):
    spatial = 3


class _ConvBase(OpDef):
    """What plain and transposed convolutions share: channels, groups, weights."""

    family = "conv"
    aliases = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation"}
    positional = ("out_channels", "kernel_size")
    inferred = InferredSize("input channel count", axis=1)
    param_roles = TORCH_LAYER
    spatial: ClassVar[int]
    torch_class: ClassVar[str]

    def in_channels(self, attrs: Any, x: TensorType) -> int:
        check_input(self.name, x, self.spatial)
        channels = need_static(x.shape[1], "channel count (axis 1)", self.name, x)
        if channels % attrs.groups:
            raise ShapeError(
                f"{self.name}: groups={attrs.groups} must divide the input channels "
                f"{channels} of {x}"
            )
        if attrs.out_channels % attrs.groups:
            raise ShapeError(
                f"{self.name}: groups={attrs.groups} must divide out_channels "
                f"{attrs.out_channels} (input {x})"
            )
        return channels

    def kernel(self, attrs: Any) -> tuple[int, ...]:
        return per_axis(attrs.kernel_size, self.spatial)

    def weight_shape(self, attrs: Any, in_channels: int) -> tuple[int, ...]:
        raise NotImplementedError

    def fan_in(self, attrs: Any, in_channels: int) -> int:
        """PyTorch's fan_in of the weight: its dim 1 times the kernel volume."""
        return self.weight_shape(attrs, in_channels)[1] * math.prod(self.kernel(attrs))

    def params(self, attrs: Any, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        shapes = {"weight": self.weight_shape(attrs, self.in_channels(attrs, inputs[0]))}
        if attrs.bias:
            shapes["bias"] = (attrs.out_channels,)
        return shapes

    def init_param(
        self, attrs: Any, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        in_channels = self.in_channels(attrs, inputs[0])
        shape = self.params(attrs, inputs)[role]
        return torch_bound_uniform(shape, self.fan_in(attrs, in_channels), rng)

    def torch_args(self, attrs: Any) -> list[str]:
        """Keyword arguments after the kernel size, defaults left out."""
        raise NotImplementedError

    def torch_module(self, attrs: Any, inputs: Sequence[TensorType]) -> str:
        in_channels = self.in_channels(attrs, inputs[0])
        args = [str(in_channels), str(attrs.out_channels), torch_arg(self.kernel(attrs))]
        return f"nn.{self.torch_class}({', '.join(args + self.torch_args(attrs))})"

    def onnx_inputs(self, attrs: Any, ctx: OnnxNodeContext) -> list[str]:
        names = [ctx.inputs[0], ctx.param("weight")]
        return [*names, ctx.param("bias")] if attrs.bias else names


def _keywords(attrs: Any, spatial: int, *names: str) -> list[str]:
    """`name=value` for int-or-tuple attributes that differ from PyTorch's default."""
    defaults = {"stride": 1, "padding": 0, "output_padding": 0, "dilation": 1}
    out = []
    for name in names:
        value = getattr(attrs, name)
        if name == "padding" and isinstance(value, str):
            if value == "same":
                out.append('padding="same"')
            continue
        if per_axis(value, spatial) != (defaults[name],) * spatial:
            out.append(f"{name}={torch_arg(per_axis(value, spatial))}")
    return out


class _Conv(_ConvBase):
    def factoring(self, attrs: ConvAttrs, rank: int) -> Factoring | None:
        return _factoring(self.name, self.spatial, attrs, rank, out_axis=0)

    def weight_shape(self, attrs: ConvAttrs, in_channels: int) -> tuple[int, ...]:
        return (attrs.out_channels, in_channels // attrs.groups, *self.kernel(attrs))

    def pads(self, attrs: ConvAttrs, x: TensorType) -> list[tuple[int, int]]:
        kernel, dilation = self.kernel(attrs), per_axis(attrs.dilation, self.spatial)
        if attrs.padding == "same":
            stride = per_axis(attrs.stride, self.spatial)
            if any(s != 1 for s in stride):
                raise ShapeError(
                    f"{self.name}: padding='same' needs stride 1 (as in PyTorch), got "
                    f"stride {torch_arg(stride)} for {x}"
                )
            return [same_pads(k, d) for k, d in zip(kernel, dilation)]
        if attrs.padding == "valid":
            return [(0, 0)] * self.spatial
        return [(p, p) for p in per_axis(attrs.padding, self.spatial)]

    def channels(self, attrs: ConvAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        channels = inputs[0].shape[1]
        if attrs.groups == 1:
            return units(1, "out_channels", self.param_roles)
        if attrs.groups == channels == attrs.out_channels:  # depthwise: channel i alone
            return Channels(
                "keep",
                axis=1,
                params={"weight": 0, "bias": 0},
                count_attrs=("out_channels", "groups"),
            )
        return None  # other groupings tie channel blocks together: left whole

    def infer(self, attrs: ConvAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        self.in_channels(attrs, x)
        pads = self.pads(attrs, x)
        kernel = self.kernel(attrs)
        stride = per_axis(attrs.stride, self.spatial)
        dilation = per_axis(attrs.dilation, self.spatial)
        sizes = [
            window_size(self.name, x, i + 2, kernel[i], stride[i], pads[i], dilation[i])
            for i in range(self.spatial)
        ]
        return (x.with_shape((x.shape[0], attrs.out_channels, *sizes)),)

    def flops(
        self, attrs: ConvAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        per_output = self.in_channels(attrs, inputs[0]) // attrs.groups
        return mul(numel(outputs[0].shape), per_output * math.prod(self.kernel(attrs)))

    def torch_args(self, attrs: ConvAttrs) -> list[str]:
        args = _keywords(attrs, self.spatial, "stride", "padding", "dilation")
        args += [f"groups={attrs.groups}"] if attrs.groups != 1 else []
        return args + (["bias=False"] if not attrs.bias else [])

    def onnx(self, attrs: ConvAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node(
            "Conv",
            self.onnx_inputs(attrs, ctx),
            ctx.outputs,
            kernel_shape=self.kernel(attrs),
            strides=per_axis(attrs.stride, self.spatial),
            pads=onnx_pads(self.pads(attrs, ctx.input_types[0])),
            dilations=per_axis(attrs.dilation, self.spatial),
            group=attrs.groups,
        )


class _ConvTranspose(_ConvBase):
    param_roles = TORCH_TRANSPOSED  # weight [in, out, *kernel]

    def factoring(self, attrs: ConvTransposeAttrs, rank: int) -> Factoring | None:
        return _factoring(self.name, self.spatial, attrs, rank, out_axis=1)

    def weight_shape(self, attrs: ConvTransposeAttrs, in_channels: int) -> tuple[int, ...]:
        return (in_channels, attrs.out_channels // attrs.groups, *self.kernel(attrs))

    def channels(self, attrs: ConvTransposeAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        if attrs.groups != 1:
            return None
        return units(1, "out_channels", self.param_roles)

    def infer(
        self, attrs: ConvTransposeAttrs, inputs: Sequence[TensorType]
    ) -> tuple[TensorType, ...]:
        (x,) = inputs
        self.in_channels(attrs, x)
        n = self.spatial
        kernel, stride = self.kernel(attrs), per_axis(attrs.stride, n)
        padding, dilation = per_axis(attrs.padding, n), per_axis(attrs.dilation, n)
        extra = per_axis(attrs.output_padding, n)
        sizes: list[Dim] = []
        for i in range(n):
            axis, name = i + 2, AXIS_NAMES[n][i]
            # PyTorch also takes one below the dilation; ONNX Runtime refuses that.
            if extra[i] >= stride[i]:
                raise ShapeError(
                    f"{self.name}: output_padding {extra[i]} on axis {axis} must be smaller "
                    f"than the stride ({stride[i]}), for {x}"
                )
            grow = dilation[i] * (kernel[i] - 1) + extra[i] + 1 - 2 * padding[i]
            size = add(mul(sub(x.shape[axis], 1), stride[i]), grow)
            if isinstance(size, int) and size < 1:
                raise ShapeError(
                    f"{self.name}: output size {size} on axis {axis} of {x} is not positive "
                    f"(({name}-1)*{stride[i]} - 2*{padding[i]} + {dilation[i]}*"
                    f"({kernel[i]}-1) + {extra[i]} + 1)"
                )
            sizes.append(size)
        return (x.with_shape((x.shape[0], attrs.out_channels, *sizes)),)

    def flops(
        self, attrs: ConvTransposeAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        # every input element meets out_channels/groups * kernel weights
        per_input = attrs.out_channels // attrs.groups * math.prod(self.kernel(attrs))
        return mul(numel(inputs[0].shape), per_input)

    def torch_args(self, attrs: ConvTransposeAttrs) -> list[str]:
        args = _keywords(attrs, self.spatial, "stride", "padding", "output_padding")
        args += [f"groups={attrs.groups}"] if attrs.groups != 1 else []
        args += ["bias=False"] if not attrs.bias else []
        return args + _keywords(attrs, self.spatial, "dilation")

    def onnx(self, attrs: ConvTransposeAttrs, ctx: OnnxNodeContext) -> None:
        n = self.spatial
        extra = per_axis(attrs.output_padding, n)
        optional = {"output_padding": extra} if any(extra) else {}
        ctx.add_node(
            "ConvTranspose",
            self.onnx_inputs(attrs, ctx),
            ctx.outputs,
            kernel_shape=self.kernel(attrs),
            strides=per_axis(attrs.stride, n),
            pads=onnx_pads([(p, p) for p in per_axis(attrs.padding, n)]),
            dilations=per_axis(attrs.dilation, n),
            group=attrs.groups,
            **optional,
        )


def _factoring(
    op: str, spatial: int, attrs: ConvAttrs | ConvTransposeAttrs, rank: int, out_axis: int
) -> Factoring | None:
    """The same window making `rank` channels, then a 1x1 convolution to the outputs."""
    if attrs.groups != 1:  # the blocks of a grouped weight do not form one matrix
        return None
    first = {**attrs.model_dump(), "out_channels": rank, "bias": False}
    second = {"out_channels": attrs.out_channels, "kernel_size": 1, "bias": attrs.bias}
    return Factoring((op, first), (f"conv{spatial}d", second), out_axis)


@register
class Conv1d(_Conv):
    name = "conv1d"
    spatial = 1
    torch_class = "Conv1d"
    Attrs = Conv1dAttrs
    doc = "1-D convolution over [N, C, L]; in_channels come from the input."
    examples = (
        "in x: float32[N, 4, T]\nout y = x -> conv1d(8, k=3, p=1)",
        "in x: float32[N, 6, 20]\nout y = x -> conv1d(6, 5, s=2, d=2, groups=3, bias=false)",
        'in x: float32[N, 3, T]\nout y = x -> conv1d(5, k=4, p="same", d=2)',
    )


@register
class Conv2d(_Conv):
    name = "conv2d"
    spatial = 2
    torch_class = "Conv2d"
    Attrs = Conv2dAttrs
    doc = "2-D convolution over [N, C, H, W]; in_channels come from the input."
    examples = (
        "in x: float32[N, 3, H, W]\nout y = x -> conv2d(8, k=3, s=2, p=1, bias=false)",
        'in x: float32[N, 4, H, W]\nout y = x -> conv2d(4, k=(3, 5), p="same", groups=4)',
        "in x: float32[N, 2, 11, 9]\nout y = x -> conv2d(6, (3, 5), s=(2, 1), p=(0, 2), d=(2, 1))",
    )


@register
class Conv3d(_Conv):
    name = "conv3d"
    spatial = 3
    torch_class = "Conv3d"
    Attrs = Conv3dAttrs
    doc = "3-D convolution over [N, C, D, H, W]; in_channels come from the input."
    examples = (
        "in x: float32[N, 2, T, H, W]\nout y = x -> conv3d(4, k=3, p=1)",
        "in x: float32[N, 4, 6, 7, 8]\nout y = x -> conv3d(6, (1, 3, 3), s=(1, 2, 2), groups=2)",
    )


@register
class ConvTranspose1d(_ConvTranspose):
    name = "conv_transpose1d"
    spatial = 1
    torch_class = "ConvTranspose1d"
    Attrs = ConvTranspose1dAttrs
    doc = "1-D transposed convolution (the gradient of conv1d), e.g. learned upsampling."
    examples = (
        "in x: float32[N, 4, T]\nout y = x -> conv_transpose1d(3, k=4, s=2, p=1)",
        "in x: float32[N, 4, 9]\n"
        "out y = x -> conv_transpose1d(6, 3, s=3, output_padding=2, groups=2, d=2)",
    )


@register
class ConvTranspose2d(_ConvTranspose):
    name = "conv_transpose2d"
    spatial = 2
    torch_class = "ConvTranspose2d"
    Attrs = ConvTranspose2dAttrs
    doc = "2-D transposed convolution (the gradient of conv2d), e.g. learned upsampling."
    examples = (
        "in x: float32[N, 8, H, W]\nout y = x -> conv_transpose2d(4, k=4, s=2, p=1, bias=false)",
        "in x: float32[N, 3, H, W]\n"
        "out y = x -> conv_transpose2d(6, (3, 2), s=(2, 3), output_padding=(1, 2), groups=3)",
        "in x: float32[N, 2, 5, 4]\nout y = x -> conv_transpose2d(3, 3, p=1, d=(2, 1))",
    )


@register
class ConvTranspose3d(_ConvTranspose):
    name = "conv_transpose3d"
    spatial = 3
    torch_class = "ConvTranspose3d"
    Attrs = ConvTranspose3dAttrs
    doc = "3-D transposed convolution (the gradient of conv3d), e.g. learned upsampling."
    examples = (
        "in x: float32[N, 4, T, H, W]\nout y = x -> conv_transpose3d(2, k=2, s=2)",
        "in x: float32[N, 2, 3, 4, 5]\n"
        "out y = x -> conv_transpose3d(4, 3, s=(1, 2, 2), p=1, output_padding=(0, 1, 1))",
    )
