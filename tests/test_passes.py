"""Reduction passes: folding keeps the function, pruning keeps parity and shrinks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import pytest

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.cli import main
from dslnet.ir.graph import Graph
from dslnet.ir.verifier import verify
from dslnet.ir.weights import init_weights
from dslnet.passes.base import Model, PassError, check_weights
from dslnet.passes.canonicalize import Canonicalize
from dslnet.passes.groups import analyse
from dslnet.passes.prune import StructuredPrune
from dslnet.testing import assert_close, input_symbols, random_inputs, torch_outputs

if TYPE_CHECKING:
    from conftest import SpecNetwork

ROOT = Path(__file__).resolve().parents[1]
# Networks whose every channel is pinned (recurrent state, attention heads' width).
NOTHING_TO_PRUNE: set[str] = set()

Array = np.ndarray[Any, Any]


def _feeds(graph: Graph, size: int, seed: int = 0) -> dict[str, Array]:
    return random_inputs(graph, dict.fromkeys(input_symbols(graph), size), seed)


def _with_live_norms(graph: Graph, seed: int = 1) -> dict[str, Array]:
    """Fresh weights, with running statistics and norm scales that are not 0 and 1,
    so folding has something to fold."""
    weights = init_weights(graph, seed)
    rng = np.random.default_rng(seed)
    for name, p in graph.parameters.items():
        if p.role == "running_mean":
            weights[name] = rng.normal(0, 0.5, p.shape).astype(np.float32)
        elif p.role == "running_var":
            weights[name] = rng.uniform(0.5, 2.0, p.shape).astype(np.float32)
    return weights


def test_folding_keeps_the_function(spec_network: SpecNetwork) -> None:
    graph = spec_network.graph(small=True)
    weights = _with_live_norms(graph)
    result = Canonicalize().run(Model(graph, weights))
    folded = result.model
    verify(folded.graph)
    check_weights(folded.graph, folded.weights)
    feeds = _feeds(graph, 2)
    assert_close(
        torch_outputs(folded.graph, folded.weights, feeds), torch_outputs(graph, weights, feeds)
    )


def test_structured_pruning_shrinks_and_keeps_parity(spec_network: SpecNetwork) -> None:
    graph = spec_network.graph(small=True)
    weights = init_weights(graph)
    for ratio in (0.3, 0.5):
        pruned = StructuredPrune(ratio).run(Model(graph, weights)).model
        verify(pruned.graph)
        check_weights(pruned.graph, pruned.weights)
        if spec_network.name not in NOTHING_TO_PRUNE:
            assert pruned.graph.num_parameters < graph.num_parameters
        if ratio == 0.5:
            feeds = _feeds(pruned.graph, 2)
            expected = torch_outputs(pruned.graph, pruned.weights, feeds)
            got = run_onnx(emit_onnx(pruned.graph, pruned.weights), feeds)
            assert_close([got[name] for name, _ in pruned.graph.outputs], expected)


def test_pruning_nothing_is_the_identity() -> None:
    graph = dslnet.load(ROOT / "specs" / "resnet.net").ir("ResNet18")
    weights = init_weights(graph)
    result = StructuredPrune(0.0).run(Model(graph, weights))
    assert not result.modified
    assert result.model.graph == graph
    assert all(result.model.weights[k] is weights[k] for k in weights)


ZEROED = """
block Res(c: int) {
    in x: float32[N, c, H, W]
    h = x -> conv2d(c, k=3, p=1) -> relu -> conv2d(c, k=3, p=1)
    out y = relu(x + h)
}
network Net() {
    in x: float32[N, 3, 8, 8]
    s = x -> conv2d(8, k=3, p=1) -> relu
    r = s -> Res(8) -> Res(8)
    b = s -> conv2d(6, k=1) -> relu
    j = concat(r, b, axis=1) -> conv2d(5, k=1) -> relu -> maxpool2d(2)
    out y = j -> flatten -> linear(7)
}
"""


def test_removing_dead_channels_keeps_the_function_exactly() -> None:
    # Channels whose makers are all zero contribute nothing; pruning exactly those must
    # give the same outputs, which checks every slice: residual groups, concat offsets,
    # the flatten's runs of H*W features.
    prog = dslnet.loads(ZEROED, filename="zeroed.net")
    graph = prog.ir("Net")
    weights = init_weights(graph)
    groups = analyse(graph)
    makers = {u.node.module: u for u in groups.uses if u.made is not None}
    dead = {0: [1, 4, 6], 1: [0, 5]}  # per group: which channels to kill
    roots = groups.roots()
    assert len(roots) >= 4  # stem+residual, inner convs x2, branch, joined conv
    for index, root in enumerate(roots[:2]):
        for module, use in makers.items():
            if use.made is not None and groups.find(use.made) == root:
                for role in ("weight", "bias"):
                    weights[f"{module}.{role}"][dead[index]] = 0.0
    feeds = _feeds(graph, 2)
    before = torch_outputs(graph, weights, feeds)

    def zero_first(info: Any, w: Mapping[str, Array]) -> Array:
        scores = np.zeros(info.size)
        for node in info.makers:
            scores += np.abs(w[node.param_name("weight")]).reshape(info.size, -1).sum(axis=1)
        return scores

    # Per group, a ratio that removes exactly the dead channels.
    kept: dict[str, float] = {}
    for index, root in enumerate(roots[:2]):
        for module, use in makers.items():
            if use.made is not None and groups.find(use.made) == root:
                kept[module] = len(dead[index]) / groups.size[root]
    result = StructuredPrune(0.0, criterion=zero_first, ratios=kept).run(Model(graph, weights))
    small = result.model
    assert small.graph.num_parameters < graph.num_parameters
    assert_close(torch_outputs(small.graph, small.weights, feeds), before, tol=1e-6)
    got = run_onnx(emit_onnx(small.graph, small.weights), feeds)
    assert_close([got["y"]], before, tol=1e-5)


RECURRENT = """
network Net() {
    in x: float32[N, T, 6]
    in nodes: float32[V, 4]
    in adj: float32[V, V]
    _y, h, c = lstm(x, 5, num_layers=2, bidirectional=true)
    decoded, _h, _c = lstm(x, h, c, 5, num_layers=2, bidirectional=true)
    out z = decoded -> linear(3)
    out g = gat_conv(nodes, adj, 4, heads=3) -> elu -> linear(2)
    out a = x -> multihead_attention(heads=3, causal=true)
}
"""


def test_removing_dead_hidden_units_and_head_features_keeps_the_function() -> None:
    # A hidden unit whose rows in every gate block (and whose reading columns) are zero
    # stays 0; the encoder's units are the decoder's (its initial states), and
    # bidirectional layers read their input twice, so this checks every slice.
    graph = dslnet.loads(RECURRENT, filename="recurrent.net").ir("Net")
    weights = init_weights(graph)
    dead, hidden = [1, 3], 5
    for name, value in weights.items():
        if name.startswith("lstm"):  # every gate block's rows; the columns reading h
            value[[g * hidden + d for g in range(4) for d in dead]] = 0.0
            if "weight_hh" in name:
                value[:, dead] = 0.0
            if "weight_ih_l1" in name:  # both directions of layer 0
                value[:, [d + hidden * k for k in range(2) for d in dead]] = 0.0
    gat_dead = [2]
    weights["gat1.linear.weight"][[h * 4 + 2 for h in range(3)]] = 0.0
    weights["gat1.bias"][[h * 4 + 2 for h in range(3)]] = 0.0
    weights["gat1.att_src"][:, gat_dead] = 0.0
    weights["gat1.att_dst"][:, gat_dead] = 0.0
    rows = [6 * part + 2 + i for part in range(3) for i in range(2)]  # head 1 in q, k, v
    weights["attn1.in_proj_weight"][rows] = 0.0
    weights["attn1.out_proj.weight"][:, [2, 3]] = 0.0
    feeds = _feeds(graph, 3)
    feeds["adj"] = (feeds["adj"] > 0).astype(np.float32) + np.eye(3, dtype=np.float32)
    before = torch_outputs(graph, weights, feeds)

    ratios = {"lstm*": 0.4, "gat1": 0.25, "attn1": 1 / 3}
    result = StructuredPrune(0.0, ratios=ratios).run(Model(graph, weights))
    small = result.model
    attrs = {n.module: n.attrs for n in small.graph.nodes}
    assert attrs["lstm1"]["hidden_size"] == attrs["lstm2"]["hidden_size"] == 3
    assert attrs["gat1"]["features"] == 3
    assert (attrs["attn1"]["heads"], attrs["attn1"]["head_dim"]) == (2, 2)
    assert_close(torch_outputs(small.graph, small.weights, feeds), before, tol=1e-6)
    got = run_onnx(emit_onnx(small.graph, small.weights), feeds)
    assert_close([got["z"], got["g"], got["a"]], before, tol=1e-5)


def test_residual_branches_share_one_channel_set() -> None:
    graph = dslnet.load(ROOT / "specs" / "resnet.net").ir("ResNet18")
    pruned = StructuredPrune(0.5).run(Model(graph, init_weights(graph))).model.graph
    for node in pruned.nodes:
        if node.op == "add":
            a, b = (pruned.type_of(v) for v in node.inputs)
            assert a.shape == b.shape
    assert pruned.num_parameters < graph.num_parameters / 3


def test_excluded_layers_keep_their_units() -> None:
    graph = dslnet.load(ROOT / "specs" / "mlp.net").ir("MLP")
    weights = init_weights(graph)
    pruned = StructuredPrune(0.5, exclude=["linear1"]).run(Model(graph, weights)).model
    assert pruned.weights["linear1.weight"].shape == weights["linear1.weight"].shape
    assert pruned.weights["linear2.weight"].shape[0] < weights["linear2.weight"].shape[0]


def test_bad_ratio_is_refused() -> None:
    graph = dslnet.load(ROOT / "specs" / "mlp.net").ir("MLP")
    with pytest.raises(PassError, match="ratio"):
        StructuredPrune(1.0).run(Model(graph, init_weights(graph)))


def test_folded_resnet_leaves_no_batchnorm_for_onnx_runtime() -> None:
    prog = dslnet.load(ROOT / "specs" / "resnet.net")
    reduced = prog.optimize("ResNet18", fold=True)
    ops = {n.op_type for n in reduced.onnx().graph.node}
    assert "BatchNormalization" not in ops
    assert "fold" in reduced.report.render() or "folded 20" in reduced.report.render()


def test_optimize_gives_modules_with_the_reduced_weights() -> None:
    prog = dslnet.load(ROOT / "specs" / "cifar10.net")
    reduced = prog.optimize("CIFAR10Net", fold=True, prune=0.5)
    module = reduced.torch().eval()
    count = sum(p.numel() for p in module.parameters())
    assert count == reduced.graph.num_parameters < prog.ir("CIFAR10Net").num_parameters
    record = reduced.report.records[-1]
    assert record.name == "prune" and record.flops_ratio < 0.5


def test_cli_reduces_and_writes_weights_beside_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(ROOT / "specs" / "mnist.net")
    out = tmp_path / "m.py"
    assert (
        main(["compile", spec, "--emit", "torch", "--prune", "0.5", "--report", "-o", str(out)])
        == 0
    )
    assert (tmp_path / "m.safetensors").is_file()
    assert "prune: removed" in capsys.readouterr().err
    assert main(["compile", spec, "--emit", "ir-opt", "--fold"]) == 0
    assert "network MNISTNet" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:  # checked as the flag is read: usage error
        main(["compile", spec, "--prune", "1.5"])
    assert refused.value.code == 2
    assert "argument --prune: expected a ratio in [0, 1)" in capsys.readouterr().err


def test_cli_quantizes_with_calibration_data_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(ROOT / "specs" / "mnist.net")
    data = tmp_path / "calib.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(8, 1, 28, 28)).astype(np.float32))
    out = tmp_path / "q.onnx"
    args = ["compile", spec, "--emit", "onnx", "-o", str(out), "--fold"]
    assert main([*args, "--quantize", "int8-static", "--calibrate", str(data)]) == 0
    report = capsys.readouterr().err
    assert "top-1 agreement" in report and "latency" in report
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Wrong data, wrong combinations: usage errors, and the old output stays.
    before = out.read_bytes()
    np.savez(data, y=np.zeros((2, 3), dtype=np.float32))
    assert main([*args, "--quantize", "int8-static", "--calibrate", str(data)]) == 2
    assert "calib.npz" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["compile", spec, "--quantize", "fp16"]) == 2
    assert "--emit onnx" in capsys.readouterr().err
    assert main([*args, "--quantize", "fp16", "--calibrate", str(data)]) == 2
    assert "int8-static" in capsys.readouterr().err


def test_sparsity_zeroes_weights_and_says_it_is_not_faster() -> None:
    prog = dslnet.load(ROOT / "specs" / "mlp.net")
    reduced = prog.optimize("MLP", sparsity=0.8)
    graph = reduced.graph
    assert graph.num_parameters == prog.ir("MLP").num_parameters
    for name, p in graph.parameters.items():
        zeros = float(np.mean(reduced.weights[name] == 0))
        assert zeros == pytest.approx(0.8, abs=0.01) if p.role == "weight" else zeros == 0.0
    assert "not faster" in reduced.report.render()
    module = reduced.torch()
    assert float((module.state_dict()["linear1.weight"] == 0).float().mean()) > 0.79
