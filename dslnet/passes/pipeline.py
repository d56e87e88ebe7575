"""Reduction requests (CLI flags, `prog.optimize` arguments, spec annotations) as a
list of passes.

The order is fixed because it is the order that works: fold first (pruning
then sees the folded scales), then structured pruning, low-rank factorisation,
and unstructured sparsity last (it only zeroes what is left). Quantization comes
after all of them, on the emitted ONNX model (`Optimized.onnx`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dslnet.backends.weights import WeightsSource, init_weights, load_weights
from dslnet.ir.graph import Graph
from dslnet.passes.base import Array, Model, Pass, PassError
from dslnet.passes.canonicalize import Canonicalize
from dslnet.passes.lowrank import LowRank
from dslnet.passes.manager import PassManager, Report
from dslnet.passes.prune import Criterion, Scorer, StructuredPrune
from dslnet.passes.sparsity import MagnitudeSparsity

if TYPE_CHECKING:
    from onnx import ModelProto

    from dslnet.passes.quantize import QuantReport

Quantization = Literal["fp16", "int8-dynamic", "int8-static"]
Method = Literal["minmax", "percentile", "entropy"]
QUANTIZATIONS: tuple[Quantization, ...] = ("fp16", "int8-dynamic", "int8-static")


@dataclass(frozen=True)
class Options:
    """What to do to a network; each field off by default."""

    fold: bool = False
    prune: float | None = None
    prune_by: Criterion | Scorer = "l1"
    prune_scope: str = "layer"
    prune_ratios: Mapping[str, float] = field(default_factory=dict)
    exclude: Sequence[str] = ()
    lowrank: float | None = None  # kept energy of the singular values, in (0, 1]
    lowrank_rank: int | float | None = None  # or a rank (a fraction of the full rank)
    lowrank_exclude: Sequence[str] = ()
    sparsity: float | None = None
    sparsity_scope: str = "layer"
    quantize: Quantization | None = None
    calibrate: str | Path | None = None  # .npy / .npz; None: generated inputs
    calibration_method: Method = "minmax"
    calibration_samples: int = 32

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
        if self.lowrank is not None or self.lowrank_rank is not None:
            found.append(
                LowRank(self.lowrank_rank, self.lowrank, exclude=tuple(self.lowrank_exclude))
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
    options: Options = field(default_factory=Options)

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

    def onnx(self, **options: Any) -> ModelProto:
        """The reduced ONNX model (options as for `Program.onnx`), quantized when asked."""
        return self.quantized(self.float_onnx(**options))

    def float_onnx(self, **options: Any) -> ModelProto:
        """The reduced ONNX model in float32, before any quantization."""
        from dslnet.backends.onnx_emit import emit_onnx

        if self.options.quantize and options.get("functions"):
            raise PassError("quantization rewrites the inlined graph: leave out ONNX functions")
        return emit_onnx(self.graph, self.weights, **options)

    def quantized(
        self, model: ModelProto, calibration: list[dict[str, Array]] | None = None
    ) -> ModelProto:
        """`model` (this network's float32 ONNX) quantized as the options ask; layers
        marked `@quantize(skip)` stay float32. int8-static calibrates on `calibration`
        (default: the options' file, else generated inputs)."""
        from dslnet.passes import quantize as q

        mode = self.options.quantize
        if mode is None:
            return model
        skip = q.marked_skip(self.graph)
        if mode == "fp16":
            return q.to_fp16(model, skip=skip)
        if mode == "int8-dynamic":
            return q.quantize_dynamic_int8(model, skip=skip)
        feeds = self.calibration(model) if calibration is None else calibration
        method = self.options.calibration_method
        return q.quantize_static_int8(model, feeds, method=method, skip=skip)

    def calibration(self, model: ModelProto) -> list[dict[str, Array]]:
        """The calibration inputs: the options' file, else generated ones."""
        from dslnet.passes.quantize import load_calibration

        return load_calibration(
            self.options.calibrate, model, count=self.options.calibration_samples
        )

    def quantization(
        self, threads: int | None = None, **options: Any
    ) -> tuple[ModelProto, QuantReport]:
        """The quantized ONNX model and its report: output drift on the calibration
        inputs and the ORT CPU latency against float32 (`.render()` warns when it is
        not faster)."""
        from dslnet.passes.quantize import measure

        fp32 = self.float_onnx(**options)
        feeds = self.calibration(fp32)
        model = self.quantized(fp32, feeds)
        return model, measure(fp32, model, feeds, threads=threads)


def optimize(
    graph: Graph, options: Options, weights: WeightsSource | None = None, seed: int = 0
) -> Optimized:
    """Run the requested passes over `graph` with `weights` (fresh ones when None)."""
    values = init_weights(graph, seed) if weights is None else load_weights(weights, graph)
    if options.quantize is not None and options.quantize not in QUANTIZATIONS:
        raise PassError(
            f"quantize must be one of {', '.join(QUANTIZATIONS)}, got {options.quantize}"
        )
    model, report = PassManager(options.passes(graph)).run(Model(graph, values))
    return Optimized(model.graph, dict(model.weights), report, options)
