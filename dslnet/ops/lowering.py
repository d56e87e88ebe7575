"""What an op's backend facets receive: the interfaces the backends implement.

Ops import only these protocols (never a backend), so the registry stays
free of torch and onnx imports; the backends pass concrete objects in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from dslnet.core.lazy import numpy as np
from dslnet.core.types import DType, TensorType

# onnx.TensorProto's element type numbers, for Cast and friends (ops import no backend).
ONNX_DTYPES = {
    DType.float32: 1,
    DType.uint8: 2,
    DType.int8: 3,
    DType.int16: 5,
    DType.int32: 6,
    DType.int64: 7,
    DType.bool: 9,
    DType.float16: 10,
    DType.float64: 11,
    DType.bfloat16: 16,
}


class OnnxNodeContext(Protocol):
    """One IR node being lowered to ONNX."""

    inputs: Sequence[str]  # ONNX value names of the node's inputs
    outputs: Sequence[str]  # ONNX value names the node must define
    input_types: Sequence[TensorType]
    output_types: Sequence[TensorType]
    ort_fused: bool  # ONNX Runtime's contrib ops (domain com.microsoft) may be used
    opset: int  # the default domain's opset targeted (where an operator's form changed)

    def param(self, role: str) -> str:
        """The initializer name of the node's parameter `role` (e.g. `linear1.weight`)."""
        ...

    def param_array(self, role: str) -> np.ndarray[Any, Any]:
        """The value of that parameter (for lowerings that reshape weights once)."""
        ...

    def scalar_input(self, index: int) -> float | None:
        """The number input `index` is when an op that the torch code writes as a Python
        number makes it (OpDef.scalar_value: the 0.5 of `x ** 0.5`), else None."""
        ...

    def add_initializer(self, hint: str, value: np.ndarray[Any, Any]) -> str:
        """A constant tensor; returns its unique name."""
        ...

    def add_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int | None = None,
        **attrs: Any,
    ) -> list[str]:
        """Append an ONNX node; without `outputs` (or with a count), fresh names are
        made. Returns the output names. A `domain=` keyword picks an operator domain."""
        ...


def reduce_node(
    ctx: OnnxNodeContext,
    op: str,
    x: str,
    axes: Sequence[int] | None,
    keep: bool,
    out: Sequence[str] | None = None,
    hint: str = "axes",
) -> str:
    """One ONNX Reduce* node over `axes` (None: every axis). Before opset 18 only
    ReduceSum (from 13) takes the axes as an input (an initializer named after `hint`);
    the others take an attribute."""
    if axes is None:
        return ctx.add_node(op, [x], out, keepdims=int(keep))[0]
    if ctx.opset >= 18 or op == "ReduceSum":
        listed = ctx.add_initializer(hint, np.array(list(axes), dtype=np.int64))
        return ctx.add_node(op, [x, listed], out, keepdims=int(keep))[0]
    return ctx.add_node(op, [x], out, axes=list(axes), keepdims=int(keep))[0]


def log_softmax_node(
    ctx: OnnxNodeContext, x: str, axis: int, out: Sequence[str] | None = None
) -> str:
    """LogSoftmax as torch computes it. A row holding +inf is NaN throughout in torch
    (x - max is inf - inf), where ONNX Runtime's kernel gives NaN at the +inf and -inf
    elsewhere: adding max - max, 0 for a finite max and NaN otherwise, makes them agree."""
    (y,) = ctx.add_node("LogSoftmax", [x], axis=axis)
    top = reduce_node(ctx, "ReduceMax", x, [axis], keep=True, hint="axis")
    (nan_unless_finite,) = ctx.add_node("Sub", [top, top])
    return ctx.add_node("Add", [y, nan_unless_finite], out)[0]


# A size to build at run time: a literal, or (k, value, axes): k times the product of
# the value's sizes at those axes.
RunTimeSize = int | tuple[int, str, Sequence[int]]


def torch_size_text(k: int, value: str, axes: Sequence[int]) -> str:
    """`2 * x.shape[2] * x.shape[3]`: a RunTimeSize as torch source."""
    return " * ".join([*([str(k)] if k != 1 else []), *(f"{value}.shape[{a}]" for a in axes)])


def onnx_sizes(
    ctx: OnnxNodeContext,
    sizes: Sequence[RunTimeSize],
    factor_hint: str = "size_factor",
    sizes_hint: str = "sizes",
) -> str:
    """A 1-D int64 ONNX value holding `sizes`: runs of literals as one constant, each
    other size sliced from its value's shape (Shape with start/end) and multiplied."""
    pieces: list[list[int] | str] = []
    for entry in sizes:
        if isinstance(entry, int):
            if pieces and isinstance(pieces[-1], list):
                pieces[-1].append(entry)
            else:
                pieces.append([entry])
            continue
        k, value, axes = entry
        factors = [ctx.add_node("Shape", [value], start=a, end=a + 1)[0] for a in axes]
        if k != 1:
            factors.append(ctx.add_initializer(factor_hint, np.array([k], dtype=np.int64)))
        size = factors[0]
        for factor in factors[1:]:
            (size,) = ctx.add_node("Mul", [size, factor])
        pieces.append(size)
    names = [
        ctx.add_initializer(sizes_hint, np.array(p, dtype=np.int64)) if isinstance(p, list) else p
        for p in pieces
    ]
    if not names:
        return ctx.add_initializer(sizes_hint, np.zeros((0,), dtype=np.int64))
    if len(names) == 1:
        return names[0]
    return ctx.add_node("Concat", names, axis=0)[0]


def torch_bound_uniform(
    shape: tuple[int, ...], fan_in: int, rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    """PyTorch's default for weights and biases of linear and conv layers.

    kaiming_uniform_(a=sqrt(5)) on a weight and the bias rule both reduce to
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)
