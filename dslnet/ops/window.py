"""Window arithmetic shared by the convolution, pooling and resampling ops.

Attribute checks (ints or per-axis tuples), the output size of a sliding window
along one axis (symbolic when the input is), and small ONNX helpers. No op is
registered here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import ValidationInfo, field_validator

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, add, floordiv, mul, sub
from dslnet.core.types import TensorType
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, ShapeError

AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
"""How the spatial axes of a 1-, 2- or 3-D window op are named in messages."""

IntOrTuple = int | tuple[int, ...]
WINDOW_MAX = 2**31 - 1  # sizes, strides, paddings: 32-bit in the backends' kernels


def check_ints(value: Any, count: int, minimum: int, *, none_ok: bool = False) -> Any:
    """`value` if it is an int >= minimum or a tuple of `count` such ints; else ValueError."""
    if value is None and none_ok:
        return None
    if isinstance(value, list):
        value = tuple(value)
    items = value if isinstance(value, tuple) else (value,)
    good = all(type(v) is int and v >= minimum for v in items)
    if good and (not isinstance(value, tuple) or len(value) == count):
        if any(v > WINDOW_MAX for v in items):  # torch's pooling kernels overflow past it
            raise ValueError(f"must be at most {WINDOW_MAX:,} on every axis")
        return value
    tuples = f" or a tuple of {count} such ints" if count > 1 else ""
    raise ValueError(f"must be an int >= {minimum}{tuples}")


class WindowAttrs(OpAttrs):
    """Attributes of an op over `spatial` axes; int-or-tuple fields are checked per axis.

    Subclasses list their fields that must be >= 1 in `positive` (the others must be
    >= 0), those that may be None in `optional`, and extra string values in `words`.
    """

    spatial: ClassVar[int] = 1
    positive: ClassVar[frozenset[str]] = frozenset()
    optional: ClassVar[frozenset[str]] = frozenset()
    words: ClassVar[dict[str, tuple[str, ...]]] = {}  # string values a field may also take

    @field_validator(
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "output_padding",
        "output_size",
        mode="plain",
        check_fields=False,
    )
    @classmethod
    def _per_axis(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        words = cls.words.get(name, ())
        if isinstance(value, str) and words:
            if value in words:
                return value
            raise ValueError(
                "must be an int, a tuple of ints or one of " + ", ".join(map(repr, words))
            )
        minimum = 1 if name in cls.positive else 0
        return check_ints(value, cls.spatial, minimum, none_ok=name in cls.optional)


def per_axis(value: IntOrTuple | None, count: int, default: IntOrTuple = 0) -> tuple[int, ...]:
    """An int-or-tuple attribute spread over `count` axes (None gives `default`)."""
    if value is None:
        value = default
    return value if isinstance(value, tuple) else (value,) * count


def torch_arg(value: IntOrTuple | Sequence[int]) -> str:
    """How torch code spells an int-or-tuple argument: `3` when every axis agrees."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(set(items)) == 1:
        return str(items[0])
    return "(" + ", ".join(map(str, items)) + ")"


def float_literal(value: float) -> str:
    """How Python source spells a float: repr, but ±inf as `float("inf")`, since a bare
    `inf` is a name no generated module defines."""
    if math.isinf(value):
        return f'float("{"-" if value < 0 else ""}inf")'
    return repr(value)


def check_input(op: str, x: TensorType, spatial: int) -> None:
    """A batched, floating-point [N, C, *spatial] input."""
    layout = ", ".join(("N", "C", *AXIS_NAMES[spatial]))
    if x.rank != spatial + 2:
        raise ShapeError(f"{op} needs a {spatial + 2}-D input [{layout}], got {x}")
    if not x.dtype.is_float:
        raise ShapeError(f"{op} needs a floating-point input, got {x}")


def window_size(
    op: str,
    x: TensorType,
    axis: int,
    kernel: int,
    stride: int,
    pads: tuple[int, int],
    dilation: int = 1,
    ceil_mode: bool = False,
) -> Dim:
    """Output length of a sliding window along `axis` of `x` (PyTorch's rule).

    With `ceil_mode` a last, partial window counts when it starts inside the input
    or the left padding: floor((L + P0 + P1 - E + min(S - 1, E - P0 - 1)) / S) + 1,
    where E is the dilated kernel.
    """
    length = x.shape[axis]
    eff = dilation * (kernel - 1) + 1
    span = sub(add(length, pads[0] + pads[1]), eff)
    if ceil_mode:
        span = add(span, min(stride - 1, eff - pads[0] - 1))
    if isinstance(span, int) and span < 0:
        name = AXIS_NAMES[x.rank - 2][axis - 2]
        padding = f" + 2*{pads[0]}" if pads[0] == pads[1] else f" + {pads[0]} + {pads[1]}"
        raise ShapeError(
            f"{op}: kernel {kernel} (dilated {eff}) is larger than the padded input "
            f"{add(length, pads[0] + pads[1])} ({name}={length}{padding}) on axis {axis} of {x}"
        )
    return add(floordiv(span, stride), 1)


def same_pads(kernel: int, dilation: int) -> tuple[int, int]:
    """PyTorch's padding="same": the odd pixel of an even total goes at the end."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def numel(dims: Sequence[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = mul(out, d)
    return out


# --- ONNX -------------------------------------------------------------------------------


def onnx_pads(pads: Sequence[tuple[int, int]]) -> list[int]:
    """ONNX `pads`: every begin, then every end."""
    return [b for b, _ in pads] + [e for _, e in pads]


def int64(ctx: OnnxNodeContext, hint: str, values: int | Sequence[int]) -> str:
    """An int64 constant (a scalar from an int, a vector from a sequence)."""
    return ctx.add_initializer(hint, np.array(values, dtype=np.int64))


def spatial_numel(ctx: OnnxNodeContext, x: str, ttype: TensorType) -> str:
    """The number of elements of one [*spatial] plane of `x`, as an int64 scalar."""
    size = numel(ttype.shape[2:])
    if isinstance(size, int):
        return int64(ctx, "plane_size", size)
    (shape,) = ctx.add_node("Shape", [x], start=2)
    return ctx.add_node("ReduceProd", [shape], keepdims=0)[0]
