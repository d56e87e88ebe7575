"""Latency and throughput of a network's runnable forms, side by side.

For each batch size: the generated torch module (eval mode, inference mode), ONNX
Runtime on the float32 model, and ONNX Runtime on each requested quantization of it,
made by the reduction pipeline (`Optimized.quantized`). Every form runs the same random
inputs, and each row says how far its outputs are from the torch module's on CPU, so a
fast but wrong form shows.

Timing: `warmup` calls, then `rounds` rounds of `number` calls each. The forms take
turns round by round, so load from other processes hits them alike. A row's latency
is the median per-call time over its rounds, with the fastest and the slowest round
as its spread. A call goes from host arrays to host arrays, for every form alike.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from dslnet.api import Optimized, optimize
from dslnet.core.console import progress
from dslnet.core.symbolic import SymExpr
from dslnet.ir.graph import Graph
from dslnet.ir.weights import WeightsSource
from dslnet.passes.options import QUANTIZATIONS, Options, Quantization
from dslnet.testing import input_symbols, random_feeds

__all__ = [
    "RUNTIMES",
    "BenchError",
    "BenchRow",
    "batch_dim",
    "benchmark",
    "make_inputs",
    "unavailable",
    "unbound_dims",
]

Array = np.ndarray[Any, Any]
Device = Literal["cpu", "cuda"]
Runtime = Literal["torch", "onnxruntime"]
Call = Callable[[], list[Array]]  # one inference, host arrays out
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnxruntime")

ROUND_SECONDS = 0.1  # with `number` unset, calls per round fill about this long


class BenchError(ValueError):
    """A request that cannot be measured: unbound or unknown dims, a batch the network
    fixes, counts below one, a device no runtime can use here."""


@dataclass(frozen=True)
class BenchRow:
    """One form of the network at one batch size."""

    batch: int
    runtime: Runtime
    precision: str  # "fp32" or a quantization: "fp16", "int8-dynamic", "int8-static"
    device: Device
    median_ms: float  # per call, median over the rounds
    min_ms: float  # the fastest round's per-call time
    max_ms: float  # the slowest round's
    samples_per_s: float  # batch / median latency
    speedup: float | None  # ORT fp32's median / this one, same batch; None without ORT fp32
    max_abs_diff: float  # largest |output - torch CPU output| (NaN when either has NaN)
    calls: int  # calls per round
    threads: int  # intra-op threads of torch and ORT

    @property
    def label(self) -> str:
        runtime = "torch" if self.runtime == "torch" else "ORT"
        return f"{runtime} {self.precision}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def batch_dim(graph: Graph) -> str | int | None:
    """The batch: the first input's leading dim, a symbol's name or a fixed size (None
    when there is no input, or it leads with a dim expression such as `2*N`)."""
    if not graph.inputs:
        return None
    shape = graph.type_of(graph.inputs[0]).shape
    lead = shape[0] if shape else None
    if isinstance(lead, int):
        return lead
    if isinstance(lead, SymExpr) and str(lead) in lead.free_symbols():
        return str(lead)
    return None


def unbound_dims(graph: Graph, dims: Mapping[str, int]) -> list[str]:
    """The inputs' symbolic dims that neither the batch nor `dims` sizes, sorted."""
    batch = batch_dim(graph)
    return sorted(input_symbols(graph) - set(dims) - {batch if isinstance(batch, str) else ""})


def make_inputs(graph: Graph, sizes: Mapping[str, int], seed: int = 0) -> dict[str, Array]:
    """Random inputs of the network's types at `sizes` (`dslnet.testing.random_feeds`):
    an integer input that indexes an embedding draws ids over the whole table."""
    return random_feeds(graph, sizes, np.random.default_rng(seed))


def unavailable(device: Device) -> dict[Runtime, str]:
    """Why a runtime cannot run on `device` here, for each one that cannot."""
    if device == "cpu":
        return {}
    import onnxruntime as ort
    import torch

    missing: dict[Runtime, str] = {}
    if not torch.cuda.is_available():
        missing["torch"] = f"torch {torch.__version__} sees no CUDA device"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        have = ", ".join(ort.get_available_providers())
        missing["onnxruntime"] = f"ONNX Runtime has no CUDA provider (it has: {have})"
    return missing


