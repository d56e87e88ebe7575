"""Torch and ONNX Runtime agree on the edge values where their kernels part ways: NaN,
+-inf, zeros of either sign, rank-0 values. The first cases are the differential
fuzzer's findings (bench/fuzz.py), reduced; the rest feed such values directly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dslnet
from dslnet.fuzz.differential import (
    _compare,
    _ort_session,
    _run_ort,
    _run_torch,
    _torch_module,
    run_both,
)
from dslnet.fuzz.opprofiles import example_network
from dslnet.ir.weights import init_weights
from dslnet.testing import concrete_shape

FUZZ_FINDINGS = {
    # sqrt of a negative is NaN; torch.sign(NaN) is 0, ONNX's Sign NaN
    "sign_of_nan": "in x: float32[N, 3]\nout y = x / (x -> sqrt -> sign)",
    # gelu far below 0 is +0 in torch, -0 in ONNX Runtime: 1 / x is +inf for both zeros
    "reciprocal_of_signed_zero": "in x: float32[N, 8]\n"
    "out y = ((abs(x) + 1.0) * -100.0) -> gelu -> reciprocal",
    "rsqrt_of_signed_zero": "in x: float32[N, 8]\n"
    "out y = ((abs(x) + 1.0) * -100.0) -> gelu -> rsqrt",
    # prelu's one slope [1] broadcast a rank-0 input to [1] in ONNX
    "prelu_on_a_scalar": "in x: float32[N, 2]\nout y = x -> var(1) -> sum(-1) -> prelu",
    # 1 / relu(x) is +inf at zeros: torch's log_softmax makes that row NaN, ONNX
    # Runtime's kernel gives NaN at the inf and -inf elsewhere
    "log_softmax_of_inf": "in x: float64[N, 16]\nout y = x -> relu -> reciprocal -> log_softmax",
    "cross_entropy_of_inf": "in x: float32[N, 6]\nin t: int64[N]\n"
    'out y = cross_entropy(x -> relu -> reciprocal, t, reduction="none")',
}


@pytest.mark.parametrize("body", FUZZ_FINDINGS.values(), ids=FUZZ_FINDINGS.keys())
def test_fuzz_findings_agree(body: str) -> None:
    graph = dslnet.loads(example_network(body)).ir("Example")
    assert run_both(graph) == ""  # ran, and agreed (Disagreement otherwise)


SPECIAL = np.array(
    [np.nan, np.inf, -np.inf, 0.0, -0.0, -2.0, -0.5, 0.5, 2.0, 1e-30, -1e-30, 1.0, -40.0, 7.0]
)

EDGES = [
    "in x: float32[N, 6]\nout y = sign(x)",
    "in x: float16[N, 6]\nout y = sign(x)",
    "in x: float32[N, 6]\nout y = reciprocal(x) + rsqrt(x)",
    "in x: float32[N, 6]\nout y = clamp(x, min=0.0)",
    "in x: float32[N, 6]\nout y = clamp(x, max=0.0)",
    "in x: float32[N, 6]\nout y = amax(x, 1)",
    "in x: float32[N, 6]\nout y = amin(x, 0, keepdim=true)",
    "in x: float16[N, 6]\nout y = amax(x)",
    "in x: float32[N, 6]\nout y = x ** 0.5",
    "in x: float32[N, 6]\nout y = x ** -0.5",
    "in x: float16[N, 6]\nout y = x ** -0.5",
    "in x: float32[N, 6]\nout y = x ** -1 + x ** 2 + x ** 1.5",
    "in x: float32[N, 6]\nout y = 2.0 ** x",
    "in a: float32[N, 6]\nin b: float32[6]\nout y = a ** b",
    "in a: float32[N, 6]\nin b: float32[N, 6]\nout y = minimum(a, b) + maximum(a, b)",
    "in x: float32[N, 6]\nout y = x -> mean -> prelu",
    "in x: float32[N, 6]\nout y = (x * 1e20) -> std(1)",
    "in x: float16[N, 6]\nout y = var(x, 1, keepdim=true) + std(x, 1, keepdim=true)",
    "in x: float32[N, 6]\nout y = softplus(x, beta=2.0, threshold=3.0) + mish(x) + relu6(x)",
    "in x: float32[N, 6]\nout y = hardswish(x) + hardsigmoid(x)",
    "in x: float32[N, 6]\nout y = log_softmax(x) + log_softmax(x, axis=0)",
]


def _feeds(graph: Any, sizes: dict[str, int], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        v: rng.choice(SPECIAL, size=concrete_shape(graph.type_of(v), sizes)).astype(
            graph.type_of(v).dtype.value
        )
        for v in graph.inputs
    }


@pytest.mark.parametrize("body", EDGES)
def test_edge_values_agree(body: str) -> None:
    graph = dslnet.loads(example_network(body)).ir("Example")
    weights = init_weights(graph, seed=0)
    module, session = _torch_module(graph, None, weights), _ort_session(graph, weights)
    sizes = {"N": 4}
    for seed in range(8):
        feeds = _feeds(graph, sizes, seed)
        ours, theirs = _run_torch(graph, module, feeds), _run_ort(graph, session, feeds)
        assert ours.outputs is not None and theirs.outputs is not None
        for (name, value), mine, other in zip(graph.outputs, ours.outputs, theirs.outputs):
            _compare(graph.type_of(value), sizes, mine, other, f"seed {seed}: '{name}'")


def test_a_root_exponent_leaves_no_unread_constant() -> None:
    """`x ** 0.5` lowers to Sqrt: the 0.5 it does not read is left out of the model
    (ONNX Runtime warns of an unused constant at every session start)."""
    prog = dslnet.loads(example_network("in x: float32[N, 6]\nout y = x ** 0.5 + x ** -0.5"))
    model = prog.onnx("Example")
    read = {name for node in model.graph.node for name in node.input}
    kinds = [node.op_type for node in model.graph.node]
    assert "Pow" not in kinds and kinds.count("Sqrt") == 2
    assert all(read.intersection(n.output) for n in model.graph.node if n.op_type == "Constant")
