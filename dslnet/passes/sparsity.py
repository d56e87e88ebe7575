"""Unstructured pruning: zero the smallest-magnitude weights.

This keeps every shape, so the network computes with the same dense kernels and
is no faster; what it buys is weights that compress (and a starting point for
sparse fine-tuning). The report says so, with the compressed sizes measured.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dslnet.ir.roles import weight_parameters
from dslnet.passes.base import Array, Model, PassError, PassResult


@dataclass
class MagnitudeSparsity:
    """Zero `ratio` of the weights (not biases or norm parameters), by magnitude.

    scope: "layer" zeroes the ratio of each weight tensor; "global" ranks all of
    them together (large layers then lose more).
    """

    ratio: float
    scope: Literal["layer", "global"] = "layer"
    name: str = "sparsity"

    def run(self, model: Model) -> PassResult:
        if not 0.0 <= self.ratio < 1.0:
            raise PassError(f"a sparsity ratio must be in [0, 1), got {self.ratio}")
        graph = model.graph
        names = [n for n in weight_parameters(graph) if len(graph.parameters[n].shape) >= 2]
        if self.ratio == 0.0 or not names:
            return PassResult(model, False, ["no weight zeroed"])
        weights = dict(model.weights)
        if self.scope == "global":
            pooled = np.concatenate([np.abs(weights[n]).ravel() for n in names])
            cut = float(np.quantile(pooled, self.ratio))
            for n in names:
                weights[n] = np.where(np.abs(weights[n]) <= cut, 0, weights[n]).astype(
                    weights[n].dtype
                )
        else:
            for n in names:
                weights[n] = _zero_smallest(weights[n], self.ratio)
        zeros = sum(int(np.sum(weights[n] == 0)) for n in names)
        total = sum(weights[n].size for n in names)
        before, after = _compressed(model.weights, names), _compressed(weights, names)
        notes = [
            f"zeroed {zeros:,} of {total:,} weights ({zeros / total:.1%}); compressed weights "
            f"{before / 1e6:.2f} MB -> {after / 1e6:.2f} MB; shapes unchanged, so dense "
            "inference is not faster"
        ]
        return PassResult(Model(graph, weights), True, notes)


def _zero_smallest(w: Array, ratio: float) -> Array:
    count = round(w.size * ratio)
    if count == 0:
        return w
    flat = np.abs(w).ravel()
    order = np.argpartition(flat, count - 1)[:count]
    out = w.copy().ravel()
    out[order] = 0
    return out.reshape(w.shape)


def _compressed(weights: Mapping[str, Array], names: list[str]) -> int:
    """Bytes of the weights after zlib: what zeros buy in a stored file."""
    return sum(len(zlib.compress(np.ascontiguousarray(weights[n]).tobytes(), 6)) for n in names)
