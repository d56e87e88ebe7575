"""Lookups: embeddings, positional encodings and index ops.

An `embedding` layer used on token ids looks rows up; the same shared layer used on
float vectors of its width scores them against every row (x W^T). That second use
is the tied output projection of GPT and BERT, sharing one weight by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, dims_equal, mul
from dslnet.core.types import DType, TensorType
from dslnet.ops.channels import Channels
from dslnet.ops.domains import Indices
from dslnet.ops.lowering import ONNX_DTYPES, OnnxNodeContext
from dslnet.ops.registry import (
    OpAttrs,
    OpDef,
    ShapeError,
    need_static,
    normalize_axis,
    register,
)
from dslnet.ops.roles import ParamRoles

_INT64_MAX = 2**63 - 1  # np.iinfo(np.int64).max, without importing numpy


def _elements(shape: Sequence[Dim]) -> Dim:
    total: Dim = 1
    for d in shape:
        total = mul(total, d)
    return total


def _sequence_input(op: str, inputs: Sequence[TensorType]) -> tuple[TensorType, int]:
    """A float input [..., T, D] and its (static) width D."""
    (x,) = inputs
    if x.rank < 2 or not x.dtype.is_float:
        raise ShapeError(f"{op} needs a float input [..., T, D] (rank >= 2), got {x}")
    return x, need_static(x.shape[-1], "width D (last axis)", op, x)


def _check_length(op: str, x: TensorType, max_len: int) -> None:
    length = x.shape[-2]
    if isinstance(length, int) and length > max_len:
        raise ShapeError(
            f"{op}: the input {x} has {length} positions (axis -2), more than max_len {max_len}"
        )


def _leading_positions(ctx: OnnxNodeContext, table: str) -> str:
    """`table[:T]` where T is the input's axis -2, read at run time (T may be symbolic)."""
    rank = ctx.input_types[0].rank

    def ints(hint: str, *values: int) -> str:
        return ctx.add_initializer(hint, np.array(values, dtype=np.int64))

    (shape,) = ctx.add_node("Shape", [ctx.inputs[0]], start=rank - 2, end=rank - 1)
    (rows,) = ctx.add_node("Slice", [table, ints("zero", 0), shape, ints("axis0", 0)])
    return rows


# --- embedding -----------------------------------------------------------------------


class EmbeddingAttrs(OpAttrs):
    num_embeddings: int = Field(gt=0, description="rows of the table (vocabulary size)")
    embedding_dim: int = Field(gt=0, description="width of each row")
    padding_idx: int | None = Field(
        None, description="a row kept at zero and given no gradient (negative counts from the end)"
    )


