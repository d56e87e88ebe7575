"""Errors after the front end are located like front-end ones (dslnet.ir.located).

A failure injected into a lowering (one op's torch codegen, one op's ONNX emission),
into a pass and into the verifier comes out, through the Python API and through
`dslnet compile`, as `file:line:col: error:` at the node's span with the source line,
then one note per block call on the way to it; never a traceback. A bug is worded
"internal error" and exits 3; a pass refusing a layer is the user's error, exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dslnet
from dslnet.cli import main
from dslnet.ir.graph import Graph, Node
from dslnet.ir.located import InternalError, LocatedError, caused_by, lowering_node
from dslnet.ir.verifier import VerifyError
from dslnet.ops import registry
from dslnet.passes import lowrank
from dslnet.passes.base import PassError
from dslnet.passes.canonicalize import Canonicalize

SPEC = """\
block Inner(n: int) {
    in x: [N, D]
    out x -> linear(n) -> relu
}

block Outer(n: int) {
    in x: [N, D]
    out x -> Inner(n) -> linear(4)
}

network Net() {
    in x: float32[N, 16]
    out y = x -> Outer(32)
}
"""
# Where the spec writes the inner linear, and the two call sites on the way to it.
LINEAR_AT = ":3:14: error: "
CHAIN = ("note: in block 'Inner' called here", "note: in block 'Outer' called here")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "net.net"
    path.write_text(SPEC)
    return path


def _op_class(graph: Graph) -> type[Any]:
    """The class of the inner linear's op (the first node's)."""
    op = registry.get(graph.nodes[0].op)
    assert op is not None
    return type(op)


def _inject(monkeypatch: pytest.MonkeyPatch, spec: Path, method: str) -> None:
    """Make `method` of the inner linear's op raise, as a buggy op would."""

    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("injected")

    graph = dslnet.load(spec).ir("Net")
    monkeypatch.setattr(_op_class(graph), method, broken)


def _assert_located(text: str, spec: Path, header: str = LINEAR_AT) -> None:
    assert text.startswith(f"{spec}{header}"), text
    lines = text.splitlines()
    assert lines[1] == "   3 |     out x -> linear(n) -> relu", text  # the source line
    assert lines[2].strip() == "^" * len("linear(n)"), text  # and the caret under it
    positions = [text.index(note) for note in CHAIN]
    assert positions == sorted(positions), text  # innermost call first
    assert "Traceback" not in text


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


# --- lowerings --------------------------------------------------------------------------


