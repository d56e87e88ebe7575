"""Parsing and expansion: the language's statements and their semantics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import dslnet
from dslnet.core.diagnostics import Diagnostics
from dslnet.frontend import ast
from dslnet.frontend.parser import parse
from dslnet.ir.graph import Graph


def parse_expr(text: str) -> ast.Expr:
    diags = Diagnostics()
    module, _ = parse(f"const X = {text}\n", "t.net", diags)
    assert not diags.has_errors, [d.message for d in diags.sorted()]
    decl = module.decls[0]
    assert isinstance(decl, ast.ConstDecl)
    return decl.value


def ir(text: str, network: str = "Net", **params: object) -> Graph:
    return dslnet.loads(text, filename="t.net").ir(network, **params)


def errors(text: str) -> list[str]:
    try:
        prog = dslnet.loads(text, filename="t.net", strict=False)
        diags = prog.check()
    except dslnet.CompileError as err:
        diags = err.diagnostics
    return [f"{d.span.line}:{d.span.col}: {d.message}" for d in diags if d.is_error]


# --- parsing -------------------------------------------------------------------------


def test_pipe_binds_looser_than_arithmetic() -> None:
    expr = parse_expr("a + b -> relu -> f(2)")
    assert isinstance(expr, ast.Pipe) and isinstance(expr.stage, ast.Call)
    inner = expr.value
    assert isinstance(inner, ast.Pipe) and isinstance(inner.value, ast.Binary)
    assert inner.value.op == "+"


def test_arithmetic_precedence_and_unary_minus() -> None:
    expr = parse_expr("1 + 2 * -3")
    assert isinstance(expr, ast.Binary) and expr.op == "+"
    assert isinstance(expr.right, ast.Binary) and expr.right.op == "*"
    assert isinstance(expr.right.right, ast.Unary)


def test_boolean_operators_and_comparisons() -> None:
    expr = parse_expr("not a == 1 or b != 2 and c")
    assert isinstance(expr, ast.Binary) and expr.op == "or"
    assert isinstance(expr.left, ast.Unary) and expr.left.op == "not"


def test_calls_span_lines_and_statements_split_on_semicolons() -> None:
    graph = ir(
        "network Net() {\n  in x: float32[N, 4]; h = linear(\n    x,\n    8,\n  )\n  out h\n}\n"
    )
    assert str(graph.type_of(graph.outputs[0][1])) == "float32[N, 8]"


def test_statements_on_one_line_need_a_separator() -> None:
    found = errors(
        "network Net() {\n  in x: float32[N, 4]\n  h = relu(x) y = relu(h)\n  out h\n}\n"
    )
    assert len(found) == 1 and found[0].startswith("3:15: unexpected name 'y'")


def test_unclosed_call_names_where_it_opened() -> None:
    found = errors("network Net() {\n  in x: float32[N, 4]\n  h = linear(x, 8\n  out h\n}\n")
    assert found[0] == "4:3: unexpected 'out': expected ')' to close '(' opened at 3:13"


def test_syntax_errors_recover_per_statement() -> None:
    text = (
        "network Net() {\n  in x: float32[N, 4]\n  a = x ->\n  b = linear(x,, 3)\n  out y = x\n}\n"
    )
    found = errors(text)
    assert [f.split(":")[0] for f in found] == ["3", "4"], found


# --- expansion -----------------------------------------------------------------------------


def test_for_loop_destructures_and_blocks_see_their_params() -> None:
    graph = ir("""
block Stage(c: int, k: int) {
    in x: [N, D]
    out y = x -> linear(c * k) -> relu
}
network Net() {
    in x: float32[N, 8]
    for (c, k) in [(4, 1), (8, 2)] { x = x -> Stage(c, k) }
    out y = x
}
""")
    assert [p.shape for p in graph.parameters.values() if p.role == "weight"] == [(4, 8), (16, 4)]
    assert list(graph.modules) == ["stage1", "stage2"]


def test_block_patterns_bind_sizes_for_compile_time_conditions() -> None:
    text = """
