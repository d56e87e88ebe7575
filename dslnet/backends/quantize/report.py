"""What quantization did to a model: output drift and ONNX Runtime CPU latency.

Both models run on the same feeds; latency is the median over `repeat` rounds, each
round timing the two models back to back on every feed, so load from other processes
hits both alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper

from dslnet.backends.quantize._onnx import QuantizeError

__all__ = ["OutputDrift", "QuantReport", "measure", "ort_session", "typed_feed"]

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class OutputDrift:
    """How far one output of the quantized model is from the float32 one."""

    name: str
    max_abs: float
    mean_abs: float
    top1: float | None  # share of positions whose argmax over the last axis agrees
    nonfinite: bool  # the quantized output has NaN/inf where float32 has none


@dataclass(frozen=True)
class QuantReport:
    outputs: tuple[OutputDrift, ...]
    fp32_ms: float  # median latency of one feed
    quantized_ms: float
    threads: int | None

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.quantized_ms if self.quantized_ms > 0 else float("inf")

    @property
    def faster(self) -> bool:
        return self.quantized_ms < self.fp32_ms

    def render(self) -> str:
        threads = "ORT default" if self.threads is None else str(self.threads)
        lines = [
            f"latency (ORT CPU, threads: {threads}): fp32 {self.fp32_ms:.3f} ms, "
            f"quantized {self.quantized_ms:.3f} ms, speed-up {self.speedup:.2f}x"
        ]
        if not self.faster:
            lines.append(
                f"WARNING: the quantized model is not faster than fp32 "
                f"({self.quantized_ms:.3f} ms vs {self.fp32_ms:.3f} ms)"
            )
        for out in self.outputs:
            top1 = "" if out.top1 is None else f", top-1 agreement {out.top1:.4f}"
            bad = ", NaN/inf in the quantized output" if out.nonfinite else ""
            lines.append(
                f"{out.name}: max |diff| {out.max_abs:.4g}, mean |diff| {out.mean_abs:.4g}"
                f"{top1}{bad}"
            )
        return "\n".join(lines)


def measure(
    fp32: onnx.ModelProto,
    quantized: onnx.ModelProto,
    feeds: Sequence[Mapping[str, Array]],
    *,
    threads: int | None = None,
    repeat: int = 10,
) -> QuantReport:
    """Drift of every float output of `quantized` from `fp32` over `feeds`, and the
    latency of both under ONNX Runtime's CPU provider."""
    if not feeds:
        raise QuantizeError("measure needs at least one feed")
    sessions = [ort_session(m, threads) for m in (fp32, quantized)]
    typed = [[typed_feed(feed, m) for feed in feeds] for m in (fp32, quantized)]
    names = [o.name for o in sessions[0].get_outputs()]
    missing = sorted(set(names) - {o.name for o in sessions[1].get_outputs()})
    if missing:
        raise QuantizeError(f"the quantized model lacks outputs {', '.join(missing)}")
    results = [[s.run(names, f) for f in fs] for s, fs in zip(sessions, typed)]
    drift = []
    for k, name in enumerate(names):
        ref = [np.asarray(r[k]) for r in results[0]]
        if ref[0].dtype.kind != "f":
            continue
        got = [np.asarray(r[k], np.float32) for r in results[1]]
        drift.append(_drift(name, ref, got))
    times: list[list[float]] = [[], []]
    for _ in range(max(1, repeat)):
        for which in (0, 1):
            for feed in typed[which]:
                start = time.perf_counter()
                sessions[which].run(None, feed)
                times[which].append(time.perf_counter() - start)
    ms = [float(np.median(t)) * 1e3 for t in times]
    return QuantReport(tuple(drift), ms[0], ms[1], threads)


def _drift(name: str, ref: list[Array], got: list[Array]) -> OutputDrift:
    diff = np.concatenate([np.abs(a.astype(np.float32) - b).reshape(-1) for a, b in zip(ref, got)])
    finite = np.isfinite(diff)
    nonfinite = any(
        bool((~np.isfinite(b) & np.isfinite(a)).any()) for a, b in zip(ref, got)
    )  # fmt: skip
    top1 = None
    if ref[0].ndim >= 1 and ref[0].shape[-1] > 1:
        same = [(a.argmax(-1) == b.argmax(-1)).reshape(-1) for a, b in zip(ref, got)]
        top1 = float(np.concatenate(same).mean())
    shown = diff[finite]
    return OutputDrift(
        name,
        float(shown.max()) if shown.size else 0.0,
        float(shown.mean()) if shown.size else 0.0,
        top1,
        nonfinite,
    )


def ort_session(
    model: onnx.ModelProto,
    threads: int | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> Any:
    """An ONNX Runtime session for `model` on `providers` (in order of preference),
    logging errors only, with `threads` intra-op threads (ORT's default when None)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=list(providers))


def typed_feed(feed: Mapping[str, Array], model: onnx.ModelProto) -> dict[str, Array]:
    """`feed` cast to the model's declared input types (fp16 inputs without
    keep_io_types)."""
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.input}
    out = {}
    for name, value in feed.items():
        elem = types.get(name)
        dtype = helper.tensor_dtype_to_np_dtype(elem) if elem else None
        out[name] = np.asarray(value) if dtype is None else np.asarray(value).astype(dtype)
    return out
