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
and IR version), onnx_wire (weights in protobuf wire format) and onnx_external (weights
in a data file beside the model, for models over protobuf's 2 GiB limit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
import onnx

from dslnet.backends.onnx_external import (
    INLINE_BELOW,
    DataLayout,
    ModelTooLarge,
    OnnxFiles,
    external_tensor,
    over_limit,
)
from dslnet.backends.onnx_functions import FunctionBuilder
from dslnet.backends.onnx_lowering import Lowering
from dslnet.backends.onnx_model import (
    DOMAIN,
    MIN_OPSET,
    assemble_model,
    check_opset,
    ir_version_for,
)
from dslnet.backends.onnx_wire import (
    add_initializer,
    add_initializers,
    fields_from,
    tensor_wire,
    wire_tag_len,
)
from dslnet.ir.graph import Graph
from dslnet.ir.weights import Array, WeightsSource, init_weights, load_weights

__all__ = [
    "DOMAIN",
    "MIN_OPSET",
    "ModelTooLarge",
    "OnnxFiles",
    "emit_onnx",
    "emit_onnx_bytes",
    "emit_onnx_files",
    "ir_version_for",
    "run_onnx",
]


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
    add_initializers(model.graph, arrays)
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
    """`emit_onnx(...).SerializeToString()`, the same bytes, made faster.

    Weights are written straight from their arrays into the protobuf wire format, one
    copy each, instead of being copied into TensorProtos (twice: protobuf takes bytes
    only) and out again by protobuf's serializer (into buffers it grows as it goes):
    ResNet-18's 47 MB take about a third of the time. A model that one protobuf cannot
    hold (2 GiB) raises ModelTooLarge: `emit_onnx_files` writes it with external data.
    """
    model, arrays = _build(
        graph, weights, opset=opset, functions=functions, ort_fused=ort_fused, seed=seed
    )
    return _inline_bytes(model, arrays)


def emit_onnx_files(
    graph: Graph,
    weights: WeightsSource | None = None,
    *,
    data_name: str,
    external: bool = False,
    opset: int = 18,
    functions: bool = False,
    ort_fused: bool = False,
    seed: int = 0,
) -> OnnxFiles:
    """The model as `emit_onnx_bytes` writes it or, when `external` or when it would
    reach protobuf's limit, with its weights as external data in a file that the model
    names `data_name` (what `dslnet compile --emit onnx -o F` writes, `F.data` beside).
    """
    model, arrays = _build(
        graph, weights, opset=opset, functions=functions, ort_fused=ort_fused, seed=seed
    )
    if not external:
        with contextlib.suppress(ModelTooLarge):
            return OnnxFiles(_inline_bytes(model, arrays))
    layout = DataLayout()
    for name, array in arrays.items():
        if array.nbytes < INLINE_BELOW:
            add_initializer(model.graph, name, array)
            continue
        header, data = tensor_wire(name, array)
        tensor = model.graph.initializer.add()
        tensor.ParseFromString(header[: -len(_raw_tag(len(data)))])  # dims, type, name
        external_tensor(tensor, data_name, layout.append(data), len(data))
    return OnnxFiles(model.SerializeToString(), layout.join())


def _raw_tag(length: int) -> bytes:
    tag = bytearray()
    wire_tag_len(tag, 9, length)  # TensorProto.raw_data
    return bytes(tag)


_GRAPH = 7  # ModelProto.graph
_INITIALIZER = 5  # GraphProto.initializer


def _inline_bytes(model: onnx.ModelProto, arrays: dict[str, Array]) -> bytes:
    """`model` with `arrays` as its initializers, in wire format (ModelTooLarge when
    one protobuf cannot hold it): the bytes `SerializeToString` gives for the model
    with its initializers added, each weight's data copied once. `model` loses its graph."""
    graph_bytes = model.graph.SerializeToString()
    chunks: list[bytes | memoryview] = []
    size = 0
    for name, array in arrays.items():
        header, data = tensor_wire(name, array)
        prefix = bytearray()
        wire_tag_len(prefix, _INITIALIZER, len(header) + len(data))
        chunks += [bytes(prefix), header, data]
        size += len(prefix) + len(header) + len(data)
    total = model.ByteSize() + size + 16  # 16: at most the graph's tag and length
    if over_limit(total):
        raise ModelTooLarge(total)
    model.ClearField("graph")
    rest = model.SerializeToString()
    graph_tag = bytearray()
    wire_tag_len(graph_tag, _GRAPH, len(graph_bytes) + size)
    # Each field where protobuf puts it (by number), so the bytes are SerializeToString's.
    in_graph = fields_from(graph_bytes, _INITIALIZER)
    in_model = fields_from(rest, _GRAPH)
    return b"".join(
        [
            rest[:in_model],
            bytes(graph_tag),
            graph_bytes[:in_graph],
            *chunks,
            graph_bytes[in_graph:],
            rest[in_model:],
        ]
    )


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
    lowering = Lowering(graph, values, ort_fused, opset)
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
