"""Tensors made from their sizes alone: zeros, ones, full, arange, eye; and tril/triu,
the triangles of a tensor (`tril(ones([T, T]))` is a causal mask).

Sizes may be symbolic (`ones([T, T])`, T an input's length): the call's node then takes
tensors in scope that have those sizes as its inputs and reads only their shapes
(dslnet.ops.run_time_sizes); the tensor is made at each call, on their device. With
literal sizes it is made once: in PyTorch a buffer computed when the module is built
(left out of the state_dict: it is no weight), in ONNX from constants only, which ONNX
Runtime folds when it loads the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, PlainValidator

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, SymExpr
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ops.elementwise import number_problem
from dslnet.ops.lowering import ONNX_DTYPES, OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register
from dslnet.ops.run_time_sizes import (
    onnx_scalar,
    onnx_shape,
    size_plan,
    torch_device,
    torch_sizes,
    uses_sources,
)

_BUFFER = '''
class ConstantTensor(nn.Module):
    """A tensor made once, with the module: a buffer, so that it moves with the module,
    left out of the state_dict (it is no weight)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value, persistent=False)
'''


def _size(value: Any) -> Dim:
    if isinstance(value, SymExpr) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError("must be a size (an int or a symbolic size like T)")


def _sizes(value: Any) -> tuple[Dim, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(_size(v) for v in value)
    raise ValueError("must be a list of sizes (ints or symbolic sizes like T)")


def _dtype(value: Any) -> DType:
    if isinstance(value, DType):
        return value
    if isinstance(value, str) and value in DType.__members__:
        return DType(value)
    # No guess at a near name: "float" is float32 in torch, nearest to "float64" in spelling.
    raise ValueError(f"must be a dtype name: {', '.join(DType.__members__)}")


ElementType = Annotated[DType, PlainValidator(_dtype)]
Size = Annotated[int | SymExpr, PlainValidator(_size)]
Sizes = Annotated[tuple[int | SymExpr, ...], PlainValidator(_sizes)]
_SYMBOLIC = ConfigDict(extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True)


def _torch_dtype(dtype: DType) -> str:
    return f"torch.{dtype.value}"


def check_sizes(op: str, dims: Sequence[Dim], sources: Sequence[TensorType]) -> None:
    """Sizes must not be negative, and the sources must give every symbolic one."""
    negative = [d for d in dims if isinstance(d, int) and d < 0]
    if negative:
        raise ShapeError(f"{op}: sizes must not be negative, got {shape_str(tuple(dims))}")
    if size_plan(dims, sources) is None:
        raise ShapeError(f"{op}: no tensor gives the sizes {shape_str(tuple(dims))} at run time")


class _Made(OpDef):
    """An op that makes a tensor from sizes: no data inputs (OpDef.run_time_sizes)."""

    family = "elementwise"  # beside `constant`
    inputs = ()
    torch_helpers = _BUFFER

    def arity_ok(self, count: int) -> bool:
        return True  # the expander's size sources, any number of them

    def dims(self, attrs: Any) -> tuple[Dim, ...]:
        """The sizes of the made tensor, as written."""
        raise NotImplementedError

    def run_time_sizes(self, attrs: Any) -> tuple[Dim, ...]:
        return tuple(d for d in self.dims(attrs) if not isinstance(d, int))

    def torch_make(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        """The torch expression making the tensor (sizes from `args` where symbolic)."""
        raise NotImplementedError

    def torch_helpers_for(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[str, ...]:
        # Only a tensor made once, with the module, is held by the buffer helper.
        return () if uses_sources(self.dims(attrs)) else (self.torch_helpers,)

    def torch_module(self, attrs: Any, inputs: Sequence[TensorType]) -> str | None:
        if uses_sources(self.dims(attrs)):
            return None
        return f"ConstantTensor({self.torch_make(attrs, [], inputs)})"

    def torch_call(
        self, attrs: Any, module: str, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"{module}.value"

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return self.torch_make(attrs, args, inputs)


def cast_to(ctx: OnnxNodeContext, value: str, dtype: DType, outputs: Sequence[str]) -> None:
    ctx.add_node("Cast", [value], outputs, to=ONNX_DTYPES[dtype])


class FilledAttrs(OpAttrs):
    model_config = _SYMBOLIC
    shape: Sizes = Field(description="the sizes (symbolic ones allowed, e.g. [T, T])")
    dtype: ElementType = Field(DType.float32, description="element type")


class FullAttrs(OpAttrs):
    model_config = _SYMBOLIC
    shape: Sizes = Field(description="the sizes (symbolic ones allowed, e.g. [T, T])")
    value: float = Field(description="every element; it must fit dtype")
    dtype: ElementType = Field(DType.float32, description="element type")

    dtype_range = frozenset({"value"})  # checked against dtype (Full.infer)


class _Filled(_Made):
    fill_value: ClassVar[float] = 0.0
    torch_fn: ClassVar[str] = ""

    def dims(self, attrs: Any) -> tuple[Dim, ...]:
        return tuple(attrs.shape)

    def fill(self, attrs: Any) -> float:
        return self.fill_value

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        check_sizes(self.name, attrs.shape, inputs)
        return (TensorType(dtype=attrs.dtype, shape=tuple(attrs.shape)),)

    def torch_make(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        sizes = torch_sizes(attrs.shape, args, inputs)
        written = ", ".join(sizes) if sizes else "()"
        dtype = "" if attrs.dtype is DType.float32 else f", dtype={_torch_dtype(attrs.dtype)}"
        return f"{self.torch_fn}({written}{dtype}{torch_device(args)})"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        shape = onnx_shape(ctx, attrs.shape)
        if attrs.dtype is DType.bfloat16:  # ConstantOfShape takes bfloat16 from opset 20
            value = np.array([self.fill(attrs)], dtype=np.float32)
            (filled,) = ctx.add_node("ConstantOfShape", [shape], value=value)
            cast_to(ctx, filled, attrs.dtype, ctx.outputs)
            return
        value = np.array([self.fill(attrs)], dtype=attrs.dtype.value)
        ctx.add_node("ConstantOfShape", [shape], ctx.outputs, value=value)


@register
class Zeros(_Filled):
    name = "zeros"
    positional = ("shape",)
    doc = "Zeros of a shape (sizes may be symbolic: `zeros([N, T])`), as torch.zeros."
    Attrs = FilledAttrs
    torch_fn = "torch.zeros"
    examples = (
        "in x: float32[N, 3]\nout y = x + zeros([3])",
        'in t: int64[N, T]\nout y = zeros([N, T], dtype="int64")',
    )


@register
class Ones(_Filled):
    name = "ones"
    positional = ("shape",)
    doc = "Ones of a shape (sizes may be symbolic: `ones([T, T])`), as torch.ones."
    Attrs = FilledAttrs
    fill_value = 1.0
    torch_fn = "torch.ones"
    examples = (
        "in x: float32[N, 2, 3]\nout y = x * ones([2, 3])",
        "in x: float32[N, T, 4]\nout y = matmul(ones([T, T]), x)",
        'in x: float32[N, 5]\nout y = ones([N, 1], dtype="bool")',
    )


@register
class Full(_Filled):
    name = "full"
    positional = ("shape", "value")
    doc = "`value` everywhere in a shape (sizes may be symbolic), as torch.full."
    Attrs = FullAttrs
    torch_fn = "torch.full"
    examples = (
        "in x: float32[N, 4]\nout y = x + full([4], -1.5)",
        'in t: int64[N, T]\nout y = full([T, N], 7, dtype="int64")',
    )

    def fill(self, attrs: FullAttrs) -> float:
        return attrs.value

    def infer(self, attrs: FullAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        if attrs.dtype is DType.bool:
            problem = None if attrs.value in (0, 1) else "does not fit bool (only 0 and 1)"
        else:
            problem = number_problem(
                attrs.value, attrs.dtype, fraction=f"and {attrs.dtype} holds whole numbers"
            )
        if problem:
            raise ShapeError(f"full: the value {attrs.value:g} {problem}")
        return super().infer(attrs, inputs)

    def torch_make(
        self, attrs: FullAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        sizes = torch_sizes(attrs.shape, args, inputs)
        value: Any = attrs.value
        if attrs.dtype is DType.bool:
            value = bool(value)
        elif not attrs.dtype.is_float:
            value = int(value)
        shape = f"({sizes[0]},)" if len(sizes) == 1 else f"({', '.join(sizes)})"
        dtype = "" if attrs.dtype is DType.float32 else f", dtype={_torch_dtype(attrs.dtype)}"
        return f"torch.full({shape}, {value!r}{dtype}{torch_device(args)})"


class ArangeAttrs(OpAttrs):
    model_config = _SYMBOLIC
    start: Size = Field(0, description="the first value")
    end: Size = Field(description="the values stop before it (symbolic allowed: arange(T))")
    step: int = Field(1, description="the difference between neighbours; not 0")
    dtype: ElementType = Field(DType.int64, description="element type (an integer or float type)")


_ARANGE_DTYPES = (DType.int64, DType.int32, DType.float32, DType.float64)


@register
class Arange(_Made):
    name = "arange"
    positional = ("start", "end", "step")
    doc = (
        "start, start + step, ... before end, as torch.arange; `arange(n)` counts from 0, "
        "and `arange(T)` takes a symbolic length."
    )
    Attrs = ArangeAttrs
    examples = (
        'in x: float32[N, 5]\nout y = x + arange(5, dtype="float32")',
        "in t: int64[N, T]\nout y = t + arange(T)",
        'in x: float32[N, 3]\nout y = arange(10, 1, -3, dtype="int32")',
    )

    def bind_attrs(
        self, positional: Sequence[Any], named: Any, inputs: Sequence[TensorType] = ()
    ) -> OpAttrs:
        if len(positional) == 1 and "end" not in named:  # arange(n) is arange(0, n)
            positional = (0, *positional)
        return super().bind_attrs(positional, named, inputs)

    def dims(self, attrs: ArangeAttrs) -> tuple[Dim, ...]:
        return (self.length(attrs),)

    def length(self, attrs: ArangeAttrs) -> Dim:
        start, end, step = attrs.start, attrs.end, attrs.step
        if step == 0:
            raise ShapeError("arange: step must not be 0")
        if isinstance(start, int) and isinstance(end, int):
            return max(0, -((start - end) // step))  # ceil((end - start) / step)
        if start == 0 and step == 1:
            return end
        raise ShapeError(
            f"arange: a symbolic size must be the whole length: arange({end}) counts 0 to "
            f"{end} - 1 (start 0, step 1), got start {start}, end {end}, step {step}"
        )

    def infer(self, attrs: ArangeAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        if attrs.dtype not in _ARANGE_DTYPES:
            kinds = ", ".join(d.value for d in _ARANGE_DTYPES)
            raise ShapeError(f"arange: dtype must be one of {kinds}, got {attrs.dtype}")
        length = self.length(attrs)
        check_sizes(self.name, (length,), inputs)
        start = attrs.start
        if (
            isinstance(start, int)
            and isinstance(length, int)
            and length
            and not attrs.dtype.is_float
        ):
            last = start + (length - 1) * attrs.step
            for value in (start, last):
                problem = number_problem(value, attrs.dtype, fraction="")
                if problem:
                    raise ShapeError(f"arange: the value {value} {problem}")
        return (TensorType(dtype=attrs.dtype, shape=(length,)),)

    def torch_make(
        self, attrs: ArangeAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        bounds: tuple[Dim, ...] = (attrs.start, attrs.end, attrs.step)
        if isinstance(attrs.end, SymExpr):
            bounds = (attrs.end,)  # arange(T): its length
        written = torch_sizes(bounds, args, inputs)
        if len(written) == 3 and attrs.step == 1:
            written = written[:2] if attrs.start != 0 else written[1:2]
        dtype = "" if attrs.dtype is DType.int64 else f", dtype={_torch_dtype(attrs.dtype)}"
        return f"torch.arange({', '.join(written)}{dtype}{torch_device(args)})"

    def onnx(self, attrs: ArangeAttrs, ctx: OnnxNodeContext) -> None:
        # Counted in int64, exact, then cast: ONNX Range in floats accumulates rounding.
        start = onnx_scalar(ctx, attrs.start)
        end = onnx_scalar(ctx, attrs.end)
        step = onnx_scalar(ctx, attrs.step)
        if attrs.dtype is DType.int64:
            ctx.add_node("Range", [start, end, step], ctx.outputs)
            return
        (counted,) = ctx.add_node("Range", [start, end, step])
        cast_to(ctx, counted, attrs.dtype, ctx.outputs)


class EyeAttrs(OpAttrs):
    model_config = _SYMBOLIC
    n: Size = Field(description="the number of rows (symbolic allowed)")
    m: Size | None = Field(None, description="the number of columns (n when not given)")
    dtype: ElementType = Field(DType.float32, description="element type")


@register
class Eye(_Made):
    name = "eye"
    positional = ("n", "m")
    doc = "The identity matrix [n, m] (ones on the diagonal), as torch.eye; sizes may be symbolic."
    Attrs = EyeAttrs
    examples = (
        "in x: float32[N, 3, 3]\nout y = x + eye(3)",
        "in x: float32[N, T, W]\nout y = x * eye(T, W)",
        'in x: float32[N, 2]\nout y = eye(2, 4, dtype="int64")',
    )

    def dims(self, attrs: EyeAttrs) -> tuple[Dim, ...]:
        return (attrs.n, attrs.n if attrs.m is None else attrs.m)

    def infer(self, attrs: EyeAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        dims = self.dims(attrs)
        check_sizes(self.name, dims, inputs)
        return (TensorType(dtype=attrs.dtype, shape=dims),)

    def torch_make(self, attrs: EyeAttrs, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        sizes = torch_sizes(self.dims(attrs), args, inputs)
        if attrs.m is None:
            sizes = sizes[:1]
        dtype = "" if attrs.dtype is DType.float32 else f", dtype={_torch_dtype(attrs.dtype)}"
        return f"torch.eye({', '.join(sizes)}{dtype}{torch_device(args)})"

    def onnx(self, attrs: EyeAttrs, ctx: OnnxNodeContext) -> None:
        shape = onnx_shape(ctx, self.dims(attrs))
        zeros = np.array([0], dtype=np.float32)
        (blank,) = ctx.add_node("ConstantOfShape", [shape], value=zeros)
        if attrs.dtype is DType.float32:
            ctx.add_node("EyeLike", [blank], ctx.outputs)
            return
        (eye,) = ctx.add_node("EyeLike", [blank])
        cast_to(ctx, eye, attrs.dtype, ctx.outputs)
