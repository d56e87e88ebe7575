"""Fuzzing the compiler: random specs must compile or fail with located errors.

Specs come from other people, so compiling one must be as safe as reading a data file,
and what compiles must run the same in PyTorch and in ONNX Runtime (dslnet.fuzz.differential).
`run_cases` compiles generated and mutated specs in worker processes and reports what
each did (dslnet.fuzz.run); a case is made again from its seed and index
(dslnet.fuzz.cases), by the generator (dslnet.fuzz.generate) or by mutating a real
spec (dslnet.fuzz.mutate). `python bench/fuzz.py` runs 10,000 cases; tests/test_fuzz.py
a few hundred with a fixed seed.

    from dslnet.fuzz import Tally, repository_settings, run_cases

    settings = repository_settings(Path("."), seed=0)
    tally = Tally()
    for outcome in run_cases(settings, range(1000), jobs=2):
        tally.add(outcome)
    assert tally.failures == 0

Ops a user registers are fuzzed too: the generator calls every op of the registry.
"""

from dslnet.fuzz.cases import Case, Seed, make_case, op_example_seeds, seeds_from_files
from dslnet.fuzz.differential import MAX_ELEMENTS, Disagreement, run_both
from dslnet.fuzz.run import (
    Outcome,
    Settings,
    Tally,
    Verdict,
    diagnostics_problem,
    repository_settings,
    reproducer,
    run_case,
    run_cases,
    warm_up,
)

__all__ = [
    "MAX_ELEMENTS",
    "Case",
    "Disagreement",
    "Outcome",
    "Seed",
    "Settings",
    "Tally",
    "Verdict",
    "diagnostics_problem",
    "make_case",
    "op_example_seeds",
    "repository_settings",
    "reproducer",
    "run_both",
    "run_case",
    "run_cases",
    "seeds_from_files",
    "warm_up",
]
