"""The fuzzer (dslnet.fuzz): a fixed-seed run in CI, the harness itself, and the
regressions it found that the error corpus cannot hold.

`python bench/fuzz.py` runs 10,000 cases; here a few hundred, the same every time.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from pathlib import Path

import pytest

import dslnet
from dslnet.diagnostics import CompileError, Diagnostic, Severity, SourceMap, Span
from dslnet.fuzz import Outcome, Settings, Tally, Verdict, repository_settings, run_case, run_cases
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
    assert (outcome.verdict, outcome.torch_checked, outcome.onnx_checked) == (
        Verdict.COMPILED,
        1,
        1,
    )


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


def _dying_run_case(case: Case, timeout_s: float, max_onnx_elements: int) -> Outcome:
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


def _stuck_run_case(case: Case, timeout_s: float, max_onnx_elements: int) -> Outcome:
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
