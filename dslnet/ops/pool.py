"""Sliding-window pooling: max, average and power-average over 1, 2 or 3 spatial axes.

Output sizes follow PyTorch exactly, ceil_mode included (a last, partial window
counts only when it starts inside the input or the left padding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.types import DType, TensorType
from dslnet.ops.channels import Channels
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpDef, ShapeError, register
from dslnet.ops.window import (
    IntOrTuple,
    WindowAttrs,
    check_input,
    onnx_pads,
    per_axis,
    spatial_numel,
    torch_arg,
    window_size,
)

_KERNEL = "window size: one int for every spatial axis, or one per axis"
_STRIDE = "step between windows (int or one per axis); kernel_size when not given"
_PADDING = "implicit padding at both ends of each axis, at most half the kernel"
_CEIL = "count a last, partial window (one that starts inside the input or left padding)"


class PoolAttrs(WindowAttrs):
    positive = frozenset({"kernel_size", "stride", "dilation"})
    optional = frozenset({"stride"})


class MaxPoolAttrs(PoolAttrs):
    kernel_size: IntOrTuple = Field(description=_KERNEL)
    stride: IntOrTuple | None = Field(None, description=_STRIDE)
    padding: IntOrTuple = Field(0, description=_PADDING + " (never the maximum)")
    dilation: IntOrTuple = Field(1, description="spacing between window taps (int or per axis)")
    ceil_mode: bool = Field(False, description=_CEIL)
    return_indices: bool = Field(
        False, description="also return `indices` (int64): each maximum's flat index in its plane"
    )


class AvgPoolAttrs(PoolAttrs):
    kernel_size: IntOrTuple = Field(description=_KERNEL)
    stride: IntOrTuple | None = Field(None, description=_STRIDE)
    padding: IntOrTuple = Field(0, description=_PADDING + " (zeros)")
    ceil_mode: bool = Field(False, description=_CEIL)
    count_include_pad: bool = Field(True, description="divide by a window that includes padding")


class LpPoolAttrs(PoolAttrs):
    norm_type: float = Field(gt=0.0, description="the power p: (sum over the window of x^p)^(1/p)")
    kernel_size: IntOrTuple = Field(description=_KERNEL)
    stride: IntOrTuple | None = Field(None, description=_STRIDE)
    ceil_mode: bool = Field(False, description=_CEIL)


def _attrs_class(base: type[PoolAttrs], spatial: int) -> type[PoolAttrs]:
    """The schema of `base` for `spatial` axes (tuples must give one value per axis)."""
    name = base.__name__.replace("Attrs", f"{spatial}dAttrs")
    return type(name, (base,), {"__module__": __name__, "spatial": spatial})


class _Pool(OpDef):
    family = "pool"
    aliases = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation"}
    positional: ClassVar[tuple[str, ...]] = ("kernel_size",)
    spatial: ClassVar[int]
    torch_fn: ClassVar[str]
    # PyTorch's avg_pool3d (and lp_pool3d, made of it) refuses an unpadded input smaller
    # than the kernel, which ONNX pools (and PyTorch's 1-D and 2-D ones) take.
    kernel_within_input: ClassVar[bool] = False

    def geometry(
        self, attrs: Any, x: TensorType
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Kernel, stride, padding and dilation per axis, checked against `x`."""
        check_input(self.name, x, self.spatial)
        n = self.spatial
        kernel = per_axis(attrs.kernel_size, n)
        stride = per_axis(attrs.stride, n, kernel)
        padding = per_axis(getattr(attrs, "padding", 0), n)
        dilation = per_axis(getattr(attrs, "dilation", 1), n)
        for i, (k, p) in enumerate(zip(kernel, padding)):
            if 2 * p > k:
                raise ShapeError(
                    f"{self.name}: padding {p} on axis {i + 2} is more than half the kernel "
                    f"{k} (PyTorch's rule), for {x}"
                )
            size = x.shape[i + 2]
            if self.kernel_within_input and isinstance(size, int) and size < k:
                raise ShapeError(
                    f"{self.name}: kernel {k} on axis {i + 2} is larger than the input's "
                    f"{size} before padding (PyTorch's {self.torch_fn} refuses it), for {x}"
                )
        return kernel, stride, padding, dilation

    def out_type(self, attrs: Any, x: TensorType) -> TensorType:
        kernel, stride, padding, dilation = self.geometry(attrs, x)
        sizes = []
        for i, k in enumerate(kernel):
            pads = (padding[i], padding[i])
            size = window_size(
                self.name, x, i + 2, k, stride[i], pads, dilation[i], attrs.ceil_mode
            )
            sizes.append(size)
        return x.with_shape((*x.shape[:2], *sizes))

    def channels(self, attrs: Any, inputs: Sequence[TensorType]) -> Channels | None:
        return Channels("keep", axis=1)

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (self.out_type(attrs, inputs[0]),)

    def torch_args(self, attrs: Any) -> list[str]:
        """`stride=`, `padding=`... where they differ from PyTorch's defaults."""
        n = self.spatial
        kernel = per_axis(attrs.kernel_size, n)
        args = [torch_arg(kernel)]
        if attrs.stride is not None and per_axis(attrs.stride, n) != kernel:
            args.append(f"stride={torch_arg(per_axis(attrs.stride, n))}")
        for name, default in (("padding", 0), ("dilation", 1)):
            value = per_axis(getattr(attrs, name, default), n)
            if value != (default,) * n:
                args.append(f"{name}={torch_arg(value)}")
        return args + (["ceil_mode=True"] if attrs.ceil_mode else [])

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"F.{self.torch_fn}({', '.join([args[0], *self.torch_args(attrs)])})"

    def onnx_window(self, attrs: Any, ctx: OnnxNodeContext) -> dict[str, Any]:
        kernel, stride, padding, _ = self.geometry(attrs, ctx.input_types[0])
        window: dict[str, Any] = {"kernel_shape": kernel, "strides": stride}
        if any(padding):
            window["pads"] = onnx_pads([(p, p) for p in padding])
        if attrs.ceil_mode:
            window["ceil_mode"] = 1
        return window


