"""Embeddings, positional encodings and index ops against torch and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx

TIED = """
network Tied(vocab: int = 30, d: int = 6) {
    layer tok = embedding(vocab, d, padding_idx=0)
    in ids: int64[N, T]
    h = tok(ids) -> layernorm
    out logits = tok(h)
}
"""


def test_embedding_matches_torch_and_keeps_the_padding_row_zero() -> None:
    prog = dslnet.loads(
        "network E() {\n in ids: int64[N, T]\n out y = embedding(ids, 12, 5, padding_idx=-1)\n}"
    )
    module = prog.torch("E")
    reference = torch.nn.Embedding(12, 5, padding_idx=11)
    assert module.state_dict()["embedding1.weight"][11].abs().sum() == 0
    module.load_state_dict({"embedding1.weight": reference.weight.detach().clone()})
    ids = torch.tensor([[0, 11, 3], [7, 7, 2]])
    torch.testing.assert_close(module(ids), reference(ids), rtol=0, atol=0)
    assert prog.ir("E").num_parameters == 60


def test_tied_projection_shares_one_weight() -> None:
    prog = dslnet.loads(TIED)
    module = prog.torch("Tied").eval()
    assert [name for name, _ in module.named_parameters()] == [
        "tok.weight",
        "layernorm1.weight",
        "layernorm1.bias",
    ]
    ids = torch.tensor([[1, 2, 0, 5]])
    with torch.no_grad():
        h = torch.nn.functional.layer_norm(module.tok(ids), (6,))
        expected = h @ module.tok.weight.T
        torch.testing.assert_close(module(ids), expected)
    model = emit_onnx(prog.ir("Tied"), module.state_dict())
    assert [t.name for t in model.graph.initializer].count("tok.weight") == 1
    for length in (2, 9):  # one ONNX model, two sequence lengths
        feed = np.random.default_rng(length).integers(0, 30, (3, length))
        with torch.no_grad():
            ref = module(torch.from_numpy(feed)).numpy()
        np.testing.assert_allclose(run_onnx(model, {"ids": feed})["logits"], ref, atol=1e-5)


def test_sinusoidal_table_is_the_published_formula() -> None:
    prog = dslnet.loads(
        "network P() {\n in x: float32[1, T, 7]\n out y = sinusoidal_positions(x)\n}"
    )
    module = prog.torch("P")
    table = module(torch.zeros(1, 20, 7))[0].numpy()
    assert not list(module.state_dict())  # fixed, so not a weight
    for pos in (0, 3, 19):
        for i in range(7):
            angle = pos / 10000 ** ((i - i % 2) / 7)
            assert table[pos, i] == pytest.approx(
                math.sin(angle) if i % 2 == 0 else math.cos(angle), abs=1e-5
            )
    model = emit_onnx(prog.ir("P"), {})
    got = run_onnx(model, {"x": np.zeros((1, 20, 7), np.float32)})["y"][0]
    np.testing.assert_allclose(got, table, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("in x: float32[N, 4]\nout y = embedding(x, 10, 3)", "takes int64 or int32 ids"),
        ("in x: int64[N]\nout y = embedding(x, 10, 3, padding_idx=10)", "padding_idx 10"),
        ("in x: float32[N, 9, 4]\nout y = learned_positions(x, 8)", "more than max_len 8"),
        ("in x: float32[N, 4]\nout y = select(x, 4, axis=1)", "index 4 is out of range"),
        ("in x: float32[N, 4]\nin i: float32[3]\nout y = gather(x, i)", "int64 or int32"),
    ],
)
def test_lookup_errors_are_located(body: str, message: str) -> None:
    text = "network Bad() {\n" + body + "\n}\n"
    with pytest.raises(dslnet.CompileError) as err:
        dslnet.loads(text, filename="bad.net").ir("Bad")
    (diag,) = err.value.diagnostics
    assert message in diag.message
    assert diag.span.line == text.count("\n") - 1  # the line of the `out`
