"""Provenance: the emitter records the IR node behind every ONNX node (metadata), and
quantization finds skipped layers through it, whatever the ONNX nodes are called."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import onnx
import pytest

import dslnet
from dslnet.backends.onnx_provenance import block_call, call_names, ir_node, provenance
from dslnet.backends.quantize import (
    QuantizeError,
    QuantizeRequest,
    load_calibration,
    quantize_dynamic_int8,
    quantize_onnx,
    quantize_static_int8,
    to_fp16,
)
from dslnet.backends.quantize._onnx import working_copy

MARKED = """
network Marked() {
    in x: float32[N, 32]
    @quantize(skip) h = x -> linear(32) -> relu
    h = h -> linear(32) -> relu
    out y = linear(h, 8)
}
"""

# `tower` is one layer used twice: the IR names its second use's nodes tower.linear1@2.
TWIN = """
block Head() {
    in x: [N, D]
    out y = x -> linear(8)
}

block Tower() {
    in x: [N, D]
    out y = x -> linear(16) -> relu -> Head()
}

network Twin() {
    layer tower = Tower()
    in a: float32[N, 12]
    in b: float32[N, 12]
    h = tower(a) + tower(b)
    out y = h  # an Identity, which lowers no IR node
}
"""

Quantizer = Callable[[onnx.ModelProto, frozenset[str]], onnx.ModelProto]


def _static(model: onnx.ModelProto, skip: frozenset[str]) -> onnx.ModelProto:
    feeds = load_calibration(None, model, count=2, symbols={"N": 4})
    return quantize_static_int8(model, feeds, skip=skip)


QUANTIZERS: dict[str, Quantizer] = {
    "fp16": lambda model, skip: to_fp16(model, skip=skip),
    "int8-dynamic": lambda model, skip: quantize_dynamic_int8(model, skip=skip),
    "int8-static": _static,
}


def _shuffled_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every node renamed to another node's name (reversed order), as a
    tool rewriting names could leave it: by the old `<IR node>/<OpType>` convention,
    each node would now claim a different layer."""
    renamed = onnx.ModelProto()
    renamed.CopyFrom(model)
    names = [node.name for node in renamed.graph.node]
    for node, name in zip(renamed.graph.node, reversed(names)):
        node.name = name
    assert [n.name for n in renamed.graph.node] != names
    return renamed


def _without_node_names(model: onnx.ModelProto) -> bytes:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        node.name = ""
    serialized: bytes = copy.SerializeToString()
    return serialized


def test_every_emitted_node_names_its_ir_node() -> None:
    program = dslnet.loads(TWIN)
    graph = program.ir("Twin")
    model = program.onnx("Twin")
    found = provenance(model)
    ir_names = {node.name for node in graph.nodes}
    assert set(found.values()) == ir_names  # every IR node lowers to some ONNX node
    unmarked = [n for n in model.graph.node if n.name not in found]
    assert [(n.op_type, list(n.output)) for n in unmarked] == [("Identity", ["y"])]
    assert found["tower.linear1@2/Gemm"] == "tower.linear1@2"


def test_inlined_functions_carry_the_flat_provenance() -> None:
    program = dslnet.loads(TWIN)
    flat = program.onnx("Twin")
    functions = program.onnx("Twin", functions=True)
    calls = [n for n in functions.graph.node if block_call(n) is not None]
    assert [block_call(n) for n in calls] == ["tower", "tower@2"]
    # Both uses share the bodies (provenance in them is relative); the second use's call
    # lists the names that composing would not give, nested calls' nodes included.
    assert [f.name for f in functions.functions] == ["Head", "Tower"]
    assert call_names(calls[0]) == {}
    assert call_names(calls[1]) == {
        "linear1": "tower.linear1@2",
        "relu1": "tower.relu1@2",
        "head1.linear1": "tower.head1.linear1@2",
    }
    inlined = working_copy(functions)

    def lowered(model: onnx.ModelProto) -> Counter[tuple[str, str | None]]:
        return Counter((n.op_type, ir_node(n)) for n in model.graph.node if ir_node(n))

    assert lowered(inlined) == lowered(flat)


@pytest.mark.parametrize("mode", sorted(QUANTIZERS))
def test_renamed_nodes_quantize_the_same(mode: str) -> None:
    program = dslnet.loads(MARKED)
    model = program.onnx("Marked")
    skip = frozenset({"linear2"})
    quantize = QUANTIZERS[mode]
    original = quantize(model, skip)
    renamed = quantize(_shuffled_names(model), skip)
    assert _without_node_names(renamed) == _without_node_names(original)
    # The skipped layer kept its float Gemm, whatever name it carries now.
    kept = [n for n in renamed.graph.node if ir_node(n) == "linear2"]
    assert [n.op_type for n in kept] == ["Gemm"]
    assert not any(n.input[1].endswith("_dequantized") for n in kept)


def test_stage_skips_marked_layers_of_a_renamed_model() -> None:
    program = dslnet.loads(MARKED)
    graph = program.ir("Marked")
    request = QuantizeRequest("int8-dynamic")
    model = _shuffled_names(program.onnx("Marked"))
    quantized = quantize_onnx(model, graph, request)
    ops = {ir_node(n): n.op_type for n in quantized.graph.node if ir_node(n)}
    assert ops == {
        "linear1": "Gemm",
        "relu1": "Relu",
        "linear2": "DynamicQuantizeMatMul",
        "relu2": "Relu",
        "linear3": "DynamicQuantizeMatMul",
    }
    through_options = program.optimize("Marked", quantize="int8-dynamic").onnx()
    assert _without_node_names(quantized) == _without_node_names(through_options)


def test_stage_refuses_a_model_of_another_graph() -> None:
    program = dslnet.loads(MARKED + TWIN)
    with pytest.raises(QuantizeError, match=r"lowers IR node 'tower\.linear1'.*'Marked'"):
        quantize_onnx(program.onnx("Twin"), program.ir("Marked"), QuantizeRequest("fp16"))
