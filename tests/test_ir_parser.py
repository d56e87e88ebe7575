"""The IR text parser (dslnet.ir.parser): print -> parse -> print is the identity, the
parsed graph verifies and lowers, errors are located, and passes test IR-in / IR-out."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import dslnet
from dslnet.backends.onnx_emit import emit_onnx
from dslnet.backends.torch_codegen import generate_torch
from dslnet.core.symbolic import SymExpr, floordiv
from dslnet.core.types import DType
from dslnet.ir.graph import Graph
from dslnet.ir.parser import IRParseError, parse_graph
from dslnet.ir.printer import print_graph
from dslnet.ir.verifier import verify
from dslnet.passes.base import Model
from dslnet.passes.canonicalize import Canonicalize

if TYPE_CHECKING:
    from conftest import SpecNetwork

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = sorted((ROOT / "tests" / "golden").glob("*/*.ir"))


@functools.cache
def _program(spec: Path) -> dslnet.Program:
    return dslnet.load(spec)


def _shape_of(graph: Graph) -> dict[str, Any]:
    """Everything the text carries: the graph less call frames, and spans as printed."""

    def where(span: Any) -> tuple[str, int, int]:
        return (os.path.basename(span.file), span.line, span.col)

    return {
        "head": (graph.name, graph.args, graph.inputs, graph.outputs, graph.values),
        "parameters": list(graph.parameters.items()),
        "modules": [
            (m.model_dump(exclude={"span"}), where(m.span)) for m in graph.modules.values()
        ],
        "nodes": [(n.model_dump(exclude={"span", "chain"}), where(n.span)) for n in graph.nodes],
    }


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_golden_file_reads_back_to_the_same_text(golden: Path) -> None:
    text = golden.read_text()
    graph = parse_graph(text, str(golden))
    verify(graph)
    assert print_graph(graph) == text


def test_every_network_reads_back_as_the_graph_printed(spec_network: SpecNetwork) -> None:
    graph = spec_network.graph()
    text = print_graph(graph)
    parsed = parse_graph(text, f"{spec_network.name}.ir")
    verify(parsed)
    assert print_graph(parsed) == text
    assert _shape_of(parsed) == _shape_of(graph)  # node names and modules included


FEATURES = """\
block Head(width: int, act: str = "relu", scale: float = 0.5, keep: bool = true,
           sizes: list = [1, 2]) {
    in x: [N, C]
    @prune(0.25)
    h = linear(x, width, init="normal")
    out y = h -> relu
}

