"""`**`, the compile-time builtins on numbers, and sizes as values (`size(x, 0)`, `y / N`):
parsing and precedence, `dslnet fmt`, values and their types, located errors, and a
symbolic size met by a tensor read at run time, torch and ONNX Runtime agreeing at two
batch sizes with the batch size left symbolic."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.core.diagnostics import Span
from dslnet.core.symbolic import SymExpr
from dslnet.frontend.builtins import NUMBER_BUILTINS
from dslnet.frontend.format import format_source
from dslnet.frontend.values import EvalError, arith
from dslnet.frontend.vocabulary import BUILTINS
from dslnet.ir.graph import Graph
from dslnet.ops import registry
from dslnet.ops.size_value import SizeValue

SPAN = Span("t.net", 1, 1, 1, 2)
N = SymExpr.symbol("N")


def output_shape(graph: Graph) -> tuple[object, ...]:
    (_, value), *_ = graph.outputs
    return tuple(graph.values[value].type.shape)


def const(expr: str) -> object:
    return dslnet.loads(f"const C = {expr}\n").const("C")


def const_error(expr: str) -> str:
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.loads(f"const C = {expr}\n")
    return str(info.value)


# --- `**`: precedence and associativity, as Python's ---------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "-2 ** 2",
        "2 ** -1",
        "2 ** 3 ** 2",
        "(-2) ** 2",
        "2 ** 3 * 4",
        "4 * 2 ** 3",
        "2 ** 10 // 3",
        "-2 ** -2",
        "- - 2 ** 2",
        "2 ** +2",
        "32 ** -0.5",
        "(2 ** 3) ** 2",
        "2 ** 0.5 ** 2",
        "1 + 2 ** 2 - 3 % 2 ** 2",
    ],
)
def test_power_evaluates_as_python_does(expr: str) -> None:
    expected = eval(expr)  # the spec's grammar follows Python's for these
    got = const(expr)
    assert got == expected and type(got) is type(expected)


def test_int_power_stays_int_and_a_negative_or_float_exponent_gives_a_float() -> None:
    assert type(const("3 ** 4")) is int and const("3 ** 4") == 81
    assert const("2 ** 0") == 1 and type(const("2 ** 0")) is int
    assert type(const("2 ** -2")) is float and const("2 ** -2") == 0.25
    assert type(const("4 ** 0.5")) is float and const("4 ** 0.5") == 2.0
    assert const("(-8) ** 2.0") == 64.0  # a negative base to a whole float power is real


def test_formatting_keeps_the_meaning_and_spaces_the_operator() -> None:
    text = "const A = -2**2\nconst B = 2**  -1\nconst C = (2**3)**2  # c\nconst D = 2**3**2\n"
    formatted = format_source(text, "t.net")
    assert formatted == (
        "const A = -2 ** 2\nconst B = 2 ** -1\nconst C = (2 ** 3) ** 2  # c\n"
        "const D = 2 ** 3 ** 2\n"
    )
    assert format_source(formatted, "t.net") == formatted
    prog = dslnet.loads(formatted)
    assert [prog.const(n) for n in "ABCD"] == [-4, 0.5, 64, 512]


# --- overflow: found before the work, located -----------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("10 ** 10 ** 10", "integer overflow: 10 ** 10000000000 is outside the 64-bit range"),
        ("2 ** 63", "integer overflow: 2 ** 63"),
        ("(-3) ** 99999999999", "integer overflow: (-3) ** 99999999999"),
        ("2.0 ** 10000", "float overflow: 2.0 ** 10000 is too large for a float"),
        ("0 ** -1", "0 cannot be raised to a negative power"),
        ("0.0 ** -0.5", "0 cannot be raised to a negative power"),
        ("(-8) ** 0.5", "a negative number to a fractional power has no real value"),
        ('"a" ** 2', "cannot apply '**' to str and int"),
    ],
)
def test_a_power_without_a_value_is_a_located_error_found_at_once(expr: str, message: str) -> None:
    start = time.perf_counter()
    text = const_error(expr)
    assert time.perf_counter() - start < 2.0
    assert message in text and ":1:11: error:" in text


def test_the_largest_int_powers_still_compute() -> None:
    assert const("2 ** 62") == 2**62
    assert const("(-2) ** 63") == -(2**63)
    assert const("1 ** 99999999999") == 1
    assert const("(-1) ** 99999999999") == -1


def test_symbolic_powers() -> None:
    assert arith("**", N, 2, SPAN) == N * N
    assert arith("**", N, 0, SPAN) == 1
    for exponent, words in [(-1, "exponent >= 0"), (0.5, "float"), (64, "up to 63")]:
        with pytest.raises(EvalError, match=words):
            arith("**", N, exponent, SPAN)
    with pytest.raises(EvalError, match="exponent >= 0"):
        arith("**", 2, N, SPAN)
    prog = dslnet.loads(
        "network S {\n    in x: float32[N, 4]\n    out x -> reshape([N ** 1, 2 ** 2])\n}\n"
    )
    assert output_shape(prog.ir("S")) == (N, 4)


# --- the builtins on numbers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("sqrt(16)", 4.0),
        ("sqrt(2)", math.sqrt(2)),
        ("log(1)", 0.0),
        ("exp(0)", 1.0),
        ("exp(1)", math.e),
        ("round(2.5)", 2),  # half to even, as Python, torch.round and ONNX Round
        ("round(3.5)", 4),
        ("round(-2.5)", -2),
        ("round(7)", 7),
        ("floor(-1.5)", -2),
        ("ceil(1.2)", 2),
        ("ceil(-1.2)", -1),
        ("int(-2.7)", -2),  # toward zero
        ("int(3)", 3),
        ("float(3)", 3.0),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("min(3, 1.5)", 1.5),
        ("max(2, 7)", 7),
        ("int(sqrt(64)) * 2", 16),
        ("32 ** -0.5 * sqrt(32)", 32**-0.5 * math.sqrt(32)),
    ],
)
def test_builtin_values_and_types(expr: str, value: object) -> None:
    got = const(expr)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("sqrt(-4)", "sqrt() of a negative number (-4)"),
        ("log(0)", "log() of 0: log takes a number above 0"),
        ("log(-1.5)", "log() of a negative number (-1.5)"),
        ("int(1e308 * 10)", "int() of inf: the result would not be a finite int"),
        ("floor(1e308 * 10 - 1e308 * 10)", "floor() of nan"),
        ("int(1e300)", "int(1e+300) is outside the 64-bit range of sizes"),
        ("exp(1000)", "exp(1000) is too large for a float"),
        ("sqrt(1, 2)", "sqrt() takes one number, got 2 arguments"),
        ("round()", "round() takes one number, got 0 arguments"),
        ('abs("a")', "abs() takes a number, got str"),
        ("ceil(true)", "ceil() takes a number, got bool"),
        ("float([1])", "float() takes a number, got list"),
        ("abs(-9223372036854775807 - 1)", "outside the 64-bit range"),
    ],
)
def test_builtin_errors_are_located(expr: str, message: str) -> None:
    text = const_error(expr)
    assert message in text and ":1:11: error:" in text


def test_a_builtin_on_a_tensor_says_it_takes_numbers() -> None:
    body = "network S {\n    in x: float32[N, 4]\n    out x * floor(x)\n}\n"
    with pytest.raises(dslnet.CompileError, match=r"floor\(\) is a compile-time builtin"):
        dslnet.loads(body).ir("S")


def test_a_symbolic_size_passes_through_what_keeps_ints_and_nothing_else() -> None:
    body = "network S {\n    in x: float32[N, 4]\n    out x -> reshape([int(N), ceil(4)])\n}\n"
    assert dslnet.loads(body).ir("S").outputs
    bad = "network S {\n    in x: float32[N, 4]\n    out x * sqrt(N)\n}\n"
    with pytest.raises(dslnet.CompileError, match="N is a size known only at run time"):
        dslnet.loads(bad).ir("S")


@pytest.mark.parametrize("name", ["sqrt", "exp", "log", "abs"])
def test_an_op_that_is_also_a_builtin_is_the_op_on_a_tensor(name: str) -> None:
    if registry.get(name) is None:
        pytest.skip(f"no op '{name}' is registered")
    body = f"network S {{\n    in x: float32[N, 4]\n    out {name}(x) + (x -> {name})\n}}\n"
    graph = dslnet.loads(body).ir("S")
    assert [n.op for n in graph.nodes].count(name) == 2
    assert const(f"{name}(4)") == {"sqrt": 2.0, "exp": math.exp(4), "log": math.log(4)}.get(name, 4)


def test_every_builtin_is_a_word_of_the_language() -> None:
    assert set(BUILTINS) == {"range", "len", "size", *NUMBER_BUILTINS}


def test_builtins_count_in_loop_bounds() -> None:
    """The node bound (dslnet.frontend.bound) reads a loop count made by a builtin."""
    body = (
        "network S {\n    in x: float32[N, 4]\n    h = x\n"
        "    repeat int(sqrt(9)) { h = h -> relu }\n    out h\n}\n"
    )
    graph = dslnet.loads(body).ir("S")
    assert [n.op for n in graph.nodes].count("relu") == 3


# --- sizes as values ------------------------------------------------------------------


def test_size_is_an_int_or_a_symbolic_size() -> None:
    body = (
        "network S {\n    in x: float32[N, 4, 6]\n"
        "    out x -> reshape([size(x, 0), size(x, -1) * size(x, 1)])\n}\n"
    )
    assert output_shape(dslnet.loads(body).ir("S")) == (N, 24)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("size(x, 3)", "axis 3 is out of range for tensor float32[N, 4] (rank 2)"),
        ("size(x)", "size() takes a tensor and an int axis, got tensor float32[N, 4]"),
        ("size(4, 0)", "size() takes a tensor and an int axis, got int, int"),
        ("size(x, 0.5)", "size() takes a tensor and an int axis"),
    ],
)
def test_size_errors(call: str, message: str) -> None:
    body = f"network S {{\n    in x: float32[N, 4]\n    out x * {call}\n}}\n"
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.loads(body).ir("S")
    assert message in str(info.value) and ":3:13: error:" in str(info.value)


def run_both(body: str, feeds: list[np.ndarray], opset: int = 18) -> list[np.ndarray]:
    """Torch's outputs; ONNX Runtime's must equal them (values and dtypes)."""
    prog = dslnet.loads(f"network S {{\n{body}\n}}\n")
    module = prog.torch("S").eval()
    with torch.no_grad():
        out = module(*(torch.from_numpy(f) for f in feeds))
    got = [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]
    graph = prog.ir("S")
    model = emit_onnx(graph, module.state_dict(), opset=opset)
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "N", "the batch size stays symbolic"
    ort = run_onnx(model, dict(zip(graph.inputs, feeds)))
    for ours, (name, _) in zip(got, graph.outputs, strict=True):
        assert ort[name].dtype == ours.dtype
        np.testing.assert_allclose(ort[name], ours, rtol=1e-6)
    return got


@pytest.mark.parametrize("batch", [2, 7])
@pytest.mark.parametrize("opset", [17, 18])
def test_a_symbolic_size_met_by_a_tensor_is_read_at_run_time(batch: int, opset: int) -> None:
    body = (
        "    in x: float32[N, T, 3]\n"
        "    out a = x / N\n"
        "    out b = x * (2 * N * T) - size(x, 1)\n"
        "    out c = x / (N - 1) + (N + T + 3)\n"
    )
    x = np.random.default_rng(0).standard_normal((batch, 5, 3)).astype(np.float32)
    a, b, c = run_both(body, [x], opset)
    np.testing.assert_allclose(a, x / batch, rtol=1e-6)
    np.testing.assert_allclose(b, x * (2 * batch * 5) - 5, rtol=1e-6)
    np.testing.assert_allclose(c, x / (batch - 1) + (batch + 5 + 3), rtol=1e-6)


def test_a_size_takes_the_dtype_of_the_tensor_it_meets() -> None:
    body = "    in i: int64[N, 4]\n    in h: float64[N]\n    out a = i * N\n    out b = h / N"
    i = np.arange(12, dtype=np.int64).reshape(3, 4)
    h = np.ones(3, dtype=np.float64)
    a, b = run_both(body, [i, h])
    assert a.dtype == np.int64 and b.dtype == np.float64
    np.testing.assert_array_equal(a, i * 3)
    np.testing.assert_allclose(b, h / 3)


def test_a_size_is_read_from_another_tensor_in_scope() -> None:
    body = "    in x: float32[N, 4]\n    in y: float32[M, 2]\n    out z = x / (M + N)"
    x = np.ones((3, 4), dtype=np.float32)
    y = np.ones((5, 2), dtype=np.float32)
    (z,) = run_both(body, [x, y])
    np.testing.assert_allclose(z, x / 8)


def test_a_train_loss_divided_by_the_batch_size() -> None:
    text = (
        "network Net {\n    in x: float32[N, 4]\n    out x -> linear(3)\n}\n"
        "train Fit {\n    layer net = Net()\n    in x: float32[N, 4]\n    in labels: int64[N]\n"
        '    out loss = cross_entropy(net(x), labels, reduction="sum") / size(x, 0)\n'
        "    optimizer: sgd(lr=0.1)\n}\n"
    )
    plan = dslnet.loads(text).training("Fit")
    ops = [n.op for step in plan.steps for n in step.graph.nodes]
    assert SizeValue.name in ops


def test_a_size_value_compiles_in_one_torch_graph_for_any_batch() -> None:
    body = "network S {\n    in x: float32[N, 4]\n    out x / (N + 1)\n}\n"
    module = dslnet.loads(body).torch("S").eval()
    compiled = torch.compile(module, fullgraph=True, backend="eager", dynamic=True)
    for batch in (2, 5):
        x = torch.randn(batch, 4)
        torch.testing.assert_close(compiled(x), x / (batch + 1))
