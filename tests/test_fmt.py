"""`dslnet fmt`: the canonical layout of specs, comments kept, the meaning never changed."""

from __future__ import annotations

import io
import json
import random
import re
import stat
import textwrap
from pathlib import Path

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dslnet
from dslnet.cli import main
from dslnet.core.diagnostics import CompileError, Diagnostics
from dslnet.frontend import format as fmt_package
from dslnet.frontend.format import format_source
from dslnet.frontend.format.doc import WIDTH
from dslnet.frontend.nesting import NestingError
from dslnet.frontend.parser import concrete_syntax, parse
from dslnet.ir.printer import print_graph

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted(p for top in ("specs", "tests", "examples") for p in ROOT.glob(f"{top}/**/*.net"))
_POSITION = re.compile(r"  # [^ ]+:\d+:\d+$", re.MULTILINE)


def fmt(text: str) -> str:
    return format_source(textwrap.dedent(text), "t.net")


def spec(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# --- canonical layout -------------------------------------------------------------


def test_spacing_indentation_and_separators_are_canonical() -> None:
    source = (
        "network  N( a:int=1,b : float ){in x:float32[ N,3 ,];h=(x->linear(a))*2//3%4\n"
        "out y=h -> dropout(b)}\n"
    )
    assert format_source(source, "t.net") == spec(
        """
        network N(a: int = 1, b: float) {
            in x: float32[N, 3]
            h = (x -> linear(a)) * 2 // 3 % 4
            out y = h -> dropout(b)
        }
        """
    )


def test_long_argument_lists_fill_lines_aligned_after_the_bracket() -> None:
    params = "first_parameter: int = 1000, second_parameter: int = 2000, third: int = 3"
    args = "x -> linear(first_parameter), x -> linear(second_parameter), x -> linear(third)"
    out = fmt(
        f"""
        network Wide({params}, fourth: int = 4) {{
            in x: float32[N, 8]
            out y = concat({args}, axis=1)
        }}
        """
    )
    assert out == spec(
        f"""
        network Wide({params},
                     fourth: int = 4) {{
            in x: float32[N, 8]
            out y = concat({args},
                           axis=1)
        }}
        """
    )
    assert max(len(line) for line in out.splitlines()) <= WIDTH


def test_pipeline_breaks_before_arrows_are_kept_and_long_ones_added() -> None:
    long = "a -> linear(111111111111) -> linear(222222222222) -> linear(333333333333)"
    out = fmt(
        f"""
        network P() {{
            in x: float32[N, 8]
            a = x
                  -> linear(8) -> relu
                                 -> linear(4)
            out y = {long} -> linear(4444)
        }}
        """
    )
    assert out == spec(
        """
        network P() {
            in x: float32[N, 8]
            a = x
                -> linear(8) -> relu
                -> linear(4)
            out y = a -> linear(111111111111) -> linear(222222222222) -> linear(333333333333)
                -> linear(4444)
        }
        """
    )


def test_blank_lines_shrink_to_one_and_go_at_the_edges_of_bodies_and_files() -> None:
    out = fmt(
        """


        const A = 1



        const B = 2
        block B() {

            in x: [N]


            out y = x

        }

        """
    )
    assert out == "const A = 1\n\nconst B = 2\nblock B() {\n    in x: [N]\n\n    out y = x\n}\n"


def test_one_statement_bodies_stay_on_their_line_while_they_fit() -> None:
    long = " -> ".join(["h"] + ["linear(w)"] * 6)
    out = fmt(
        f"""
        network R(n: int = 2) {{
            in x: float32[N, 8]
            h = x
            repeat n {{h = h -> relu}}
            for w in [8, 8] {{ h = {long} }}
            if n > 1 {{
                h = h -> relu
            }}
            out y = h
        }}
        """
    )
    assert "    repeat n { h = h -> relu }\n" in out
    assert f"    for w in [8, 8] {{\n        h = {long}\n    }}\n" in out
    assert "    if n > 1 {\n        h = h -> relu\n    }\n" in out


def test_if_expressions_break_every_branch_or_none() -> None:
    short = "const A = if true { 1 } elif false { 2 } else { 3 }\n"
    assert format_source(short, "t.net") == short
    long = (
        "const B = if true { 111111111111111111111 } elif false { 22222222222222222222 } "
        "else { 3333333333333333333333 }\n"
    )
    assert format_source(long, "t.net") == spec(
        """
        const B = if true {
            111111111111111111111
        } elif false {
            22222222222222222222
        } else {
            3333333333333333333333
        }
        """
    )


def test_annotations_keep_their_line_and_trailing_commas_go() -> None:
    out = fmt(
        """
        @prune( 0.5 )
        block B(w: int,) {
            in x: [N, D]
            @freeze   layer fc = linear(w)
            @quantize(skip)
            out y = fc(x) + (1,)[0] * [1, 2,][0]
        }
        """
    )
    assert out == spec(
        """
        @prune(0.5)
        block B(w: int) {
            in x: [N, D]
            @freeze layer fc = linear(w)
            @quantize(skip)
            out y = fc(x) + (1,)[0] * [1, 2][0]
        }
        """
    )


def test_parentheses_literals_and_unary_operators_are_kept_as_written() -> None:
    text = 'const A = -(-1.5e-3) + +(2) * ((3)) - 1_000 + .5 + 2. + 1E+4\nconst S = "a#b\\"c"\n'
    assert format_source(text, "t.net") == text
    attribute = "const A = (4).real + 4 .real\n"  # `4.real` would be the number `4.`
    assert format_source(attribute, "t.net") == attribute


# --- comments -----------------------------------------------------------------------


def test_comments_own_line_trailing_before_brace_and_at_the_end_are_kept() -> None:
    out = fmt(
        """
        # header

        block B() {   # after the brace
              # before the input
            in x: [N]   # trailing
            out y = x -> relu     # one
                          -> relu # two
                # at the end of the body
        }
        # at the end of the file"""
    )
    assert out == spec(
        """
        # header

        block B() {  # after the brace
            # before the input
            in x: [N]          # trailing
            out y = x -> relu  # one
                -> relu        # two
            # at the end of the body
        }
        # at the end of the file
        """
    )


def test_comments_inside_brackets_and_pipelines_stay_in_their_gap() -> None:
    out = fmt(
        """
        network N() {
            in x: float32[N,   # batch
                          8]
            out y = concat(  # parts
                x,  # first
                # then
                x -> relu,
            axis=1)
                # own line before an arrow
                -> linear(4)
        }
        """
    )
    assert out == spec(
        """
        network N() {
            in x: float32[N,  # batch
                          8]
            out y = concat(    # parts
                           x,  # first
                           # then
                           x -> relu, axis=1)
                # own line before an arrow
                -> linear(4)
        }
        """
    )


# --- every construct, every spec ----------------------------------------------------

EVERY_CONSTRUCT = """\
# Every construct of the grammar.
import "parts.net"

const WIDTH = 2 * 4
const SMALL = 1.5e-3
const HALF = WIDTH // 2 % 5 - +1
const ROOT = -2 ** 3 ** -1 * 2
const PAIRS = [(1, 2), (3, 4),]
const ONE = (7,)

@prune(0.25)
block Body(width: int, act: str = "relu", p: float = .5, scale = 1.) {
    in x: [N, D]
    @freeze layer fc = linear(width)
    @quantize(skip)
    h = x -> fc
    h = if act == "gelu" { gelu(h) } elif act != "relu" and not false or p < 0 {
        tanh(h) } else { relu(h) }
    out h -> dropout(p / 2) -> linear(D)
}

network Everything(depth: int = 2, classes: int = 3) {
    in x: float32[N, 2 * 4]
    in tokens: int64[N, T]
    h = x -> Body(WIDTH) -> Part(WIDTH + ONE[0] - PAIRS[1][0] * HALF)
    skips = []
    for (a, b) in PAIRS { h = h -> linear(WIDTH * a // b) }
    for a, b in PAIRS { if a > 1 or b <= 0 { h = h -> relu } }
    for unused in [] {}
    repeat 1 { h = h -> relu }
    for i in range(depth) {
        if i % 2 == 0 { h = h -> relu } elif i >= 5 { h = h -> tanh } else { h = h -> sigmoid }
        skips = skips + [h]
    }
    repeat depth as k { h = skips[k] + h -> layernorm(eps=SMALL) }
    _states, last = tokens -> embedding(10, 4) -> gru(6)
    seq = lstm(tokens -> embedding(10, 4), 6, bidirectional=true).y
    out logits = concat(h, last -> select(-1), axis=1) -> linear(classes)
    @freeze out sequence = seq
}
"""
EVERY_CONSTRUCT += """
train Fit(epochs: int = 2) {
    layer model = Everything()
    @noise in x: float32[N, 8]
    in tokens: int64[N, T]
    in labels: int64[N]
    batch_size: 4
    step first { out loss = cross_entropy(model(x, tokens).logits, labels); update: [model] }
    step second {
        out loss = cross_entropy(model(x, tokens).logits, labels)
        times: 2
    }
}
"""
PARTS = "block Part(width: int) {\n    in x: [N, D]\n    out y = x -> linear(width)\n}\n"


def _grammar_trees() -> set[str]:
    """The names of every tree the grammar builds (rules and aliases that stay in the tree)."""
    grammar = (ROOT / "grammar" / "dslnet.lark").read_text()
    names = set()
    for rule in lark.Lark(grammar, parser="lalr").rules:
        if rule.alias:
            names.add(rule.alias)
        elif not rule.origin.name.startswith("_") and not rule.options.expand1:
            names.add(rule.origin.name)
    return names


def _trees(text: str) -> set[str]:
    return {t.data for t in concrete_syntax(text)[0].iter_subtrees()}


def _ir_texts(program: dslnet.Program) -> dict[str, str]:
    """The printed IR of every network, without the source positions it records."""
    return {n: _POSITION.sub("", print_graph(program.ir(n))) for n in program.networks}


def test_a_spec_with_every_construct_keeps_its_ir(tmp_path: Path) -> None:
    assert _trees(EVERY_CONSTRUCT) == _grammar_trees()  # a new rule needs a line here
    (tmp_path / "parts.net").write_text(PARTS)
    path = str(tmp_path / "every.net")
    formatted = format_source(EVERY_CONSTRUCT, path)
    assert formatted != EVERY_CONSTRUCT
    assert format_source(formatted, path) == formatted
    before = _ir_texts(dslnet.loads(EVERY_CONSTRUCT, filename=path))
    assert before and _ir_texts(dslnet.loads(formatted, filename=path)) == before


def _parses(path: Path) -> bool:
    try:
        concrete_syntax(path.read_text())
    except (lark.exceptions.UnexpectedInput, NestingError):
        return False
    return True


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_in_the_repository_formats_idempotently_and_keeps_its_meaning(
    path: Path,
) -> None:
    text = path.read_text()
    if not _parses(path):
        with pytest.raises(CompileError):
            format_source(text, str(path))
        return
    formatted = format_source(text, str(path))
    assert format_source(formatted, str(path)) == formatted
    assert concrete_syntax(formatted)[0] == concrete_syntax(text)[0]  # positions aside
    before = dslnet.loads(text, filename=str(path), strict=False)
    after = dslnet.loads(formatted, filename=str(path), strict=False)
    messages = [d.message for d in before.check()]
    assert [d.message for d in after.check()] == messages
    if not messages:
        assert _ir_texts(after) == _ir_texts(before)


def test_specs_are_formatted(spec_file: Path) -> None:
    assert format_source(spec_file.read_text(), str(spec_file)) == spec_file.read_text()


def _relaid(text: str, rng: random.Random) -> str:
    """`text` with every line indented at random, 0 to 2 more spaces after each token
    and every run of blank lines 1 to 3 high; line breaks and comments kept."""
    out, end = [], 0
    for token in concrete_syntax(text)[1]:
        gap = text[end : token.start_pos]
        if "\n" in gap:
            first, *middle, _indent = gap.split("\n")
            lines = [first]
            for line in middle:
                if line.strip():
                    lines.append(" " * rng.randrange(9) + line.lstrip())
                else:
                    lines += [""] * rng.randrange(1, 4)
            gap = "\n".join([*lines, " " * rng.randrange(9)])
        out.append(gap + " " * rng.randrange(3) + token)
        end = token.end_pos or 0
    return "".join(out) + text[end:]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_the_layout_the_user_chose_does_not_matter(
    spec_files: list[Path], data: st.DataObject
) -> None:
    """Indentation, spaces between tokens and the height of blank lines are the
    formatter's to choose: any mix of them gives the same text."""
    path = data.draw(st.sampled_from(spec_files), label="spec")
    rng = data.draw(st.randoms(use_true_random=False), label="layout")
    text = path.read_text()
    assert format_source(_relaid(text, rng), str(path)) == format_source(text, str(path))


_NAMES = st.text("abc_", min_size=1, max_size=30).map(lambda s: "v" + s)
_GAP = st.sampled_from(["", "  # trailing\n", "\n# own line\n"])  # inside brackets
_ARROW = st.sampled_from([" -> ", "\n -> ", "  # trailing\n -> "])


def _joined(parts: list[str]) -> str:
    return ", ".join(parts)


def _expressions() -> st.SearchStrategy[str]:
    """Nested calls, lists, sums, if expressions and pipelines of names long and short,
    with comments and line breaks where the language allows them: what stresses the
    filling of lines."""
    leaves = st.one_of(_NAMES, st.integers(0, 10**12).map(str))

    def nest(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        args = st.lists(inner, max_size=5).map(_joined)
        return st.one_of(
            st.builds(lambda f, gap, a: f"{f}({gap}{a})", _NAMES, _GAP, args),
            st.builds(lambda a, gap: f"[{a}{gap}]", args, _GAP),
            st.builds(lambda a, b: f"(({a}) + ({b}))", inner, inner),
            st.builds(lambda c, a, b: f"if {c} {{ {a} }} else {{ {b} }}", inner, inner, inner),
            st.builds(lambda v, arrow, f, a: f"{v}{arrow}{f}({a})", inner, _ARROW, _NAMES, args),
        )

    return st.recursive(leaves, nest, max_leaves=30)


def _twice_the_same(expression: str) -> str:
    text = f"network N() {{\n    out y = {expression}\n}}\n"
    formatted = format_source(text, "t.net")  # checks itself that the tree is the same
    assert format_source(formatted, "t.net") == formatted
    return formatted


@settings(max_examples=150, deadline=None)
@given(_expressions())
def test_formatting_random_expressions_twice_changes_nothing_more(expression: str) -> None:
    _twice_the_same(expression)


@pytest.mark.parametrize(
    "expression",
    [
        # A pipeline broken for width inside a call: formatted again, the break is the
        # user's, and the call after it must still break where it did.
        "v_(v_ -> v______(v_, v_______(v_, v_, v_, v_, v____________________), ((v_) + (v_____))))",
        # An item that breaks inside (here after a comment) starts its own line, as it
        # will once its breaks are the user's.
        "[v_, v_, v___, ((v_) + (v_)), v____________(v____(v__________, 10000000000)), "
        "[v_ -> v_()  # c\n]]",
    ],
)
def test_layouts_found_unstable_once_are_stable(expression: str) -> None:
    formatted = _twice_the_same(expression)
    assert max(len(line) for line in formatted.splitlines()) <= WIDTH


# --- the command ---------------------------------------------------------------------

UGLY = "network N(){in x:float32[N,4]\nout y=x->relu}\n"
PRETTY = "network N() {\n    in x: float32[N, 4]\n    out y = x -> relu\n}\n"


def test_check_passes_on_the_specs(
    spec_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fmt", "--check", str(ROOT / "specs")]) == 0
    assert f"{len(spec_files)} files already formatted" in capsys.readouterr().err


def test_check_lists_what_would_change_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ugly.net").write_text(UGLY)
    (tmp_path / "pretty.net").write_text(PRETTY)
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"would reformat {tmp_path / 'ugly.net'}" in err and "pretty.net" not in err
    assert "1 file would be reformatted, 1 file already formatted" in err
    assert (tmp_path / "ugly.net").read_text() == UGLY


def test_diff_prints_a_unified_diff_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ugly.net"
    path.write_text(UGLY)
    assert main(["fmt", "--diff", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {path}\n+++ {path} (formatted)\n@@ ")
    assert "-out y=x->relu}\n" in out and "+    out y = x -> relu\n" in out
    assert main(["fmt", "--diff", "--check", str(path)]) == 1
    assert path.read_text() == UGLY


def test_files_are_rewritten_in_place_only_when_they_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ugly, pretty = tmp_path / "sub" / "ugly.net", tmp_path / "pretty.net"
    ugly.parent.mkdir()
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    ugly.chmod(0o640)
    inode = pretty.stat().st_ino
    assert main(["fmt", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"reformatted {ugly}\n" in err and "1 file reformatted, 1 file left unchanged" in err
    assert ugly.read_text() == PRETTY
    assert stat.S_IMODE(ugly.stat().st_mode) == 0o640
    assert pretty.stat().st_ino == inode  # not written again
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["pretty.net", "sub", "ugly.net"]


def test_directories_are_walked_sorted_skipping_hidden_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("b.net", "a/z.net", "a/c.net", ".hidden/h.net", "note.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(UGLY)
    assert main(["fmt", "--check", str(tmp_path), str(tmp_path / "b.net")]) == 1
    listed = [line.split()[-1] for line in capsys.readouterr().err.splitlines()[:-1]]
    assert listed == [str(tmp_path / n) for n in ("a/c.net", "a/z.net", "b.net")]


def test_a_file_that_does_not_parse_is_left_alone_with_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, ugly = tmp_path / "bad.net", tmp_path / "ugly.net"
    bad.write_text("network N() {\n    out y = linear(8 8)\n}\n")
    ugly.write_text(UGLY)
    assert main(["fmt", str(bad), str(ugly)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:22: error: unexpected number 8" in err and "^" in err
    assert "1 file reformatted, 1 file with errors" in err
    assert bad.read_text() == "network N() {\n    out y = linear(8 8)\n}\n"
    assert ugly.read_text() == PRETTY


def test_unreadable_files_are_errors_and_json_keeps_stderr_a_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary, ugly = tmp_path / "binary.net", tmp_path / "ugly.net"
    binary.write_bytes(b"const A = 1\n\xff\n")
    ugly.write_text(UGLY)
    assert main(["fmt", "--check", str(binary)]) == 1
    assert f"{binary}: error: not UTF-8 text (byte 12)" in capsys.readouterr().err
    assert main(["fmt", "--check", "--format", "json", str(binary), str(ugly)]) == 1
    document = json.loads(capsys.readouterr().err)
    assert [f["ok"] for f in document["files"]] == [False, True]
    assert document["diagnostics"][0]["message"] == "not UTF-8 text (byte 12)"


def test_stdin_is_formatted_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(UGLY))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == PRETTY
    monkeypatch.setattr("sys.stdin", io.StringIO(UGLY))
    assert main(["fmt", "--check", "-"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "would reformat <stdin>" in captured.err


def test_missing_paths_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fmt", str(tmp_path / "nope.net")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_a_formatter_bug_never_reaches_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ugly.net"
    path.write_text(UGLY)
    monkeypatch.setattr(fmt_package, "render", lambda doc: PRETTY.replace("relu", "tanh"))
    assert main(["fmt", str(path)]) == 3
    assert "formatter bug" in capsys.readouterr().err
    assert path.read_text() == UGLY


def test_declarations_without_parentheses_keep_their_form() -> None:
    source = spec(
        """
        network Net {
          in x: float32[N, 8]
            out y = x
        }

        train T   () { out loss = 1 }
        """
    )
    assert fmt(source) == spec(
        """
        network Net {
            in x: float32[N, 8]
            out y = x
        }

        train T() { out loss = 1 }
        """
    )
    assert fmt(fmt(source)) == fmt(source)


# --- nesting: whatever check parses formats, the rest is refused as check refuses it ---

# Chains without brackets, and brackets: `n` levels of each.
CHAINS = {
    "not": lambda n: "not " * n + "true",
    "minus": lambda n: "-" * n + "1",
    "plus": lambda n: "+" * n + "1",
    "attributes": lambda n: "x" + ".y" * n,
    "calls": lambda n: "x" + "()" * n,
    "indexes": lambda n: "x" + "[0]" * n,
    "pipeline": lambda n: "x" + " -> relu" * n,
    "sum": lambda n: "1" + " + 1" * n,
    "if-expressions": lambda n: "if c { " * n + "1" + " } else { 2 }" * n,
    "else-if chains": lambda n: "if c { 1 } else { " * n + "2" + " }" * n,
    "parentheses": lambda n: "(" * n + "1" + ")" * n,
    "lists": lambda n: "[" * n + "1" + "]" * n,
}
NESTED = "nested more than 100 levels deep"


def _chain_spec(kind: str, n: int) -> str:
    return f"network Net() {{\n    in x: float32[N, 4]\n    c = {CHAINS[kind](n)}\n}}\n"


def _too_deep_for_check(text: str) -> bool:
    diags = Diagnostics()
    parse(text, "t.net", diags)
    return any(NESTED in d.message for d in diags.errors())


@pytest.mark.parametrize("kind", CHAINS)
def test_chains_as_deep_as_check_takes_format_and_deeper_ones_are_located_errors(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """About 330 levels of any of these once made fmt raise RecursionError (exit 3)."""
    deepest = 1
    while not _too_deep_for_check(_chain_spec(kind, deepest + 1)):
        deepest += 1
    assert deepest >= 95
    text = _chain_spec(kind, deepest)
    assert fmt(fmt(text)) == fmt(text)
    for n in (deepest + 1, 330, 5000):
        with pytest.raises(CompileError, match=NESTED) as info:
            fmt(_chain_spec(kind, n))
        (error,) = info.value.diagnostics
        assert error.span.line == 3
    path = tmp_path / "deep.net"
    path.write_text(_chain_spec(kind, 330))
    assert main(["fmt", str(path)]) == 1
    assert f"{path}:3:" in capsys.readouterr().err
