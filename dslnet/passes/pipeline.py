"""Reduction requests (CLI flags, `prog.optimize` arguments, spec annotations) as a
list of passes.

The order is fixed because it is the order that works: fold first (pruning
then sees the folded scales), then structured pruning, low-rank factorisation,
and unstructured sparsity last (it only zeroes what is left). Quantization comes
after all of them, on the emitted ONNX model (`dslnet.api.Optimized.onnx`). This module
builds and runs the pass list on IR and weight arrays; loading weights and emitting
models is the driver's (dslnet/api.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from dslnet.ir.graph import Graph
from dslnet.passes.base import Array, Model, Pass
from dslnet.passes.canonicalize import Canonicalize
from dslnet.passes.lowrank import LowRank
from dslnet.passes.manager import PassManager, Report
from dslnet.passes.options import QUANTIZATIONS, Method, Options, Quantization
from dslnet.passes.prune import StructuredPrune
from dslnet.passes.sparsity import MagnitudeSparsity

__all__ = [
    "QUANTIZATIONS",
    "Method",
    "Options",
    "Quantization",
    "marked",
    "requested_passes",
    "run_passes",
]


def requested_passes(options: Options, graph: Graph | None = None) -> list[Pass]:
    """The passes `options` ask for, in order (checked values: see dslnet.passes.options);
    `graph`'s `@prune` annotations ask for pruning too."""
    found: list[Pass] = []
    if options.fold:
        found.append(Canonicalize())
    if options.prune is not None or options.prune_ratios or (graph and marked(graph, "prune")):
        found.append(
            StructuredPrune(
                options.prune or 0.0,
                options.prune_by,
                options.prune_scope,
                dict(options.prune_ratios or {}),
                tuple(options.exclude),
            )
        )
    if options.lowrank is not None or options.lowrank_rank is not None:
        found.append(
            LowRank(options.lowrank_rank, options.lowrank, exclude=tuple(options.lowrank_exclude))
        )
    if options.sparsity is not None:
        found.append(MagnitudeSparsity(options.sparsity, options.sparsity_scope))
    return found


def marked(graph: Graph, mark: str) -> bool:
    """Whether an annotation in the spec asks for `mark` on any node."""
    return any(mark in node.marks for node in graph.nodes)


def run_passes(
    graph: Graph, options: Options, weights: Mapping[str, Array]
) -> tuple[Model, Report]:
    """Run the passes `options` ask for over `graph` and its weight arrays: the reduced
    graph and weights, and what each pass did."""
    return PassManager(requested_passes(options, graph)).run(Model(graph, weights))
