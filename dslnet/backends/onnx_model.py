"""The ONNX model around the lowered nodes: opset and IR version, graph inputs and
outputs, value types, and the initializers the nodes use.

`assemble_model` builds the ModelProto in place (no initializers yet: the callers
add them, as TensorProtos or straight in wire format); `ir_version_for` and
`check_opset` say which opsets are supported and which IR version carries them.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import helper

from dslnet.backends.onnx_lowering import Lowering
from dslnet.core.types import DType, TensorType
from dslnet.core.version import __version__
from dslnet.ir.weights import Array

DOMAIN = "dslnet.blocks"
"""The ONNX domain of the local functions made for blocks."""
MIN_OPSET = 15  # Shape with start/end (flatten) needs 15
PRODUCER = "dslnet"
_FUNCTIONS_MIN_IR = 8  # model-local functions arrived in IR version 8

_ELEM_TYPES: dict[DType, int] = {
    DType.float32: onnx.TensorProto.FLOAT,
    DType.float16: onnx.TensorProto.FLOAT16,
    DType.bfloat16: onnx.TensorProto.BFLOAT16,
    DType.float64: onnx.TensorProto.DOUBLE,
    DType.int8: onnx.TensorProto.INT8,
    DType.uint8: onnx.TensorProto.UINT8,
    DType.int16: onnx.TensorProto.INT16,
    DType.int32: onnx.TensorProto.INT32,
    DType.int64: onnx.TensorProto.INT64,
    DType.bool: onnx.TensorProto.BOOL,
}


def ir_version_for(opset: int) -> int:
    """The lowest IR version that carries `opset` (and local functions)."""
    needed = helper.find_min_ir_version_for([helper.make_opsetid("", opset)], True)
    return max(_FUNCTIONS_MIN_IR, int(needed))


def check_opset(opset: int) -> None:
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset {opset} is not supported: use {MIN_OPSET} to {newest}")


def extra_domains(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """The non-default operator domains the nodes use (local functions, ORT's ops)."""
    return sorted({node.domain for node in nodes if node.domain not in ("", "ai.onnx")})


def _value_info(name: str, ttype: TensorType) -> onnx.ValueInfoProto:
    """int dims become dim_value, symbolic ones dim_param (their printed form)."""
    dims = [d if isinstance(d, int) else str(d) for d in ttype.shape]
    return helper.make_tensor_value_info(name, _ELEM_TYPES[ttype.dtype], dims)


def assemble_model(
    lowering: Lowering,
    nodes: list[onnx.NodeProto],
    functions: list[onnx.FunctionProto],
    opset: int,
) -> tuple[onnx.ModelProto, dict[str, Array]]:
    graph = lowering.graph
    inputs = [_value_info(name, graph.type_of(name)) for name in graph.inputs]
    outputs = [_value_info(out, graph.type_of(value)) for out, value in graph.outputs]
    boundary = {*graph.inputs, *(out for out, _ in graph.outputs)}
    value_info = [
        _value_info(name, graph.type_of(lowering.ir_names[name]))
        for node in nodes
        for name in node.output
        if name in lowering.ir_names and name not in boundary
    ]
    used = {name for node in nodes for name in node.input}
    constants = {k: v for k, v in lowering.constants.items() if k in used}
    # State no lowering reads (batchnorm's num_batches_tracked) is left out: ORT would
    # warn about each unused initializer at every session start.
    weights = {k: v for k, v in lowering.weights.items() if k in used}
    arrays = {**weights, **constants}
    opsets = [helper.make_opsetid("", opset)]
    domains = extra_domains([*nodes, *(n for f in functions for n in f.node)])
    if functions:
        domains = sorted({DOMAIN, *domains})
    opsets += [helper.make_opsetid(d, 1) for d in domains]
    # Built in place: make_graph/make_model would copy every weight twice more, and
    # weights are nearly all of the cost of emission.
    model = onnx.ModelProto(
        ir_version=ir_version_for(opset),
        producer_name=PRODUCER,
        producer_version=__version__,
        opset_import=opsets,
        functions=functions,
    )
    body = model.graph
    body.name = graph.name
    body.node.extend(nodes)
    body.input.extend(inputs)
    body.output.extend(outputs)
    body.value_info.extend(value_info)
    return model, arrays
