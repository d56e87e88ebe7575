"""Max unpooling: the inverse of max pooling with return_indices=true."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, add, dims_equal, mul, sub
from dslnet.core.types import DType, TensorType
from dslnet.ops.channels import Channels
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpDef, ShapeError, register
from dslnet.ops.window import (
    AXIS_NAMES,
    IntOrTuple,
    WindowAttrs,
    check_input,
    int64,
    per_axis,
    torch_arg,
)


class MaxUnpoolAttrs(WindowAttrs):
    positive = frozenset({"kernel_size", "stride", "output_size"})
    optional = frozenset({"stride", "output_size"})

    kernel_size: IntOrTuple = Field(description="the kernel_size of the max pooling undone")
    stride: IntOrTuple | None = Field(None, description="its stride; kernel_size when not given")
    padding: IntOrTuple = Field(0, description="its padding")
    output_size: IntOrTuple | None = Field(
        None,
        description="spatial output size when the default (L-1)*stride - 2*padding + "
        "kernel_size is not the pooled input's size; within stride of the default",
    )


def _attrs(spatial: int) -> type[MaxUnpoolAttrs]:
    name = f"MaxUnpool{spatial}dAttrs"
    return type(name, (MaxUnpoolAttrs,), {"__module__": __name__, "spatial": spatial})


class _MaxUnpool(OpDef):
    family = "pool"
    inputs = ("x", "indices")
    aliases = {"k": "kernel_size", "s": "stride", "p": "padding"}
    positional = ("kernel_size",)
    spatial: ClassVar[int]

    def geometry(
        self, attrs: MaxUnpoolAttrs
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        n = self.spatial
        kernel = per_axis(attrs.kernel_size, n)
        return kernel, per_axis(attrs.stride, n, kernel), per_axis(attrs.padding, n)

    def channels(self, attrs: object, inputs: Sequence[TensorType]) -> Channels | None:
        return Channels("keep", axis=1, inputs=(0, 1))  # values and their indices

    def infer(self, attrs: MaxUnpoolAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, indices = inputs
        check_input(self.name, x, self.spatial)
        same = indices.rank == x.rank and all(map(dims_equal, indices.shape, x.shape))
        if indices.dtype != DType.int64 or not same:
            raise ShapeError(
                f"{self.name}: indices must be int64 of the input's shape "
                f"(from maxpool{self.spatial}d with return_indices=true): input {x}, "
                f"indices {indices}"
            )
        kernel, stride, padding = self.geometry(attrs)
        wanted = None if attrs.output_size is None else per_axis(attrs.output_size, self.spatial)
        sizes: list[Dim] = []
        for i in range(self.spatial):
            axis, name = i + 2, AXIS_NAMES[self.spatial][i]
            default = add(mul(sub(x.shape[axis], 1), stride[i]), kernel[i] - 2 * padding[i])
            rule = f"({name}-1)*{stride[i]} - 2*{padding[i]} + {kernel[i]}"
            if wanted is None:
                if isinstance(default, int) and default < 1:
                    raise ShapeError(
                        f"{self.name}: output size {default} = {rule} on axis {axis} of {x} "
                        "is not positive"
                    )
                sizes.append(default)
                continue
            if (
                isinstance(default, int)
                and not default - stride[i] < wanted[i] < default + stride[i]
            ):
                raise ShapeError(
                    f"{self.name}: output_size {wanted[i]} on axis {axis} must lie strictly "
                    f"between {default - stride[i]} and {default + stride[i]} (the default "
                    f"{rule} = {default}, plus or minus the stride), for {x}"
                )
            sizes.append(wanted[i])
        return (x.with_shape((*x.shape[:2], *sizes)),)

    def torch_expr(
        self, attrs: MaxUnpoolAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        kernel, stride, padding = self.geometry(attrs)
        call = [*args, torch_arg(kernel)]
        if stride != kernel:
            call.append(f"stride={torch_arg(stride)}")
        if any(padding):
            call.append(f"padding={torch_arg(padding)}")
        if attrs.output_size is not None:
            size = per_axis(attrs.output_size, self.spatial)
            call.append(f"output_size={list(size)}")
        return f"F.max_unpool{self.spatial}d({', '.join(call)})"

    def onnx(self, attrs: MaxUnpoolAttrs, ctx: OnnxNodeContext) -> None:
        # PyTorch's indices count within one [*spatial] plane of the output, so each
        # plane's values are scattered into a zero plane. (ONNX MaxUnpool counts within
        # the whole tensor and refuses the sizes below the default that PyTorch allows.)
        x, indices = ctx.inputs
        (y_type,) = ctx.output_types
        fixed = [d for d in y_type.shape[2:] if isinstance(d, int)]
        if len(fixed) == self.spatial:
            dims = int64(ctx, "output_size", fixed)
            plane = int64(ctx, "plane_size", [math.prod(fixed)])
        else:  # the default size, computed from the input's shape at run time
            kernel, stride, padding = self.geometry(attrs)
            (dims,) = ctx.add_node("Shape", [x], start=2)
            (dims,) = ctx.add_node("Sub", [dims, int64(ctx, "one", 1)])
            (dims,) = ctx.add_node("Mul", [dims, int64(ctx, "stride", stride)])
            grow = [k - 2 * p for k, p in zip(kernel, padding)]
            (dims,) = ctx.add_node("Add", [dims, int64(ctx, "grow", grow)])
            (plane,) = ctx.add_node("ReduceProd", [dims], keepdims=1)
        (batch_channels,) = ctx.add_node("Shape", [x], end=2)
        (flat_shape,) = ctx.add_node("Concat", [batch_channels, plane], axis=0)
        zero = np.zeros(1, dtype=y_type.dtype.value)
        (zeros,) = ctx.add_node("ConstantOfShape", [flat_shape], value=zero)
        planes = int64(ctx, "planes", [0, 0, -1])
        (values,) = ctx.add_node("Reshape", [x, planes])
        (where,) = ctx.add_node("Reshape", [indices, planes])
        (flat,) = ctx.add_node("ScatterElements", [zeros, where, values], axis=2)
        (shape,) = ctx.add_node("Concat", [batch_channels, dims], axis=0)
        ctx.add_node("Reshape", [flat, shape], ctx.outputs)


def _examples(spatial: int, fixed: str, pool: str, unpool: str) -> tuple[str, ...]:
    dims = {1: "8", 2: "H, 4", 3: "2, H, 4"}[spatial]  # H is even in the conformance test
    body = (
        "p, i = maxpool{n}d(x, {pool}, return_indices=true)\nout y = max_unpool{n}d(p, i, {unpool})"
    )
    return (
        f"in x: float32[N, C, {dims}]\n" + body.format(n=spatial, pool="2", unpool="2"),
        f"in x: float32[2, 3, {fixed}]\n" + body.format(n=spatial, pool=pool, unpool=unpool),
    )


@register
class MaxUnpool1d(_MaxUnpool):
    name = "max_unpool1d"
    spatial = 1
    Attrs = _attrs(1)
    doc = "Put each value of [N, C, L] back at its maxpool1d index; zeros elsewhere."
    examples = _examples(1, "9", "3, s=2, p=1", "3, s=2, p=1, output_size=10")


@register
class MaxUnpool2d(_MaxUnpool):
    name = "max_unpool2d"
    spatial = 2
    Attrs = _attrs(2)
    doc = "Put each value of [N, C, H, W] back at its maxpool2d index; zeros elsewhere."
    examples = _examples(2, "9, 7", "2", "2, output_size=(9, 7)")


@register
class MaxUnpool3d(_MaxUnpool):
    name = "max_unpool3d"
    spatial = 3
    Attrs = _attrs(3)
    doc = "Put each value of [N, C, D, H, W] back at its maxpool3d index; zeros elsewhere."
    examples = _examples(3, "5, 6, 7", "(1, 2, 3), s=(1, 2, 2)", "(1, 2, 3), s=(1, 2, 2)")
