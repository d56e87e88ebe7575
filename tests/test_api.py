"""The Python API: load, loads, Program, CompileError."""

from __future__ import annotations

from pathlib import Path

import pytest

import dslnet
from dslnet.ir.graph import Graph

ROOT = Path(__file__).resolve().parents[1]

RESIDUAL = """
block Res(width: int) {
    in x: [N, D]
    h = x -> linear(width) -> relu -> linear(D)
    out y = x + h
}
network Net(hidden: int = 32, depth: int = 2) {
    in x: float32[N, 16]
    h = x -> linear(hidden)
    repeat depth { h = h -> Res(hidden * 2) }
    out logits = linear(h, 3)
}
"""


def test_load_lists_networks_and_builds_ir() -> None:
    prog = dslnet.load(ROOT / "specs" / "mlp.net")
    assert prog.networks == ["MLP", "ResidualMLP"]
    graph = prog.ir("MLP", hidden=64)
    assert isinstance(graph, Graph)
    assert str(graph.type_of("logits")) == "float32[N, 10]"
    assert graph.parameters["linear1.weight"].shape == (64, 784)


def test_loads_with_overrides_changes_structure() -> None:
    prog = dslnet.loads(RESIDUAL, filename="net.net")
    two = prog.ir("Net")
    three = prog.ir("Net", depth=3)
    assert len(three.nodes) > len(two.nodes)
    assert "res3.linear1.weight" in three.parameters
    assert three.parameters["res3.linear1.weight"].shape == (64, 32)
    assert three.args == {"hidden": 32, "depth": 3}


def test_unknown_override_is_a_located_error() -> None:
    prog = dslnet.loads(RESIDUAL, filename="net.net")
    with pytest.raises(dslnet.CompileError) as err:
        prog.ir("Net", hiden=3)
    (diag,) = err.value.diagnostics
    assert "no parameter 'hiden'" in diag.message and "did you mean 'hidden'" in diag.message
    assert diag.span.file == "net.net" and diag.span.line == 7


def test_override_of_wrong_type_names_the_expected_type() -> None:
    prog = dslnet.loads(RESIDUAL, filename="net.net")
    with pytest.raises(dslnet.CompileError, match="expects int, got str"):
        prog.ir("Net", depth="two")


def test_unknown_network_lists_the_ones_there() -> None:
    prog = dslnet.loads(RESIDUAL, filename="net.net")
    with pytest.raises(dslnet.CompileError, match=r"no network 'Nett'.*did you mean 'Net'"):
        prog.ir("Nett")


def test_compile_error_carries_all_diagnostics() -> None:
    text = (
        "network A() {\n  in x: float32[N, 4]\n  y = x -> nope\n  z = x -> linear()\n  out y\n}\n"
    )
    with pytest.raises(dslnet.CompileError) as err:
        dslnet.loads(text, filename="a.net").ir("A")
    messages = [d.message for d in err.value.diagnostics]
    assert any("unknown op or block 'nope'" in m for m in messages)
    rendered = str(err.value)
    assert "a.net:3:" in rendered and "^" in rendered


def test_warnings_do_not_fail() -> None:
    text = (
        "network A() {\n  in x: float32[N, 4]\n  in unused: float32[N, 4]\n  out y = relu(x)\n}\n"
    )
    prog = dslnet.loads(text, filename="a.net")
    assert [w.message for w in prog.warnings] == ["unused input 'unused' of network 'A'"]
    prog.ir("A")


def test_networkx_view_is_derived_from_the_graph() -> None:
    graph = dslnet.loads(RESIDUAL, filename="net.net").ir("Net", depth=1)
    g = graph.to_networkx()
    assert g.number_of_nodes() == len(graph.nodes) + len(graph.inputs) + len(graph.outputs)
    add = next(n for n in graph.nodes if n.op == "add")
    assert g.in_degree(add.name) == 2
