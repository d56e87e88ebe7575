"""Every network in specs/: the torch module and ONNX Runtime agree on the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.testing import input_symbols, random_input

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    pytest.param(spec, name, id=f"{spec.stem}-{name}")
    for spec in sorted((ROOT / "specs").glob("*.net"))
    for name in dslnet.load(spec).networks
]


@pytest.mark.parametrize(("spec", "network"), CASES)
def test_torch_and_onnx_runtime_agree(spec: Path, network: str) -> None:
    prog = dslnet.load(spec)
    graph = prog.ir(network)
    torch.manual_seed(0)
    module = prog.torch(network).eval()
    model = emit_onnx(graph, module.state_dict())
    rng = np.random.default_rng(0)
    symbols = input_symbols(graph)
    for size in (1, 3):
        env = dict.fromkeys(symbols, size)
        env["N"] = size
        feeds = {v: random_input(graph.type_of(v), env, rng) for v in graph.inputs}
        with torch.no_grad():
            ours = module(*(torch.from_numpy(a) for a in feeds.values()))
        expected = [ours] if isinstance(ours, torch.Tensor) else list(ours)
        got = run_onnx(model, feeds)
        for (out_name, _), ref in zip(graph.outputs, expected, strict=True):
            ref_np = ref.numpy()
            scale = max(1.0, float(np.abs(ref_np).max()))
            np.testing.assert_allclose(got[out_name], ref_np, atol=1e-4 * scale, rtol=0)