block Proj(c: int) {
    in x: [N, C]
    skip = if C != c { x -> linear(c) } else { x }
    out y = relu(skip)
}
network Net(width: int = 8) {
    in x: float32[N, 8]
    out y = x -> Proj(width)
}
"""
    assert [n.op for n in ir(text).nodes] == ["relu"]
    assert [n.op for n in ir(text, width=16).nodes] == ["linear", "relu"]


def test_condition_on_a_symbolic_size_is_an_error() -> None:
    found = errors("""
network Net() {
    in x: float32[N, 8]
    y = if N == 4 { x } else { relu(x) }
    out y
}
""")
    assert len(found) == 1 and "depends on the run-time size N" in found[0]


def test_if_elif_else_statements_and_repeat_index() -> None:
    graph = ir("""
network Net(mode: str = "b") {
    in x: float32[N, 4]
    if mode == "a" { x = relu(x) } elif mode == "b" { x = tanh(x) } else { x = sigmoid(x) }
    repeat 3 as i { x = x -> linear(4 + i) }
    out x
}
""")
    assert next(n.op for n in graph.nodes) == "tanh"
    assert graph.parameters["linear3.weight"].shape == (6, 5)


def test_shared_layer_is_one_set_of_weights() -> None:
    graph = ir("""
network Net() {
    layer fc = linear(8)
    in a: float32[N, 4]
    in b: float32[N, 4]
    out d = fc(a) - (b -> fc)
}
""")
    assert list(graph.parameters) == ["fc.weight", "fc.bias"]
    assert [n.module for n in graph.nodes if n.op == "linear"] == ["fc", "fc"]


def test_shared_block_layer_shares_every_inner_weight() -> None:
    graph = ir("""
block Encoder(dim: int) {
    in x: [N, D]
    out z = x -> linear(16) -> relu -> linear(dim)
}
network Net() {
    layer enc = Encoder(8)
    in a: float32[N, 4]
    in b: float32[N, 4]
    out d = enc(a) - enc(b)
}
""")
    assert sorted(graph.parameters) == [
        "enc.linear1.bias",
        "enc.linear1.weight",
        "enc.linear2.bias",
        "enc.linear2.weight",
    ]
    assert graph.num_parameters == 4 * 16 + 16 + 16 * 8 + 8
    # both applications are in the graph, with distinct value names
    assert {"enc.z", "enc@2.z"} <= set(graph.values)


def test_shared_layer_with_incompatible_shapes_shows_both() -> None:
    found = errors("""
network Net() {
    layer fc = linear(8)
    in a: float32[N, 4]
    in b: float32[N, 5]
    out d = fc(a) + fc(b)
}
""")
    assert len(found) == 1
    assert "weight is [8, 4] from the first use, this use needs [8, 5]" in found[0]


def test_multi_output_blocks_unpack_and_select() -> None:
    graph = ir("""
block Split(c: int) {
    in x: [N, D]
    out mu = linear(x, c)
    out logvar = linear(x, c)
}
network Net() {
    in x: float32[N, 4]
    mu, logvar = Split(x, 3)
    out s = mu + logvar
    out only = Split(x, 2).logvar
}
""")
    assert [str(graph.type_of(v)) for _, v in graph.outputs] == ["float32[N, 3]", "float32[N, 2]"]


def test_symbolic_dims_flow_through_flatten_and_concat() -> None:
    graph = ir("""
network Net() {
    in x: float32[N, C, H, W]
    f = flatten(x)
    out y = concat(f, f, axis=1)
}
""")
    assert str(graph.type_of("y")) == "float32[N, 2*C*H*W]"


def test_network_parameters_reach_input_types() -> None:
    graph = ir("network Net(z: int = 100) {\n in x: float32[N, z]\n out y = relu(x)\n}\n", z=7)
    assert str(graph.type_of("x")) == "float32[N, 7]"


def test_a_network_can_be_used_as_a_block() -> None:
    graph = ir("""