class _MaxPool(_Pool):
    outputs = ("y", "indices")

    def infer(self, attrs: MaxPoolAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        y = self.out_type(attrs, inputs[0])
        self._check_windows_reach_input(attrs, inputs[0], y)
        return (y, TensorType(dtype=DType.int64, shape=y.shape)) if attrs.return_indices else (y,)

    def _check_windows_reach_input(self, attrs: MaxPoolAttrs, x: TensorType, y: TensorType) -> None:
        """A dilated window can fall wholly in the padding: its maximum is -inf in
        PyTorch and the lowest float in ONNX Runtime, so it is refused (known sizes)."""
        kernel, stride, padding, dilation = self.geometry(attrs, x)
        for i, k in enumerate(kernel):
            length, outs = x.shape[i + 2], y.shape[i + 2]
            if not isinstance(length, int) or not isinstance(outs, int):
                continue
            # Padding lies at the ends: the first and last windows are the ones to check.
            for o in {*range(min(outs, 2048)), *range(max(0, outs - 2048), outs)}:
                start = o * stride[i] - padding[i]
                if not any(0 <= start + j * dilation[i] < length for j in range(k)):
                    raise ShapeError(
                        f"{self.name}: window {o} on axis {i + 2} of {x} covers only padding "
                        f"(kernel {k}, dilation {dilation[i]}, padding {padding[i]}); its "
                        f"maximum would be -inf"
                    )

    def torch_expr(
        self, attrs: MaxPoolAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        extra = ["return_indices=True"] if attrs.return_indices else []
        return f"F.{self.torch_fn}({', '.join([args[0], *self.torch_args(attrs), *extra])})"

    def onnx(self, attrs: MaxPoolAttrs, ctx: OnnxNodeContext) -> None:
        window = self.onnx_window(attrs, ctx)
        dilation = per_axis(attrs.dilation, self.spatial)
        if any(d != 1 for d in dilation):
            window["dilations"] = dilation
        if not attrs.return_indices:
            ctx.add_node("MaxPool", ctx.inputs, ctx.outputs, **window)
            return
        y, indices = ctx.outputs
        # add_node names one fresh output only; no lowering makes names with this suffix
        flat = f"{indices}/MaxPool_indices"
        ctx.add_node("MaxPool", ctx.inputs, [y, flat], **window)
        # ONNX indexes the whole flattened input, PyTorch each [*spatial] plane.
        plane = spatial_numel(ctx, ctx.inputs[0], ctx.input_types[0])
        ctx.add_node("Mod", [flat, plane], [indices])


class _AvgPool(_Pool):
    def torch_args(self, attrs: AvgPoolAttrs) -> list[str]:
        extra = [] if attrs.count_include_pad else ["count_include_pad=False"]
        return super().torch_args(attrs) + extra

    def onnx(self, attrs: AvgPoolAttrs, ctx: OnnxNodeContext) -> None:
        window = self.onnx_window(attrs, ctx)
        if "pads" in window and attrs.count_include_pad:
            window["count_include_pad"] = 1
        ctx.add_node("AveragePool", ctx.inputs, ctx.outputs, **window)


class _LpPool(_Pool):
    def torch_expr(
        self, attrs: LpPoolAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        call = [args[0], repr(attrs.norm_type), *self.torch_args(attrs)]
        return f"F.{self.torch_fn}({', '.join(call)})"

    def onnx(self, attrs: LpPoolAttrs, ctx: OnnxNodeContext) -> None:
        window = self.onnx_window(attrs, ctx)
        if attrs.norm_type == 2.0 and not attrs.ceil_mode:
            ctx.add_node("LpPool", ctx.inputs, ctx.outputs, p=2, **window)
            return
        # PyTorch computes avg_pool(x^p) * kernel volume, then ^(1/p): x^p keeps its
        # sign (ONNX LpPool takes |x|) and a partial ceil_mode window is rescaled.
        dtype = ctx.input_types[0].dtype.value

        def scalar(hint: str, value: float) -> str:
            return ctx.add_initializer(hint, np.array(value, dtype=dtype))

        x = ctx.inputs[0]
        if attrs.norm_type != 1.0:
            (x,) = ctx.add_node("Pow", [x, scalar("lp_power", attrs.norm_type)])
        (mean,) = ctx.add_node("AveragePool", [x], **window)
        volume = float(math.prod(window["kernel_shape"]))
        if attrs.norm_type == 1.0:
            ctx.add_node("Mul", [mean, scalar("lp_volume", volume)], ctx.outputs)
            return
        (total,) = ctx.add_node("Mul", [mean, scalar("lp_volume", volume)])
        ctx.add_node("Pow", [total, scalar("lp_root", 1.0 / attrs.norm_type)], ctx.outputs)


def _examples(op: str, spatial: int, *calls: str) -> tuple[str, ...]:
    dims = {1: "T", 2: "H, W", 3: "T, H, W"}[spatial]
    fixed = {1: "11", 2: "9, 7", 3: "5, 7, 6"}[spatial]
    out = []
    for i, call in enumerate(calls):
        shape = f"N, C, {dims}" if i % 2 == 0 else f"2, 3, {fixed}"
        out.append(f"in x: float32[{shape}]\nout y = x -> {op}{call}")
    return tuple(out)


@register
class MaxPool1d(_MaxPool):
    name, spatial, torch_fn = "maxpool1d", 1, "max_pool1d"
    Attrs = _attrs_class(MaxPoolAttrs, 1)
    doc = "Maximum over sliding windows of [N, C, L]; optionally their indices."
    examples = (
        *_examples("maxpool1d", 1, "(2)", "(3, s=2, p=1, d=2, ceil_mode=true)"),
        "in x: float32[N, C, T]\ny, i = maxpool1d(x, 2, return_indices=true)\nout y = y\nout i = i",
    )


@register
class MaxPool2d(_MaxPool):
    name, spatial, torch_fn = "maxpool2d", 2, "max_pool2d"
    Attrs = _attrs_class(MaxPoolAttrs, 2)
    doc = "Maximum over sliding windows of [N, C, H, W]; optionally their indices."
    examples = (
        *_examples("maxpool2d", 2, "(2)", "(3, s=2, p=1, ceil_mode=true)"),
        "in x: float32[2, 3, 9, 7]\n"
        "y, i = maxpool2d(x, (3, 2), s=(2, 1), p=1, d=(1, 2), return_indices=true)\n"
        "out y = y\nout i = i",
    )


@register
class MaxPool3d(_MaxPool):
    name, spatial, torch_fn = "maxpool3d", 3, "max_pool3d"
    Attrs = _attrs_class(MaxPoolAttrs, 3)
    doc = "Maximum over sliding windows of [N, C, D, H, W]; optionally their indices."
    examples = _examples("maxpool3d", 3, "(2)", "((1, 3, 3), s=2, p=(0, 1, 1), ceil_mode=true)")


@register
class AvgPool1d(_AvgPool):
    name, spatial, torch_fn = "avgpool1d", 1, "avg_pool1d"
    Attrs = _attrs_class(AvgPoolAttrs, 1)
    doc = "Mean over sliding windows of [N, C, L]."
    examples = _examples("avgpool1d", 1, "(2)", "(3, s=2, p=1, ceil_mode=true)")


@register
class AvgPool2d(_AvgPool):
    name, spatial, torch_fn = "avgpool2d", 2, "avg_pool2d"
    Attrs = _attrs_class(AvgPoolAttrs, 2)
    doc = "Mean over sliding windows of [N, C, H, W]."
    examples = _examples(
        "avgpool2d",
        2,
        "(2, s=1)",
        "(3, s=2, p=1, ceil_mode=true, count_include_pad=false)",
        "((3, 2), p=(1, 0), ceil_mode=true)",
    )


@register
class AvgPool3d(_AvgPool):
    name, spatial, torch_fn = "avgpool3d", 3, "avg_pool3d"
    kernel_within_input = True
    Attrs = _attrs_class(AvgPoolAttrs, 3)
    doc = "Mean over sliding windows of [N, C, D, H, W]."
    examples = _examples("avgpool3d", 3, "(2)", "(3, s=2, p=1, ceil_mode=true)")


@register
class LpPool1d(_LpPool):
    name, spatial, torch_fn = "lppool1d", 1, "lp_pool1d"
    positional = ("norm_type", "kernel_size")
    Attrs = _attrs_class(LpPoolAttrs, 1)
    doc = "Power-average pooling of [N, C, L]: (sum over the window of x^p)^(1/p)."
    examples = _examples("lppool1d", 1, "(2, 2)", "(1, 4, s=3, ceil_mode=true)")


@register
class LpPool2d(_LpPool):
    name, spatial, torch_fn = "lppool2d", 2, "lp_pool2d"
    positional = ("norm_type", "kernel_size")
    Attrs = _attrs_class(LpPoolAttrs, 2)
    doc = "Power-average pooling of [N, C, H, W]: (sum over the window of x^p)^(1/p)."
    examples = _examples("lppool2d", 2, "(2, 2)", "(2, (3, 2), s=2, ceil_mode=true)", "(4, 2)")


@register
class LpPool3d(_LpPool):
    name, spatial, torch_fn = "lppool3d", 3, "lp_pool3d"
    kernel_within_input = True
    positional = ("norm_type", "kernel_size")
    Attrs = _attrs_class(LpPoolAttrs, 3)
    doc = "Power-average pooling of [N, C, D, H, W]: (sum over the window of x^p)^(1/p)."
    examples = _examples("lppool3d", 3, "(2, 2)")
