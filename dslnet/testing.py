"""Random inputs for a compiled network: what tests, benchmarks and demos feed it.

Integers are small (valid ids and indices for any table of two rows or more);
booleans are mostly false and never all true along the last axis (a padding mask
always leaves a key to attend to), so every network gets data it accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dslnet.ir.graph import Graph
from dslnet.ir.types import DType, TensorType


def concrete_shape(ttype: TensorType, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The shape with each symbolic dim evaluated at `sizes`."""
    return tuple(d if isinstance(d, int) else d.evaluate(dict(sizes)) for d in ttype.shape)


def random_input(
    ttype: TensorType, sizes: Mapping[str, int], rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    shape = concrete_shape(ttype, sizes)
    if ttype.dtype.is_float:
        return rng.standard_normal(shape).astype(ttype.dtype.value)
    if ttype.dtype == DType.bool:
        mask = rng.random(shape) < 0.25
        if mask.ndim:  # never all true along the last axis: a padding mask keeps a key
            mask[..., 0] = False
        return mask
    return rng.integers(0, 2, shape).astype(ttype.dtype.value)


def input_symbols(graph: Graph) -> set[str]:
    """The symbolic dims the network's inputs are declared with (N, T, V...)."""
    return {
        s
        for v in graph.inputs
        for d in graph.type_of(v).shape
        if not isinstance(d, int)
        for s in d.free_symbols()
    }


def random_inputs(
    graph: Graph, sizes: Mapping[str, int], seed: int = 0
) -> dict[str, np.ndarray[Any, Any]]:
    """One array per network input, in input order."""
    rng = np.random.default_rng(seed)
    return {v: random_input(graph.type_of(v), sizes, rng) for v in graph.inputs}


def torch_outputs(
    graph: Graph, weights: Mapping[str, np.ndarray[Any, Any]], feeds: Mapping[str, Any]
) -> list[np.ndarray[Any, Any]]:
    """The generated module's outputs (eval mode) with these weights, as arrays."""
    import torch

    from dslnet.backends.torch_codegen import build_module

    module = build_module(graph)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
    module.eval()
    with torch.no_grad():
        out = module(*(torch.from_numpy(feeds[v]) for v in graph.inputs))
    return [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]


def assert_close(
    got: list[np.ndarray[Any, Any]], want: list[np.ndarray[Any, Any]], tol: float = 1e-4
) -> None:
    """Each output within `tol`, relative to its largest magnitude when that is over 1."""
    for g, w in zip(got, want, strict=True):
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, atol=tol * scale, rtol=0)