@register
class Embedding(OpDef):
    name = "embedding"
    positional = ("num_embeddings", "embedding_dim")
    family = "embedding"
    doc = (
        "Look up rows of a learned table by integer ids: int[...] -> float32[..., dim]. "
        "A shared `layer` applied to float32[..., dim] computes x W^T -> [..., num] "
        "(the tied output projection)."
    )
    Attrs = EmbeddingAttrs
    aliases = {"num": "num_embeddings", "dim": "embedding_dim", "padding": "padding_idx"}
    param_roles = ParamRoles(weight="weight")  # the table [num, dim]
    input_domains = {"x": Indices(size="num_embeddings", what="embedding rows")}
    examples = (
        "in ids: int64[N, T]\nout y = embedding(ids, 11, 6)",
        "in ids: int64[N]\nout y = ids -> embedding(7, 4, padding_idx=0)",
        "layer tok = embedding(9, 5)\nin ids: int64[N, T]\nh = tok(ids) -> tanh\n"
        "out logits = tok(h)",
    )

    def _padding(self, attrs: EmbeddingAttrs) -> int | None:
        p = attrs.padding_idx
        if p is None:
            return None
        if not -attrs.num_embeddings <= p < attrs.num_embeddings:
            raise ShapeError(
                f"embedding: padding_idx {p} is outside the table of {attrs.num_embeddings} rows"
            )
        return p % attrs.num_embeddings

    def infer(self, attrs: EmbeddingAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        self._padding(attrs)
        if x.dtype in (DType.int64, DType.int32):
            return (TensorType(dtype=DType.float32, shape=(*x.shape, attrs.embedding_dim)),)
        if x.dtype.is_float and x.rank >= 1 and dims_equal(x.shape[-1], attrs.embedding_dim):
            return (x.with_shape((*x.shape[:-1], attrs.num_embeddings)),)
        raise ShapeError(
            f"embedding({attrs.num_embeddings}, {attrs.embedding_dim}) takes int64 or int32 "
            f"ids, or float vectors [..., {attrs.embedding_dim}] to project onto the table; "
            f"got {x}"
        )

    def params(
        self, attrs: EmbeddingAttrs, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[int, ...]]:
        return {"weight": (attrs.num_embeddings, attrs.embedding_dim)}

    def init_param(
        self,
        attrs: EmbeddingAttrs,
        role: str,
        inputs: Sequence[TensorType],
        rng: np.random.Generator,
    ) -> np.ndarray[Any, Any]:
        # torch: N(0, 1), with the padding row zeroed.
        table = rng.standard_normal((attrs.num_embeddings, attrs.embedding_dim))
        padding = self._padding(attrs)
        if padding is not None:
            table[padding] = 0.0
        return table.astype(np.float32)

    def flops(
        self, attrs: EmbeddingAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        if not inputs[0].dtype.is_float:
            return 0  # a lookup moves data
        return mul(_elements(outputs[0].shape), attrs.embedding_dim)

    def torch_module(self, attrs: EmbeddingAttrs, inputs: Sequence[TensorType]) -> str:
        padding = "" if attrs.padding_idx is None else f", padding_idx={attrs.padding_idx}"
        return f"nn.Embedding({attrs.num_embeddings}, {attrs.embedding_dim}{padding})"

    def torch_call(
        self,
        attrs: EmbeddingAttrs,
        module: str,
        args: Sequence[str],
        inputs: Sequence[TensorType],
    ) -> str:
        if inputs[0].dtype.is_float:
            return f"F.linear({args[0]}, {module}.weight)"  # tied projection
        return f"{module}({args[0]})"

    def onnx(self, attrs: EmbeddingAttrs, ctx: OnnxNodeContext) -> None:
        weight = ctx.param("weight")
        if ctx.input_types[0].dtype.is_float:
            (w_t,) = ctx.add_node("Transpose", [weight], perm=(1, 0))
            ctx.add_node("MatMul", [ctx.inputs[0], w_t], ctx.outputs)
            return
        ctx.add_node("Gather", [weight, ctx.inputs[0]], ctx.outputs, axis=0)


# --- positional encodings ----------------------------------------------------------


class PositionsAttrs(OpAttrs):
    max_len: int = Field(5000, gt=0, description="the most positions an input may have")


class SinusoidalAttrs(OpAttrs):
    max_len: int = Field(
        5000,
        gt=0,
        description="the most positions an input of known length may have (the table is "
        "computed for each run's length, so a symbolic one has no limit)",
    )


_SINUSOIDAL = '''
class SinusoidalPositions(nn.Module):
    """Adds the fixed sine/cosine position table of "Attention Is All You Need",
    computed for the input's length (the ONNX model does the same)."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.dim, self.max_len = dim, max_len
        frequency = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
        self.register_buffer("frequency", frequency, persistent=False)  # fixed: not a weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        position = torch.arange(x.size(-2), dtype=torch.float32, device=x.device).unsqueeze(1)
        angle = position * self.frequency
        table = torch.stack((torch.sin(angle), torch.cos(angle)), dim=-1).flatten(-2)
        return x + table[:, : self.dim].to(x.dtype)
'''


@register
class SinusoidalPositions(OpDef):
    name = "sinusoidal_positions"
    positional = ("max_len",)
    family = "embedding"
    short_name = "positions"
    doc = (
        "Add the fixed sine/cosine position encoding to x [..., T, D]: sin on even "
        "features, cos on odd ones, wavelengths from 2*pi to 10000*2*pi. No weights."
    )
    Attrs = SinusoidalAttrs
    torch_helpers = _SINUSOIDAL
    examples = (
        "in x: float32[N, T, 6]\nout y = sinusoidal_positions(x)",
        "in x: float32[N, T, 5]\nout y = x -> sinusoidal_positions(max_len=16)",
    )

    def infer(self, attrs: SinusoidalAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, _ = _sequence_input(self.name, inputs)
        _check_length(self.name, x, attrs.max_len)
        return (x,)

    def torch_module(self, attrs: SinusoidalAttrs, inputs: Sequence[TensorType]) -> str:
        return f"SinusoidalPositions({inputs[0].shape[-1]}, max_len={attrs.max_len})"

    def onnx(self, attrs: SinusoidalAttrs, ctx: OnnxNodeContext) -> None:
        # Computed for the run's T rather than stored: a [max_len, D] table would weigh
        # megabytes in the file for a handful of arithmetic nodes.
        x = ctx.input_types[0]
        dim = need_static(x.shape[-1], "width", self.name, x)
        rank = x.rank
        exponents = -np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)
        frequency = np.power(np.float32(10000.0), exponents).astype(np.float32)
        (length,) = ctx.add_node("Shape", [ctx.inputs[0]], start=rank - 2, end=rank - 1)
        (length_scalar,) = ctx.add_node("Squeeze", [length])
        zero = ctx.add_initializer("zero", np.array(0.0, dtype=np.float32))
        one = ctx.add_initializer("one", np.array(1.0, dtype=np.float32))
        (length_f,) = ctx.add_node("Cast", [length_scalar], to=1)
        (position,) = ctx.add_node("Range", [zero, length_f, one])
        (column,) = ctx.add_node(
            "Unsqueeze", [position, ctx.add_initializer("axis1", np.array([1], dtype=np.int64))]
        )
        (angle,) = ctx.add_node(
            "Mul", [column, ctx.add_initializer("frequency", frequency.reshape(1, -1))]
        )
        (sines,) = ctx.add_node("Sin", [angle])
        (cosines,) = ctx.add_node("Cos", [angle])
        # Interleave: [T, D/2, 2] -> [T, 2*(D/2)], then drop the extra cosine of an odd D.
        last = ctx.add_initializer("axis_last", np.array([2], dtype=np.int64))
        (sin3,) = ctx.add_node("Unsqueeze", [sines, last])
        (cos3,) = ctx.add_node("Unsqueeze", [cosines, last])
        (pairs,) = ctx.add_node("Concat", [sin3, cos3], axis=2)
        (table,) = ctx.add_node(
            "Reshape",
            [pairs, ctx.add_initializer("rows_by_features", np.array([0, -1], dtype=np.int64))],
        )
        if dim % 2:
            ints = np.array([0], dtype=np.int64), np.array([dim], dtype=np.int64)
            (table,) = ctx.add_node(
                "Slice",
                [
                    table,
                    ctx.add_initializer("zero", ints[0]),
                    ctx.add_initializer("width", ints[1]),
                    ctx.add_initializer("axis1", np.array([1], dtype=np.int64)),
                ],
            )
        if x.dtype != DType.float32:
            (table,) = ctx.add_node("Cast", [table], to=ONNX_DTYPES[x.dtype])
        ctx.add_node("Add", [ctx.inputs[0], table], ctx.outputs)


_LEARNED = '''
class LearnedPositions(nn.Module):
    """Adds a learned vector per position (GPT, BERT, ViT)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.size(-2)]
'''


class LearnedPositionsAttrs(OpAttrs):
    max_len: int = Field(gt=0, description="the most positions an input may have")


@register
class LearnedPositions(OpDef):
    name = "learned_positions"
    positional = ("max_len",)
    family = "embedding"
    short_name = "positions"
    doc = (
        "Add a learned vector per position to x [..., T, D]: x + weight[:T]; weight is "
        "[max_len, D], initialised N(0, 0.02) as in GPT-2 and BERT."
    )
    Attrs = LearnedPositionsAttrs
    param_roles = ParamRoles(weight="weight")  # [max_len, D]
    torch_helpers = _LEARNED
    examples = (
        "in x: float32[N, T, 6]\nout y = learned_positions(x, 8)",
        "in x: float32[N, 5, 4]\nout y = x -> learned_positions(max_len=5)",
    )

    def infer(
        self, attrs: LearnedPositionsAttrs, inputs: Sequence[TensorType]
    ) -> tuple[TensorType, ...]:
        x, _ = _sequence_input(self.name, inputs)
        _check_length(self.name, x, attrs.max_len)
        return (x,)

    def params(
        self, attrs: LearnedPositionsAttrs, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[int, ...]]:
        _, dim = _sequence_input(self.name, inputs)
        return {"weight": (attrs.max_len, dim)}

    def init_param(
        self,
        attrs: LearnedPositionsAttrs,
        role: str,
        inputs: Sequence[TensorType],
        rng: np.random.Generator,
    ) -> np.ndarray[Any, Any]:
        shape = self.params(attrs, inputs)[role]
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def torch_module(self, attrs: LearnedPositionsAttrs, inputs: Sequence[TensorType]) -> str:
        return f"LearnedPositions({attrs.max_len}, {inputs[0].shape[-1]})"

    def onnx(self, attrs: LearnedPositionsAttrs, ctx: OnnxNodeContext) -> None:
        rows = _leading_positions(ctx, ctx.param("weight"))
        ctx.add_node("Add", [ctx.inputs[0], rows], ctx.outputs)


# --- index ops ---------------------------------------------------------------------------


class GatherAttrs(OpAttrs):
    axis: int = Field(0, description="the axis indexed")


def _index_expr(x: str, axis: int, index: str) -> str:
    """`x[:, :, index]`: torch advanced indexing on one axis (numpy's take)."""
    return f"{x}[{', '.join([':'] * axis + [index])}]"


@register
class Gather(OpDef):
    name = "gather"
    positional = ("axis",)
    family = "embedding"
    doc = (
        "Take entries of x along `axis` at integer indices (numpy take / ONNX Gather): "
        "x [a, n, b] with indices [i, j] on axis 1 gives [a, i, j, b]."
    )
    Attrs = GatherAttrs
    inputs = ("x", "indices")
    examples = (
        "in table: float32[7, 3]\nin ids: int64[N]\nout y = gather(table, ids)",
        "in x: float32[N, 5, C]\nin ids: int64[2, 2]\nout y = gather(x, ids, axis=1)",
    )

    def infer(self, attrs: GatherAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, indices = inputs
        if indices.dtype not in (DType.int64, DType.int32):
            raise ShapeError(f"gather needs int64 or int32 indices, got {indices}")
        if x.rank == 0:
            raise ShapeError(f"gather needs an input of rank >= 1, got {x}")
        axis = normalize_axis(attrs.axis, x.rank, self.name, x)
        return (x.with_shape((*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :])),)

    def torch_expr(
        self, attrs: GatherAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return _index_expr(args[0], attrs.axis % inputs[0].rank, args[1])

    def onnx(self, attrs: GatherAttrs, ctx: OnnxNodeContext) -> None:
        axis = attrs.axis % ctx.input_types[0].rank
        ctx.add_node("Gather", ctx.inputs, ctx.outputs, axis=axis)


class SelectAttrs(OpAttrs):
    index: int = Field(description="the position taken (negative counts from the end)")
    axis: int = Field(0, description="the axis removed")


@register
class Select(OpDef):
    name = "select"
    # torch.select(x, dim, index) puts the axis first: only the index is positional.
    positional = ("index",)
    family = "embedding"
    doc = "Take one position along `axis`, removing the axis: x[:, 0] is select(x, 0, axis=1)."
    Attrs = SelectAttrs
    examples = (
        "in x: float32[N, T, 4]\nout y = select(x, 0, axis=1)",
        "in x: float32[N, 6]\nout y = x -> select(-1, axis=-1)",
    )

    def channels(self, attrs: SelectAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        # Channels on the last axis survive taking a position on another axis.
        last = inputs[0].rank - 1
        return None if attrs.axis % inputs[0].rank == last else Channels("keep", last, -1)

    def infer(self, attrs: SelectAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank == 0:
            raise ShapeError(f"select needs an input of rank >= 1, got {x}")
        axis = normalize_axis(attrs.axis, x.rank, self.name, x)
        size = x.shape[axis]
        if isinstance(size, int) and not -size <= attrs.index < size:
            raise ShapeError(
                f"select: index {attrs.index} is out of range for axis {attrs.axis} of {x} "
                f"(size {size})"
            )
        return (x.with_shape((*x.shape[:axis], *x.shape[axis + 1 :])),)

    def torch_expr(
        self, attrs: SelectAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return _index_expr(args[0], attrs.axis % inputs[0].rank, str(attrs.index))

    def onnx(self, attrs: SelectAttrs, ctx: OnnxNodeContext) -> None:
        axis = attrs.axis % ctx.input_types[0].rank
        index = ctx.add_initializer("index", np.array(attrs.index, dtype=np.int64))
        ctx.add_node("Gather", [ctx.inputs[0], index], ctx.outputs, axis=axis)
