"""Fuzz the compiler: N random specs, each must compile or fail with located errors.

Cases are generated from the language's constructs or mutated from the specs of the
repository (specs/, the error corpus, every op's examples); see dslnet/fuzz/run.py for what
each case must do. Prints the counts and saves the first case of each kind of crash or
hang to --out. Exit status 1 when there is any.

    python bench/fuzz.py                       # 10,000 cases, seed 0, 2 worker processes
    python bench/fuzz.py --cases 300 --seed 7
    python bench/fuzz.py --case 1234 --seed 7  # one case again: its text and outcome
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from dslnet.console import progress
from dslnet.fuzz import (
    Settings,
    Tally,
    Verdict,
    repository_settings,
    reproducer,
    run_case,
    run_cases,
    warm_up,
)

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="how many (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (0: inline)")
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="CPU seconds a case may take (default 2)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "dslnet-fuzz",
        help="where reproducers of crashes and hangs go",
    )
    parser.add_argument("--case", type=int, help="run this one case and print it")
    args = parser.parse_args(argv)
    settings = repository_settings(ROOT, args.seed, args.timeout)
    if args.case is not None:
        warm_up()
        outcome = run_case(settings.case(args.case), args.timeout)
        print(reproducer(settings, outcome))
        return int(outcome.verdict in (Verdict.CRASH, Verdict.HANG))

    tally = Tally()
    start = time.perf_counter()
    outcomes = run_cases(settings, range(args.cases), args.jobs)
    for outcome in progress(outcomes, "fuzzing", total=args.cases):
        tally.add(outcome)
    elapsed = time.perf_counter() - start
    print(summary(tally, settings, args.jobs, elapsed))
    saved = save_reproducers(tally, settings, args.out)
    for path in saved:
        print(f"  reproducer: {path}")
    return int(tally.failures > 0)


def summary(tally: Tally, settings: Settings, jobs: int, elapsed: float) -> str:
    v = tally.verdicts
    lines = [
        f"fuzz: {tally.total} cases, seed {settings.seed}, {jobs} jobs, "
        f"{settings.timeout_s:g} s CPU per case: {elapsed:.1f} s, "
        f"{tally.total / max(elapsed, 1e-9):.1f} cases/s",
        f"  compiled            {v[Verdict.COMPILED]:>7}",
        f"  CompileError        {v[Verdict.REJECTED]:>7}",
        f"  crashes             {v[Verdict.CRASH]:>7}",
        f"  hangs               {v[Verdict.HANG]:>7}",
        f"  backends on accepted networks: torch source compiled {tally.torch_checked}, "
        f"ONNX checked {tally.onnx_checked}, ONNX skipped as too big (over "
        f"{settings.max_onnx_elements:,} weights, or a dimension that large) {tally.onnx_skipped}",
    ]
    if tally.slowest is not None:
        lines.append(f"  slowest case: {tally.slowest.index} ({tally.slowest.cpu_s:.2f} s CPU)")
    for kind, count in sorted(tally.counts.items()):
        lines.append(f"  {count:>5} x {kind} (first: case {tally.first[kind].index})")
    return "\n".join(lines)


def save_reproducers(tally: Tally, settings: Settings, out: Path) -> list[Path]:
    """For the first case of each kind: NAME.txt (how it was made, what happened, the
    text) and NAME.net (the text alone, for `dslnet check`)."""
    if not tally.first:
        return []
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for outcome in tally.first.values():
        stem = out / f"seed{settings.seed}-case{outcome.index}"
        report = reproducer(settings, outcome)
        # A lone surrogate in a case is written back as the byte it stood for.
        stem.with_suffix(".txt").write_text(report, "utf-8", errors="surrogateescape")
        text = settings.case(outcome.index).text
        stem.with_suffix(".net").write_text(text, "utf-8", errors="surrogateescape")
        paths.append(stem.with_suffix(".txt"))
    return paths


if __name__ == "__main__":
    sys.exit(main())
