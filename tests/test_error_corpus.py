"""The error corpus: every kind of mistake a user can make, and what they are told.

Each `tests/errors/NAME.net` is a small spec with one kind of error (a few have
several independent ones). Beside it, `NAME.expected` holds exactly what
`dslnet check tests/errors/NAME.net` prints (on stdout, like ruff and mypy: the
findings are check's result), then `exit: N`.
`pytest --accept` rewrites the .expected files from the current output.
Files under `tests/errors/imports/` are helpers imported by cases, not cases.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dslnet
from dslnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
ERRORS = ROOT / "tests" / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.net") if not p.name.startswith("_"))

# Each error kind the corpus must show, and the cases that show it.
KINDS: dict[str, list[str]] = {
    "train: settings (unknown, wrong arguments, wrong values)": ["train_settings"],
    "train: steps (loss, update, layers, duplicates)": ["train_steps"],
    "train: @noise inputs": ["train_noise"],
    "train: a syntax error on the loss line, reported once": ["train_loss_syntax"],
    "limits: compile-time work (max_steps)": ["limit_steps"],
    "comparisons and selection: shapes, dtypes, bool conditions, fill values": ["compare_select"],
    "a list of tensors as inputs (concat, stack): items, empty, shapes, axes": ["list_inputs"],
    "flip, roll, expand, one_hot, slice: axes, shifts, shapes, ids, steps": ["arrange_ops"],
    "builtins on numbers: no value (sqrt < 0, log 0, int inf), arity, a tensor, a size": [
        "builtin_numbers"
    ],
    "'**' at compile time: int and float overflow, 0 ** -1, (-8) ** 0.5, N ** 64": [
        "power_overflow"
    ],
    "size(x, axis) misused; a symbolic size no tensor in scope has": ["size_values"],
    "clamp bounds: none given, min above max, a fraction for an int tensor": ["clamp_bounds"],
    "syntax: missing ')'": ["syntax_missing_paren"],
    "syntax: missing '}'": ["syntax_missing_brace"],
    "syntax: stray character": ["syntax_stray_char"],
    "syntax: missing expression after '='": ["syntax_missing_expr"],
    "syntax: missing '->' target": ["syntax_missing_pipe_target"],
    "syntax: bad token in parameter list": ["syntax_bad_param"],
    "syntax: statements on one line without separator": ["syntax_no_separator"],
    "syntax: unterminated string": ["syntax_unterminated_string"],
    "syntax: several errors in one file": ["syntax_several"],
    "unknown op with did-you-mean": ["unknown_op", "several_errors"],
    "unknown block with did-you-mean": ["unknown_block"],
    "unknown name": ["unknown_name"],
    "constant used before its declaration, or in its own": ["const_order"],
    "duplicate block": ["duplicate_block"],
    "duplicate in": ["duplicate_input"],
    "duplicate layer": ["duplicate_layer"],
    "duplicate output": ["duplicate_output"],
    "wrong argument type": ["arg_wrong_type", "block_arg_type"],
    "missing argument": ["arg_missing"],
    "a window size past what the kernels take": ["window_over_int32"],
    "unknown argument with did-you-mean": ["arg_unknown", "block_arg_type"],
    "PyTorch's name for an argument": ["arg_torch_spelling"],
    "unpacking several outputs into too few names": ["unpack_outputs"],
    "too many positional arguments": ["arg_too_many"],
    "torch habit: a size the op reads from its input (equal to it, or not)": [
        "pos_batchnorm_channels",
        "pos_instancenorm_channels",
        "pos_groupnorm_channels",
        "pos_conv_in_channels",
        "pos_linear_in_features",
        "pos_linear_mismatch",
        "pos_torch_sizes",
        "pos_after_error",
    ],
    "keyword-only attribute given by position": [
        "pos_conv_stride",
        "pos_dropout_second",
        "pos_pool_stride",
    ],
    "arguments to an op that takes none": ["pos_relu_args"],
    "train: @noise that does not fit its input's dtype": [
        "noise_int_input",
        "noise_randint_float",
        "noise_randint_bounds",
    ],
    "shape mismatch in '+'": ["shape_add_mismatch", "block_error_two_sites"],
    "dtype mismatch": ["dtype_mismatch"],
    "a constant or an op the tensor's dtype cannot take": ["constant_dtype"],
    "block input rank mismatch": ["block_input_rank"],
    "block input dim mismatch": ["block_input_dim"],
    "concat mismatch": ["concat_mismatch"],
    "import not found": ["import_not_found"],
    "import not found in the import roots either (every place looked at)": [
        "import_not_found_in_roots"
    ],
    "import cycle": ["import_cycle"],
    "import outside the importing file's directory": ["import_outside"],
    "recursive block, direct": ["recursive_direct"],
    "recursive block, mutual": ["recursive_mutual"],
    "'out' missing": ["out_missing"],
    "condition on a symbolic dimension": ["condition_symbolic"],
    "repeat count not an int": ["repeat_not_int"],
    "unknown dtype": ["unknown_dtype"],
    "layer declared with an input tensor": ["layer_with_input"],
    "shared layer used with incompatible shapes": ["shared_layer_shapes"],
    "block called with the wrong number of input tensors": ["block_input_count"],
    "unknown parameter type": ["unknown_param_type"],
    "error inside a block: chain of call sites": ["block_nested_chain", "import_error_inside"],
    "unknown annotation with did-you-mean, ratio out of range": ["annotation_unknown"],
    "annotation with wrong arguments": ["annotation_arguments"],
    "limit: nodes, refused before expanding a fan-out": ["limit_nodes"],
    "limit: compile-time loop iterations": ["limit_iterations"],
    "limit: elements of one tensor": ["limit_tensor_elements"],
    "limit: parameters of a network": ["limit_parameters"],
    "syntax: nested too deep (found by fuzzing)": ["syntax_too_deep"],
    "syntax: operator chains nested too deep, stopped while parsing (issue 19)": [
        "syntax_too_deep_chain"
    ],
    "limit: buffers count with parameters (issue 19)": ["limit_buffers"],
    "integer literal over 64 bits (found by fuzzing)": ["int_too_large"],
    "range() with step 0, or too long to count (found by fuzzing)": ["range_invalid"],
    "compile-time int overflow, string or list too long (found by fuzzing)": [
        "compile_time_overflow"
    ],
    "network output with an input's name (found by fuzzing)": ["output_named_as_input"],
    "a form feed does not shift the lines shown (found by fuzzing)": ["form_feed_line"],
    "recurrent stack over 1000 layers (found by fuzzing)": ["recurrent_too_deep"],
    "attention's default scale on a symbolic width (found by fuzzing)": [
        "attention_symbolic_width"
    ],
    "a float attribute that reads as infinity (found by fuzzing)": ["attr_infinite"],
    "float attributes out of float32's range, infinite or nan (issue 19)": ["attr_float_range"],
    "an attribute's default checked against the others (issue 19)": ["attr_default_checked"],
    "an output_padding only PyTorch takes (issue 19)": ["conv_transpose_output_padding"],
    "instancenorm over one element (found by differential fuzzing)": ["instancenorm_one_element"],
    "a 3-D average pool's kernel over its unpadded input (found by differential fuzzing)": [
        "pool3d_kernel_over_input"
    ],
    "a max pool window wholly in the padding (found by differential fuzzing)": [
        "maxpool_window_in_padding"
    ],
    "float32 weights with another float dtype; a fill the dtype cannot hold": [
        "weights_dtype",
        "pad_value_dtype",
    ],
    "every independent error after an op error, no follow-ons": [
        "independent_after_op_error",
        "independent_same_mistake_twice",
        "independent_pipeline_stages",
        "poisoned_input_dtype",
    ],
    "an error in a block hides nothing in another network": ["independent_across_networks"],
    "failed condition, repeat count or loop list: what the body assigns is silent": [
        "poisoned_control_flow"
    ],
    "block call on a failed value: its own arguments still checked": ["poisoned_block_call"],
    "a layer's bad argument is one error at its declaration": ["layer_bad_args_used_twice"],
    "syntax: missing '}' found where the next declaration starts": [
        "syntax_unclosed_block",
        "syntax_unclosed_nested",
        "syntax_unclosed_two",
    ],
    "misspelt keyword with did-you-mean": ["keyword_typo_declaration", "keyword_typo_statement"],
    "misspelt keyword read as the one meant: its body's own errors reported": [
        "keyword_typo_body_checked"
    ],
    "name used above its assignment, layer above its declaration": ["use_before_assignment"],
    "statement outside any declaration": ["statement_outside_declaration"],
    "parameter default of the wrong type, at the default": ["param_default_types"],
    "dtype in PyTorch's or a short spelling": ["dtype_torch_names"],
    "repeat count shown": ["repeat_literal_float", "repeat_not_int"],
    "import of a directory": ["import_directory"],
    "names a failed import would have supplied are not reported": ["import_failed_names"],
    "train declaration over a failing network: no missing-loss follow-on": ["train_network_error"],
    "reductions: axis out of range, named twice, empty list; int input to mean": ["reduce_axes"],
    "max/min builtins given a tensor: the reduction and the elementwise op named": [
        "max_on_tensor"
    ],
    "pow (**) on tensors: an int tensor, shapes that do not broadcast": ["pow_operands"],
    "made tensors: a run-time size no tensor has, negative, fill, input given": [
        "made_tensor_sizes"
    ],
    "parameter with symbolic sizes, unknown init; drop_path p and dtype": ["parameter_drop_path"],
}

HEADER = re.compile(r"^(?P<path>\S+?):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|warning|note): ")
SOURCE_LINE = re.compile(r"^ *(?P<line>\d+) \| ")
CARET_LINE = re.compile(r"^ +\^+$")


def run_check(path: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, int]:
    """`dslnet check PATH` in-process: (stdout + 'exit: N' line, exit code). A case whose
    first line is `# check: ARGS` is checked with those arguments too (--import-root)."""
    capsys.readouterr()
    first = Path(path).read_bytes().partition(b"\n")[0].decode("utf-8", "replace")
    extra = first.removeprefix("# check: ").split() if first.startswith("# check: ") else []
    code = main(["check", path, *extra])
    captured = capsys.readouterr()
    assert captured.err == ""
    return f"{captured.out}exit: {code}\n", code


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths in messages are shown relative to the working directory."""
    monkeypatch.chdir(ROOT)