network Features(width: int = 8, mode: str = "a \\"q\\" \\\\") {
    in x: float32[N, 3, H, W]
    in s: float32[N, T, 4]
    layer drop = dropout(0.1)
    layer fc = linear(6)
    @freeze
    c = conv2d(x, 4, k=3, p=1, bias=false)
    b = batchnorm(c)
    m, idx = maxpool2d(b, 2, return_indices=true)
    f = adaptive_avgpool2d(m, 1) -> flatten
    seq, hn, _cn = lstm(s, 6)
    @quantize(skip)
    g = Head(drop(f), width)
    g2 = Head(drop(g), 6, act="gelu", scale=1e-05, keep=false, sizes=[3, "M"])
    out a = fc(g2)
    out b2 = fc(seq)
    out i = idx
    out h = hn
    out z = reshape(m, [-1, 4])
}
"""


def test_marks_inits_shared_layers_buffers_and_multiple_outputs_read_back() -> None:
    graph = dslnet.loads(FEATURES, "feat.net").ir("Features")
    text = print_graph(graph)
    for shown in ("[@freeze]", "@prune(0.25)]", "init=normal", "buffer ", "@fc", "idx: int64"):
        assert shown in text  # the spec exercises what it is meant to
    parsed = parse_graph(text)
    verify(parsed)
    assert print_graph(parsed) == text
    # All but one thing the text leaves out: the first use of `layer drop = dropout(0.1)`
    # is written as any dropout, so it gets a dropout's own name.
    renamed = {("drop", "drop"): ("dropout1", "dropout1")}
    graph.nodes = [
        n.model_copy(update=dict(zip(("name", "module"), renamed.get((n.name, n.module), ()))))
        for n in graph.nodes
    ]
    assert _shape_of(parsed) == _shape_of(graph)


def test_values_of_every_kind_read_back() -> None:
    args = (
        'a=none, b=true, c=false, d=-1, e=-0.5, f=1e-05, g=inf, h=-inf, i="x \\"y\\" \\\\ z", '
        'j=[1, [2, "M"]], k=int64, l=2*H + 1, m=floor((W - 1)/2) + 1, n=-N, o=H**2*W, p=[]'
    )
    text = f"network Values({args})\n  # 0 parameter tensors, 0 values\n"
    graph = parse_graph(text)
    assert print_graph(graph) == text
    h, w, n = (SymExpr.symbol(s) for s in "HWN")
    assert graph.args == {
        "a": None,
        "b": True,
        "c": False,
        "d": -1,
        "e": -0.5,
        "f": 1e-05,
        "g": float("inf"),
        "h": float("-inf"),
        "i": 'x "y" \\ z',
        "j": (1, (2, "M")),
        "k": DType.int64,
        "l": 2 * h + 1,
        "m": floordiv(w - 1, 2) + 1,
        "n": -n,
        "o": h * h * w,
        "p": (),
    }


def _onnx_nodes(graph: Graph) -> list[Any]:
    model = emit_onnx(graph)
    body = model.graph
    return [
        [str(n) for n in body.node],
        [(i.name, list(i.dims)) for i in body.initializer],
        [str(v) for v in (*body.input, *body.output)],
    ]


@pytest.mark.parametrize(
    ("spec", "network", "same_torch"),
    [("mlp", "MLP", True), ("mnist", "MNISTNet", True), ("mlp", "ResidualMLP", False)],
)
def test_the_parsed_graph_lowers_as_the_original(spec: str, network: str, same_torch: bool) -> None:
    path = ROOT / "specs" / f"{spec}.net"
    graph = _program(path).ir(network)
    parsed = parse_graph(print_graph(graph))
    assert _onnx_nodes(parsed) == _onnx_nodes(graph)
    source = generate_torch(parsed, str(path))
    compile(source, f"{network}.py", "exec")
    # The text has no block calls: a network with blocks becomes one flat class.
    assert (source == generate_torch(graph, str(path))) is same_torch
    assert bool(graph.calls) is not same_torch and not parsed.calls


NET = """\
network Net()
  in x: float32[N, 4]
  # 2 parameter tensors, 40 values
  param fc.weight: float32[8, 4]
  param fc.bias: float32[8]
  y: float32[N, 8] = linear(x, features=8, bias=true)  @fc  # t.net:3:7
  out y = y: float32[N, 8]
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "linear(x,",
            "linear($x,",
            "net.ir:6:29: error: unexpected character '$'\n"
            "   6 |   y: float32[N, 8] = linear($x, features=8, bias=true)  @fc  # t.net:3:7\n"
            "                                   ^",
        ),
        (
            "linear(x,",
            "lineer(x,",
            "net.ir:6:22: error: unknown op 'lineer' (did you mean 'linear'?)\n"
            "   6 |   y: float32[N, 8] = lineer(x, features=8, bias=true)  @fc  # t.net:3:7\n"
            "                            ^^^^^^",
        ),
        (
            "y: float32[N, 8] =",
            "y: float32[N, 9] =",
            "net.ir:6:6: error: 'y' is declared float32[N, 9] but linear gives float32[N, 8]\n"
            "   6 |   y: float32[N, 9] = linear(x, features=8, bias=true)  @fc  # t.net:3:7\n"
            "            ^^^^^^^^^^^^^",
        ),
    ],
    ids=["bad-token", "unknown-op", "type-mismatch"],
)
def test_errors_are_located(old: str, new: str, expected: str) -> None:
    with pytest.raises(IRParseError) as caught:
        parse_graph(NET.replace(old, new), "net.ir")
    assert caught.value.render() == expected
    assert isinstance(caught.value, dslnet.CompileError)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("linear(x,", "linear(z,", "6:29: value 'z' is not defined before this line"),
        ("features=8", "features=8.0", "6:22: argument 'features' of linear expects"),
        ("[8, 4]", "[8, 5]", "6:22: linear needs `param fc.weight: float32[8, 4]`"),
        ("out y = y", "out y = q", "7:11: value 'q' is not defined"),
        ("  # t.net:3:7", "  # t.net:3", "6:61: expected a location 'file:line:col'"),
    ],
    ids=["undefined-input", "attribute-type", "parameter-shape", "undefined-output", "location"],
)
def test_more_errors_name_their_place(old: str, new: str, message: str) -> None:
    with pytest.raises(IRParseError) as caught:
        parse_graph(NET.replace(old, new), "net.ir")
    place, text = message.split(": ", 1)
    error = caught.value
    assert f"{error.span.line}:{error.span.col}" == place and error.message.startswith(text)


