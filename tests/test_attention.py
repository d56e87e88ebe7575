"""Attention against torch.nn with copied weights; the transformer library's counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _padding(batch: int, length: int) -> torch.Tensor:
    """Later keys padded, a different number per row; the first key is always kept."""
    pad = torch.zeros(batch, length, dtype=torch.bool)
    for row in range(batch):
        pad[row, length - row % length :] = row % length != 0
    return pad


MHA_CASES = {
    "self": ("in x: float32[N, T, 8]", "multihead_attention(x, heads=2)", {}),
    "causal": ("in x: float32[N, T, 8]", "multihead_attention(x, heads=4, causal=true)", {}),
    "cross-padded": (
        "in x: float32[N, T, 8]\n in m: float32[N, S, 8]\n in pad: bool[N, S]",
        "multihead_attention(x, m, pad, heads=2)",
        {},
    ),
    "self-padded-no-bias": (
        "in x: float32[N, T, 8]\n in pad: bool[N, T]",
        "multihead_attention(x, x, pad, heads=2, bias=false)",
        {"bias": False},
    ),
}


@pytest.mark.parametrize("ort_fused", [False, True], ids=["portable", "ort-fused"])
@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multihead_attention_matches_torch(case: str, ort_fused: bool) -> None:
    inputs, call, options = MHA_CASES[case]
    prog = dslnet.loads(f"network A() {{\n {inputs}\n out y = {call}\n}}\n")
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(8, 2 if "heads=2" in call else 4, batch_first=True,
                                            **options).eval()  # fmt: skip
    ours = prog.torch("A").eval()
    ours.load_state_dict({f"attn1.{k}": v for k, v in reference.state_dict().items()})
    graph = prog.ir("A")
    assert graph.num_parameters == sum(p.numel() for p in reference.parameters())
    model = emit_onnx(graph, ours.state_dict(), ort_fused=ort_fused)
    fused = any(node.domain == "com.microsoft" for node in model.graph.node)
    assert fused == (ort_fused and "m" not in graph.inputs)  # ORT fuses self-attention
    for length in (3, 6):  # one ONNX model, two sequence lengths
        x = torch.randn(4, length, 8)
        memory = torch.randn(4, length + 2, 8)
        feeds: dict[str, torch.Tensor] = {"x": x}
        if "m" in graph.inputs:
            feeds["m"] = memory
        key = feeds.get("m", x)
        mask = None
        if "pad" in graph.inputs:
            mask = feeds["pad"] = _padding(4, key.shape[1])
        attn_mask = None
        if "causal" in call:
            attn_mask = torch.ones(length, length, dtype=torch.bool).triu(1)
        with torch.no_grad():
            expected = reference(x, key, key, key_padding_mask=mask, attn_mask=attn_mask,
                                 need_weights=False)[0]  # fmt: skip
            torch.testing.assert_close(ours(*feeds.values()), expected, atol=1e-5, rtol=0)
        got = run_onnx(model, {k: v.numpy() for k, v in feeds.items()})["y"]
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=0)


def test_encoder_layer_matches_torch_transformer_encoder_layer() -> None:
    text = (SPECS / "transformer.net").read_text() + (
        "network Layer() {\n in x: float32[N, S, 32]\n out y = EncoderLayer(x, 4, 64, 0.0)\n}\n"
    )
    prog = dslnet.loads(text, filename=str(SPECS / "transformer.net"))
    torch.manual_seed(0)
    reference = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    ours = prog.torch("Layer").eval()
    names = {  # torch's name -> ours
        "self_attn.": "encoder_layer1.attn1.",
        "linear1.": "encoder_layer1.feed_forward1.linear1.",
        "linear2.": "encoder_layer1.feed_forward1.linear2.",
        "norm1.": "encoder_layer1.add_norm1.layernorm1.",
        "norm2.": "encoder_layer1.add_norm2.layernorm1.",
    }
    state = {}
    for key, value in reference.state_dict().items():
        prefix = next(p for p in names if key.startswith(p))
        state[names[prefix] + key[len(prefix) :]] = value
    ours.load_state_dict(state)  # strict: every parameter maps one to one
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    model = emit_onnx(prog.ir("Layer"), ours.state_dict())
    for length in (2, 9):
        x = torch.randn(3, length, 32)
        with torch.no_grad():
            expected = reference(x)
            torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=0)
        got = run_onnx(model, {"x": x.numpy()})["y"]
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=0)


def test_transformer_has_torch_nn_transformers_parameter_count() -> None:
    ours = dslnet.load(SPECS / "transformer.net").summary("Transformer")
    reference = sum(p.numel() for p in torch.nn.Transformer(batch_first=True).parameters())
    assert ours["params"] == reference == 44_140_544


def test_gpt_ties_its_output_projection_to_the_token_embedding() -> None:
    module = dslnet.load(SPECS / "transformer.net").torch("GPT", layers=1)
    names = [name for name, _ in module.named_parameters()]
    assert names.count("tok.weight") == 1 and not any("linear" in n and "1000" in n for n in names)
    tokens = torch.randint(0, 1000, (2, 5))
    logits = module.eval()(tokens)
    assert logits.shape == (2, 5, 1000)
    logits.sum().backward()
    assert module.tok.weight.grad is not None  # reached from both uses


def test_gpt_compiles_fullgraph() -> None:
    module = dslnet.load(SPECS / "transformer.net").torch("GPT", layers=1, d=32, heads=2).eval()
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    tokens = torch.randint(0, 1000, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(compiled(tokens), module(tokens))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "in x: float32[N, T, 10]\nout y = multihead_attention(x, heads=4)",
            "4 heads do not divide the width 10",
        ),
        (
            "in x: float32[N, T, 8]\nin m: float32[N, S, 6]\nout y = multihead_attention(x, m, "
            "heads=2)",
            "key_value must be [N, S, E]",
        ),
        (
            "in x: float32[N, T, 8]\nin pad: float32[N, T]\n"
            "out y = multihead_attention(x, x, pad, heads=2)",
            "key_padding_mask must be bool[N, T]",
        ),
        (
            "in q: float32[N, T, 8]\nin k: float32[N, S, 4]\n"
            "out y = scaled_dot_product_attention(q, k, k)",
            "q and k need the same width E",
        ),
    ],
)
def test_attention_errors_are_located(body: str, message: str) -> None:
    text = "network Bad() {\n" + body + "\n}\n"
    with pytest.raises(dslnet.CompileError) as err:
        dslnet.loads(text, filename="bad.net").ir("Bad")
    (diag,) = err.value.diagnostics
    assert message in diag.message
    assert diag.span.file == "bad.net" and diag.span.line == text.count("\n") - 1
