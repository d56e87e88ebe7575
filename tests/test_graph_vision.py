"""GCN and GAT against dense references written here; ViT's patches against nn.Conv2d;
the library's parameter counts derived by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _graph(nodes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features and a symmetric 0/1 adjacency with self-loops."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(nodes, 5, generator=gen)
    edges = (torch.rand(nodes, nodes, generator=gen) < 0.3).float()
    adj = ((edges + edges.T + torch.eye(nodes)) > 0).float()
    return x, adj


def _normalised(adj: torch.Tensor) -> torch.Tensor:
    degree = adj.sum(1).rsqrt()
    return degree[:, None] * adj * degree[None, :]


def _compare_with_onnx(prog: dslnet.Program, name: str, module: torch.nn.Module) -> None:
    model = emit_onnx(prog.ir(name), module.state_dict())
    for nodes in (3, 11):  # one ONNX model, two graph sizes
        x, adj = _graph(nodes, nodes)
        with torch.no_grad():
            expected = module(x, adj).numpy()
        got = run_onnx(model, {"x": x.numpy(), "adj": adj.numpy()})["y"]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_gcn_layer_is_adj_x_w_plus_b() -> None:
    prog = dslnet.loads(
        "network G() {\n in x: float32[V, 5]\n in adj: float32[V, V]\n"
        " out y = gcn_conv(x, adj, 4)\n}\n"
    )
    module = prog.torch("G").eval()
    x, adj = _graph(6, 0)
    norm = _normalised(adj)
    weight, bias = module.gcn1.linear.weight, module.gcn1.bias
    with torch.no_grad():
        torch.testing.assert_close(module(x, norm), norm @ (x @ weight.T) + bias)
    _compare_with_onnx(prog, "G", module)


def _gat_reference(
    x: torch.Tensor, adj: torch.Tensor, layer: torch.nn.Module, heads: int, concat: bool
) -> torch.Tensor:
    """The GAT equations node by node: alpha_ij = softmax_j(leaky(a_dst.h_i + a_src.h_j))."""
    h = (x @ layer.linear.weight.T).view(x.shape[0], heads, -1)
    out = torch.zeros(x.shape[0], heads, h.shape[-1])
    for i in range(x.shape[0]):
        neighbours = adj[i].nonzero().flatten()
        for k in range(heads):
            e = F.leaky_relu(
                (h[i, k] * layer.att_dst[k]).sum() + (h[neighbours, k] * layer.att_src[k]).sum(-1),
                0.2,
            )
            out[i, k] = (e.softmax(0)[:, None] * h[neighbours, k]).sum(0)
    merged = out.flatten(1) if concat else out.mean(1)
    return merged + layer.bias


@pytest.mark.parametrize("concat", [True, False])
def test_gat_layer_matches_the_equations(concat: bool) -> None:
    prog = dslnet.loads(
        "network G() {\n in x: float32[V, 5]\n in adj: float32[V, V]\n"
        f" out y = gat_conv(x, adj, 3, heads=4, concat={str(concat).lower()})\n}}\n"
    )
    module = prog.torch("G").eval()
    with torch.no_grad():
        module.gat1.bias.normal_()
        x, adj = _graph(7, 1)
        torch.testing.assert_close(
            module(x, adj), _gat_reference(x, adj, module.gat1, 4, concat), atol=1e-5, rtol=0
        )
    _compare_with_onnx(prog, "G", module)


def test_gat_node_without_edges_gets_zero_attention_not_nan() -> None:
    prog = dslnet.loads(
        "network G() {\n in x: float32[V, 5]\n in adj: float32[V, V]\n"
        " out y = gat_conv(x, adj, 2, bias=false)\n}\n"
    )
    module = prog.torch("G").eval()
    x, adj = _graph(4, 2)
    adj[2] = 0.0
    with torch.no_grad():
        y = module(x, adj)
    assert torch.isfinite(y).all() and (y[2] == 0).all()
    got = run_onnx(
        emit_onnx(prog.ir("G"), module.state_dict()), {"x": x.numpy(), "adj": adj.numpy()}
    )
    np.testing.assert_allclose(got["y"], y.numpy(), atol=1e-6)


def test_patch_embedding_is_a_strided_conv_flattened() -> None:
    prog = dslnet.loads(
        "network P() {\n in x: float32[N, 3, 16, 8]\n out y = patch_embed(x, 6, 4)\n}\n"
    )
    module = prog.torch("P").eval()
    conv = torch.nn.Conv2d(3, 6, kernel_size=4, stride=4)
    module.load_state_dict({"patches1.proj.weight": conv.weight, "patches1.proj.bias": conv.bias})
    x = torch.randn(2, 3, 16, 8)
    with torch.no_grad():
        expected = conv(x).flatten(2).transpose(1, 2)
        torch.testing.assert_close(module(x), expected)
    got = run_onnx(emit_onnx(prog.ir("P"), module.state_dict()), {"x": x.numpy()})["y"]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "network", "overrides", "params"),
    [
        ("gnn.net", "GCN", {}, 1433 * 16 + 16 + 16 * 7 + 7),  # 23,063
        ("gnn.net", "GAT", {}, (1433 * 64 + 2 * 64 + 64) + (64 * 7 + 2 * 7 + 7)),  # 92,373
        # NeuMF: GMF and MLP embeddings, tower 64-32-16-8, fused linear(16 -> 1).
        ("ncf.net", "NCF", {}, (6040 + 3706) * (8 + 32) + 2080 + 528 + 136 + 17),
        # ViT-B/16 has 86,567,656 parameters (torchvision's vit_b_16).
        (
            "vit.net",
            "ViT",
            {"image": 224, "patch": 16, "dim": 768, "depth": 12, "heads": 12, "mlp": 3072,
             "classes": 1000},
            86_567_656,
        ),
    ],
)  # fmt: skip
def test_library_parameter_counts(
    spec: str, network: str, overrides: dict[str, int], params: int
) -> None:
    assert dslnet.load(SPECS / spec).summary(network, **overrides)["params"] == params


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "in x: float32[V, 5]\nin adj: float32[W, W]\nout y = gcn_conv(x, adj, 3)",
            "the adjacency must be float32[V, V]",
        ),
        (
            "in x: float32[V, 5]\nin adj: float32[V, V, 2]\nout y = gat_conv(x, adj, 3)",
            "the adjacency must be float32[V, V]",
        ),
        (
            "in x: float32[N, 3, 30, 32]\nout y = patch_embed(x, 8, 4)",
            "H = 30 of float32[N, 3, 30, 32] is not a multiple of the patch size 4",
        ),
        ("in x: float32[N, 8]\nout y = class_token(x)", "class_token needs float tokens"),
    ],
)
def test_graph_and_vision_errors_are_located(body: str, message: str) -> None:
    text = "network Bad() {\n" + body + "\n}\n"
    with pytest.raises(dslnet.CompileError) as err:
        dslnet.loads(text, filename="bad.net").ir("Bad")
    (diag,) = err.value.diagnostics
    assert message in diag.message
    assert diag.span.file == "bad.net" and diag.span.line == text.count("\n") - 1
