"""The spec library's GPT and BERT against hand-written reference modules (the layout
of GPT-2 and of BERT with its pooler and masked-LM head): with the weights copied in,
outputs agree; at the published sizes, the parameter counts are the references'."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dslnet

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, t, d = x.shape
    return x.view(n, t, heads, d // heads).transpose(1, 2)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention; `mask` is true where a score is dropped."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = scores.masked_fill(mask, float("-inf")).softmax(-1)
    n, h, t, e = q.shape
    return (weights @ v).transpose(1, 2).reshape(n, t, h * e)


# --- GPT-2 ----------------------------------------------------------------------------


class RefGPT2Block(nn.Module):
    def __init__(self, d: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(p, self.heads) for p in self.c_attn(self.ln_1(x)).chunk(3, dim=-1))
        t = x.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)
        x = x + self.c_proj(_attend(q, k, v, causal))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class RefGPT2(nn.Module):
    """GPT-2's language model: the head is the token embedding, without a bias."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.h = nn.ModuleList(RefGPT2Block(d, heads, 1e-5) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T


def _gpt_weights(spec: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """The spec module's state_dict under the reference's names."""
    out = {"wte.weight": spec["tok.weight"], "wpe.weight": spec["positions1.weight"]}
    for i in range(layers):
        s, r = f"gptblock{i + 1}.", f"h.{i}."
        pairs = {
            "layernorm1.": "ln_1.",
            "attn1.in_proj_": "c_attn.",
            "attn1.out_proj.": "c_proj.",
            "layernorm2.": "ln_2.",
            "feed_forward1.linear1.": "c_fc.",
            "feed_forward1.linear2.": "mlp_proj.",
        }
        for ours, theirs in pairs.items():
            for name, value in spec.items():
                if name.startswith(s + ours):
                    out[r + theirs + name[len(s + ours) :]] = value
    out["ln_f.weight"], out["ln_f.bias"] = spec["layernorm1.weight"], spec["layernorm1.bias"]
    return out


def test_gpt2_shaped_gpt_matches_the_reference() -> None:
    sizes = {"vocab": 61, "d": 32, "heads": 4, "layers": 2, "context": 16}
    torch.manual_seed(0)
    ours = dslnet.load(SPECS / "transformer.net").torch("GPT", **sizes, gelu_approximate="tanh")
    ours.eval()
    reference = RefGPT2(**sizes).eval()
    reference.load_state_dict(_gpt_weights(ours.state_dict(), sizes["layers"]))
    ids = torch.randint(0, sizes["vocab"], (3, 11))
    with torch.no_grad():
        got, expected = ours(ids), reference(ids)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # The exact gelu (the default) is another network: the knob is what matched.
    exact = dslnet.load(SPECS / "transformer.net").torch("GPT", **sizes).eval()
    exact.load_state_dict(ours.state_dict())
    with torch.no_grad():
        assert not torch.allclose(exact(ids), expected, rtol=0, atol=1e-5)


def test_gpt2_small_has_the_reference_parameter_count() -> None:
    sizes = {"vocab": 50257, "d": 768, "heads": 12, "layers": 12, "context": 1024}
    with torch.device("meta"):
        reference = RefGPT2(**sizes)
    expected = sum(p.numel() for p in reference.parameters())  # the tied table once
    assert expected == 124_439_808  # GPT-2 small as published (GPT2LMHeadModel)
    graph = dslnet.load(SPECS / "transformer.net").ir("GPT", **sizes, gelu_approximate="tanh")
    assert graph.num_parameters == expected


# --- BERT -----------------------------------------------------------------------------


class RefBertLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attention_output = nn.Linear(d, d)
        self.attention_norm = nn.LayerNorm(d, eps=eps)
        self.intermediate = nn.Linear(d, ffn)
        self.output = nn.Linear(ffn, d)
        self.output_norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(f(x), self.heads) for f in (self.query, self.key, self.value))
        context = _attend(q, k, v, padding[:, None, None, :])
        h = self.attention_norm(x + self.attention_output(context))
        return self.output_norm(h + self.output(F.gelu(self.intermediate(h))))


