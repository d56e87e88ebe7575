"""The quantization stage: an emitted float32 ONNX model and the IR graph it lowers in,
the quantized model (and, when asked, its drift and latency report) out.

The model's provenance (`dslnet.backends.onnx_provenance`) ties its nodes to the IR:
the stage checks it names nodes of `graph`, and the layers the spec marks
`@quantize(skip)` are found through it, whatever the ONNX nodes are called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from dslnet.backends.onnx_provenance import ir_node
from dslnet.backends.quantize._onnx import QuantizeError, marked_skip
from dslnet.backends.quantize.calibrate import load_calibration
from dslnet.backends.quantize.dynamic import quantize_dynamic_int8
from dslnet.backends.quantize.fp16 import to_fp16
from dslnet.backends.quantize.ranges import Method
from dslnet.backends.quantize.report import QuantReport, measure
from dslnet.backends.quantize.static import quantize_static_int8
from dslnet.ir.domains import input_domains
from dslnet.ir.graph import Graph

__all__ = ["Mode", "QuantizeRequest", "calibration_feeds", "quantize_onnx", "quantize_with_report"]

Mode = Literal["fp16", "int8-dynamic", "int8-static"]
Feed = Mapping[str, np.ndarray[Any, Any]]


@dataclass(frozen=True)
class QuantizeRequest:
    """What to quantize to; `mode` None leaves the model as it is."""

    mode: Mode | None
    calibrate: str | Path | None = None  # .npy / .npz; None: generated inputs
    method: Method = "minmax"
    samples: int = 32


def calibration_feeds(
    model: onnx.ModelProto, graph: Graph, request: QuantizeRequest
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """The calibration inputs of `model`: the request's file, else generated ones (in
    the domains `graph`'s ops declare for its inputs)."""
    domains = input_domains(graph)
    return load_calibration(request.calibrate, model, count=request.samples, domains=domains)


def quantize_onnx(
    model: onnx.ModelProto,
    graph: Graph,
    request: QuantizeRequest,
    calibration: Sequence[Feed] | None = None,
) -> onnx.ModelProto:
    """`model` (emitted from `graph`, float32) quantized as `request` asks; the IR nodes
    marked `@quantize(skip)` stay float32. int8-static calibrates on `calibration`
    (default: `calibration_feeds`)."""
    if request.mode is None:
        return model
    check_provenance(model, graph)
    skip = marked_skip(graph)
    if request.mode == "fp16":
        return to_fp16(model, skip=skip)
    if request.mode == "int8-dynamic":
        return quantize_dynamic_int8(model, skip=skip)
    feeds = calibration_feeds(model, graph, request) if calibration is None else calibration
    return quantize_static_int8(model, feeds, method=request.method, skip=skip)


def quantize_with_report(
    model: onnx.ModelProto, graph: Graph, request: QuantizeRequest, threads: int | None = None
) -> tuple[onnx.ModelProto, QuantReport]:
    """The quantized model and its report: output drift on the calibration inputs and
    ONNX Runtime CPU latency against `model`."""
    feeds = calibration_feeds(model, graph, request)
    quantized = quantize_onnx(model, graph, request, feeds)
    return quantized, measure(model, quantized, feeds, threads=threads)


def check_provenance(model: onnx.ModelProto, graph: Graph) -> None:
    """Every IR node the model's nodes name must be one of `graph`'s: a model emitted
    from another network (or another state of this one) would be quantized with the
    wrong layers skipped."""
    known = {node.name for node in graph.nodes}
    for node in model.graph.node:
        origin = ir_node(node)
        if origin is not None and origin not in known:
            raise QuantizeError(
                f"ONNX node '{node.name}' lowers IR node '{origin}', which network "
                f"'{graph.name}' does not have: quantize the model emitted from this graph"
            )
