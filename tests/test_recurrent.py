"""rnn/lstm/gru against torch.nn with copied weights, and ONNX Runtime against both."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx

STACKED = {"num_layers": 2, "bidirectional": True}
CASES = [
    ("lstm", torch.nn.LSTM, "", {}),
    ("lstm", torch.nn.LSTM, ", num_layers=2, bidirectional=true", STACKED),
    ("gru", torch.nn.GRU, "", {}),
    ("gru", torch.nn.GRU, ", num_layers=2, bidirectional=true", STACKED),
    ("rnn", torch.nn.RNN, ", num_layers=2", {"num_layers": 2}),
    ("rnn", torch.nn.RNN, ', nonlinearity="relu", bidirectional=true',
     {"nonlinearity": "relu", "bidirectional": True}),
]  # fmt: skip


def _spec(op: str, options: str, with_state: bool) -> str:
    states = ("h0", "c0") if op == "lstm" else ("h0",)
    outs = ("y", "h", "c") if op == "lstm" else ("y", "h")
    lines = ["network R() {", "    in x: float32[N, T, 6]"]
    given = ""
    if with_state:
        dirs = 2 if "bidirectional" in options else 1
        layers = 2 if "num_layers=2" in options else 1
        lines += [f"    in {s}: float32[{layers * dirs}, N, 5]" for s in states]
        given = ", " + ", ".join(states)
    lines.append(f"    {', '.join(outs)} = {op}(x{given}, 5{options})")
    lines += [f"    out {o} = {o}" for o in outs]
    return "\n".join([*lines, "}"]) + "\n"


def _flatten(result: object) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    assert isinstance(result, tuple)
    return [t for item in result for t in _flatten(item)]


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize(("op", "torch_class", "options", "kwargs"), CASES)
def test_matches_torch_nn_with_copied_weights(
    op: str, torch_class: type, options: str, kwargs: dict[str, object], with_state: bool
) -> None:
    prog = dslnet.loads(_spec(op, options, with_state), filename="r.net")
    torch.manual_seed(0)
    reference = torch_class(6, 5, batch_first=True, **kwargs).eval()
    ours = prog.torch("R").eval()
    ours.load_state_dict({f"{op}1.{k}": v for k, v in reference.state_dict().items()})
    graph = prog.ir("R")
    assert graph.num_parameters == sum(p.numel() for p in reference.parameters())
    assert sum(p.numel() for p in ours.parameters()) == graph.num_parameters

    model = emit_onnx(graph, ours.state_dict())
    rng = np.random.default_rng(1)
    for length in (1, 7):  # one ONNX model, two sequence lengths
        feeds = {"x": rng.standard_normal((3, length, 6)).astype(np.float32)}
        for v in graph.inputs[1:]:
            shape = tuple(d if isinstance(d, int) else 3 for d in graph.type_of(v).shape)
            feeds[v] = rng.standard_normal(shape).astype(np.float32)
        tensors = [torch.from_numpy(a) for a in feeds.values()]
        with torch.no_grad():
            got = _flatten(ours(*tensors))
            state = tuple(tensors[1:])
            args = (tensors[0],) if not state else (tensors[0], state if op == "lstm" else state[0])
            expected = _flatten(reference(*args))
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        ort = run_onnx(model, feeds)
        for (name, _), b in zip(graph.outputs, expected, strict=True):
            np.testing.assert_allclose(ort[name], b.numpy(), atol=1e-5, rtol=0)


def test_sequence_length_and_batch_stay_symbolic_in_onnx() -> None:
    prog = dslnet.loads(_spec("lstm", ", num_layers=2, bidirectional=true", False))
    model = prog.onnx("R")
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", "T", 6]
    out = {o.name: o for o in model.graph.output}["y"]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", "T", 10]


def test_time_major_input() -> None:
    text = "network R() {\n in x: float32[T, N, 3]\n out y = gru(x, 4, batch_first=false).y\n}\n"
    prog = dslnet.loads(text)
    reference = torch.nn.GRU(3, 4).eval()
    ours = prog.torch("R").eval()
    ours.load_state_dict({f"gru1.{k}": v for k, v in reference.state_dict().items()})
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x)[0])
    got = run_onnx(emit_onnx(prog.ir("R"), ours.state_dict()), {"x": x.numpy()})["y"]
    np.testing.assert_allclose(got, reference(x)[0].detach().numpy(), atol=1e-5)


def test_state_handover_reads_as_torch() -> None:
    text = (
        "network S() {\n in a: float32[N, S, 3]\n in b: float32[N, T, 3]\n"
        " _y, h, c = lstm(a, 4)\n out y = lstm(b, h, c, 4).y\n}\n"
    )
    source = dslnet.loads(text).torch_source("S")
    assert "_, (h, c) = self.lstm1(a)" in source  # the unread sequence output is `_`
    assert "self.lstm2(b, (h, c))" in source


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("in x: float32[N, 6]\nout y = lstm(x, 4).y", "lstm needs a float input [N, T, F]"),
        (
            "in x: float32[N, T, 6]\nin h0: float32[2, N, 4]\nout y = gru(x, h0, 4).y",
            "initial state h0 must be float32[1, N, 4]",
        ),
        (
            "in x: float32[N, T, 6]\nin h0: float32[1, N, 4]\nout y = lstm(x, h0, 4).y",
            "together or not at all",
        ),
        ("in x: float32[N, T, 6]\nout y = x -> lstm(4) -> relu", "pick one with .name"),
    ],
)
def test_recurrent_errors_are_located(body: str, message: str) -> None:
    text = "network Bad() {\n" + body + "\n}\n"
    with pytest.raises(dslnet.CompileError) as err:
        dslnet.loads(text, filename="bad.net").ir("Bad")
    assert any(message in d.message for d in err.value.diagnostics), err.value.diagnostics
    assert all(d.span.file == "bad.net" and d.span.line > 1 for d in err.value.diagnostics)