def benchmark(
    graph: Graph,
    *,
    batches: Sequence[int] | None = None,
    quantize: Sequence[Quantization] = (),
    dims: Mapping[str, int] | None = None,
    weights: WeightsSource | None = None,
    device: Device = "cpu",
    threads: int | None = None,
    number: int | None = None,
    rounds: int = 5,
    warmup: int = 2,
    calibration_samples: int = 32,
    seed: int = 0,
) -> list[BenchRow]:
    """Time the torch module, ONNX Runtime fp32 and each `quantize` form of `graph`.

    batches: batch sizes (default: 1, or the size the network fixes).
    dims: sizes of the inputs' other symbolic dims (`unbound_dims` lists those needed).
    weights: a state_dict or weights file; fresh weights from `seed` when None.
    device: "cpu", or "cuda" for torch on CUDA and ORT's CUDA provider; a runtime that
        cannot use CUDA here is left out (`unavailable` says why).
    threads: intra-op threads of torch and ORT alike (default: torch's current count).
    number: calls per round (default: enough to fill about `ROUND_SECONDS`).
    calibration_samples: generated batch-1 inputs that int8-static calibrates on.
    Rows come batch by batch: torch, ORT fp32, then the quantizations in the given order.
    """
    sizes = dict(dims or {})
    chosen = _batches(graph, batches)
    forms = list(dict.fromkeys(quantize))
    _check(graph, sizes, forms, device, threads, number, rounds, warmup, calibration_samples)
    import torch

    base = optimize(graph, Options(), weights, seed)  # no passes: weights, @prune marks
    calibration = [
        make_inputs(graph, _sizes(graph, sizes, 1), seed + 1 + i)
        for i in range(calibration_samples if "int8-static" in forms else 0)
    ]
    with _torch_threads(threads) as used:
        runners = _runners(base, forms, device, used, calibration)
        reference = _torch_bind(base.torch().eval(), graph, "cpu")
        with torch.inference_mode():
            return _measure(graph, sizes, chosen, runners, reference, number, rounds, warmup, seed)


def _batches(graph: Graph, asked: Sequence[int] | None) -> list[int]:
    batch = batch_dim(graph)
    if isinstance(batch, int):
        if asked and set(asked) != {batch}:
            raise BenchError(
                f"network '{graph.name}' fixes its batch at {batch} (input "
                f"{graph.inputs[0]}: {graph.type_of(graph.inputs[0])}): it cannot run others"
            )
        return [batch]
    if asked is not None and not asked:
        raise BenchError("give at least one batch size")
    return list(dict.fromkeys(asked or [1]))


def _check(
    graph: Graph,
    sizes: Mapping[str, int],
    forms: Sequence[str],
    device: Device,
    threads: int | None,
    number: int | None,
    rounds: int,
    warmup: int,
    calibration_samples: int,
) -> None:
    counts: dict[str, int | None] = {"rounds": rounds, "calibration_samples": calibration_samples}
    counts |= {"number": number, "threads": threads}  # None: chosen for you
    problems = [
        f"{name} must be at least 1, got {value}"
        for name, value in counts.items()
        if value is not None and value < 1
    ]
    if warmup < 0:
        problems.append(f"warmup must be at least 0, got {warmup}")
    if problems:
        raise BenchError("; ".join(problems))
    unknown = [f for f in forms if f not in QUANTIZATIONS]
    if unknown:
        raise BenchError(
            f"unknown quantization {', '.join(unknown)}: use {', '.join(QUANTIZATIONS)}"
        )
    batch = batch_dim(graph)
    symbols = input_symbols(graph) - {batch if isinstance(batch, str) else ""}
    if isinstance(batch, str) and batch in sizes:
        raise BenchError(f"{batch} is the batch dim: give it as a batch size")
    stray = sorted(set(sizes) - symbols)
    if stray:
        have = ", ".join(sorted(symbols)) or "none besides the batch"
        raise BenchError(f"the inputs have no dim {', '.join(stray)} (symbolic dims: {have})")
    small = sorted(name for name, value in sizes.items() if value < 1)
    if small:
        raise BenchError(f"dim sizes must be at least 1: {', '.join(small)}")
    missing = unbound_dims(graph, sizes)
    if missing:
        shown = "; ".join(f"{v}: {graph.type_of(v)}" for v in graph.inputs)
        raise BenchError(f"no size for symbolic dims {', '.join(missing)} (inputs {shown})")
    missing_runtimes = unavailable(device)
    if set(missing_runtimes) == set(RUNTIMES):
        raise BenchError(
            f"nothing can run on {device} here: {'; '.join(missing_runtimes.values())}"
        )