network Head(classes: int = 3) {
    in h: float32[N, 16]
    out logits = linear(h, classes)
}
network Net() {
    in x: float32[N, 8]
    out y = x -> linear(16) -> Head(5)
}
""")
    assert str(graph.type_of(graph.outputs[0][1])) == "float32[N, 5]"


def test_imports_resolve_relative_and_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.net").write_text(
        "block Twice(c: int) {\n  in x: [N, D]\n  out y = x -> linear(c) -> linear(c)\n}\n"
    )
    main = tmp_path / "main.net"
    main.write_text(
        'import "lib/blocks.net"\nnetwork Net() {\n'
        "  in x: float32[N, 4]\n  out y = Twice(x, 3)\n}\n"
    )
    assert dslnet.load(main).ir("Net").num_parameters == 4 * 3 + 3 + 3 * 3 + 3
    outside = tmp_path / "lib" / "escape.net"
    outside.write_text('import "../main.net"\n')
    with pytest.raises(dslnet.CompileError, match="leaves the importing file's directory"):
        dslnet.load(outside)


def test_huge_repeat_fails_fast_with_a_located_error() -> None:
    start = time.perf_counter()
    found = errors(
        "network Net() {\n in x: float32[N, 4]\n repeat 1000000000 { x = relu(x) }\n out x\n}\n"
    )
    assert time.perf_counter() - start < 1.0
    assert found == [
        "3:9: expansion runs 1000000000 loop iterations, over the limit of 100000 "
        "(raise it with --max-iterations)"
    ]


def test_node_limit_is_enforced() -> None:
    prog = dslnet.loads(
        "network Net() {\n in x: float32[N, 4]\n repeat 50 { x = relu(x) }\n out x\n}\n",
        filename="t.net",
        limits=dslnet.Limits(max_nodes=10),
    )
    with pytest.raises(dslnet.CompileError, match="more than 10 nodes"):
        prog.ir("Net")


def test_a_byte_order_mark_is_not_part_of_the_spec(tmp_path: Path) -> None:
    """Some editors start UTF-8 files with a BOM; positions are still the text's own."""
    spec = tmp_path / "bom.net"
    bom = b"\xef\xbb\xbf"
    spec.write_bytes(bom + b"network B() {\n    in x: float32[N, 4]\n    out y = x -> relu\n}\n")
    assert dslnet.load(spec).networks == ["B"]
    spec.write_bytes(bom + b"network B() {\n    in x: float32[N, 4]\n    out y = q\n}\n")
    with pytest.raises(dslnet.CompileError) as err:
        dslnet.load(spec)
    assert err.value.diagnostics[0].span.line == 3
    assert err.value.diagnostics[0].span.col == 13


# --- declarations without parameters, recovery at declaration level --------------------


def test_declarations_without_parentheses_take_no_parameters() -> None:
    from dslnet.ir.printer import print_graph

    body = "{\n    in x: float32[N, 8]\n    out y = x -> Twice\n}\n"
    block = "block Twice {\n    in x: float32[N, C]\n    out y = x + x\n}\n"
    bare = dslnet.loads(f"network Net {body}{block}", filename="t.net")
    empty = dslnet.loads(
        f"network Net() {body}{block.replace('Twice {', 'Twice() {')}", filename="t.net"
    )
    assert print_graph(bare.ir("Net")) == print_graph(empty.ir("Net"))
    train = "train T {\n    layer net = Net()\n    in x: float32[N, 8]\n"
    train += "    in t: float32[N, 8]\n    out loss = mse_loss(net(x), t)\n}\n"
    program = dslnet.loads(f"network Net {body}{block}{train}", filename="t.net")
    assert program.trainings == ["T"] and program.training("T").steps


def test_a_missing_brace_is_found_where_the_next_declaration_starts() -> None:
    text = (
        "block Mlp(width: int) {\n"
        "    in x: float32[N, C]\n"
        "    out y = x -> linear(width)  # no '}'\n"
        "\n"
        "network Net() {\n"
        "    in x: float32[N, 8]\n"
        "    out y = x -> Mlp(16) -> rleu\n"
        "}\n"
    )
    assert errors(text) == [
        "5:1: block Mlp opened at 1:23 is not closed before network Net at 5:1 (a '}' is missing)",
        "7:29: unknown op or block 'rleu' (did you mean 'relu'?)",
    ]
    fixed = text.replace("rleu", "relu")
    program = dslnet.loads(fixed, filename="t.net", strict=False)
    assert program.blocks == ["Mlp"] and program.networks == ["Net"]


