"""Limits: a spec written to hit each bound on expansion is stopped early, with a
located error naming the flag that raises the bound, in bounded memory.

"Early" is measured as work, not time: the IR nodes built before the error (counted
by wrapping GraphBuilder.add_node) and the peak of Python allocations (tracemalloc).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

import dslnet
from dslnet.cli import build_parser, main
from dslnet.core.diagnostics import Diagnostics
from dslnet.frontend.bound import ExpansionBound
from dslnet.frontend.parser import parse
from dslnet.ir.builder import GraphBuilder

ROOT = Path(__file__).resolve().parents[1]
PEAK_LIMIT_MB = 16.0  # what a refused spec may allocate while being refused


@dataclass
class Outcome:
    errors: list[str]  # "line:col: message"
    nodes_built: int
    peak_mb: float


Run = Callable[..., Outcome]


def net(*body: str, inputs: str = "x: float32[N, 4]") -> str:
    """A network `Net` with input `inputs` and these body lines (4-space indented)."""
    lines = ["network Net() {", f"    in {inputs}", *(f"    {b}" for b in body), "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Run]:
    """`run(text, limits=None)`: check the spec (every network at its defaults) and say
    what it reported, how many nodes were built and how much memory it took."""
    built = 0
    add_node = GraphBuilder.add_node

    def counting(self: GraphBuilder, *args: object, **kwargs: object) -> tuple[str, ...]:
        nonlocal built
        built += 1
        return add_node(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(GraphBuilder, "add_node", counting)
    dslnet.loads("network Warm() {\n    in x: float32[N, 2]\n    out y = x\n}\n").check()

    def go(text: str, limits: dslnet.Limits | None = None) -> Outcome:
        nonlocal built
        built = 0
        path = tmp_path / "spec.net"
        path.write_text(textwrap.dedent(text))
        tracemalloc.start()
        try:
            program = dslnet.load(path, limits, strict=False)
            diags = program.check()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        errors = [f"{d.span.line}:{d.span.col}: {d.message}" for d in diags if d.is_error]
        return Outcome(errors, built, peak / 2**20)

    yield go


def fan_out(levels: int, calls: int = 2) -> str:
    """Block B<k> calls B<k-1> `calls` times, `levels` deep: calls**levels nodes."""
    lines = ["block B0() {", "    in x: [N, D]", "    out y = x -> relu", "}"]
    for k in range(1, levels + 1):
        body = " -> ".join([f"B{k - 1}"] * calls)
        lines += [f"block B{k}() {{", "    in x: [N, D]", f"    out y = x -> {body}", "}"]
    lines += ["network Net() {", "    in x: float32[N, 4]", f"    out y = x -> B{levels}", "}"]
    return "\n".join(lines) + "\n"


# --- nodes --------------------------------------------------------------------------------


def test_exponential_fan_out_is_refused_before_any_node(run: Run) -> None:
    out = run(fan_out(40))
    last = 4 * 41 + 3  # the network's `out` line
    assert out.errors == [
        f"{last}:18: block 'B40' adds at least {2**40} nodes: the network would have more "
        "than 200000 nodes (raise the limit with --max-nodes)"
    ]
    assert out.nodes_built == 0
    assert out.peak_mb < PEAK_LIMIT_MB


def test_fan_out_through_parameters_and_loops_is_refused_before_any_node(run: Run) -> None:
    lines = ["block B0(n: int) {", "    in x: [N, D]", "    out y = x -> relu", "}"]
    for k in range(1, 31):
        lines += [
            f"block B{k}(n: int) {{",
            "    in x: [N, D]",
            "    h = x",
            f"    repeat n {{ h = h -> B{k - 1}(n) }}",
            "    out y = h",
            "}",
        ]
    lines += ["network Net(n: int = 3) {", "    in x: float32[N, 4]", "    out y = B30(x, n)", "}"]
    out = run("\n".join(lines) + "\n")
    assert len(out.errors) == 1
    assert out.errors[0].startswith(f"{len(lines) - 1}:13: block 'B30' adds at least {3**30} ")
    assert out.nodes_built == 0
    assert out.peak_mb < PEAK_LIMIT_MB


def test_a_loop_over_a_big_block_is_refused_at_its_count(run: Run) -> None:
    blocks = fan_out(15).split("network")[0]
    out = run(
        blocks + "network Net() {\n    in x: float32[N, 4]\n    h = x\n"
        "    repeat 100 { h = h -> B15 }\n    out y = h\n}\n"
    )
    assert out.errors == [
        f"{4 * 16 + 4}:12: this loop adds at least {100 * 2**15} nodes: the network would "
        "have more than 200000 nodes (raise the limit with --max-nodes)"
    ]
    assert out.nodes_built == 0


def test_node_limit_stops_what_the_bound_cannot_foresee(run: Run) -> None:
    chain = "\n".join("    h = h -> relu" for _ in range(150))
    text = f"network Net() {{\n    in x: float32[N, 4]\n    h = x\n{chain}\n    out y = h\n}}\n"
    out = run(text, dslnet.Limits(max_nodes=100))
    assert out.errors == [
        "104:14: the network has more than 100 nodes (raise the limit with --max-nodes)"
    ]
    assert out.nodes_built == 100
    assert run(text).errors == []


def test_the_bound_is_reached_exactly_at_the_limit(run: Run) -> None:
    """A network of exactly max_nodes nodes compiles; one more is refused up front."""

    def text(n: int) -> str:
        return net("h = x", f"repeat {n} {{ h = h -> relu }}", "out y = h")

    assert run(text(50), dslnet.Limits(max_nodes=50)).errors == []
    out = run(text(51), dslnet.Limits(max_nodes=50))
    assert out.errors == [
        "4:12: this loop adds at least 51 nodes: the network would have more than 50 "
        "nodes (raise the limit with --max-nodes)"
    ]
    assert out.nodes_built == 0


# --- loop iterations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loop", "where"),
    [
        ("repeat 1000000000 { h = h -> relu }", "4:12"),
        ("for i in range(1000000000) { h = h -> relu }", "4:14"),
    ],
)
def test_a_huge_loop_is_refused_before_it_runs(run: Run, loop: str, where: str) -> None:
    out = run(
        f"network Net() {{\n    in x: float32[N, 4]\n    h = x\n    {loop}\n    out y = h\n}}\n"
    )
    assert len(out.errors) == 1
    assert out.errors[0].startswith(f"{where}: ")
    assert "1000000000" in out.errors[0] and "--max-iterations" in out.errors[0]
    assert out.nodes_built == 0
    assert out.peak_mb < PEAK_LIMIT_MB


def test_iterations_add_up_over_nested_loops(run: Run) -> None:
    text = (
        "network Net() {\n    in x: float32[N, 4]\n    h = x\n"
        "    repeat 100 { repeat 101 { const k = 1 } }\n    out y = h\n}\n"
    )
    out = run(text, dslnet.Limits(max_iterations=10_000))
    assert out.errors == [
        "4:25: expansion runs 10099 loop iterations, over the limit of 10000 "
        "(raise it with --max-iterations)"
    ]
    assert run(text, dslnet.Limits(max_iterations=20_000)).errors == []


# --- block nesting ------------------------------------------------------------------------


def nested(levels: int) -> str:
    lines = ["block B0() {", "    in x: [N, D]", "    out y = x -> relu", "}"]
    for k in range(1, levels + 1):
        lines += [f"block B{k}() {{", "    in x: [N, D]", f"    out y = x -> B{k - 1}", "}"]
    lines += ["network Net() {", "    in x: float32[N, 4]", f"    out y = x -> B{levels}", "}"]
    return "\n".join(lines) + "\n"


def test_blocks_nested_past_the_depth_limit_are_refused(run: Run) -> None:
    out = run(nested(80))
    assert len(out.errors) == 1
    assert "blocks nest deeper than 64 levels (raise the limit with --max-depth)" in out.errors[0]
    assert out.nodes_built == 0
    assert run(nested(80), dslnet.Limits(max_depth=100)).errors == []


# --- imports and file sizes ---------------------------------------------------------------


def test_import_count_is_limited(tmp_path: Path) -> None:
    for k in range(5):
        (tmp_path / f"lib{k}.net").write_text(f'import "lib{k + 1}.net"\n' if k < 4 else "")
    main_file = tmp_path / "main.net"
    main_file.write_text(
        'import "lib0.net"\nnetwork Net() {\n    in x: float32[N, 4]\n    out y = x\n}\n'
    )
    assert dslnet.load(main_file).networks == ["Net"]
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.load(main_file, dslnet.Limits(max_imports=3))
    (err,) = info.value.diagnostics
    assert err.span.file.endswith("lib2.net") and (err.span.line, err.span.col) == (1, 1)
    assert err.message == "more than 3 imported files (raise the limit with --max-imports)"


def test_spec_files_over_the_size_limit_are_not_read(tmp_path: Path) -> None:
    big = "# " + "x" * 400 + "\n"
    (tmp_path / "lib.net").write_text(big)
    main_file = tmp_path / "main.net"
    main_file.write_text(
        'import "lib.net"\nnetwork Net() {\n    in x: float32[N, 4]\n    out y = x\n}\n'
    )
    limits = dslnet.Limits(max_file_bytes=200)
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.load(main_file, limits)
    (err,) = info.value.diagnostics
    assert (err.span.line, err.span.col) == (1, 1)  # located at the import
    assert (
        "over the limit of 200 bytes for a spec file (raise it with --max-file-bytes)"
        in err.message
    )

    main_file.write_text(big)
    with pytest.raises(dslnet.CompileError, match="over the limit of 200 bytes"):
        dslnet.load(main_file, limits)
    with pytest.raises(dslnet.CompileError, match="over the limit of 200"):
        dslnet.loads(big, limits=limits)


# --- tensor sizes and parameter counts ----------------------------------------------------


def test_a_huge_weight_is_refused_before_it_exists(run: Run) -> None:
    out = run(
        "network Net() {\n    in x: float32[N, 16]\n    out y = x -> linear(1000000000000)\n}\n"
    )
    assert out.errors == [
        "3:18: linear's weight [1000000000000, 16] has 16000000000000 elements, over the "
        "limit of 2147483648 (raise it with --max-tensor-elements)"
    ]
    assert out.peak_mb < PEAK_LIMIT_MB


def test_huge_inputs_and_activations_are_refused(run: Run) -> None:
    out = run("network Net() {\n    in x: float32[N, 100000, 100000]\n    out y = x\n}\n")
    assert out.errors == [
        "2:11: input 'x' float32[N, 100000, 100000] has 10000000000 elements, over the "
        "limit of 2147483648 (raise it with --max-tensor-elements)"
    ]
    wide = net("out y = concat(x, x, axis=1)", inputs="x: float32[32768, 65536]")
    assert run(wide).errors == [
        "3:13: concat's output float32[32768, 131072] has 4294967296 elements, over the "
        "limit of 2147483648 (raise it with --max-tensor-elements)"
    ]
    assert run(wide, dslnet.Limits(max_tensor_elements=2**33)).errors == []


def test_a_parameter_count_over_the_limit_is_refused_where_it_is_crossed(run: Run) -> None:
    # 10 layers of 46340 x 46340 (each under the tensor limit): 2.1e10 parameters.
    text = (
        "network Net() {\n    in x: float32[N, 46340]\n    h = x\n"
        "    repeat 10 { h = h -> linear(46340) }\n    out y = h\n}\n"
    )
    out = run(text)
    assert len(out.errors) == 1
    per_layer = 46340 * 46340 + 46340
    crossing = 10**10 // per_layer + 1
    assert out.errors[0] == (
        f"4:26: the network has {crossing * per_layer} parameters and buffers, over the "
        f"limit of 10000000000 (raise it with --max-parameters)"
    )
    assert out.nodes_built == crossing
    assert out.peak_mb < PEAK_LIMIT_MB  # shapes only: not one weight was allocated
    assert run(text, dslnet.Limits(max_parameters=10**11)).errors == []


def test_the_parameter_limit_counts_shared_layers_once(run: Run) -> None:
    shared = (
        "network Net() {\n    in x: float32[N, 10]\n    layer fc = linear(10)\n    h = x\n"
        "    repeat 50 { h = h -> fc }\n    out y = h\n}\n"
    )
    assert run(shared, dslnet.Limits(max_parameters=110)).errors == []
    out = run(shared, dslnet.Limits(max_parameters=109))
    assert [e.split(": ", 1)[1] for e in out.errors] == [
        "the network has 110 parameters and buffers, over the limit of 109 (raise it with "
        "--max-parameters)"
    ]


def test_buffers_count_with_parameters(run: Run) -> None:
    """A module holds its buffers too: batchnorm's running statistics ([60] each) and
    its step count ([]) are 121 elements without a single learned parameter."""
    text = net("out y = x -> batchnorm(affine=false)", inputs="x: float32[N, 60, T]")
    assert run(text, dslnet.Limits(max_parameters=121)).errors == []
    assert run(text, dslnet.Limits(max_parameters=120)).errors == [
        "3:18: the network has 121 parameters and buffers, over the limit of 120 "
        "(raise it with --max-parameters)"
    ]


@pytest.mark.parametrize(("open_", "close"), [("[", "]"), ("(", ")")])
def test_a_list_literal_is_bounded_like_loops(run: Run, open_: str, close: str) -> None:
    """--max-iterations bounds list lengths, a list written out in full included."""
    items = open_ + ", ".join(["1"] * 11) + close
    text = net(f"s = {items}", "out y = x -> linear(len(s))")
    assert run(text, dslnet.Limits(max_iterations=11)).errors == []
    assert run(text, dslnet.Limits(max_iterations=10)).errors == [
        "3:9: a list of 11 items is over the limit of 10 (raise it with --max-iterations)"
    ]


# --- compile-time values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "grow"), [('"ab"', "s + s"), ("[1, 2]", "s + s"), ("3", "s * s")]
)
def test_values_that_double_in_a_loop_are_stopped(run: Run, start: str, grow: str) -> None:
    """Strings, lists and ints are bounded where they are computed (values.arith)."""
    out = run(
        f"network Net() {{\n    in x: float32[N, 4]\n    s = {start}\n"
        f"    repeat 100 {{ s = {grow} }}\n    out y = x\n}}\n"
    )
    assert len(out.errors) == 1
    assert out.errors[0].startswith("4:22: ")
    assert out.peak_mb < PEAK_LIMIT_MB


def test_a_symbolic_size_that_blows_up_is_stopped(run: Run) -> None:
    out = run(
        "network Net() {\n    in x: float32[N, H]\n    d = H + 1\n"
        "    repeat 40 { d = d * d }\n    out y = x\n}\n"
    )
    assert len(out.errors) == 1
    assert out.errors[0].startswith("4:21: '*' here makes a symbolic size over 2000 characters")


# --- nesting in the text ------------------------------------------------------------------

# Each kind of nesting, `n` levels deep: brackets, prefix operators (read whole before
# Lark builds them) and left-nested chains (built one level at a time).
CHAINS: dict[str, Callable[[int], str]] = {
    "brackets": lambda n: "[" * n + "1" + "]" * n,
    "parentheses": lambda n: "(" * n + "1" + ")" * n,
    "not": lambda n: "not " * n + "true",
    "minus": lambda n: "-" * n + "1",
    "if-expressions": lambda n: "if x { " * n + "1" + " } else { 2 }" * n,
    "attributes": lambda n: "x" + ".y" * n,
    "calls": lambda n: "x" + "()" * n,
    "indexes": lambda n: "x" + "[0]" * n,
    "pipeline": lambda n: "x" + " -> relu" * n,
    "sum": lambda n: "1" + " + 1" * n,
}
NESTED = (
    "nested more than 100 levels deep (brackets, calls, operators, pipeline stages and "
    "bodies count); split it into several statements"
)


@pytest.mark.parametrize("kind", CHAINS)
def test_a_megabyte_of_nesting_is_refused_as_soon_as_it_passes_the_limit(
    run: Run, kind: str
) -> None:
    """Refused at the first token or node past 100 levels, before Lark builds the rest
    (a full parse of 4 MiB of brackets took 176 s and 1.8 GB); the statement is
    skipped and the rest of the file still checked."""
    make = CHAINS[kind]
    n = 1
    while len(make(n)) < 1_000_000:
        n *= 2
    out = run(net(f"c = {make(n)}", "out y = x -> rleu"))
    assert len(out.errors) == 2, out.errors
    assert out.errors[0].startswith("3:") and out.errors[0].endswith(NESTED)
    assert out.errors[1] == "4:18: unknown op or block 'rleu' (did you mean 'relu'?)"
    assert out.peak_mb < PEAK_LIMIT_MB


@pytest.mark.parametrize("kind", CHAINS)
def test_nesting_below_the_limit_parses(kind: str) -> None:
    diags = Diagnostics()
    parse(net(f"c = {CHAINS[kind](90)}"), "t.net", diags)
    assert not [d for d in diags.errors() if NESTED in d.message]


def test_bodies_nested_past_the_limit_are_refused_at_the_brace(run: Run) -> None:
    levels = 5000
    body = "    if true {\n" * levels + "h = h -> relu\n" + "}\n" * levels
    out = run("network Net() {\n    in x: float32[N, 4]\n    h = x\n" + body + "    out y = h\n}\n")
    assert out.errors[0] == f"103:13: {NESTED}"  # the 101st '{', counting the network's
    assert out.peak_mb < PEAK_LIMIT_MB


# --- the command line ---------------------------------------------------------------------


def _flags(command: str) -> dict[str, str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    chosen = sub.choices[command]  # type: ignore[index]
    return {a.dest: a.option_strings[0] for a in chosen._actions if a.option_strings}


@pytest.mark.parametrize("command", ["check", "compile", "summary", "graph", "bench"])
def test_every_limit_has_a_flag_on_every_command_that_compiles(command: str) -> None:
    flags = _flags(command)
    for field in fields(dslnet.Limits):
        assert field.name in flags, f"{command}: no flag for Limits.{field.name}"
        name = field.name if field.name != "import_roots" else "import_root"
        assert flags[field.name] == "--" + name.replace("_", "-")


def test_flags_raise_the_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "deep.net"
    deep.write_text(nested(70))
    assert main(["check", str(deep)]) == 1
    assert "--max-depth" in capsys.readouterr().out
    assert main(["check", str(deep), "--max-depth", "80"]) == 0
    fan = tmp_path / "fan.net"
    fan.write_text(fan_out(12))
    assert main(["check", str(fan), "--max-nodes", "4000"]) == 1
    assert main(["check", str(fan), "--max-nodes", "4096"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("value", ["0", "-5", "many", "1e6"])
def test_a_limit_must_be_a_positive_integer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    spec = tmp_path / "s.net"
    spec.write_text(nested(1))
    with pytest.raises(SystemExit) as info:
        main(["check", str(spec), "--max-nodes", value])
    assert info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_the_cli_refuses_a_fan_out_in_bounded_memory(tmp_path: Path) -> None:
    """A separate process, to measure its whole peak memory (VmHWM: the peak resident
    size of this program, not of the one it was forked from); the timeout is a guard
    against a hang, not a measurement."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc to read a process's peak memory")
    spec = tmp_path / "fan.net"
    spec.write_text(fan_out(40))
    script = (
        "import json, re, sys\n"
        "from dslnet.cli import main\n"
        "code = main(['check', sys.argv[1]])\n"
        "status = open('/proc/self/status').read()\n"
        "peak = int(re.search(r'VmHWM:\\s*(\\d+) kB', status).group(1))\n"
        "print(json.dumps({'code': code, 'kb': peak}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 1
    assert "adds at least 1099511627776 nodes" in done.stdout  # check: findings on stdout
    assert result["kb"] < 400 * 1024


# --- the bound itself ---------------------------------------------------------------------


def test_the_bound_never_exceeds_what_expansion_builds(spec_file: Path) -> None:
    program = dslnet.load(spec_file)
    for name in program.networks:
        graph = program.ir(name)
        decl = program.block(name)
        assert decl is not None
        bound = ExpansionBound(program.spec, program.limits).block_call(decl, graph.args)
        assert 0 < bound <= len(graph.nodes), (name, bound, len(graph.nodes))


@pytest.mark.parametrize(
    "body",
    [
        # a count reassigned inside the loop: every run must not count the first value
        "k = 100\n    repeat 3 {\n        repeat k { h = h -> relu }\n        k = 0\n    }",
        # branches on something unknown: the smaller one
        "if x.shape[1] == 4 { repeat 9 { h = h -> relu } } else { h = h -> relu }",
        # a local value hiding an op is not a call of the op
        "relu = 3\n    repeat relu { h = h -> tanh }",
        # a loop variable hiding a constant
        "for big in [1, 2] { repeat big { h = h -> relu } }",
        # a range is a list: equal to one, and counted by its length
        "if range(3) == [0, 1, 2] { h = h -> relu } else { repeat 9 { h = h -> relu } }",
        "r = range(2, 9, 3)\n    for i in r { h = h -> relu }\n    repeat len(r) { h = h -> tanh }",
    ],
)
def test_the_bound_stays_below_the_truth_on_tricky_bodies(body: str) -> None:
    text = (
        "const big = 1000000\n"
        f"network Net() {{\n    in x: float32[N, 4]\n    h = x\n    {body}\n    out y = h\n}}\n"
    )
    program = dslnet.loads(text, "tricky.net")
    graph = program.ir("Net")
    decl = program.block("Net")
    assert decl is not None
    bound = ExpansionBound(program.spec, program.limits).block_call(decl, graph.args)
    assert bound <= len(graph.nodes)


# --- work and total size ------------------------------------------------------------------


def test_a_long_loop_body_is_stopped_by_the_step_budget(run: Run) -> None:
    """max_iterations counts iterations; max_steps the statements they run."""
    body = "\n".join(f"        a{i} = {i}" for i in range(100))
    out = run(net("repeat 1000 {", body.strip(), "}", "out y = x"), dslnet.Limits(max_steps=5000))
    assert len(out.errors) == 1
    line, _, message = out.errors[0].split(":", 2)
    assert 4 <= int(line) <= 103  # a statement of the body, where the budget ran out
    assert "limit of 5000 steps" in message and "--max-steps" in message


def test_squaring_a_long_symbolic_size_is_charged_by_its_terms(run: Run) -> None:
    """Multiplying sums of many terms is as costly as many statements: a product whose
    result is refused as too long is still charged, so a loop of them stops at once."""
    text = net(
        "d = (H + 1) * (W + 2) * (C + 3) * (N + 4) * (H + 5) * (W + 6)",
        "repeat 100000 { e = d * d }",
        "out y = x",
        inputs="x: float32[N, H, W, C]",
    )
    out = run(text, dslnet.Limits(max_steps=200_000))
    assert any("--max-steps" in e for e in out.errors)
    assert out.errors[-1].startswith("4:25: expansion passes the limit of 200000 steps")


def test_block_calls_and_ranges_are_charged(run: Run) -> None:
    block = "block B {\n    in x: [N, H]\n    out y = x\n}\n"
    calls = run(
        block + net("repeat 1000 { h = B(x) }", "out y = h"), dslnet.Limits(max_steps=10_000)
    )
    assert [e.split(": ", 1)[0] for e in calls.errors] == ["7:23"]
    ranges = run(
        net("repeat 100 { n = len(range(1000)) }", "out y = x"), dslnet.Limits(max_steps=10_000)
    )
    assert len(ranges.errors) == 1 and "--max-steps" in ranges.errors[0]


def test_the_networks_of_one_check_share_the_step_budget(run: Run) -> None:
    """Each network alone is under the budget, the two together are not: a spec of
    many networks is bounded as a whole."""
    one = (
        "network {}() {{\n    in x: float32[N, 4]\n    repeat 300 {{ a = 1 }}\n    out y = x\n}}\n"
    )
    text = one.format("First") + one.format("Second")
    assert run(one.format("First"), dslnet.Limits(max_steps=1000)).errors == []
    out = run(text, dslnet.Limits(max_steps=1000))
    assert [e.split(": ", 1)[0] for e in out.errors] == ["8:18"]  # in the second
    assert "--max-steps" in out.errors[0]


def test_real_networks_need_a_twentieth_of_the_default_steps(spec_file: Path) -> None:
    """Every network of a library file together (resnet.net: ResNet18, 34 and 50, the
    most) checks in a twentieth of the default budget."""
    limits = dslnet.Limits(max_steps=dslnet.Limits().max_steps // 20)
    errors = [d for d in dslnet.load(spec_file, limits).check() if d.is_error]
    assert errors == []


def test_imports_together_are_bounded_at_the_import_that_passes(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.net").write_text(
            f"block {name.upper()} {{\n    in x: [N]\n"
            f"    out y = x -> relu\n}}\n" + "#" * 1000 + "\n"
        )
    main_spec = tmp_path / "main.net"
    main_spec.write_text('import "a.net"\nimport "b.net"\nimport "c.net"\n')
    program = dslnet.load(main_spec, dslnet.Limits(max_total_bytes=2500), strict=False)
    errors = [d for d in program.diags.errors()]
    assert [(d.span.line, d.span.col) for d in errors] == [(3, 1)]
    assert "over the limit of 2500 (raise it with --max-total-bytes)" in errors[0].message
    assert dslnet.load(main_spec, dslnet.Limits(max_total_bytes=4000), strict=False).check() == []


def test_output_the_terminal_cannot_encode_is_escaped(tmp_path: Path) -> None:
    """With an ASCII-only stdout, a spec's non-ASCII text is written escaped: the
    usual exit 1, not an internal error."""
    spec = tmp_path / "u.net"
    spec.write_text("network Net() {\n    in x: float32[N, 4]\n    out y = x -> r\u00e9lu\n}\n")
    env = {"PYTHONIOENCODING": "ascii", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "dslnet", "check", str(spec)],
        capture_output=True,
        text=True,
        encoding="ascii",
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr
    assert "r\\xe9lu" in done.stdout and "internal error" not in done.stderr