def _sizes(graph: Graph, dims: Mapping[str, int], batch: int) -> dict[str, int]:
    name = batch_dim(graph)
    return {**dims, name: batch} if isinstance(name, str) else dict(dims)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[int]:
    """torch's intra-op threads set to `threads` (its current count when None) for the
    duration, then restored; yields the count in use."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield threads or before
    finally:
        torch.set_num_threads(before)


Bind = Callable[[Mapping[str, Array]], Call]  # inputs in, a call on them out


@dataclass(frozen=True)
class _Runner:
    runtime: Runtime
    precision: str
    device: Device
    threads: int
    bind: Bind


def _runners(
    base: Optimized,
    forms: Sequence[Quantization],
    device: Device,
    threads: int,
    calibration: list[dict[str, Array]],
) -> list[_Runner]:
    """The forms that can run on `device`: torch, ORT fp32, then each quantization."""
    from dslnet.backends.quantize.report import ort_session

    missing = unavailable(device)
    found = []
    if "torch" not in missing:
        module = base.torch().eval().to(device)
        bind = _torch_bind(module, base.graph, device)
        found.append(_Runner("torch", "fp32", device, threads, bind))
    if "onnxruntime" not in missing:
        providers = ["CUDAExecutionProvider"] if device == "cuda" else []
        providers.append("CPUExecutionProvider")  # what CUDA lacks (int8 kernels) runs here
        fp32 = base.float_onnx()
        models = {"fp32": fp32}
        for form in forms:
            variant = dataclasses.replace(base, options=Options(quantize=form))
            models[form] = variant.quantized(fp32, calibration)  # used by int8-static
        for precision, model in models.items():
            session = ort_session(model, threads, providers)
            bind = _ort_bind(session, model)
            found.append(_Runner("onnxruntime", precision, device, threads, bind))
    return found


def _torch_bind(module: Any, graph: Graph, device: Device) -> Bind:
    import torch

    def bind(feeds: Mapping[str, Array]) -> Call:
        tensors = [torch.from_numpy(feeds[name]) for name in graph.inputs]

        def call() -> list[Array]:
            out = module(*(t.to(device) for t in tensors))
            outs = [out] if isinstance(out, torch.Tensor) else list(out)
            return [o.cpu().numpy() for o in outs]

        return call

    return bind


def _ort_bind(session: Any, model: Any) -> Bind:
    from dslnet.backends.quantize.report import typed_feed

    names = [o.name for o in model.graph.output]

    def bind(feeds: Mapping[str, Array]) -> Call:
        typed = typed_feed(feeds, model)

        def call() -> list[Array]:
            outs: list[Array] = session.run(names, typed)
            return outs

        return call

    return bind


@dataclass
class _Timed:
    """One runner at one batch: its call, calls per round and per-call seconds by round."""

    runner: _Runner
    call: Call
    diff: float
    number: int
    per_call: list[float] = field(default_factory=list)

    def round(self) -> None:
        start = time.perf_counter()
        for _ in range(self.number):
            self.call()
        self.per_call.append((time.perf_counter() - start) / self.number)


def _measure(
    graph: Graph,
    dims: Mapping[str, int],
    batches: Sequence[int],
    runners: Sequence[_Runner],
    reference: Bind,
    number: int | None,
    rounds: int,
    warmup: int,
    seed: int,
) -> list[BenchRow]:
    rows: list[BenchRow] = []
    plan = [(batch, r) for batch in batches for r in range(rounds)]
    timed: list[_Timed] = []
    for batch, r in progress(plan, "benchmarking", total=len(plan)):
        if r == 0:
            feeds = make_inputs(graph, _sizes(graph, dims, batch), seed)
            timed = _prepare(runners, feeds, reference(feeds)(), number, warmup)
        with _gc_paused():  # a collection inside one round would skew only that form
            for t in timed:
                t.round()
        if r == rounds - 1:
            rows += _rows(batch, timed)
    return rows


def _prepare(
    runners: Sequence[_Runner],
    feeds: Mapping[str, Array],
    want: list[Array],
    number: int | None,
    warmup: int,
) -> list[_Timed]:
    """Each runner bound to `feeds`, its outputs compared with `want`, warmed up, and
    its calls per round chosen (from the fastest warm-up call when `number` is None)."""
    timed = []
    for runner in runners:
        call = runner.bind(feeds)
        start = time.perf_counter()
        diff = _max_abs_diff(call(), want)
        fastest = time.perf_counter() - start
        for _ in range(warmup):
            start = time.perf_counter()
            call()
            fastest = min(fastest, time.perf_counter() - start)
        calls = number or max(1, min(1000, math.ceil(ROUND_SECONDS / max(fastest, 1e-9))))
        timed.append(_Timed(runner, call, diff, calls))
    return timed


def _max_abs_diff(got: Sequence[Array], want: Sequence[Array]) -> float:
    diffs = [
        np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64)).max(initial=0.0)
        for g, w in zip(got, want, strict=True)
    ]
    return float(np.max(diffs)) if diffs else 0.0


def _rows(batch: int, timed: Sequence[_Timed]) -> list[BenchRow]:
    medians = [float(np.median(t.per_call)) for t in timed]
    reference = next((m for t, m in zip(timed, medians) if _is_reference(t.runner)), None)
    rows = []
    for t, median in zip(timed, medians):
        rows.append(
            BenchRow(
                batch=batch,
                runtime=t.runner.runtime,
                precision=t.runner.precision,
                device=t.runner.device,
                median_ms=median * 1e3,
                min_ms=min(t.per_call) * 1e3,
                max_ms=max(t.per_call) * 1e3,
                samples_per_s=batch / median if median > 0 else math.inf,
                speedup=None if reference is None or median <= 0 else reference / median,
                max_abs_diff=t.diff,
                calls=t.number,
                threads=t.runner.threads,
            )
        )
    return rows


def _is_reference(runner: _Runner) -> bool:
    """The row the speed-ups are relative to: ONNX Runtime on the float32 model."""
    return runner.runtime == "onnxruntime" and runner.precision == "fp32"


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