@pytest.mark.usefixtures("at_root")
@pytest.mark.parametrize("case", CASES)
def test_corpus_output_matches_expected(
    case: str, capsys: pytest.CaptureFixture[str], accept: bool
) -> None:
    text, _ = run_check(f"tests/errors/{case}.net", capsys)
    expected = ERRORS / f"{case}.expected"
    if accept:
        expected.write_text(text)
    assert expected.exists(), f"no {expected.name}; run pytest --accept and review it"
    assert text == expected.read_text(), f"output of {case}.net changed; review, then --accept"


def test_corpus_has_no_stale_expected_files() -> None:
    stems = {p.stem for p in ERRORS.glob("*.expected")}
    assert stems == set(CASES)


@pytest.mark.usefixtures("at_root")
def test_every_error_is_located_with_source_and_caret(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(CASES) >= 30
    for case in CASES:
        text, code = run_check(f"tests/errors/{case}.net", capsys)
        assert "Traceback" not in text and "internal error" not in text, case
        assert code == 1, case
        lines = text.splitlines()
        errors = 0
        for i, line in enumerate(lines):
            m = HEADER.match(line)
            if m is None:
                continue
            if m["kind"] == "error":
                errors += 1
            assert int(m["line"]) >= 1 and int(m["col"]) >= 1, (case, line)
            assert not Path(m["path"]).is_absolute(), (case, line)
            source = SOURCE_LINE.match(lines[i + 1])
            assert source is not None and source["line"] == m["line"], (case, lines[i + 1])
            assert CARET_LINE.match(lines[i + 2]), (case, lines[i + 2])
            caret_at = lines[i + 2].index("^") - len(source.group(0))
            shown = lines[i + 1][len(source.group(0)) :]
            if shown.startswith("..."):  # a long line, shown around the caret
                file_lines = (ROOT / m["path"]).read_text().split("\n")
                written = file_lines[int(m["line"]) - 1].expandtabs(1)
                assert shown[caret_at] == written[int(m["col"]) - 1], (case, line)
            else:
                assert caret_at + 1 == int(m["col"]), (case, line)
        assert errors >= 1, case
        summary = lines[-2]
        noun = "error" if errors == 1 else "errors"
        assert summary.startswith(f"tests/errors/{case}.net: {errors} {noun}"), (case, summary)


def test_corpus_covers_every_required_kind() -> None:
    for kind, cases in KINDS.items():
        assert cases, kind
        for case in cases:
            assert case in CASES, f"{kind}: no case {case}.net"


# --- focused checks -------------------------------------------------------------------


@pytest.mark.usefixtures("at_root")
def test_independent_errors_are_all_reported_in_one_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A syntax error, an unknown op and a shape mismatch, in three statements."""
    program = dslnet.load("tests/errors/several_errors.net", strict=False)
    errors = [d for d in program.check() if d.is_error]
    assert [(d.span.line, d.span.col) for d in errors] == [(4, 23), (5, 14), (7, 13)]
    assert errors[0].message.startswith("unexpected number 8")
    assert errors[1].message == "unknown op or block 'rleu' (did you mean 'relu'?)"
    assert "[N, 4]" in errors[2].message and "[N, 16]" in errors[2].message
    assert all(d.span.file == "tests/errors/several_errors.net" for d in errors)

    text, code = run_check("tests/errors/several_errors.net", capsys)
    assert code == 1
    assert text.count(": error: ") == 3
    assert "tests/errors/several_errors.net: 3 errors\n" in text


@pytest.mark.usefixtures("at_root")
def test_error_in_a_block_used_twice_is_one_diagnostic_naming_both_call_sites() -> None:
    program = dslnet.load("tests/errors/block_error_two_sites.net", strict=False)
    errors = [d for d in program.check() if d.is_error]
    assert len(errors) == 1
    (err,) = errors
    assert (err.span.line, err.span.col) == (5, 9)
    assert "[N, 8]" in err.message and "[N, 16]" in err.message
    sites = [(n.span.line, n.span.col) for n in err.notes if n.span is not None]
    assert sites == [(10, 14), (11, 14)]
    assert all("in block 'Bad' called here" in n.message for n in err.notes)


@pytest.mark.usefixtures("at_root")
def test_nested_block_error_notes_give_the_whole_chain() -> None:
    program = dslnet.load("tests/errors/block_nested_chain.net", strict=False)
    (err,) = [d for d in program.check() if d.is_error]
    assert [(n.message, n.span.line if n.span else 0) for n in err.notes] == [
        ("in block 'Inner' called here", 10),
        ("in block 'Outer' called here", 15),
    ]


def test_api_raises_compile_error_with_located_diagnostics(tmp_path: Path) -> None:
    bad_syntax = "network Net() {\n    in x: float32[N, 16]\n    out y = x -> lienar(8\n}\n"
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.loads(bad_syntax, filename=str(tmp_path / "bad.net"))
    diags = info.value.diagnostics
    assert diags and all(isinstance(d, dslnet.Diagnostic) for d in diags)
    assert (diags[0].span.line, diags[0].span.col) == (4, 1)
    assert diags[0].span.file == str(tmp_path / "bad.net")
    assert "expected ')' to close '(' opened at 3:24" in diags[0].message

    unknown = "network Net() {\n    in x: float32[N, 16]\n    out y = x -> lienar(8)\n}\n"
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.loads(unknown, filename="unknown.net")
    (d,) = info.value.diagnostics
    assert d.severity is dslnet.Severity.ERROR
    assert (d.span.file, d.span.line, d.span.col, d.span.end_col) == ("unknown.net", 3, 18, 24)
    assert "did you mean 'linear'?" in d.message


def test_api_ir_raises_compile_error_for_a_shape_error() -> None:
    text = (
        "network Net(width: int = 128) {\n"
        "    in x: float32[N, 64]\n"
        "    a = x -> linear(256)\n"
        "    b = x -> linear(width)\n"
        "    out y = a + b\n"
        "}\n"
    )
    program = dslnet.loads(text, filename="shapes.net")  # loads: no static errors
    with pytest.raises(dslnet.CompileError) as info:
        program.ir("Net")
    (d,) = info.value.diagnostics
    assert (d.span.line, d.span.col) == (5, 13)
    assert "[N, 256]" in d.message and "[N, 128]" in d.message
    assert "shapes.net:5:13: error:" in str(info.value)
    assert program.ir("Net", width=256).outputs  # the same program compiles when it fits


@pytest.mark.usefixtures("at_root")
@pytest.mark.parametrize("command", [["summary"], ["compile"], ["summary", "-n", "B"]])
def test_summary_and_compile_report_what_check_reports(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors in a block and in another network than the one built: the same report."""
    case = "tests/errors/independent_across_networks.net"
    text, _ = run_check(case, capsys)
    findings = text.rsplit(f"{case}: ", 1)[0]  # without check's summary line
    code = main([*command, case])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == findings
