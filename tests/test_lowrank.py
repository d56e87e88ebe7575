"""Low-rank factorisation: exact at the weights' rank, the right rank chosen, parity kept."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

import dslnet
from dslnet.api import Optimized
from dslnet.backends.onnx_emit import run_onnx
from dslnet.backends.torch_codegen import generate_torch
from dslnet.ir.graph import Graph
from dslnet.ir.verifier import verify
from dslnet.ir.weights import init_weights
from dslnet.passes.base import Model, PassError, check_weights
from dslnet.passes.lowrank import LowRank
from dslnet.passes.manager import PassManager
from dslnet.testing import assert_close, input_symbols, random_inputs, torch_outputs

if TYPE_CHECKING:
    from conftest import SpecNetwork

ROOT = Path(__file__).resolve().parents[1]
Array = np.ndarray[Any, Any]

# Layers wider than this are left out of the spec runs by `exclude` (which tests it on
# real networks too): the decomposition is the same at any width, and a 512-wide one
# takes seconds on a busy 2-core machine.
WIDEST = 128

# The layers whose ops say how to factorise them (OpDef.factoring).
FACTORISABLE = {"linear", *(f"conv{t}{n}d" for t in ("", "_transpose") for n in (1, 2, 3))}


def _feeds(graph: Graph, size: int = 2) -> dict[str, Array]:
    return random_inputs(graph, dict.fromkeys(input_symbols(graph), size))


def _run(graph: Graph, weights: Mapping[str, Array], lowrank: LowRank) -> Optimized:
    """The pass under the manager (which verifies the graph and checks the weights)."""
    model, report = PassManager([lowrank]).run(Model(graph, weights))
    return Optimized(model.graph, dict(model.weights), report)


def _torch_and_ort_agree(small: Optimized, feeds: dict[str, Array]) -> list[Array]:
    module = small.torch().eval()
    with torch.no_grad():
        out = module(*(torch.from_numpy(feeds[v]) for v in small.graph.inputs))
    want = [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]
    got = run_onnx(small.onnx(), feeds)
    assert_close([got[name] for name, _ in small.graph.outputs], want)
    return want


def _of_rank(graph: Graph, weights: Mapping[str, Array], k: int, seed: int = 0) -> dict[str, Array]:
    """The weights with every factorisable layer's matrix replaced by one of rank k
    (same scale), so that factorising at rank k must keep the function exactly."""
    rng, out = np.random.default_rng(seed), dict(weights)
    for node in graph.nodes:
        name = node.param_name("weight")
        if node.op not in FACTORISABLE or name not in weights:
            continue
        w = weights[name]
        transposed = node.op.startswith("conv_transpose")
        shape = np.swapaxes(w, 0, 1).shape if transposed else w.shape
        rows, cols = shape[0], int(np.prod(shape[1:]))
        low = rng.standard_normal((rows, k)) @ rng.standard_normal((k, cols))
        low = (low * (w.std() / low.std())).astype(w.dtype).reshape(shape)
        out[name] = np.ascontiguousarray(np.swapaxes(low, 0, 1)) if transposed else low
    return out


def _wide(graph: Graph, weights: Mapping[str, Array]) -> list[str]:
    """Modules of the layers whose weight matrix is wider than WIDEST both ways."""
    wide = []
    for node in graph.nodes:
        if node.op in FACTORISABLE:
            w = weights[node.param_name("weight")]
            rows = w.shape[1] if node.op.startswith("conv_transpose") else w.shape[0]
            if min(rows, w.size // rows) > WIDEST:
                wide.append(node.module)
    return wide


def test_every_spec(spec_network: SpecNetwork) -> None:
    """Every network of specs/ at the size policy's widths (tests/conftest.py): the
    decomposition and the rewrite are the same at any width."""
    graph = spec_network.graph(small=True)
    weights = init_weights(graph)
    exclude = _wide(graph, weights)
    # Full rank never saves parameters: nothing changes.
    same = LowRank(rank=1.0).run(Model(graph, weights))
    assert not same.modified and same.model.graph == graph
    # At the weights' own rank the factorisation is exact.
    feeds = _feeds(graph)
    low = _of_rank(graph, weights, 4)
    before = torch_outputs(graph, low, feeds)
    exact = _run(graph, low, LowRank(energy=1.0, exclude=exclude))
    assert_close(_torch_and_ort_agree(exact, feeds), before)
    factorised = any(n.module.endswith("_up") for n in exact.graph.nodes)
    assert exact.graph.num_parameters < graph.num_parameters or not factorised
    # A truncation changes the function, but both backends still agree.
    # A truncation: the manager verifies the graph and the weights.
    half = _run(graph, weights, LowRank(rank=0.5, exclude=exclude))
    assert half.graph.num_parameters <= graph.num_parameters


LINEAR = """
network Net() {
    in x: float32[N, 48]
    layer fc = linear(64)
    h = x -> linear(64) -> relu -> fc -> relu -> fc -> tanh
    out y = h -> linear(40) -> relu -> linear(5)
}
"""

CONV = """
network Net2d() {
    in x: float32[N, 6, 12, 12]
    h = x -> conv2d(24, k=3, s=2, p=1) -> relu -> conv2d(32, k=(3, 5), p="same", d=(1, 2))
    h = h -> relu -> conv2d(32, k=3, p=1, groups=4) -> relu
    h = h -> conv_transpose2d(20, k=3, s=2, p=1, output_padding=1, bias=false) -> relu
    out y = h -> conv2d(3, k=1)
}
network Net1d() {
    in x: float32[N, 8, 20]
    h = x -> conv1d(24, k=5, s=2, d=2) -> relu -> conv_transpose1d(16, k=4, s=2, p=1)
    out y = h -> relu -> conv1d(2, k=1)
}
network Net3d() {
    in x: float32[N, 4, 6, 6, 6]
    out y = x -> conv3d(16, k=3, p=1) -> relu -> conv3d(24, k=(1, 3, 3), s=(1, 2, 2)) -> relu
}
"""


@pytest.mark.parametrize(
    ("source", "network"),
    [(LINEAR, "Net"), (CONV, "Net2d"), (CONV, "Net1d"), (CONV, "Net3d")],
)
def test_factorising_at_the_weights_rank_keeps_the_function(source: str, network: str) -> None:
    graph = dslnet.loads(source, filename="net.net").ir(network)
    weights = _of_rank(graph, init_weights(graph), 3)
    feeds = _feeds(graph, 3)
    before = torch_outputs(graph, weights, feeds)
    for lowrank in (LowRank(energy=1.0), LowRank(rank=3)):
        small = _run(graph, weights, lowrank)
        assert small.graph.num_parameters < graph.num_parameters
        assert_close(_torch_and_ort_agree(small, feeds), before)
    # Truncated (fresh weights have no low rank): another function, in both backends.
    for lowrank in (LowRank(rank=0.5), LowRank(energy=0.9, keep_heads=False)):
        _torch_and_ort_agree(_run(graph, init_weights(graph), lowrank), feeds)


def test_shared_layer_is_factorised_once_for_both_uses() -> None:
    graph = dslnet.loads(LINEAR, filename="net.net").ir("Net")
    result = LowRank(rank=8).run(Model(graph, init_weights(graph)))
    nodes = [n for n in result.model.graph.nodes if n.module.startswith("fc_")]
    assert [n.module for n in nodes] == ["fc_down", "fc_up"] * 2
    assert len({n.name for n in result.model.graph.nodes}) == len(result.model.graph.nodes)
    assert "fc_down.weight" in result.model.weights and "fc.weight" not in result.model.weights
    source = generate_torch(result.model.graph)
    assert "self.fc_down = nn.Linear(64, 8, bias=False)" in source
    assert "self.fc_up = nn.Linear(8, 64)" in source
    assert source.count("self.fc_down(") == 2


def test_new_names_do_not_clash_with_existing_modules() -> None:
    source = """
    network Net() {
        in x: float32[N, 40]
        layer fc = linear(40)
        layer fc_down = linear(40)
        out y = x -> fc -> relu -> fc_down -> relu -> linear(3)
    }
    """
    graph = dslnet.loads(source, filename="net.net").ir("Net")
    weights = init_weights(graph)
    small = _run(graph, weights, LowRank(rank=4))
    modules = [n.module for n in small.graph.nodes if n.module.startswith("fc")]
    assert modules == ["fc_down2", "fc_up", "fc_down_down", "fc_down_up"]
    _torch_and_ort_agree(small, _feeds(graph))


def _with_spectrum(s: Array, shape: tuple[int, int], seed: int = 0) -> Array:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((shape[0], len(s))))
    v, _ = np.linalg.qr(rng.standard_normal((shape[1], len(s))))
    return (u * s) @ v.T


@pytest.mark.parametrize(
    ("kwargs", "rank"),
    [
        ({"energy": 0.5}, 1),
        ({"energy": 0.9}, 2),  # 1 - 4^-r of the energy: 0.75, 0.94
        ({"energy": 0.99}, 4),  # 0.984, 0.996
        ({"energy": 1.0}, None),  # all but the float noise: no saving, left as it is
        ({"rank": 3}, 3),
        ({"rank": 0.25}, 6),
        ({"rank": 0.3}, 8),  # 7.2, rounded up
        ({"rank": 100}, None),  # capped at full rank (24): no saving either
    ],
)
def test_rank_selection_on_known_singular_values(kwargs: dict[str, Any], rank: int | None) -> None:
    graph = dslnet.loads(
        "network Net() {\n in x: float32[N, 32]\n out y = x -> linear(24) -> relu -> linear(3)\n}",
        filename="net.net",
    ).ir("Net")
    weights = init_weights(graph)
    s = 2.0 ** -np.arange(24)  # s_i^2 = 4^-i
    w = _with_spectrum(s, (24, 32)).astype(np.float32)
    weights["linear1.weight"] = w
    result = LowRank(**kwargs).run(Model(graph, weights))
    if rank is None:
        assert not result.modified and result.model.weights is weights
        assert result.notes[0].startswith("left linear1 (r=")
        assert result.notes[0].endswith("/24): no parameter saving")
        return
    down, up = (
        result.model.weights["linear1_down.weight"],
        result.model.weights["linear1_up.weight"],
    )
    assert down.shape == (rank, 32) and up.shape == (24, rank)
    assert f"linear1 (r={rank}/24)" in result.notes[0]
    # The factors are sqrt(S) V^T and U sqrt(S): their product is the best rank-r
    # approximation, and each row of `down` has length sqrt(s_i).
    u, sv, vt = np.linalg.svd(w)
    np.testing.assert_allclose(up @ down, (u[:, :rank] * sv[:rank]) @ vt[:rank], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(down, axis=1), np.sqrt(s[:rank]), rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(up, axis=0), np.sqrt(s[:rank]), rtol=1e-4)
    assert result.model.weights["linear1_up.bias"] is weights["linear1.bias"]
    check_weights(result.model.graph, result.model.weights)


def test_excluded_layers_and_heads_are_left_untouched() -> None:
    graph = dslnet.load(ROOT / "specs" / "mlp.net").ir("MLP", hidden=64)
    weights = init_weights(graph)
    # MLP: linear1 784->64, linear2 64->64, linear3 64->10 (the head).
    result = LowRank(rank=0.25, exclude=["linear1"]).run(Model(graph, weights))
    small = result.model
    verify(small.graph)
    for module in ("linear1", "linear3"):
        assert [n for n in small.graph.nodes if n.module == module]
        assert small.weights[f"{module}.weight"] is weights[f"{module}.weight"]
    assert "left linear1: excluded" in result.notes
    assert "left linear3: network head (keep_heads)" in result.notes
    assert result.notes[0] == "factorised 1 layer(s): linear2 (r=16/64)"
    # include narrows the same way; keep_heads=False lets the head go too.
    only = LowRank(rank=0.25, include=["linear3"], keep_heads=False).run(Model(graph, weights))
    assert only.notes[0] == "factorised 1 layer(s): linear3 (r=3/10)"
    assert {n.module for n in only.model.graph.nodes} >= {"linear1", "linear2", "linear3_up"}


def test_grouped_convolutions_are_left_with_a_note() -> None:
    graph = dslnet.loads(CONV, filename="net.net").ir("Net2d")
    result = LowRank(rank=2).run(Model(graph, init_weights(graph)))
    assert "left conv2d3: cannot be factorised (a grouped convolution)" in result.notes
    assert any(n.module == "conv2d3" and n.op == "conv2d" for n in result.model.graph.nodes)


def test_numpy_ranks_are_counts_or_fractions() -> None:
    assert LowRank(rank=np.int64(8)).rank == 8 and isinstance(LowRank(rank=np.int64(8)).rank, int)
    assert LowRank(rank=np.float32(0.5)).rank == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rank": 4, "energy": 0.9},
        {"energy": 0.0},
        {"energy": 1.5},
        {"energy": -0.2},
        {"rank": 0},
        {"rank": -3},
        {"rank": 0.0},
        {"rank": 1.5},
        {"rank": True},
        {"rank": "0.5"},
        {"energy": "0.9"},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(PassError):
        LowRank(**kwargs)
