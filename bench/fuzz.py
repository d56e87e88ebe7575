"""Fuzz the compiler: N random specs, each must compile or fail with located errors.

Cases are generated from the language's constructs or mutated from the specs of the
repository (specs/, the error corpus, every op's examples); see dslnet/fuzz/run.py for what
each case must do. A network that compiles is also run in PyTorch and ONNX Runtime, which
must agree (dslnet/fuzz/differential.py; --no-run to skip). Prints the counts, the peak
memory of a worker and the slowest case, and saves the first case of each kind of crash,
hang or disagreement to --out. Exit status 1 when there is any.

    python bench/fuzz.py                       # 10,000 cases, seed 0, 2 worker processes
    python bench/fuzz.py --cases 300 --seed 7
    python bench/fuzz.py --case 1234 --seed 7  # one case again: its text and outcome
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from dslnet.core.console import progress
from dslnet.fuzz import (
    MAX_ELEMENTS,
    Settings,
    Tally,
    Verdict,
    repository_settings,
    reproducer,
    run_case,
    run_cases,
    warm_up,
)
from dslnet.fuzz.run import single_threaded

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
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="do not run accepted networks in torch and ONNX Runtime",
    )
    args = parser.parse_args(argv)
    settings = repository_settings(
        ROOT, args.seed, args.timeout, max_run_elements=0 if args.no_run else MAX_ELEMENTS
    )
    if args.case is not None:
        single_threaded()
        warm_up()
        outcome = run_case(
            settings.case(args.case),
            args.timeout,
            settings.max_onnx_elements,
            settings.max_run_elements,
        )
        print(reproducer(settings, outcome))
        return int(outcome.verdict in (Verdict.CRASH, Verdict.HANG, Verdict.DISAGREE))

    tally = Tally()
    start = time.perf_counter()
    outcomes = run_cases(settings, range(args.cases), args.jobs)
    for outcome in progress(outcomes, "fuzzing", total=args.cases):
        tally.add(outcome)
    elapsed = time.perf_counter() - start
    print(summary(tally, settings, args.jobs, elapsed))
    print(f"  peak RSS of a worker: {peak_rss_mib(args.jobs):.0f} MiB")
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
        f"  disagreements       {v[Verdict.DISAGREE]:>7}",
        f"  backends on accepted networks: torch source compiled {tally.torch_checked}, "
        f"ONNX checked {tally.onnx_checked}, ONNX skipped as too big (over "
        f"{settings.max_onnx_elements:,} weights, or a dimension that large) {tally.onnx_skipped}",
        f"  run in torch and ONNX Runtime and compared: {tally.compared} networks",
    ]
    for why, count in sorted(tally.not_compared.items()):
        lines.append(f"    not run: {why}: {count}")
    if tally.slowest is not None:
        slowest = tally.slowest
        lines.append(
            f"  slowest case: {slowest.index} ({slowest.cpu_s:.2f} s CPU, {slowest.wall_s:.2f} s)"
        )
    for kind, count in sorted(tally.counts.items()):
        lines.append(f"  {count:>5} x {kind} (first: case {tally.first[kind].index})")
    return "\n".join(lines)


def peak_rss_mib(jobs: int) -> float:
    """The largest resident set of a worker process (of this process when inline), in
    MiB: Linux reports kilobytes, macOS bytes."""
    who = resource.RUSAGE_CHILDREN if jobs > 0 else resource.RUSAGE_SELF
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024**2 if sys.platform == "darwin" else 1024)


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