_TYPO_BODY = (
    "{kw} Stem() {{\n"
    "    in x: float32[N, 3, 32, 32]\n"
    "    {layer} fc = linear(10)\n"
    "    out y = x -> flatten -> fc -> rleu\n"
    "}}\n"
    "network Net() {{\n"
    "    in x: float32[N, 3, 32, 32]\n"
    "    out y = x -> Stem\n"
    "}}\n"
)


@pytest.mark.parametrize("typo", ["blcok", "blockk", "blok"])  # same length, longer, shorter
def test_a_misspelt_keyword_is_read_as_the_one_meant(typo: str) -> None:
    correct = errors(_TYPO_BODY.format(kw="block", layer="layer"))
    assert correct == ["4:35: unknown op or block 'rleu' (did you mean 'relu'?)"]
    found = errors(_TYPO_BODY.format(kw=typo, layer="lyer"))
    assert found == [
        f"1:1: unknown keyword '{typo}' (did you mean 'block'?)",
        "3:5: unknown keyword 'lyer' (did you mean 'layer'?)",
        *correct,  # the body is checked, at the same line:col; Stem stays known
    ]


def test_a_keyword_guess_is_forgotten_after_its_parse() -> None:
    diags = Diagnostics()
    parse("network A() {\n    lyer fc = linear(3)\n}\n", "t.net", diags)
    assert [d.message for d in diags.errors()] == ["unknown keyword 'lyer' (did you mean 'layer'?)"]
    diags = Diagnostics()
    parse("network A() {\n    lyer = 3\n}\n", "t.net", diags)  # a name where it was
    assert not diags.has_errors


@pytest.mark.parametrize(
    "line", ["netwrok = 3", "blok", "cosnt K =", "trian T() { out loss = 1 } )"]
)
def test_a_keyword_guess_that_does_not_fit_its_line_adds_no_error(line: str) -> None:
    assert len(errors(f"{line}\n")) == 1


def test_a_failed_value_silences_only_what_depends_on_it() -> None:
    text = (
        "network Net(n: int = 2) {\n"
        "    in x: float32[N, 8]\n"
        '    if n > "a" {\n'
        "        h = x -> relu\n"
        "    }\n"
        "    a = h -> linear(16)\n"  # silent: h is unknown after the failed condition
        '    b = a -> dropout(p="x")\n'  # its own argument: reported
        "    c = x -> linear(out_features=3)\n"
        "    out y = a + b + c + x\n"  # silent: each of a, b, c failed
        "}\n"
    )
    found = errors(text)
    assert [e.split(":")[0] for e in found] == ["3", "7", "8"], found


def test_each_cycle_of_blocks_is_reported_once_named_by_its_first_block() -> None:
    """One walk over all blocks (linear in the file): a cycle through a layer counts,
    and two cycles sharing a block are two errors."""
    text = "network Net() {\n    in x: float32[N, 4]\n    out y = x -> Pa\n}\n"
    calls = {
        "Pa": "x -> Qa",
        "Qa": "x -> Pa -> Self",
        "Self": "x -> Ea -> Self",
        "Ea": "x -> f",  # layer f = Fa()
        "Fa": "x -> Ea -> Ga",
        "Ga": "x -> Fa",
    }
    for name, body in calls.items():
        layer = "    layer f = Fa()\n" if name == "Ea" else ""
        text += f"block {name}() {{\n    in x: [N, W]\n{layer}    out y = {body}\n}}\n"
    assert errors(text) == [
        "11:18: recursive block 'Pa': Pa -> Qa -> Pa",
        "15:24: recursive block 'Self': Self -> Self",
        "24:18: recursive block 'Ea': Ea -> Fa -> Ea",
        "28:18: recursive block 'Fa': Fa -> Ga -> Fa",
    ]
