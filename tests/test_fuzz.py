"""The fuzzer (dslnet.fuzz): a fixed-seed run in CI, the harness itself (differential
execution in torch and ONNX Runtime included), and the regressions it found that the
error corpus cannot hold.

`python bench/fuzz.py` runs 10,000 cases; here a few hundred, the same every time.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest

import dslnet
from dslnet.core.diagnostics import CompileError, Diagnostic, Severity, SourceMap, Span
from dslnet.fuzz import (
    Disagreement,
    Outcome,
    Settings,
    Tally,
    Verdict,
    differential,
    repository_settings,
    run_both,
    run_case,
    run_cases,
)
from dslnet.fuzz import run as fuzz
from dslnet.fuzz.cases import Case, make_case
from dslnet.fuzz.generate import SpecGenerator
from dslnet.fuzz.mutate import MUTATIONS, mutate, tokens

ROOT = Path(__file__).resolve().parents[1]
CI_CASES = 300
# The workers see a function patched here only when they are forked from this process.
needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork"
)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return repository_settings(ROOT, seed=0)


def test_fixed_seed_run_has_no_crash_and_no_hang(settings: Settings) -> None:
    tally = Tally()
    for outcome in run_cases(settings, range(CI_CASES), jobs=2):
        tally.add(outcome)
    assert tally.total == CI_CASES
    reports = [fuzz.reproducer(settings, o)[:4000] for o in tally.first.values()]
    assert tally.failures == 0, "\n\n".join(reports)
    # Both outcomes are well represented, and accepted networks reached the backends.
    assert tally.verdicts[Verdict.COMPILED] >= CI_CASES // 20
    assert tally.verdicts[Verdict.REJECTED] >= CI_CASES // 2
    assert tally.torch_checked and tally.onnx_checked
    # Most accepted networks ran in both backends (the others are listed, with why).
    assert tally.compared >= tally.onnx_checked * 3 // 4, tally.not_compared


# --- the cases --------------------------------------------------------------------------


def test_a_case_is_made_again_from_its_seed_and_index(settings: Settings) -> None:
    assert settings.case(17) == settings.case(17)
    texts = {settings.case(i).text for i in range(40)}
    assert len(texts) >= 35
    other = make_case(1, 17, settings.seeds, settings.directory)
    assert other.text != settings.case(17).text


def test_cases_come_from_every_source(settings: Settings) -> None:
    origins = [settings.case(i).origin for i in range(200)]
    assert "generated" in origins
    assert any(o.startswith("generated, then") for o in origins)
    assert any(o.startswith("specs/") or "/specs/" in o for o in origins)
    assert any(o.startswith("op ") for o in origins)
    assert any("tests/errors/" in o for o in origins)


def test_clean_generated_specs_mostly_compile_and_use_the_constructs() -> None:
    compiled, texts = 0, []
    for i in range(120):
        generator = SpecGenerator(random.Random(i), ROOT / "specs")
        if generator.faulty:
            continue
        text = generator.spec()
        texts.append(text)
        try:
            program = dslnet.loads(text, filename=str(ROOT / "specs" / "generated.net"))
            for network in program.networks:
                program.ir(network)
        except CompileError:
            continue
        compiled += 1
    assert compiled >= len(texts) // 5, f"{compiled} of {len(texts)} clean specs compiled"
    joined = "\n".join(texts)
    for construct in ("block ", "network ", "layer ", "for ", "repeat ", "if ", " -> ", " + "):
        assert construct in joined, construct
    assert "@" in joined and "const " in joined


def test_each_mutation_changes_the_text() -> None:
    text = (ROOT / "specs" / "mlp.net").read_text()
    others = [(ROOT / "specs" / "vgg.net").read_text()]
    for name, (mutation, _) in MUTATIONS.items():
        changed = 0
        for k in range(10):
            toks = tokens(text)
            mutation(toks, random.Random(k), others)
            changed += "".join(toks) != text
        assert changed >= 7, name
    assert "".join(tokens(text)) == text  # tokens cover the text


def test_mutate_says_what_it_did() -> None:
    text = (ROOT / "specs" / "mlp.net").read_text()
    mutated, applied = mutate(text, random.Random(3))
    assert applied and all(a in MUTATIONS for a in applied)
    assert mutated != text


# --- the oracle ---------------------------------------------------------------------------

SPEC = "network Net() {\n    in x: float32[N, 4]\n    out y = x -> linear(2)\n}\n"


def _case(text: str = SPEC) -> Case:
    return Case(0, "test", text, "test.net")


def test_a_compiling_case_reaches_both_backends() -> None:
    outcome = run_case(_case(), timeout_s=30)
    assert (outcome.verdict, outcome.torch_checked, outcome.onnx_checked, outcome.compared) == (
        Verdict.COMPILED,
        1,
        1,
        1,
    )
    assert run_case(_case(), timeout_s=30, max_run_elements=0).compared == 0


def test_backends_that_differ_are_a_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    run_ort = differential._run_ort

    def off_by_one(*args: object) -> differential._Run:
        ran = run_ort(*args)  # type: ignore[arg-type]
        return differential._Run([out + 1 for out in ran.outputs or []])

    monkeypatch.setattr(differential, "_run_ort", off_by_one)
    outcome = run_case(_case(), timeout_s=30)
    assert outcome.verdict is Verdict.DISAGREE
    assert outcome.kind == "disagreement: output differs by # at # #"
    assert outcome.details.startswith("at N=2: output 'y' differs by 1 at [")


def test_one_backend_refusing_what_the_other_runs_is_a_disagreement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = differential._Run(None, "RuntimeError: no")
    monkeypatch.setattr(differential, "_run_torch", lambda *args: refused)
    with pytest.raises(Disagreement, match="torch refused the inputs, ONNX Runtime ran"):
        run_both(dslnet.loads(SPEC).ir("Net"))
    monkeypatch.setattr(differential, "_run_ort", lambda *args: refused)
    # Both refused: they agree, and nothing was compared.
    assert (
        run_both(dslnet.loads(SPEC).ir("Net"))
        == "both backends refused the inputs at every size tried"
    )


def test_differences_the_comparison_sees() -> None:
    from dslnet.core.types import DType, TensorType

    f32 = TensorType(dtype=DType.float32, shape=(2,))
    same = [1.0, float("nan")]
    differential._compare(f32, {}, _f32(same), _f32(same), "y")
    differential._compare(f32, {}, _f32([1e6, 0.0]), _f32([1e6 + 64, 0.0]), "y")  # relative
    for other, what in [
        ([1.001, float("nan")], "differs by"),
        ([1.0, 1.0], "NaN at \\[1\\] in one backend only"),
        ([1.0, float("nan"), 1.0], "is \\[3\\] in ONNX Runtime"),
    ]:
        with pytest.raises(Disagreement, match=what):
            differential._compare(f32, {}, _f32(same), _f32(other), "y")
    with pytest.raises(Disagreement, match="is float64 in torch"):
        differential._compare(f32, {}, np.array(same), _f32(same), "y")


def _f32(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_an_exception_in_a_backend_is_a_crash_with_its_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise KeyError("boom")

    monkeypatch.setattr(fuzz, "generate_torch", broken)
    outcome = run_case(_case(), timeout_s=30)
    assert outcome.verdict is Verdict.CRASH
    assert outcome.kind.startswith("KeyError at ")
    assert "boom" in outcome.details and "Traceback" in outcome.details


def test_a_case_over_its_cpu_time_is_a_hang() -> None:
    slow = (
        "network Net() {\n    in x: float32[N, 4]\n"
        "    for i in range(90000) { x = x }\n    out y = x\n}\n"
    )
    outcome = run_case(_case(slow), timeout_s=0.05)
    assert outcome.verdict is Verdict.HANG
    assert outcome.kind.startswith("over 0.05 s of CPU at dslnet/")


def test_diagnostics_without_a_place_or_on_the_wrong_line_are_problems() -> None:
    sources = SourceMap()
    sources.add("test.net", SPEC)
    case = _case()

    def problem(span: Span) -> str:
        error = CompileError([Diagnostic(Severity.ERROR, "bad", span)], sources)
        return fuzz.diagnostics_problem(error, case)

    assert problem(Span("test.net", 3, 5, 3, 8)) == ""
    assert problem(Span.unknown("test.net")).startswith("UnlocatedError: position")
    assert problem(Span("other.net", 1, 1, 1, 2)).startswith("UnlocatedError:")
    shifted = SourceMap({"test.net": ["", *SPEC.split("\n")]})
    error = CompileError([Diagnostic(Severity.ERROR, "bad", Span("test.net", 3, 5, 3, 8))], shifted)
    assert fuzz.diagnostics_problem(error, case).startswith("MislocatedError:")
    assert fuzz.diagnostics_problem(CompileError([], sources), case).startswith("UnlocatedError")


def test_check_and_ir_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """A network `check` passes but `ir` rejects is reported, not counted as rejected."""

    def refuse(self: dslnet.Program, network: str, **params: object) -> None:
        raise CompileError([Diagnostic(Severity.ERROR, "no", Span("test.net", 1, 1, 1, 2))])

    monkeypatch.setattr(dslnet.Program, "ir", refuse)
    outcome = run_case(_case(), timeout_s=30)
    assert outcome.verdict is Verdict.CRASH and outcome.kind == "InconsistentError"


# --- the worker pool --------------------------------------------------------------------


def _dying_run_case(case: Case, timeout_s: float, *limits: int) -> Outcome:
    if case.index == 1:
        os._exit(3)  # as a crash in C code would
    return Outcome(case.index, Verdict.REJECTED)


@needs_fork
def test_a_worker_that_dies_is_a_crash_and_the_run_goes_on(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fuzz, "run_case", _dying_run_case)  # the workers inherit it
    outcomes = sorted(run_cases(settings, range(4), jobs=1), key=lambda o: o.index)
    assert [o.verdict for o in outcomes] == [
        Verdict.REJECTED,
        Verdict.CRASH,
        Verdict.REJECTED,
        Verdict.REJECTED,
    ]
    assert outcomes[1].kind == "worker died (exit code 3)"


def _stuck_run_case(case: Case, timeout_s: float, *limits: int) -> Outcome:
    if case.index == 0:
        os.kill(os.getpid(), signal.SIGSTOP)  # deaf to everything, as if stuck in C
    return Outcome(case.index, Verdict.REJECTED)


@needs_fork
def test_a_worker_that_does_not_answer_is_killed_as_a_hang(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fuzz, "run_case", _stuck_run_case)
    quick = Settings(settings.seed, settings.seeds, settings.directory, kill_after_s=1.0)
    outcomes = sorted(run_cases(quick, range(3), jobs=1), key=lambda o: o.index)
    assert [o.verdict for o in outcomes] == [Verdict.HANG, Verdict.REJECTED, Verdict.REJECTED]
    assert outcomes[0].kind == "no answer in 1 s, killed"


# --- regressions found by fuzzing (the error corpus holds the others) --------------------


def test_a_lone_surrogate_is_a_located_error_not_a_crash_in_a_backend() -> None:
    text = 'network Net(tag: str = "a\udcffb") {\n    in x: float32[N, 4]\n    out y = x\n}\n'
    with pytest.raises(CompileError) as info:
        dslnet.loads(text, filename="s.net")
    (d,) = info.value.diagnostics
    assert (d.span.line, d.span.col) == (1, 26)
    assert d.message.startswith("character U+DCFF is not text: a lone surrogate")


def test_adaptive_pooling_to_any_size_lowers_to_a_few_onnx_nodes() -> None:
    """Output 65536 of 6 was 131,072 Slice and ReduceMean nodes: minutes to emit."""
    from dslnet.backends.onnx_emit import emit_onnx
    from dslnet.testing import check_example

    for size in (5, 65536):
        text = (
            "network Net() {\n    in x: float32[N, 2, 6, W]\n"
            f"    out y = x -> adaptive_avgpool2d(({size}, 1))\n}}\n"
        )
        model = emit_onnx(dslnet.loads(text).ir("Net"))
        assert len(model.graph.node) <= 8, size
    # Windows of unequal lengths, shrinking and growing, agree with PyTorch.
    check_example(
        "adaptive_avgpool1d", "in x: float32[2, 3, 5]\nout y = x -> adaptive_avgpool1d(7)"
    )
    check_example(
        "adaptive_avgpool2d", "in x: float32[N, 2, 7, 9]\nout y = x -> adaptive_avgpool2d((3, 4))"
    )


# --- issue 19: accepted networks both backends must run, and agree on ------------------


def _both_backends_agree(text: str) -> None:
    """Every network of `text` compiles, and torch and ONNX Runtime agree on it."""
    program = dslnet.loads(text, filename="t.net")
    for network in program.networks:
        graph = program.ir(network)
        assert run_both(graph) == "", network


def test_init_schemes_from_fans_leave_one_dimensional_weights_alone() -> None:
    """xavier/kaiming on a layernorm's, groupnorm's or batchnorm's scale failed in
    torch.nn.init; now such a weight keeps its ones."""
    for scheme in ("normal", "xavier", "xavier_normal", "kaiming_uniform", "kaiming"):
        text = (
            "block B() {\n    in x: [N, C, W]\n"
            "    out y = x -> conv1d(4, k=3, p=1) -> batchnorm -> groupnorm(2) -> layernorm(8)\n}\n"
            f'network Net() {{\n    in x: float32[N, 3, 8]\n    out y = B(x, init="{scheme}")\n}}\n'
            f"network Norm() {{\n    in x: float32[N, 8]\n"
            f'    out y = x -> layernorm(8, init="{scheme}")\n}}\n'
        )
        _both_backends_agree(text)
    module = dslnet.loads(text).torch("Norm")
    assert (module.state_dict()["layernorm1.weight"] == 1).all()


def test_an_infinite_fill_is_written_as_python_can_read_it() -> None:
    text = (
        "network Net() {\n    in x: float32[N, 2, T]\n"
        "    out y = x -> pad((1, 2), value=-1e999) -> pad((0, 1), value=1e999)\n}\n"
    )
    assert 'value=float("-inf")' in dslnet.loads(text).torch_source("Net")
    _both_backends_agree(text)


def test_sinusoidal_positions_past_max_len_agree() -> None:
    """A symbolic T over max_len: torch's table stopped at max_len (a [1, D] table
    broadcast), ONNX computed every position. Both compute the run's length now."""
    _both_backends_agree(
        "network Net() {\n    in x: float32[N, T, 5]\n"
        "    out y = x -> sinusoidal_positions(max_len=1)\n}\n"
    )