class RefBert(nn.Module):
    """BERT with its pooler and masked-LM head (decoder tied to the word embeddings,
    plus a bias per token), as in Devlin et al.'s release."""

    def __init__(
        self, vocab: int, d: int, heads: int, layers: int, ffn: int, context: int, segments: int
    ) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab, d, padding_idx=0)
        self.token_type = nn.Embedding(segments, d)
        self.position = nn.Embedding(context, d)
        self.embedding_norm = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(RefBertLayer(d, heads, ffn, 1e-12) for _ in range(layers))
        self.transform = nn.Linear(d, d)
        self.transform_norm = nn.LayerNorm(d, eps=1e-12)
        self.decoder_bias = nn.Parameter(torch.zeros(vocab))
        self.pooler = nn.Linear(d, d)

    def forward(
        self, ids: torch.Tensor, segments: torch.Tensor, padding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.word(ids) + self.token_type(segments) + self.position(torch.arange(ids.shape[1]))
        x = self.embedding_norm(x)
        for layer in self.layers:
            x = layer(x, padding)
        head = self.transform_norm(F.gelu(self.transform(x)))
        logits = head @ self.word.weight.T + self.decoder_bias
        return logits, torch.tanh(self.pooler(x[:, 0]))


def _bert_weights(spec: dict[str, torch.Tensor], layers: int, d: int) -> dict[str, torch.Tensor]:
    out = {
        "word.weight": spec["tok.weight"],
        "token_type.weight": spec["embedding2.weight"],
        "position.weight": spec["positions1.weight"],
        "embedding_norm.weight": spec["layernorm1.weight"],
        "embedding_norm.bias": spec["layernorm1.bias"],
        "transform.weight": spec["linear1.weight"],
        "transform.bias": spec["linear1.bias"],
        "transform_norm.weight": spec["layernorm2.weight"],
        "transform_norm.bias": spec["layernorm2.bias"],
        "decoder_bias": spec["mlm_bias.weight"],
        "pooler.weight": spec["linear2.weight"],
        "pooler.bias": spec["linear2.bias"],
    }
    for i in range(layers):
        s, r = f"bertlayer{i + 1}.", f"layers.{i}."
        for j, name in enumerate(("query", "key", "value")):
            out[f"{r}{name}.weight"] = spec[f"{s}attn1.in_proj_weight"][j * d : (j + 1) * d]
            out[f"{r}{name}.bias"] = spec[f"{s}attn1.in_proj_bias"][j * d : (j + 1) * d]
        pairs = {
            "attn1.out_proj": "attention_output",
            "add_norm1.layernorm1": "attention_norm",
            "feed_forward1.linear1": "intermediate",
            "feed_forward1.linear2": "output",
            "add_norm2.layernorm1": "output_norm",
        }
        for ours, theirs in pairs.items():
            for kind in ("weight", "bias"):
                out[f"{r}{theirs}.{kind}"] = spec[f"{s}{ours}.{kind}"]
    return out


def test_bert_shaped_bert_matches_the_reference() -> None:
    sizes = {"vocab": 57, "d": 32, "heads": 4, "layers": 2, "ffn": 64, "context": 16}
    torch.manual_seed(0)
    ours = dslnet.load(SPECS / "transformer.net").torch("BERT", **sizes, eps=1e-12).eval()
    with torch.no_grad():  # a bias that is not zero, so that it is seen to be added
        ours.state_dict()["mlm_bias.weight"].normal_()
    reference = RefBert(**sizes, segments=2).eval()
    reference.load_state_dict(_bert_weights(ours.state_dict(), sizes["layers"], sizes["d"]))
    ids = torch.randint(1, sizes["vocab"], (3, 9))
    segments = torch.randint(0, 2, (3, 9))
    padding = torch.zeros(3, 9, dtype=torch.bool)
    padding[1, 6:] = True
    padding[2, 3:] = True
    with torch.no_grad():
        logits, pooled = ours(ids, segments, padding)
        ref_logits, ref_pooled = reference(ids, segments, padding)
    assert pooled.shape == (3, sizes["d"])
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(pooled, ref_pooled, rtol=0, atol=1e-5)


def test_bert_base_has_the_reference_parameter_count() -> None:
    sizes = {"vocab": 30522, "d": 768, "heads": 12, "layers": 12, "ffn": 3072, "context": 512}
    with torch.device("meta"):
        reference = RefBert(**sizes, segments=2)
    expected = sum(p.numel() for p in reference.parameters())
    # BertForPreTraining's 110,106,428 less its next-sentence head (768 * 2 + 2).
    assert expected == 110_104_890
    graph = dslnet.load(SPECS / "transformer.net").ir("BERT", **sizes, eps=1e-12)
    assert graph.num_parameters == expected


@pytest.mark.parametrize("eps", [1e-5, 1e-12, 1e-3])
def test_layernorm_eps_reaches_every_transformer_block(eps: float) -> None:
    prog = dslnet.load(SPECS / "transformer.net")
    small = {"d": 16, "heads": 2, "layers": 1}
    for network, sizes in [
        ("GPT", {**small, "vocab": 20, "context": 8}),
        ("BERT", {**small, "vocab": 20, "ffn": 32, "context": 8}),
    ]:
        module = prog.torch(network, **sizes, eps=eps)
        block_norms = [
            m
            for name, m in module.named_modules()
            if isinstance(m, nn.LayerNorm) and name.startswith(("gptblock1.", "bertlayer1."))
        ]
        assert len(block_norms) == 2, network
        assert all(m.eps == eps for m in block_norms), network