def test_a_node_line_without_location_is_placed_in_the_ir_text() -> None:
    graph = parse_graph(NET.replace("  # t.net:3:7", ""), "net.ir")
    assert str(graph.nodes[0].span) == "net.ir:6:3"


# A pass tested IR-in / IR-out: canonicalize folds the batchnorm into the conv before it,
# drops the eval-mode dropout and the node nothing reads.
BEFORE = """\
network Net()
  in x: float32[N, 3, 8, 8]
  # 6 parameter tensors, 116 values
  param conv.weight: float32[4, 3, 3, 3]
  param bn.weight: float32[4]
  param bn.bias: float32[4]
  buffer bn.running_mean: float32[4]
  buffer bn.running_var: float32[4]
  buffer bn.num_batches_tracked: int64[]
  c: float32[N, 4, 8, 8] = conv2d(x, out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1, groups=1, bias=false)  @conv  # t.net:3:7
  b: float32[N, 4, 8, 8] = batchnorm(c, eps=1e-05, momentum=0.1, affine=true)  @bn  # t.net:4:7
  r: float32[N, 4, 8, 8] = relu(b)  # t.net:5:7
  d: float32[N, 4, 8, 8] = dropout(r, p=0.5)  # t.net:6:7
  unused: float32[N, 4, 8, 8] = sigmoid(d)  # t.net:7:7
  out y = d: float32[N, 4, 8, 8]
"""  # noqa: E501

AFTER = """\
network Net()
  in x: float32[N, 3, 8, 8]
  # 2 parameter tensors, 112 values
  param conv.weight: float32[4, 3, 3, 3]
  param conv.bias: float32[4]
  c: float32[N, 4, 8, 8] = conv2d(x, out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1, groups=1, bias=true)  @conv  # t.net:3:7
  r: float32[N, 4, 8, 8] = relu(c)  # t.net:5:7
  out y = r: float32[N, 4, 8, 8]
"""  # noqa: E501


def test_canonicalize_ir_in_ir_out() -> None:
    graph = parse_graph(BEFORE, "before.ir")
    assert print_graph(graph) == BEFORE
    weights: dict[str, Any] = {
        "conv.weight": np.ones((4, 3, 3, 3), np.float32),
        "bn.weight": np.full(4, 2.0, np.float32),
        "bn.bias": np.full(4, 0.5, np.float32),
        "bn.running_mean": np.zeros(4, np.float32),
        "bn.running_var": np.full(4, 1.0 - 1e-05, np.float32),  # scale = weight exactly
        "bn.num_batches_tracked": np.zeros((), np.int64),
    }
    result = Canonicalize().run(Model(graph, weights))
    verify(result.model.graph)
    assert print_graph(result.model.graph) == AFTER
    assert np.allclose(result.model.weights["conv.weight"], 2.0)
    assert np.allclose(result.model.weights["conv.bias"], 0.5)
    assert print_graph(parse_graph(AFTER)) == AFTER


def test_graphs_the_passes_make_read_back() -> None:
    reduced = _program(ROOT / "specs" / "mnist.net").optimize("MNISTNet", fold=True, prune=0.3)
    text = print_graph(reduced.graph)
    parsed = parse_graph(text)
    verify(parsed)
    assert print_graph(parsed) == text
    assert _shape_of(parsed) == _shape_of(reduced.graph)


def test_the_parser_needs_no_front_end() -> None:
    """dslnet.ir.parser imports neither the front end (nor lark), torch nor onnx; the
    package's own __init__ is left out, as what it loads is another matter."""
    code = (
        "import sys, types\n"
        "package = types.ModuleType('dslnet'); package.__path__ = ['dslnet']\n"
        "sys.modules['dslnet'] = package\n"
        "from dslnet.ir.parser import parse_graph\n"
        "parse_graph(open('tests/golden/mlp/MLP.ir').read())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "             ('lark', 'torch', 'onnx') or m.startswith('dslnet.frontend')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