def test_circular_padding_of_a_symbolic_axis_wraps_around_again() -> None:
    """At run time an axis shorter than the padding: F.pad refused, ONNX sliced fewer."""
    text = (
        "network Net() {\n    in x: float32[N, 2, H, W]\n"
        '    out y = x -> pad((2, 3, 1, 2), mode="circular")\n}\n'
    )
    graph = dslnet.loads(text).ir("Net")
    for sizes in ((1, 2), (2, 5)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(differential, "SIZE_PAIRS", (sizes,))
            assert run_both(graph) == ""


def test_a_norm_over_one_element_is_its_magnitude_for_any_p() -> None:
    """(|x|^p)^(1/p) over- or underflows for a large p where torch gives |x|."""
    for p in ("1e-05", "0.01", "50.0", "1e30"):
        _both_backends_agree(
            "network Net() {\n    in a: float32[N, 3, 1]\n    in b: float32[N, 3, 1]\n"
            "    in c: float32[N, 3, 8]\n"
            f"    out y = pairwise_distance(a * 30.0, b, p={p})\n"
            f"    out z = lppool1d(c * 30.0, {p}, 2)\n}}\n"
        )


def test_a_tensor_given_twice_to_a_block_is_one_argument() -> None:
    _both_backends_agree(
        "block B() {\n    in a: [N, D]\n    in b: [N, D]\n    out y = a * b + b\n}\n"
        "network Net() {\n    in x: float32[N, 4]\n    out y = B(x, x)\n}\n"
    )


def test_a_scalar_flattens_to_one_element_in_both_backends() -> None:
    """The IR said [1], torch.flatten(x, 1) raised on a scalar."""
    _both_backends_agree(
        "network Net() {\n    in x: float32[N, 4]\n    loss = mse_loss(x, x)\n"
        "    out a = loss -> flatten\n    out b = flatten(loss, 0)\n"
        "    out c = flatten(loss, 1, 2)\n}\n"
    )


def test_an_input_a_block_passes_through_keeps_its_name() -> None:
    """Binding the call's outputs renamed the caller's tensor before the call read it."""
    _both_backends_agree(
        "block B() {\n    in x: [N, D]\n    out y = x -> tanh\n    out same = x\n}\n"
        "network Net() {\n    in x: float32[N, 4]\n    h = x * 0.5\n"
        "    repeat 2 {\n        a, b = B(h)\n    }\n    out y = h\n}\n"
    )


def test_norms_without_weights_compute_in_the_input_dtype() -> None:
    """Their ONNX scale and bias constants were float32 next to a float64 input: ONNX
    Runtime refused the model. Now it has no double InstanceNormalization only."""
    _both_backends_agree(
        "network Net() {\n    in x: float64[N, T, 4]\n"
        "    out y = x -> layernorm(4, elementwise_affine=false)\n}\n"
    )
    for call in ("instancenorm", "groupnorm(2, affine=false)"):
        text = f"network Net() {{\n    in x: float64[N, 4, T]\n    out y = x -> {call}\n}}\n"
        why = run_both(dslnet.loads(text).ir("Net"))
        assert why == "ONNX Runtime's CPU provider lacks InstanceNormalization for these dtypes"


def test_sizes_are_chosen_inside_a_slices_fixed_bounds() -> None:
    """x[:, 2:7] of [N, T] is [N, 5] for T >= 7, as the IR says; at T=2 both backends
    give [N, 0]: not a size to compare the IR's shapes at."""
    _both_backends_agree(
        "network Net() {\n    in x: float32[N, T]\n    out y = slice(x, 1, start=2, end=7)\n}\n"
    )
    graph = dslnet.loads("network Net() {\n    in x: float32[N, T]\n    out y = x\n}\n").ir("Net")
    assert differential._size_pair(graph) == [{"N": 2, "T": 2}, {"N": 3, "T": 3}]


def test_bce_loss_agrees_on_targets_outside_zero_and_one() -> None:
    """F.binary_cross_entropy refused a target of 14 at run time; ONNX computed it."""
    _both_backends_agree(
        "network Net() {\n    in score: float32[N, 1]\n"
        "    out loss = bce_loss(sigmoid(score), full_like(score, 14))\n}\n"
    )


def test_nearest_upsampling_by_a_whole_factor_agrees() -> None:
    """torch's source index floor(41 * float32(1/41)) is 0, ONNX's 41 / 41 is 1."""
    _both_backends_agree(
        "network Net() {\n    in x: float32[N, C, H, W]\n"
        "    out y = x -> upsample(scale_factor=41)\n"
        "    out z = x -> upsample(scale_factor=(3, 2))\n}\n"
    )


def test_a_triplet_margin_of_zero_is_refused_as_torch_does() -> None:
    """F.triplet_margin_loss raises on margin 0 at run time; ONNX computed it."""
    text = (
        "network Net() {\n    in a: float32[N, 5]\n    in p: float32[N, 5]\n"
        "    in n: float32[N, 5]\n    out loss = triplet_margin_loss(a, p, n, margin=0)\n}\n"
    )
    with pytest.raises(CompileError, match="argument 'margin' of triplet_margin_loss"):
        dslnet.loads(text).ir("Net")
