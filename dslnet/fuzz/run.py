"""Running fuzz cases: what each must do, under a time limit, in worker processes.

A case is compiled both ways a user does: as `dslnet check` (load without stopping at
errors, then every network at its defaults) and through the API (`dslnet.loads`, then
`Program.ir` per network). The outcome must be one of:

- compiled: then the backends must take it too: the IR verifies and prints, the
  generated PyTorch source compiles as Python, and the ONNX model passes the ONNX
  checker (a network with more than `max_onnx_elements` weights, or a dimension that
  large, is not emitted, and counted); and, unless the run turns it off, the generated
  module and ONNX Runtime run it on the same weights and inputs and agree
  (dslnet.fuzz.differential): a difference is a disagreement;
- rejected: diagnostics that each name a file of the spec and a position in it, show
  the line that position names, and render. A network `check` passed must compile.

Anything else is a crash (another exception, a backend that cannot build an accepted
network, a misplaced diagnostic, a worker process that died) or a hang: over the time
limit in CPU time, rather than wall time, so that a loaded machine does not turn slow
cases into hangs; a worker that does not answer in many times that (stuck in C code) is
killed and counted as hanging too.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import onnx

import dslnet
from dslnet.backends.onnx_emit import emit_onnx
from dslnet.backends.torch_codegen import generate_torch
from dslnet.core.diagnostics import CompileError
from dslnet.fuzz.cases import Case, Seed, make_case, op_example_seeds, seeds_from_files
from dslnet.fuzz.differential import MAX_ELEMENTS, Disagreement, run_both
from dslnet.ir.graph import Graph
from dslnet.ir.printer import print_graph
from dslnet.ir.verifier import verify

MAX_ONNX_ELEMENTS = 1_000_000
MEMORY_HEADROOM = 2 * 1024**3  # bytes a worker may allocate above its size at start


class Verdict(str, Enum):
    COMPILED = "compiled"
    REJECTED = "rejected"
    CRASH = "crash"
    HANG = "hang"
    DISAGREE = "disagree"  # torch and ONNX Runtime differ on an accepted network


@dataclass(frozen=True)
class Outcome:
    """What one case did. `kind` names a crash or hang for grouping: the exception type
    and the innermost dslnet line it came from."""

    index: int
    verdict: Verdict
    kind: str = ""
    details: str = ""  # the traceback or the problem with the diagnostics
    cpu_s: float = 0.0
    torch_checked: int = 0
    onnx_checked: int = 0
    onnx_skipped: int = 0
    compared: int = 0  # networks run in both backends
    not_compared: tuple[str, ...] = ()  # why others were not: "over 4,000,000 elements"
    wall_s: float = 0.0


@dataclass(frozen=True)
class Settings:
    """One fuzz run: cases 0..cases-1 of `seed`, made from `seeds`."""

    seed: int
    seeds: tuple[Seed, ...]
    directory: Path  # where generated cases claim to live
    timeout_s: float = 2.0
    max_onnx_elements: int = MAX_ONNX_ELEMENTS
    # Run accepted networks in both backends and compare (0: don't) up to this size:
    # weights plus the largest value, in elements.
    max_run_elements: int = MAX_ELEMENTS
    # A worker stuck where signals are not seen (in C) is killed after this long; None:
    # many times `timeout_s`, so that a loaded machine does not trigger it.
    kill_after_s: float | None = None

    def case(self, index: int) -> Case:
        return make_case(self.seed, index, self.seeds, self.directory)


def repository_settings(
    root: Path, seed: int, timeout_s: float = 2.0, max_run_elements: int = MAX_ELEMENTS
) -> Settings:
    """A run seeded from a dslnet checkout at `root`: its spec library, its error corpus
    (and the files that imports) and every registered op's examples. Generated cases
    live beside the library, so they can import its specs."""
    files = sorted(root.glob("specs/*.net")) + sorted(root.glob("tests/errors/**/*.net"))
    seeds = seeds_from_files(files) + op_example_seeds(root / "specs")
    return Settings(
        seed, tuple(seeds), root / "specs", timeout_s, max_run_elements=max_run_elements
    )


class _CpuTimeout(BaseException):
    """Raised in a worker when a case used up its CPU time. A BaseException, so that
    no `except Exception` in the compiler can swallow it."""


# --- one case --------------------------------------------------------------------------


def run_case(
    case: Case,
    timeout_s: float,
    max_onnx_elements: int = MAX_ONNX_ELEMENTS,
    max_run_elements: int = MAX_ELEMENTS,
) -> Outcome:
    """Compile `case` under a CPU-time limit (signals: call it from the main thread), and
    run what compiles in both backends (up to `max_run_elements`; 0: not at all)."""

    def expired(signum: int, frame: Any) -> None:
        raise _CpuTimeout

    previous = signal.signal(signal.SIGPROF, expired)
    start, wall_start = time.process_time(), time.perf_counter()
    stats: Counter[str] = Counter()  # backend checks done and skipped
    limits = _Limits(max_onnx_elements, max_run_elements)
    try:
        signal.setitimer(signal.ITIMER_PROF, timeout_s)
        try:
            verdict, problem = _compile(case, stats, limits)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _CpuTimeout as err:
        verdict, kind = Verdict.HANG, f"over {timeout_s:g} s of CPU at {_where(err)}"
        problem = traceback.format_exc()
    except Disagreement as err:
        verdict, kind, problem = Verdict.DISAGREE, _disagreement_kind(str(err)), str(err)
    except BaseException as err:  # anything but a CompileError is what we look for
        verdict, kind = Verdict.CRASH, f"{type(err).__name__} at {_where(err)}"
        problem = traceback.format_exc()
    else:
        kind = problem.split(":")[0]
        if problem:
            verdict = Verdict.CRASH
    finally:
        signal.signal(signal.SIGPROF, previous)
    return Outcome(
        case.index,
        verdict,
        kind,
        problem,
        cpu_s=time.process_time() - start,
        torch_checked=stats["torch"],
        onnx_checked=stats["onnx"],
        onnx_skipped=stats["onnx skipped"],
        compared=stats["compared"],
        not_compared=tuple(k.removeprefix("not run: ") for k in stats if k.startswith("not run: ")),
        wall_s=time.perf_counter() - wall_start,
    )


@dataclass(frozen=True)
class _Limits:
    max_onnx_elements: int
    max_run_elements: int


def _disagreement_kind(message: str) -> str:
    """A disagreement's kind, for grouping: what differed and, when a backend refused,
    its error (sizes, names and values left out)."""
    what = message.split(": ", 1)[-1]  # after "at N=2, T=3"
    what = re.sub(r"output '[^']*'", "output", what)
    what = re.sub(r": torch .*, ONNX Runtime .*$", "", what)  # the values that differ
    what = re.sub(r"[-+]?\b\d[\w.+-]*|\[[^\]]*\]|\([^)]*\)|'[^']*'|\{[^}]*\}", "#", what)
    return "disagreement: " + what[:120]


def _compile(case: Case, stats: Counter[str], limits: _Limits) -> tuple[Verdict, str]:
    """(verdict, problem). As `dslnet check` does first (load without stopping at errors,
    then every network at its defaults: all the diagnostics), then as the API does
    (`ir` per network, which must succeed for every network check passed)."""
    program = dslnet.loads(case.text, filename=case.filename, strict=False)
    found = program.check()
    if found:
        problem = diagnostics_problem(CompileError(found, program.sources), case)
        if problem:
            return Verdict.REJECTED, problem
    if any(d.is_error for d in found):
        return Verdict.REJECTED, ""
    verdict = Verdict.COMPILED
    for network in program.networks:
        try:
            graph = program.ir(network)
        except CompileError as err:
            if all(p.default is not None for p in program.decls[network].params):
                first = err.diagnostics[0].message if err.diagnostics else "no diagnostics"
                return verdict, f"InconsistentError: check passed '{network}', ir failed: {first}"
            verdict = Verdict.REJECTED  # a parameter without a default: not given
            problem = diagnostics_problem(err, case)
            if problem:
                return verdict, problem
            continue
        _backends(graph, stats, limits)
    return verdict, ""


def _backends(graph: Graph, stats: Counter[str], limits: _Limits) -> None:
    """What `dslnet compile` makes of an accepted network, and running it in both
    backends; a failure raises (Disagreement: the backends differ)."""
    verify(graph)
    print_graph(graph)
    source = generate_torch(graph, graph.span.file if graph.span else None)
    compile(source, f"<torch source of {graph.name}>", "exec")
    stats["torch"] += 1
    if _too_big_for_onnx(graph, limits.max_onnx_elements):
        stats["onnx skipped"] += 1
        return
    onnx.checker.check_model(emit_onnx(graph))
    stats["onnx"] += 1
    if limits.max_run_elements <= 0:
        return
    why_not = run_both(graph, source, limits.max_run_elements)
    stats[f"not run: {why_not}" if why_not else "compared"] += 1


def _too_big_for_onnx(graph: Graph, max_elements: int) -> bool:
    """Over `max_elements` weights, or a dimension that large (the ONNX lowering makes
    constants as long as a dimension, e.g. an instancenorm's scale)."""
    if sum(p.numel for p in graph.parameters.values()) > max_elements:
        return True
    return any(
        isinstance(d, int) and d > max_elements
        for value in graph.values.values()
        for d in value.type.shape
    )


def diagnostics_problem(err: CompileError, case: Case) -> str:
    """What is wrong with a CompileError's diagnostics ('' when nothing): there must be
    at least one, each in a file of the spec at a position inside it (notes too), the
    excerpt of the case's own file must be the line the position names (lines end at
    '\n' only, as the parser counts them), and rendering must succeed."""
    if not err.diagnostics:
        return "UnlocatedError: a CompileError without diagnostics"
    # A leading byte-order mark is dropped by the loader, as by `load`.
    own = [line.removesuffix("\r") for line in case.text.removeprefix("\ufeff").split("\n")]
    for d in err.diagnostics:
        for where, span in [("", d.span)] + [(" (a note)", n.span) for n in d.notes if n.span]:
            lines = err.sources.texts.get(span.file)
            if lines is None:
                return f"UnlocatedError: {span} is in no file of the spec{where}: {d.message}"
            if not (1 <= span.line <= max(1, len(lines) + 1) and span.col >= 1):
                return f"UnlocatedError: position {span} is outside the file{where}: {d.message}"
            shown = err.sources.line(span.file, span.line)
            if span.file == case.filename and shown is not None and shown != own[span.line - 1]:
                return f"MislocatedError: the excerpt of {span} is another line{where}"
    try:
        err.render()
        err.render(color=True)
    except Exception as exc:
        return f"RenderError: {type(exc).__name__}: {exc}"
    return ""


def _where(err: BaseException) -> str:
    """The innermost frame in dslnet (else the innermost): `path:line`."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename != __file__]
    ours = [f for f in frames if f"{os.sep}dslnet{os.sep}" in f.filename] or frames
    if not ours:
        return "?"
    frame = ours[-1]
    path = frame.filename
    marker = f"{os.sep}dslnet{os.sep}"
    if marker in path:
        path = "dslnet/" + path.rsplit(marker, 1)[1].replace(os.sep, "/")
    return f"{path}:{frame.lineno}"


# --- the worker pool -----------------------------------------------------------------


def warm_up() -> None:
    """Run every stage once, so that no case pays for first-time work (caches, lazy
    imports of the backends' dependencies)."""
    program = dslnet.loads(
        "network Warm() {\n    in x: float32[N, 4]\n"
        "    out y = x -> linear(features=2) -> relu\n}\n"
    )
    _backends(program.ir("Warm"), Counter(), _Limits(MAX_ONNX_ELEMENTS, MAX_ELEMENTS))


def single_threaded() -> None:
    """One thread for torch (ONNX Runtime sessions are made with one): workers run side
    by side, and a case's CPU time is then its own."""
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # once per process
        torch.set_num_interop_threads(1)


def _limit_memory() -> None:
    """Cap the worker's address space: a case that would exhaust memory fails with
    MemoryError (a crash to report) instead of taking the machine down."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        size = pages * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (size + MEMORY_HEADROOM, hard))
    except (OSError, ValueError, ImportError):
        pass  # not Linux: no cap


def _worker(conn: Connection, settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the run
    single_threaded()
    warm_up()
    _limit_memory()
    conn.send("ready")
    while True:
        index = conn.recv()
        if index is None:
            return
        case = settings.case(index)
        conn.send(
            run_case(
                case, settings.timeout_s, settings.max_onnx_elements, settings.max_run_elements
            )
        )


@dataclass
class _Slot:
    process: Any
    conn: Connection
    index: int | None = None
    started: float = 0.0


@dataclass
class _Pool:
    settings: Settings
    jobs: int
    slots: list[_Slot] = field(default_factory=list)

    def __post_init__(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        self.context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.slots = [self._start() for _ in range(self.jobs)]

    def _start(self) -> _Slot:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(child, self.settings), daemon=True)
        process.start()
        child.close()
        parent.recv()  # "ready": warmed up
        return _Slot(process, parent)

    def _replace(self, slot: _Slot) -> None:
        slot.process.kill()
        slot.process.join()
        slot.conn.close()
        self.slots[self.slots.index(slot)] = self._start()

    def run(self, indices: Iterable[int]) -> Iterator[Outcome]:
        wall_limit = self.settings.kill_after_s or 5 * self.settings.timeout_s + 10
        pending = iter(indices)
        while True:
            for slot in self.slots:
                index = next(pending, None) if slot.index is None else None
                if index is not None:
                    slot.index, slot.started = index, time.monotonic()
                    slot.conn.send(index)
            busy = [s for s in self.slots if s.index is not None]
            if not busy:
                return
            ready = wait([s.conn for s in busy], timeout=0.5)
            for slot in busy:
                outcome = self._collect(slot, slot.conn in ready, wall_limit)
                if outcome is not None:
                    yield outcome

    def _collect(self, slot: _Slot, ready: bool, wall_limit: float) -> Outcome | None:
        """The outcome of `slot`'s case if there is one by now."""
        index = slot.index
        assert index is not None
        if ready:
            try:
                outcome: Outcome = slot.conn.recv()
            except (EOFError, OSError):  # died: a crash in C code, or killed by the system
                slot.process.join()
                code = slot.process.exitcode
                self._replace(slot)
                return Outcome(index, Verdict.CRASH, f"worker died (exit code {code})")
            slot.index = None
            return outcome
        if time.monotonic() - slot.started > wall_limit:
            self._replace(slot)
            return Outcome(index, Verdict.HANG, f"no answer in {wall_limit:g} s, killed")
        return None

    def close(self) -> None:
        for slot in self.slots:
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        for slot in self.slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()


def run_cases(settings: Settings, indices: Sequence[int] | range, jobs: int) -> Iterator[Outcome]:
    """The outcome of each case, in the order they finish, from `jobs` worker processes
    (0: in this process, with the CPU limit but no kill for a case stuck in C code)."""
    if jobs <= 0:
        warm_up()
        for index in indices:
            yield run_case(
                settings.case(index),
                settings.timeout_s,
                settings.max_onnx_elements,
                settings.max_run_elements,
            )
        return
    pool = _Pool(settings, min(jobs, max(1, len(indices))))
    try:
        yield from pool.run(indices)
    finally:
        pool.close()


# --- totals --------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts over a run, and the first case of each kind of crash, hang and
    disagreement."""

    total: int = 0
    verdicts: dict[Verdict, int] = field(default_factory=lambda: dict.fromkeys(Verdict, 0))
    torch_checked: int = 0
    onnx_checked: int = 0
    onnx_skipped: int = 0
    compared: int = 0
    not_compared: Counter[str] = field(default_factory=Counter)  # why -> networks
    first: dict[str, Outcome] = field(default_factory=dict)  # kind -> first outcome
    counts: dict[str, int] = field(default_factory=dict)  # kind -> cases
    slowest: Outcome | None = None

    def add(self, outcome: Outcome) -> None:
        self.total += 1
        self.verdicts[outcome.verdict] += 1
        self.torch_checked += outcome.torch_checked
        self.onnx_checked += outcome.onnx_checked
        self.onnx_skipped += outcome.onnx_skipped
        self.compared += outcome.compared
        self.not_compared.update(outcome.not_compared)
        if outcome.verdict in (Verdict.CRASH, Verdict.HANG, Verdict.DISAGREE):
            key = f"{outcome.verdict.value}: {outcome.kind}"
            self.first.setdefault(key, outcome)
            self.counts[key] = self.counts.get(key, 0) + 1
        if self.slowest is None or outcome.cpu_s > self.slowest.cpu_s:
            self.slowest = outcome

    @property
    def failures(self) -> int:
        return sum(self.verdicts[v] for v in (Verdict.CRASH, Verdict.HANG, Verdict.DISAGREE))


def reproducer(settings: Settings, outcome: Outcome) -> str:
    """A report of a failing case: how it was made, what happened, and its text."""
    case = settings.case(outcome.index)
    return (
        f"case {case.index} of seed {settings.seed} ({case.origin}), as {case.filename}\n"
        f"{outcome.verdict.value}: {outcome.kind}\n{outcome.details}\n"
        f"--- spec text ---\n{case.text}"
    )
