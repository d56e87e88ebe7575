"""Comparisons on tensors, selection (where, masked_fill), lists of tensors as the
inputs of concat and stack, and the rearranging ops: the expander's forms, and torch
against ONNX Runtime on edge values (NaN, infinities, signed zeros, empty axes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.ir.printer import print_graph


def net(body: str) -> dslnet.Program:
    inner = "\n".join("    " + line for line in body.splitlines())
    return dslnet.loads(f"network T() {{\n{inner}\n}}\n", filename="t.net")


def ir_text(body: str) -> str:
    return print_graph(net(body).ir("T"))


def torch_and_ort(body: str, feeds: dict[str, np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
    """Run the network in torch and ONNX Runtime; assert they agree, NaN and inf too."""
    program = net(body)
    graph = program.ir("T")
    module = program.torch("T").eval()
    with torch.no_grad():
        ours = module(*(torch.from_numpy(feeds[v]) for v in graph.inputs))
    ours_list = [ours] if isinstance(ours, torch.Tensor) else list(ours)
    theirs = run_onnx(emit_onnx(graph, module.state_dict()), feeds)
    results = []
    for (name, _), got in zip(graph.outputs, ours_list, strict=True):
        np.testing.assert_array_equal(theirs[name], got.numpy())
        assert theirs[name].dtype == got.numpy().dtype
        results.append(got.numpy())
    return results


EDGES = np.array([[np.nan, -np.inf, np.inf, -0.0], [0.0, 1.5, -2.0, np.nan]], dtype=np.float32)


@pytest.mark.parametrize("operator", ["==", "!=", "<", "<=", ">", ">="])
def test_comparisons_agree_on_nan_inf_and_signed_zero(operator: str) -> None:
    body = f"in a: float32[N, 4]\nin b: float32[N, 4]\nout y = a {operator} b"
    other = np.array([[np.nan, -np.inf, 1.0, 0.0], [-0.0, 1.5, np.inf, 1.0]], np.float32)
    (y,) = torch_and_ort(body, {"a": EDGES, "b": other})
    assert y.dtype == np.bool_
    assert y[0, 0] == (operator == "!=")  # NaN is unequal to itself, and unordered


def test_a_comparison_with_a_number_or_a_size_broadcasts() -> None:
    body = "in x: float32[N, 3]\nout y = x > 0.5\nout z = x < N\nout w = 1 <= x"
    x = np.array([[0.0, 1.0, 3.0]], np.float32)
    y, z, w = torch_and_ort(body, {"x": x})
    assert y.tolist() == [[False, True, True]]
    assert z.tolist() == [[True, False, False]]
    assert w.tolist() == [[False, True, True]]


def test_comparison_and_selection_ir() -> None:
    text = ir_text("in x: float32[N, 4]\nout y = where(x > 0, x, x * 0.5)")
    assert "bool[N, 4] = greater(x, " in text
    assert "float32[N, 4] = where(" in text


def test_masked_fill_minus_inf_then_softmax_agrees() -> None:
    body = (
        "in x: float32[N, 2, 3]\nin keep: float32[N, 1, 3]\n"
        'h = masked_fill(x, keep < 0, "-inf")\nout y = h\nout p = softmax(h, axis=-1)'
    )
    x = np.zeros((1, 2, 3), np.float32)
    keep = np.array([[[1.0, -1.0, 1.0]]], np.float32)
    y, p = torch_and_ort(body, {"x": x, "keep": keep})
    assert np.isneginf(y[0, :, 1]).all()
    assert p[0, 0].tolist() == [0.5, 0.0, 0.5]


def test_where_and_masked_fill_on_integers_and_bools() -> None:
    body = (
        "in i: int64[N, 3]\nin m: bool[N, 3]\n"
        "out y = where(m, i, i * 2)\nout z = masked_fill(i, i == 2, -1)\nout b = m == (i > 1)\n"
        "out w = where(m, m, i > 1)\nin s: int16[N, 3]\nout v = masked_fill(s, m, 7)"
    )
    i = np.array([[1, 2, 3]], np.int64)
    m = np.array([[True, False, True]])
    s = np.array([[5, 6, -7]], np.int16)
    y, z, b, w, v = torch_and_ort(body, {"i": i, "m": m, "s": s})
    assert y.tolist() == [[1, 4, 3]] and z.tolist() == [[1, -1, 3]]
    assert b.tolist() == [[False, False, True]]
    assert w.tolist() == [[True, True, True]] and v.tolist() == [[7, 6, 7]]


def test_a_list_of_tensors_is_the_inputs_of_concat_and_stack() -> None:
    body = (
        "in x: float32[N, 2]\nfeats = [x, x * 2, relu(x)]\n"
        "out a = concat(feats, axis=1)\nout b = feats -> stack(axis=0)\n"
        "out c = concat(x, x, axis=-1)\nout d = stack([x], axis=-1)"
    )
    program = net(body)
    types = [str(program.ir("T").type_of(v)) for _, v in program.ir("T").outputs]
    assert types == ["float32[N, 6]", "float32[3, N, 2]", "float32[N, 4]", "float32[N, 2, 1]"]
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    a, b, c, d = torch_and_ort(body, {"x": x})
    assert a.tolist() == np.concatenate([x, x * 2, x], axis=1).tolist()
    assert b.tolist() == np.stack([x, x * 2, x]).tolist()
    assert c.tolist() == np.concatenate([x, x], axis=-1).tolist()
    assert d.tolist() == x[..., None].tolist()


@pytest.mark.parametrize(
    "call",
    [
        "flip(x, [0, 1])",
        "roll(x, [1, -7], [0, 1])",
        "roll(x, 3, -1)",
        "slice(x, 1, step=-1)",
        "slice(x, 0, start=-1, end=0, step=-2)",
        "slice(x, 1, start=4, end=-9, step=-3)",
        "expand(x, [2, -1, W])",
    ],
)
@pytest.mark.parametrize("shape", [(3, 5), (0, 5), (2, 1)])
def test_rearranging_ops_agree_on_symbolic_and_empty_axes(
    call: str, shape: tuple[int, int]
) -> None:
    body = f"in x: float32[N, W]\nout y = {call}"
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) - 2.0
    (y,) = torch_and_ort(body, {"x": x})
    if call.startswith("slice(x, 1, step=-1)"):
        assert y.tolist() == x[:, ::-1].tolist()
    if call.startswith("roll(x, 3, -1)"):
        assert y.tolist() == np.roll(x, 3, -1).tolist()


LEARNED_QUERY = (
    "in x: float32[N, 8]\n"
    'layer q = parameter([1, 4, 8], init="normal")\n'
    "out y = q() -> expand([N, 4, 8])\n"
    "out z = expand(q(), [N, -1, -1])\n"
    "out w = parameter([4, 1], value=2.0) -> expand([N, 4, 8])"
)


@pytest.mark.parametrize("batch", [1, 3])
def test_expand_reads_a_run_time_size_from_a_tensor_in_scope(batch: int) -> None:
    from dslnet.ir.parser import parse_graph

    program = net(LEARNED_QUERY)
    graph = program.ir("T")
    text = print_graph(graph)
    assert "expand(param1, x, shape=[N, 4, 8])" in text  # x: the source of N
    assert print_graph(parse_graph(text)) == text
    assert "param2.expand(x.shape[0], -1, -1)" in program.torch_source("T")
    module = program.torch("T").eval()
    x = np.random.default_rng(0).normal(size=(batch, 8)).astype(np.float32)
    with torch.no_grad():
        ours = [t.detach().numpy() for t in module(torch.from_numpy(x))]
    theirs = run_onnx(emit_onnx(graph, module.state_dict()), {"x": x})
    query = module.state_dict()["q.weight"].numpy()
    for (name, _), got in zip(graph.outputs, ours, strict=True):
        np.testing.assert_array_equal(theirs[name], got)
        assert got.shape == (batch, 4, 8)
    np.testing.assert_array_equal(ours[0], np.broadcast_to(query, (batch, 4, 8)))
    np.testing.assert_array_equal(ours[1], ours[0])
    assert (ours[2] == 2.0).all()


def test_expand_literal_sizes_take_no_size_source() -> None:
    text = ir_text("in x: float32[N, 1]\nout y = expand(x, [2, N, 3])")
    assert "= expand(x, shape=[2, N, 3])" in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "in x: float32[N, 8]\nin q: float32[1, 4, 8]\nout y = q -> expand([N + 1, -1, -1])",
            "t.net:4:18: error: expand: the size N + 1 is known only at run time, and no "
            "tensor in scope has it",
        ),
        (
            "in x: float32[N, 8]\nin q: float32[1, 4, 8]\nout y = expand(q, x, [N, -1, -1])",
            "expand takes 1 input tensor(s) (x), got 2",
        ),
        (
            "in x: float32[N, 8]\nin q: float32[2, 4, 8]\nout y = expand(q, [N, -1, -1])",
            "axis 0 is N, the input float32[2, 4, 8] has 2 there (not 1)",
        ),
    ],
)
def test_expand_refuses_a_size_no_tensor_gives(body: str, message: str) -> None:
    with pytest.raises(dslnet.CompileError) as info:
        net(body).ir("T")
    assert message in info.value.render()


def test_negative_step_slices_match_python_on_fixed_axes() -> None:
    x = np.arange(7, dtype=np.float32).reshape(1, 7)
    for start, end, step in [(None, None, -1), (5, 1, -2), (-1, -8, -3), (2, 6, -1)]:
        bounds = "".join(
            f", {name}={value}"
            for name, value in (("start", start), ("end", end))
            if value is not None
        )
        body = f"in x: float32[N, 7]\nout y = slice(x, 1{bounds}, step={step})"
        (y,) = torch_and_ort(body, {"x": x})
        assert y.tolist() == x[:, start:end:step].tolist(), body


def test_one_hot_makes_float32_vectors() -> None:
    body = "in i: int64[N]\nout y = one_hot(i, 4)"
    (y,) = torch_and_ort(body, {"i": np.array([0, 3, 1], np.int64)})
    assert y.dtype == np.float32
    assert y.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]


def test_a_tensor_condition_in_an_if_says_where() -> None:
    with pytest.raises(dslnet.CompileError, match=r"where\(cond, a, b\) chooses elementwise"):
        net("in x: float32[N, 4]\nout y = if x > 0 { x } else { x * 2 }").ir("T")


def test_where_takes_numbers_for_its_values() -> None:
    body = "in x: float32[N, 3]\nout y = where(x > 0, x, 0.0)\nout z = where(x < 1, -1, x)"
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    y, z = torch_and_ort(body, {"x": x})
    assert y.tolist() == [[0.0, 0.5, 2.0]] and z.tolist() == [[-1.0, -1.0, 2.0]]
    with pytest.raises(dslnet.CompileError, match="one of a, b must be a tensor"):
        net("in x: float32[N, 3]\nout y = where(x > 0, 1, 2)").ir("T")


def test_a_user_op_number_inputs_must_be_among_its_inputs() -> None:
    from dslnet.ops.opdef import OpDef
    from dslnet.ops.userops import definition_problems

    class Odd(OpDef):
        name = "odd_select"
        family = "test"
        inputs = ("a", "b")
        number_inputs = ("c",)

    assert any("number_inputs ['c']" in p for p in definition_problems(Odd))
