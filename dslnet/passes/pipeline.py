"""Reduction requests (CLI flags, `prog.optimize` arguments) as a list of passes.

The order is fixed because it is the order that works: fold first (pruning
then sees the folded scales), then structured pruning, low-rank factorisation,
and unstructured sparsity last (it only zeroes what is left).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dslnet.backends.weights import WeightsSource, init_weights, load_weights
from dslnet.ir.graph import Graph
from dslnet.passes.base import Array, Model, Pass, PassError
from dslnet.passes.canonicalize import Canonicalize
from dslnet.passes.manager import PassManager, Report
from dslnet.passes.prune import Criterion, Scorer, StructuredPrune
from dslnet.passes.sparsity import MagnitudeSparsity


@dataclass(frozen=True)
class Options:
    """What to do to a network; each field off by default."""

    fold: bool = False
    prune: float | None = None
    prune_by: Criterion | Scorer = "l1"
    prune_scope: str = "layer"
    prune_ratios: Mapping[str, float] = field(default_factory=dict)
    exclude: Sequence[str] = ()
    sparsity: float | None = None
    sparsity_scope: str = "layer"

    def passes(self, graph: Graph | None = None) -> list[Pass]:
        """The passes, in order; `graph`'s `@prune` annotations ask for pruning too."""
        found: list[Pass] = []
        if self.fold:
            found.append(Canonicalize())
        if self.prune is not None or self.prune_ratios or (graph and marked(graph, "prune")):
            if self.prune_scope not in ("layer", "global"):
                raise PassError(f"prune scope must be 'layer' or 'global', got {self.prune_scope}")
            found.append(
                StructuredPrune(
                    self.prune or 0.0,
                    self.prune_by,
                    "global" if self.prune_scope == "global" else "layer",
                    dict(self.prune_ratios),
                    tuple(self.exclude),
                )
            )
        if self.sparsity is not None:
            found.append(
                MagnitudeSparsity(
                    self.sparsity, "global" if self.sparsity_scope == "global" else "layer"
                )
            )
        return found


def marked(graph: Graph, mark: str) -> bool:
    """Whether an annotation in the spec asks for `mark` on any node."""
    return any(mark in node.marks for node in graph.nodes)


@dataclass(frozen=True)
class Optimized:
    """A reduced network: its IR, its weights and what each pass did."""

    graph: Graph
    weights: Mapping[str, Array]
    report: Report

    def state_dict(self) -> dict[str, Any]:
        """The weights as torch tensors, keyed as the generated module's state_dict."""
        import torch

        return {k: torch.from_numpy(v.copy()) for k, v in self.weights.items()}

    def torch_source(self) -> str:
        from dslnet.backends.torch_codegen import generate_torch

        return generate_torch(self.graph, self.graph.span.file if self.graph.span else None)

    def torch(self) -> Any:
        """The reduced nn.Module with the reduced weights loaded."""
        from dslnet.backends.torch_codegen import build_module

        module = build_module(self.graph, self.torch_source())
        module.load_state_dict(self.state_dict())
        return module

    def onnx(self, **options: Any) -> Any:
        """The reduced ONNX model (options as for `Program.onnx`)."""
        from dslnet.backends.onnx_emit import emit_onnx

        return emit_onnx(self.graph, self.weights, **options)


def optimize(
    graph: Graph, options: Options, weights: WeightsSource | None = None, seed: int = 0
) -> Optimized:
    """Run the requested passes over `graph` with `weights` (fresh ones when None)."""
    values = init_weights(graph, seed) if weights is None else load_weights(weights, graph)
    model, report = PassManager(options.passes(graph)).run(Model(graph, values))
    return Optimized(model.graph, dict(model.weights), report)
