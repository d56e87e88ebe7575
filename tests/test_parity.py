"""Every network in specs/ (at the size policy's widths, tests/conftest.py): the torch
module and ONNX Runtime agree on the same weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.testing import assert_close, input_symbols, random_input

if TYPE_CHECKING:
    from conftest import SpecNetwork


def test_torch_and_onnx_runtime_agree(spec_network: SpecNetwork) -> None:
    prog, params = spec_network.program(small=True), spec_network.params(small=True)
    graph = prog.ir(spec_network.name, **params)
    torch.manual_seed(0)
    module = prog.torch(spec_network.name, **params).eval()
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
        assert_close([got[name] for name, _ in graph.outputs], [t.numpy() for t in expected])
