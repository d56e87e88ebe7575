"""Sizes of a made tensor known only at run time (`ones([T, T])`, T an input's length).

An op that makes a tensor from nothing but its sizes (OpDef.run_time_sizes) takes, as
its node's inputs, tensors that have its symbolic sizes: the expander picks them among
the tensors in scope, and the lowerings read nothing but their shapes. A symbolic size
is found as k times the product of some axes of one of them (the rule reshape uses);
`size_plan` says where, `torch_sizes` and `onnx_shape` compute it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim
from dslnet.core.types import TensorType
from dslnet.ops.lowering import OnnxNodeContext, RunTimeSize, onnx_sizes, torch_size_text
from dslnet.ops.reshape import express

# A size: a literal int, or (k, source, axes) with size == k * prod(source's axes).
SizeEntry = int | tuple[int, int, list[int]]


def found_in(dim: Dim, ttype: TensorType) -> bool:
    """Whether `ttype`'s sizes compute the symbolic size `dim` at run time."""
    return express(dim, ttype.shape) is not None


def size_plan(dims: Sequence[Dim], sources: Sequence[TensorType]) -> list[SizeEntry] | None:
    """Where each of `dims` comes from, or None when a symbolic one is in no source."""
    plan: list[SizeEntry] = []
    for dim in dims:
        if isinstance(dim, int):
            plan.append(dim)
            continue
        found = next(
            ((i, e) for i, s in enumerate(sources) if (e := express(dim, s.shape)) is not None),
            None,
        )
        if found is None:
            return None
        index, (k, axes) = found
        plan.append((k, index, axes))
    return plan


def _plan(dims: Sequence[Dim], sources: Sequence[TensorType]) -> list[SizeEntry]:
    plan = size_plan(dims, sources)
    assert plan is not None, "the shape rule checked that the sources have every size"
    return plan


def torch_sizes(
    dims: Sequence[Dim], args: Sequence[str], sources: Sequence[TensorType]
) -> list[str]:
    """Each size as torch source: `4`, `x.shape[1]`, `2 * x.shape[2] * x.shape[3]`."""
    texts = []
    for entry in _plan(dims, sources):
        if isinstance(entry, int):
            texts.append(str(entry))
            continue
        k, index, axes = entry
        texts.append(torch_size_text(k, args[index], axes))
    return texts


def torch_device(args: Sequence[str]) -> str:
    """`, device=x.device`: a tensor made in forward lives where its sources do."""
    return f", device={args[0]}.device" if args else ""


def onnx_shape(ctx: OnnxNodeContext, dims: Sequence[Dim]) -> str:
    """A 1-D int64 ONNX value holding the sizes `dims` (literal runs as constants,
    symbolic sizes sliced from the node's inputs' shapes)."""
    sizes: list[RunTimeSize] = [
        entry if isinstance(entry, int) else (entry[0], ctx.inputs[entry[1]], entry[2])
        for entry in _plan(dims, ctx.input_types)
    ]
    return onnx_sizes(ctx, sizes)


def onnx_scalar(ctx: OnnxNodeContext, dim: Dim) -> str:
    """A 0-D int64 ONNX value holding the size `dim`."""
    if isinstance(dim, int):
        return ctx.add_initializer("size", np.array(dim, dtype=np.int64))
    vector = onnx_shape(ctx, [dim])
    axes = ctx.add_initializer("axes", np.array([0], dtype=np.int64))
    return ctx.add_node("Squeeze", [vector, axes])[0]


def uses_sources(dims: Sequence[Any]) -> bool:
    """Whether some size is symbolic (the tensor is then made at every call)."""
    return any(not isinstance(d, int) for d in dims)
