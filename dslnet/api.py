"""The driver layer: the public API's verbs over a loaded spec.

`Program` wraps the front end's `Spec` (declarations, expansion, checking) and drives
what lies below it: the passes (`optimize`), both backends (`torch`, `onnx`), the
views (`summary`, `dot`). `Optimized` is a network after the reduction passes, with
its reduced models, quantized ONNX and quantization report. Nothing below this module
imports it; the CLI, the training runtime and the views build on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dslnet.core.diagnostics import CompileError, Diagnostic, Diagnostics, Severity, SourceMap, Span
from dslnet.frontend import ast
from dslnet.frontend.limits import Limits
from dslnet.frontend.loader import Spec, load_spec, loads_spec
from dslnet.ir.graph import Graph

if TYPE_CHECKING:  # numpy, onnx and the backends load only when a verb needs them
    from onnx import ModelProto

    from dslnet.backends.quantize import QuantizeRequest, QuantReport
    from dslnet.frontend.train.plan import TrainPlan
    from dslnet.ir.weight_import import Imported
    from dslnet.ir.weights import WeightsSource
    from dslnet.passes.base import Array
    from dslnet.passes.manager import Report
    from dslnet.passes.options import Method, Options, Quantization, Scope
    from dslnet.passes.prune import Criterion, Scorer


def load(
    path: str | os.PathLike[str], limits: Limits | None = None, *, strict: bool = True
) -> Program:
    """Load a `.net` file and its imports. Raises CompileError when it has errors
    (with `strict=False` the Program comes back anyway: `check()` lists them)."""
    return Program(load_spec(path, limits, strict=strict))


def loads(
    text: str, filename: str = "<string>", limits: Limits | None = None, *, strict: bool = True
) -> Program:
    """Load spec text; imports resolve relative to `filename`'s directory."""
    return Program(loads_spec(text, filename, limits, strict=strict))


