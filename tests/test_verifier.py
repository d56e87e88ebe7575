"""The verifier checks what the passes and backends rely on; each check fails on a graph
broken by hand, with an internal error located at the node (or call) concerned."""

from __future__ import annotations

import pytest

import dslnet
from dslnet.ir.graph import Graph, Node
from dslnet.ir.verifier import VerifyError, verify

SPEC = """\
block Inner(n: int) {
    in x: [N, D]
    out x -> linear(n) -> relu
}

block Norm() {
    in x: [N, C, H, W]
    out x -> batchnorm
}

network Net() {
    in x: float32[N, 16]
    in img: float32[N, 3, 8, 8]
    a = x -> Inner(8)
    b = x -> relu
    out y = a
    out z = b
    out w = img -> Norm()
}
"""
FILE = "verify.net"  # not on disk: the report names the place, without an excerpt
INNER_CALL = f"{FILE}:14:14"
LINEAR, RELU, NORM = f"{FILE}:3:14", f"{FILE}:3:27", f"{FILE}:8:14"


@pytest.fixture
def graph() -> Graph:
    built = dslnet.loads(SPEC, filename=FILE).ir("Net")
    verify(built)  # what the front end makes verifies
    return built


def _node(graph: Graph, name: str) -> Node:
    return next(n for n in graph.nodes if n.name == name)


def _fails(graph: Graph, where: str, message: str) -> VerifyError:
    with pytest.raises(VerifyError, match=message) as info:
        verify(graph)
    text = str(info.value)
    assert text.startswith(f"{where}: error: internal error: "), text
    return info.value


def _set_param(graph: Graph, name: str, **changes: object) -> None:
    graph.parameters[name] = graph.parameters[name].model_copy(update=changes)


# --- parameters and buffers -------------------------------------------------------------


def test_a_buffer_recorded_as_learned_fails(graph: Graph) -> None:
    _set_param(graph, "norm1.batchnorm1.running_mean", buffer=False)
    err = _fails(graph, NORM, "running_mean is recorded as a learned parameter")
    assert f"{INNER_CALL}" not in str(err)  # its own chain: the Norm call
    assert f"{FILE}:18:20: note: in block 'Norm' called here" in str(err)


def test_a_learned_parameter_recorded_as_buffer_fails(graph: Graph) -> None:
    _set_param(graph, "inner1.linear1.weight", buffer=True)
    err = _fails(graph, LINEAR, "weight is recorded as a buffer")
    assert f"{INNER_CALL}: note: in block 'Inner' called here" in str(err)


def test_a_buffer_of_the_wrong_dtype_fails(graph: Graph) -> None:
    from dslnet.core.types import DType

    _set_param(graph, "norm1.batchnorm1.num_batches_tracked", dtype=DType.float32)
    _fails(graph, NORM, r"buffer norm1.batchnorm1.num_batches_tracked should be int64\[\]")


def test_a_missing_buffer_fails(graph: Graph) -> None:
    del graph.parameters["norm1.batchnorm1.running_var"]
    _fails(graph, NORM, r"buffer norm1.batchnorm1.running_var should be float32\[3\]")


def test_a_parameter_no_node_owns_fails(graph: Graph) -> None:
    stray = graph.parameters["inner1.linear1.bias"].model_copy(update={"name": "inner1.extra"})
    graph.parameters["inner1.extra"] = stray.model_copy(update={"module": "inner1"})
    _fails(graph, INNER_CALL, "parameter inner1.extra belongs to no node")  # its module's span


def test_a_parameter_recorded_under_another_role_fails(graph: Graph) -> None:
    _set_param(graph, "inner1.linear1.bias", role="shift")
    _fails(graph, LINEAR, "recorded as inner1.linear1.bias .module inner1.linear1, role shift")


# --- block calls --------------------------------------------------------------------------


def test_a_frame_naming_an_unrecorded_call_fails(graph: Graph) -> None:
    del graph.calls[1]
    _fails(graph, LINEAR, r"block call 1 \('Inner'\) is not recorded")


def test_a_frame_that_disagrees_with_its_call_fails(graph: Graph) -> None:
    linear = _node(graph, "inner1.linear1")
    frame = linear.chain[0].model_copy(update={"block": "Other"})
    graph.nodes[0] = linear.model_copy(update={"chain": (frame,)})
    err = _fails(graph, LINEAR, "its frame for block call 1 says block 'Other'")
    assert f"{INNER_CALL}: note: the call is recorded here" in str(err)


def test_a_frame_with_another_parent_fails(graph: Graph) -> None:
    graph.calls[1] = graph.calls[1].model_copy(update={"parent": 2})
    _fails(graph, LINEAR, "in call 0; the call records 'Inner' at inner1 in call 2")


def test_the_nodes_of_a_call_must_be_contiguous(graph: Graph) -> None:
    linear, relu, outside = graph.nodes[:3]
    assert outside.chain == ()  # `b = x -> relu`, read by nothing inside the call
    graph.nodes[:3] = [linear, outside, relu]
    _fails(graph, RELU, r"the nodes of block call 1 \('Inner'\) are not contiguous")


def test_a_call_output_that_is_not_defined_fails(graph: Graph) -> None:
    call = graph.calls[1]
    graph.calls[1] = call.model_copy(update={"outputs": [("output", "nowhere")]})
    _fails(graph, INNER_CALL, r"block call 1 \('Inner'\): its outputs nowhere are not defined")


def test_a_call_input_defined_later_fails(graph: Graph) -> None:
    graph.calls[1] = graph.calls[1].model_copy(update={"inputs": ["b"]})
    _fails(graph, INNER_CALL, "its inputs b are not defined when its nodes' run starts")


def test_a_call_with_an_unrecorded_parent_fails(graph: Graph) -> None:
    graph.calls[2] = graph.calls[2].model_copy(update={"parent": 7})
    norm = graph.nodes[3]  # the batchnorm, in the Norm call
    assert norm.chain[0].call_id == 2
    graph.nodes[3] = norm.model_copy(update={"chain": ()})  # its frame would fail first
    _fails(graph, f"{FILE}:18:20", r"block call 2 \('Norm'\): its parent call 7 is not recorded")


def test_a_stray_parameter_of_a_layer_is_reported_at_the_layer(graph: Graph) -> None:
    stray = graph.parameters["inner1.linear1.bias"].model_copy(
        update={"name": "inner1.linear1.scale", "role": "scale"}
    )
    graph.parameters[stray.name] = stray
    _fails(graph, LINEAR, "parameter inner1.linear1.scale belongs to no node")