def test_a_torch_lowering_failure_is_located_at_its_node(
    spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _inject(monkeypatch, spec, "torch_module")
    with pytest.raises(InternalError) as info:
        dslnet.load(spec).torch_source("Net")
    text = str(info.value)
    _assert_located(text, spec, LINEAR_AT + "internal error: PyTorch lowering of linear ")
    assert "failed: RuntimeError: injected" in text
    assert "note: raised in broken() at tests/test_located_errors.py:" in text

    code, err = _cli(capsys, "compile", str(spec), "--emit", "torch")
    assert code == 3
    _assert_located(err, spec, LINEAR_AT + "internal error: PyTorch lowering")
    assert "dslnet: internal error (this is a bug in dslnet; please report it" in err


def test_an_onnx_lowering_failure_is_located_at_its_node(
    spec: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _inject(monkeypatch, spec, "onnx")
    with pytest.raises(InternalError) as info:
        dslnet.load(spec).onnx("Net")
    _assert_located(str(info.value), spec, LINEAR_AT + "internal error: ONNX lowering of linear ")

    out = tmp_path / "net.onnx"
    code, err = _cli(capsys, "compile", str(spec), "--emit", "onnx", "-o", str(out))
    assert code == 3 and not out.exists()
    _assert_located(err, spec, LINEAR_AT + "internal error: ONNX lowering")


def test_a_located_error_passes_through_a_lowering_unchanged() -> None:
    graph = dslnet.loads(SPEC).ir("Net")
    node = graph.nodes[0]
    refused = PassError("refused", node)
    with pytest.raises(PassError) as info, lowering_node(node, "ONNX"):
        raise refused
    assert info.value is refused


# --- passes -----------------------------------------------------------------------------


def test_a_pass_that_raises_is_located_at_the_node_it_was_at(
    spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object) -> Any:
        raise ValueError("injected")

    monkeypatch.setattr(lowrank, "_factors", broken)
    with pytest.raises(InternalError) as info:
        dslnet.load(spec).optimize("Net", lowrank_rank=2)
    text = str(info.value)
    _assert_located(text, spec, LINEAR_AT + "internal error: pass 'lowrank' failed: ValueError")

    code, err = _cli(capsys, "compile", str(spec), "--lowrank-rank", "2")
    assert code == 3
    _assert_located(err, spec, LINEAR_AT + "internal error: pass 'lowrank' failed")


def test_a_pass_refusing_a_layer_is_a_located_user_error(
    spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(node: Node, rank: int) -> Any:
        raise PassError("lowrank cannot factor this layer", node)

    monkeypatch.setattr(lowrank, "_factoring", refuse)
    with pytest.raises(PassError) as info:
        dslnet.load(spec).optimize("Net", lowrank_rank=2)
    assert info.value.message == "lowrank cannot factor this layer"
    _assert_located(str(info.value), spec, LINEAR_AT + "lowrank cannot factor this layer")

    code, err = _cli(capsys, "compile", str(spec), "--lowrank-rank", "2")
    assert code == 1
    _assert_located(err, spec, LINEAR_AT + "lowrank cannot factor this layer")
    assert "internal error" not in err


@pytest.mark.parametrize(
    ("scorer", "message"),
    [
        (lambda info, weights: [1.0, 2.0], "gave scores of shape [2] for a group of 32 channels"),
        (lambda info, weights: 1 / 0, "failed: ZeroDivisionError: division by zero"),
    ],
)
def test_a_pruning_criterion_that_does_not_fit_is_reported_at_its_group(
    spec: Path, scorer: Any, message: str
) -> None:
    with pytest.raises(PassError) as info:
        dslnet.load(spec).optimize("Net", prune=0.5, prune_by=scorer)
    _assert_located(str(info.value), spec, LINEAR_AT + "the pruning criterion ")
    assert message in info.value.message


def test_a_pass_error_about_the_request_has_no_place() -> None:
    error = PassError("a sparsity ratio must be in [0, 1), got 1.5")
    assert str(error) == error.message and error.diagnostic() is None


# --- the verifier -----------------------------------------------------------------------


def _swap_first_two(self: Canonicalize, model: Any) -> Any:
    """A pass with a bug: it puts the inner relu before the linear it reads."""
    result = _original_canonicalize(self, model)
    graph = result.model.graph
    nodes = [graph.nodes[1], graph.nodes[0], *graph.nodes[2:]]
    broken = result.model.__class__(graph.model_copy(update={"nodes": nodes}), result.model.weights)
    return result.__class__(broken, True, result.notes)


_original_canonicalize = Canonicalize.run


def test_a_graph_a_pass_broke_is_an_internal_error_at_the_node(
    spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Canonicalize, "run", _swap_first_two)
    with pytest.raises(VerifyError) as info:
        dslnet.load(spec).optimize("Net", fold=True)
    text = str(info.value)
    relu_at = ":3:27: error: internal error: pass 'canonicalize' left a broken graph: node "
    assert text.startswith(f"{spec}{relu_at}"), text
    assert "before it is defined" in text
    assert all(note in text for note in CHAIN) and "Traceback" not in text

    code, err = _cli(capsys, "compile", str(spec), "--fold")
    assert code == 3
    assert err.startswith(f"{spec}{relu_at}"), err
    assert all(note in err for note in CHAIN) and "Traceback" not in err


def test_errors_render_as_json_for_editors(
    spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    _inject(monkeypatch, spec, "torch_module")
    code = main(["compile", str(spec), "--emit", "torch", "--format", "json"])
    out = capsys.readouterr()
    assert code == 3
    document = json.loads(out.err.splitlines()[0])
    (found,) = document["diagnostics"]
    assert found["range"]["start"] == {"line": 3, "col": 14}
    assert [n["message"] for n in found["notes"]][:2] == [c.split(": ", 1)[1] for c in CHAIN]


def test_a_located_error_without_a_file_on_disk_still_names_the_place() -> None:
    graph = dslnet.loads(SPEC, filename="gone.net").ir("Net")
    try:
        raise KeyError("x")
    except KeyError as err:
        error = caused_by(err, "something", graph.nodes[0])
    text = str(error)
    assert text.startswith("gone.net:3:14: error: internal error: something failed: KeyError")
    assert "gone.net:8:14: note: in block 'Inner' called here" in text
    assert isinstance(error, RuntimeError) and isinstance(error, LocatedError)
