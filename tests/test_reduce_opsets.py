"""Every lowering that reduces over axes (ReduceMean, ReduceMax, ReduceL2, ...) writes a
valid model at each opset the emitter accepts: the axes are an attribute before opset
18 and an input from it (only ReduceSum took them as an input already at 13). Each
network is checked by onnx's checker and run in ONNX Runtime against torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import pytest

import dslnet
from dslnet.cli import main
from dslnet.ir.weights import init_weights
from dslnet.testing import assert_close, random_inputs, torch_outputs

SPEC = """
network Reductions() {
    in x: float32[N, 4, 6]
    out mean = mean(x, [1, 2], keepdim=true)
    out total = sum(x, -1)
    out top = amax(x, 1)
    out bottom = amin(x, [0, 2])
    out spread = var(x, 2, correction=0) + std(x, 2)
    out deviation = std(x, [1, 2], keepdim=true)
    out lse = logsumexp(x, -1, keepdim=true)
    out norms = norm(x, axis=1) + norm(x, 1.0, 1) + norm(x, 3.0, 1)
    out unit = normalize(x, 1.0, -1) + normalize(x)
    out everything = mean(x) + amax(x) + norm(x)
}

network Contrastive() {
    in z1: float32[N, 8]
    in z2: float32[N, 8]
    out loss = nt_xent_loss(z1, z2)
}

network Attention() {
    in x: float32[V, 4]
    in adj: float32[V, V]
    out y = gat_conv(x, adj, 2, heads=3, concat=false)
}

network Pooled() {
    in x: float32[N, 3, 9, 7]
    out y = x -> adaptive_avgpool2d((1, 7)) -> flatten
}
"""
SIZES = {"N": 3, "V": 5}


@pytest.fixture(scope="module")
def prog() -> dslnet.Program:
    return dslnet.loads(SPEC)


def _ort(model: onnx.ModelProto, feeds: dict[str, Any]) -> list[Any]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return list(session.run(None, feeds))


@pytest.mark.parametrize("opset", [15, 17, 18])
@pytest.mark.parametrize("network", ["Reductions", "Contrastive", "Attention", "Pooled"])
def test_valid_and_equal_to_torch(prog: dslnet.Program, network: str, opset: int) -> None:
    graph = prog.ir(network)
    weights = init_weights(graph, seed=0)
    model = prog.onnx(network, weights, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    reduces = [n for n in model.graph.node if n.op_type.startswith("Reduce")]
    assert reduces, "the network should reduce"
    for node in reduces:
        takes_axes_input = len(node.input) > 1
        if opset < 18 and node.op_type != "ReduceSum":
            assert not takes_axes_input, f"{node.op_type} with an axes input at opset {opset}"
    feeds = random_inputs(graph, SIZES)
    assert_close(_ort(model, feeds), torch_outputs(graph, weights, feeds))


def test_cli_opset_17_writes_a_model_onnx_accepts(tmp_path: Path) -> None:
    spec = tmp_path / "r.net"
    spec.write_text(SPEC)
    out = tmp_path / "r.onnx"
    args = ["compile", str(spec), "-n", "Reductions", "--emit", "onnx", "--opset", "17"]
    assert main([*args, "-o", str(out)]) == 0
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    onnx.checker.check_model(model, full_check=True)
    graph = dslnet.load(str(spec)).ir("Reductions")
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    feeds = random_inputs(graph, SIZES)
    got = _ort(model, feeds)
    assert_close(got, torch_outputs(graph, {k: weights[k] for k in graph.parameters}, feeds))
