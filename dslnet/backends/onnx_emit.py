"""ONNX backend: a ModelProto built straight from the IR with `onnx.helper`.

Each IR node is lowered by its op's `onnx` facet through a small context object, so
this module knows no op by name. Value names follow the IR, parameters become
initializers named like the IR's (`res1.linear1.weight`), and the graph's inputs and
outputs keep the spec's names with symbolic dimensions as `dim_param`s (`N` stays
dynamic). The same graph and weights always give the same bytes.

With `functions=True` every block call becomes a call of an ONNX local function (one
function per distinct body, in the `dslnet.blocks` domain); parameters and constants
used inside are passed in as extra inputs, since functions hold no initializers.

Every node records the IR node it lowers, and every call node its block call, in its
`metadata_props` (`dslnet.backends.onnx_provenance`): the quantization stage reads
that map instead of relying on node names.

This module holds the entry points; the work is in onnx_lowering (the flat lowering),
onnx_functions (local functions for block calls), onnx_model (the ModelProto, opset
and IR version) and onnx_wire (weights in protobuf wire format).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from dslnet.backends.onnx_functions import FunctionBuilder
from dslnet.backends.onnx_lowering import Lowering
from dslnet.backends.onnx_model import (
    DOMAIN,
    MIN_OPSET,
    assemble_model,
    check_opset,
    ir_version_for,
)
from dslnet.backends.onnx_wire import add_initializer, tensor_wire, wire_tag_len
from dslnet.ir.graph import Graph
from dslnet.ir.weights import Array, WeightsSource, init_weights, load_weights

__all__ = ["DOMAIN", "MIN_OPSET", "emit_onnx", "ir_version_for", "run_onnx"]


def emit_onnx(
    graph: Graph,
    weights: WeightsSource | None = None,
    *,
    opset: int = 18,
    functions: bool = False,
    ort_fused: bool = False,
    seed: int = 0,
) -> onnx.ModelProto:
    """The ONNX model of `graph`.

    Args:
        graph: the IR of one network.
        weights: a state_dict-like mapping or a `.safetensors`/`.pt`/`.pth` path; None
            draws fresh values with `seed` (see `dslnet.ir.weights`).
        opset: the default-domain opset to target.
        functions: emit each block call as a call of an ONNX local function.
        ort_fused: use ONNX Runtime's fused contrib ops (domain com.microsoft) where an
            op has one, e.g. self-attention; faster under ORT, but only ORT runs it.
        seed: the seed for fresh weights.
    """
    model, arrays = _build(
        graph, weights, opset=opset, functions=functions, ort_fused=ort_fused, seed=seed
    )
    for name, array in arrays.items():
        add_initializer(model.graph, name, array)
    return model


def emit_onnx_bytes(
    graph: Graph,
    weights: WeightsSource | None = None,
    *,
    opset: int = 18,
    functions: bool = False,
    ort_fused: bool = False,
    seed: int = 0,
) -> bytes:
    """The serialized model, as `emit_onnx(...).SerializeToString()` parses, made faster.

    Weights are written straight from their arrays into the protobuf wire format
    instead of being copied into TensorProtos and serialized again: for a model that
    is mostly weights this halves the time (what `dslnet compile --emit onnx` uses).
    """
    model, arrays = _build(
        graph, weights, opset=opset, functions=functions, ort_fused=ort_fused, seed=seed
    )
    graph_bytes = model.graph.SerializeToString()
    model.ClearField("graph")
    # Chunks joined once at the end: each weight's bytes are copied exactly once.
    chunks: list[bytes | memoryview] = []
    size = 0
    for name, array in arrays.items():
        header, data = tensor_wire(name, array)
        prefix = bytearray()
        wire_tag_len(prefix, 5, len(header) + len(data))  # GraphProto.initializer
        chunks += [bytes(prefix), header, data]
        size += len(prefix) + len(header) + len(data)
    head = bytearray(model.SerializeToString())
    wire_tag_len(head, 7, len(graph_bytes) + size)  # ModelProto.graph
    return b"".join([bytes(head), graph_bytes, *chunks])


def _build(
    graph: Graph,
    weights: WeightsSource | None,
    *,
    opset: int,
    functions: bool,
    ort_fused: bool,
    seed: int,
) -> tuple[onnx.ModelProto, dict[str, Array]]:
    """The model without its initializers, and the initializer arrays by name."""
    check_opset(opset)
    values = init_weights(graph, seed) if weights is None else load_weights(weights, graph)
    lowering = Lowering(graph, values, ort_fused)
    lowering.lower()
    if functions:
        builder = FunctionBuilder(lowering, opset)
        nodes, protos = builder.build(), builder.functions
    else:
        nodes, protos = [entry.proto for entry in lowering.entries], []
    return assemble_model(lowering, nodes, protos, opset)


def run_onnx(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], providers: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Run `model` in ONNX Runtime (CPU unless `providers` says otherwise); outputs by name."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=providers or ["CPUExecutionProvider"]
    )
    names = [out.name for out in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))
