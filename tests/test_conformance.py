"""One test over every registered op: shape rule, parameters, torch and ONNX agree.

Each op's `examples` (spec snippets) run through the whole compiler, at several
concrete sizes for their symbolic dims. A new op is covered when it arrives.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.ir.symbolic import SymExpr
from dslnet.ops import registry
from dslnet.ops.registry import OpDef
from dslnet.testing import random_input

SIZES = (
    {"N": 1, "T": 2, "C": 3, "H": 4, "W": 5, "V": 4},
    {"N": 3, "T": 5, "C": 2, "H": 6, "W": 3, "V": 7},
)
CASES = [
    pytest.param(name, example, id=f"{name}-{i}")
    for name, op in registry.all_ops().items()
    for i, example in enumerate(op.examples)
]


@pytest.mark.parametrize("name", sorted(registry.all_ops()))
def test_every_op_has_every_facet(name: str) -> None:
    op = registry.get(name)
    assert op is not None
    kind = type(op)
    assert op.examples, f"{name}: add examples (they drive this conformance test)"
    has_torch = (
        kind.torch_module is not OpDef.torch_module or kind.torch_expr is not OpDef.torch_expr
    )
    assert has_torch, f"{name}: no torch lowering"
    assert kind.onnx is not OpDef.onnx, f"{name}: no ONNX lowering"
    if kind.params is not OpDef.params:
        assert kind.init_param is not OpDef.init_param, f"{name}: parameters but no init"


def _concrete(dims: tuple[int | SymExpr, ...], env: dict[str, int]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else d.evaluate(env) for d in dims)


@pytest.mark.parametrize(("name", "example"), CASES)
def test_op_conformance(name: str, example: str) -> None:
    body = "\n".join("    " + line for line in example.splitlines())
    prog = dslnet.loads(f"network OpExample() {{\n{body}\n}}\n", filename=f"{name}.net")
    graph = prog.ir("OpExample")
    assert any(node.op == name for node in graph.nodes)

    module = prog.torch("OpExample").eval()
    assert sum(p.numel() for p in module.parameters()) == graph.num_parameters
    model = emit_onnx(graph, module.state_dict())
    onnx.checker.check_model(model, full_check=True)

    rng = np.random.default_rng(0)
    for env in SIZES:
        feeds = {v: random_input(graph.type_of(v), env, rng) for v in graph.inputs}
        with torch.no_grad():
            ours = module(*(torch.from_numpy(a) for a in feeds.values()))
        ours_list = [ours] if isinstance(ours, torch.Tensor) else list(ours)
        ort = run_onnx(model, feeds)
        for (out_name, value), got in zip(graph.outputs, ours_list, strict=True):
            expected_shape = _concrete(graph.type_of(value).shape, env)
            assert tuple(got.shape) == expected_shape, f"{name}: torch shape vs inferred"
            ref = got.numpy()
            scale = max(1.0, float(np.abs(ref).max()))
            np.testing.assert_allclose(ort[out_name], ref, atol=1e-4 * scale, rtol=0)