class Program:
    """A loaded spec: its blocks, networks and constants, and what can be made of them."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    # --- what is in it (the front end's) -------------------------------------------------

    @property
    def limits(self) -> Limits:
        return self.spec.limits

    @property
    def sources(self) -> SourceMap:
        return self.spec.sources

    @property
    def diags(self) -> Diagnostics:
        """What loading found (`check` adds what expanding finds)."""
        return self.spec.diags

    @property
    def modules(self) -> list[ast.Module]:
        """Every file read, imports first."""
        return self.spec.modules

    @property
    def decls(self) -> dict[str, ast.BlockDecl]:
        return self.spec.decls

    @property
    def train_decls(self) -> dict[str, ast.TrainDecl]:
        return self.spec.train_decls

    @property
    def networks(self) -> list[str]:
        return self.spec.networks

    @property
    def blocks(self) -> list[str]:
        return self.spec.blocks

    @property
    def trainings(self) -> list[str]:
        """The `train` declarations, in file order."""
        return self.spec.trainings

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.spec.warnings

    def block(self, name: str) -> ast.BlockDecl | None:
        return self.spec.block(name)

    def has_const(self, name: str) -> bool:
        return self.spec.has_const(name)

    def const(self, name: str) -> Any:
        return self.spec.const(name)

    def check(self) -> list[Diagnostic]:
        """Every diagnostic of the spec: load-time ones, then each network (and train
        declaration) at its defaults."""
        return self.spec.check()

    def checked(self) -> Program:
        """This program when `check` finds no error in it; else CompileError with all
        that `check` reports (warnings too), so that a command building one network
        (`compile`, `summary`) refuses a spec with the same errors as `dslnet check`."""
        self.spec.checked()
        return self

    # --- compiling ------------------------------------------------------------------------

    def ir(self, network: str, **params: Any) -> Graph:
        """Expand `network` with `params` overriding its defaults; CompileError on errors."""
        return self.spec.ir(network, **params)

    def training(self, name: str, **params: Any) -> TrainPlan:
        """The `train` declaration `name` lowered (a TrainPlan): a graph per step and the
        checked settings; `params` override its parameters.
        `dslnet.training.trainer.Trainer(plan)` runs it."""
        return self.spec.training(name, **params)

    def summary(self, network: str, **params: Any) -> dict[str, Any]:
        """Per-layer output shapes, parameters and FLOPs, with totals (`dslnet summary`)."""
        from dslnet.views.summary import summarize

        return summarize(self.ir(network, **params))

    def dot(
        self,
        network: str,
        *,
        block_depth: int | None = None,
        expand: Sequence[str] = (),
        direction: Literal["TB", "LR"] = "TB",
        **params: Any,
    ) -> str:
        """Graphviz DOT text picturing `network` (what `dslnet graph` writes; render
        it with `dot -Tsvg`). Blocks nested deeper than `block_depth` are folded into
        boxes, or all but the block types or instances in `expand`; neither: small
        networks whole, bigger ones with one instance of each repeated block open.
        `params` override the network's parameters (named `block_depth` so that a
        network parameter `depth` stays reachable)."""
        from dslnet.views.graphfold import ViewOptions
        from dslnet.views.graphrender import to_dot

        options = ViewOptions(block_depth, tuple(expand), direction)
        return to_dot([self.ir(network, **params)], options)

    def torch_source(self, network: str, **params: Any) -> str:
        """The generated PyTorch source for `network` (what `--emit torch` writes)."""
        from dslnet.backends.torch_codegen import generate_torch

        graph = self.ir(network, **params)
        return generate_torch(graph, graph.span.file if graph.span else None)

    def torch(self, network: str, **params: Any) -> Any:
        """A `torch.nn.Module` built by executing the generated source."""
        from dslnet.backends.torch_codegen import build_module, generate_torch

        graph = self.ir(network, **params)
        return build_module(graph, generate_torch(graph, graph.span.file if graph.span else None))

    def torch_pair(
        self,
        generator: str,
        discriminator: str,
        generator_params: Mapping[str, Any] | None = None,
        discriminator_params: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Any]:
        """Both modules of an adversarial pair, after checking that what the generator
        makes is what the discriminator judges (its first input's dtype and shape)."""
        g = self.ir(generator, **(generator_params or {}))
        d = self.ir(discriminator, **(discriminator_params or {}))
        made = g.type_of(g.outputs[0][1])
        judged = d.type_of(d.inputs[0])
        if not made.same_as(judged):
            span = d.span or Span.unknown(self.spec.main_file())
            message = (
                f"'{generator}' makes {made} but '{discriminator}' judges {judged} "
                f"(its input '{d.inputs[0]}')"
            )
            raise CompileError([Diagnostic(Severity.ERROR, message, span)], self.sources)
        return self.torch(generator, **(generator_params or {})), self.torch(
            discriminator, **(discriminator_params or {})
        )

    def onnx(
        self,
        network: str,
        weights: Any = None,
        *,
        opset: int = 18,
        functions: bool = False,
        ort_fused: bool = False,
        **params: Any,
    ) -> Any:
        """An ONNX ModelProto emitted from the IR; `weights` is a state_dict or a file.
        `ort_fused` uses ONNX Runtime's fused ops where they exist (ORT-only models).

        Write it with `dslnet.save_onnx(model, path)`: protobuf cannot serialize a model
        of 2 GiB or more (`SerializeToString` fails), and save_onnx then puts the
        weights in `path.data` beside it (ONNX external data)."""
        from dslnet.backends.onnx_emit import emit_onnx

        return emit_onnx(
            self.ir(network, **params),
            weights,
            opset=opset,
            functions=functions,
            ort_fused=ort_fused,
        )

    def onnx_bytes(
        self,
        network: str,
        weights: Any = None,
        *,
        opset: int = 18,
        functions: bool = False,
        ort_fused: bool = False,
        **params: Any,
    ) -> bytes:
        """`onnx(...).SerializeToString()`, the same bytes, several times faster: the
        weights are copied once, straight into the serialized model, where a ModelProto
        copies them in and protobuf copies them out again (what `dslnet compile --emit
        onnx` writes). Raises ModelTooLarge (a ValueError) for a model of 2 GiB or
        more: write that one with `dslnet.save_onnx`."""
        from dslnet.backends.onnx_emit import emit_onnx_bytes

        return emit_onnx_bytes(
            self.ir(network, **params),
            weights,
            opset=opset,
            functions=functions,
            ort_fused=ort_fused,
        )

    def import_weights(
        self,
        source: WeightsSource,
        network: str,
        *,
        mapping: str | os.PathLike[str] | Mapping[str, str | None] | None = None,
        allow_unused: bool = False,
        allow_missing: bool = False,
        seed: int = 0,
        **params: Any,
    ) -> dict[str, Any]:
        """`network`'s state_dict (torch tensors, keyed as `torch(network)`'s) from a
        checkpoint of another implementation whose names differ: its tensors are matched
        by structure (docs/weights.md). `source` is a `.safetensors`/`.pt`/`.pth` file or
        a state_dict; `mapping` a map file or {checkpoint name: network name, or None to
        drop it} for what cannot be inferred. Raises WeightImportError (a WeightsError)
        listing every ambiguous, unfilled or unused tensor, CompileError for a map naming
        what is not there. `match_weights` also says how each tensor was placed."""
        import torch

        found = self.match_weights(
            source,
            network,
            mapping=mapping,
            allow_unused=allow_unused,
            allow_missing=allow_missing,
            seed=seed,
            **params,
        )
        return {name: torch.from_numpy(value) for name, value in found.weights.items()}

    def match_weights(
        self,
        source: WeightsSource,
        network: str,
        *,
        mapping: str | os.PathLike[str] | Mapping[str, str | None] | None = None,
        allow_unused: bool = False,
        allow_missing: bool = False,
        seed: int = 0,
        **params: Any,
    ) -> Imported:
        """As `import_weights`, returning an `Imported`: the weights as numpy arrays and
        the pairs found (`.render()` is what `dslnet weights import` prints)."""
        from dslnet.fileio import FileProblem
        from dslnet.ir.weight_import import import_weights, read_checkpoint
        from dslnet.ir.weight_map import map_from, read_map
        from dslnet.ir.weights import WeightsError

        if mapping is None or isinstance(mapping, Mapping):
            weight_map = map_from(mapping) if mapping else None
        else:
            try:
                weight_map = read_map(mapping)
            except FileProblem as err:
                raise WeightsError([f"cannot read map file {err.path}: {err.problem}"]) from None
        tensors, ordered = read_checkpoint(source)
        return import_weights(
            tensors,
            self.ir(network, **params),
            weight_map,
            ordered=ordered,
            allow_unused=allow_unused,
            allow_missing=allow_missing,
            seed=seed,
        )

    def optimize(
        self,
        network: str,
        weights: Any = None,
        *,
        fold: bool = False,
        prune: float | None = None,
        prune_by: Criterion | Scorer = "l1",
        prune_scope: Scope = "layer",
        prune_ratios: Mapping[str, float] | None = None,
        exclude: Sequence[str] = (),
        lowrank: float | None = None,
        lowrank_rank: int | float | None = None,
        lowrank_exclude: Sequence[str] = (),
        sparsity: float | None = None,
        sparsity_scope: Scope = "layer",
        quantize: Quantization | None = None,
        calibrate: str | Path | None = None,
        calibration_method: Method = "minmax",
        calibration_samples: int = 32,
        seed: int = 0,
        **params: Any,
    ) -> Optimized:
        """`network` reduced by the requested passes (an `Optimized`: its IR, weights
        and report; `.torch()` and `.onnx()` build the reduced models).

        weights: a state_dict or weights file (fresh values from `seed` when None).
        fold: fold batchnorm into the layer before it, drop eval-mode identities.
        prune: the fraction of channels to remove from every prunable group;
            prune_by "l1", "l2", "bn" or a function; prune_scope "layer" or "global";
            prune_ratios: per-module ratios (glob patterns on a layer's module, e.g.
            `layer4.*`), over `prune` and over `@prune(r)` annotations in the spec;
            exclude: module patterns whose output units stay.
        lowrank: factorise dense and conv layers keeping this share of each weight's
            singular-value energy; lowrank_rank: or at this rank (an int, or a fraction
            of each layer's full rank); lowrank_exclude: module patterns left whole.
        sparsity: the fraction of weights to zero by magnitude (shapes unchanged);
            sparsity_scope "layer" (of each weight) or "global" (ranked over all).
        quantize: "fp16", "int8-dynamic" or "int8-static": what `.onnx()` gives;
            `.quantization()` also reports drift and latency against float32.
            int8-static calibrates on `calibrate` (.npy / .npz; generated inputs when
            None), `calibration_samples` batches, ranges by `calibration_method`
            ("minmax", "percentile", "entropy").
        Layers marked `@prune(r)` / `@quantize(skip)` in the spec get what they ask.
        The keywords are the options of dslnet.passes.options (one table for these and
        the CLI flags); a value no pass takes raises its OptionError (a ValueError, or
        a TypeError for the wrong type) naming the keyword and what it takes.
        """
        from dslnet.passes.options import Options, refuse_misspelt

        decl = self.spec.block(network)
        refuse_misspelt(params, [p.name for p in decl.params] if decl else [], network)
        options = Options(
            fold=fold,
            prune=prune,
            prune_by=prune_by,
            prune_scope=prune_scope,
            prune_ratios=prune_ratios,
            exclude=exclude,
            lowrank=lowrank,
            lowrank_rank=lowrank_rank,
            lowrank_exclude=lowrank_exclude,
            sparsity=sparsity,
            sparsity_scope=sparsity_scope,
            quantize=quantize,
            calibrate=calibrate,
            calibration_method=calibration_method,
            calibration_samples=calibration_samples,
        )
        return optimize(self.ir(network, **params), options, weights, seed)


def optimize(
    graph: Graph, options: Options, weights: WeightsSource | None = None, seed: int = 0
) -> Optimized:
    """Run the passes `options` ask for over `graph` with `weights` (a state_dict or
    weights file; fresh values from `seed` when None)."""
    from dslnet.ir.weights import init_weights, load_weights
    from dslnet.passes.pipeline import run_passes

    values = init_weights(graph, seed) if weights is None else load_weights(weights, graph)
    model, report = run_passes(graph, options, values)
    return Optimized(model.graph, dict(model.weights), report, options)


def _no_options() -> Options:
    from dslnet.passes.pipeline import Options

    return Options()


@dataclass(frozen=True)
class Optimized:
    """A reduced network: its IR, its weights and what each pass did."""

    graph: Graph
    weights: Mapping[str, Array]
    report: Report
    options: Options = field(default_factory=_no_options)

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
        from dslnet.passes.base import PassError

        if self.options.quantize and options.get("functions"):
            raise PassError("quantization rewrites the inlined graph: leave out ONNX functions")
        return emit_onnx(self.graph, self.weights, **options)

    def quantized(
        self, model: ModelProto, calibration: list[dict[str, Array]] | None = None
    ) -> ModelProto:
        """`model` (this network's float32 ONNX) quantized as the options ask; layers
        marked `@quantize(skip)` stay float32. int8-static calibrates on `calibration`
        (default: the options' file, else generated inputs)."""
        from dslnet.backends.quantize import quantize_onnx

        return quantize_onnx(model, self.graph, self._quantize_request(), calibration)

    def calibration(self, model: ModelProto) -> list[dict[str, Array]]:
        """The calibration inputs: the options' file, else generated ones."""
        from dslnet.backends.quantize import calibration_feeds

        return calibration_feeds(model, self.graph, self._quantize_request())

    def _quantize_request(self) -> QuantizeRequest:
        from dslnet.backends.quantize import QuantizeRequest

        options = self.options
        return QuantizeRequest(
            options.quantize,
            options.calibrate,
            options.calibration_method,
            options.calibration_samples,
        )

    def quantization(
        self, threads: int | None = None, **options: Any
    ) -> tuple[ModelProto, QuantReport]:
        """The quantized ONNX model and its report: output drift on the calibration
        inputs and the ORT CPU latency against float32 (`.render()` warns when it is
        not faster)."""
        from dslnet.backends.quantize import quantize_with_report

        request = self._quantize_request()
        return quantize_with_report(self.float_onnx(**options), self.graph, request, threads)
