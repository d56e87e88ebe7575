"""Activation ranges for static quantization: observe, then choose a clipping range.

The float model runs under ONNX Runtime on the calibration feeds with the tensors to
quantize exposed as extra graph outputs. For each tensor we keep its min and max and,
for the percentile and entropy methods, a histogram of |x| whose range doubles (two
bins merging into one) whenever a batch exceeds it, so one pass over the feeds is
enough and no activation is kept. Thresholds then clip the range:

* minmax: the observed [min, max];
* percentile: |x| clipped at the given percentile of its distribution;
* entropy: the |x| threshold whose quantized distribution is closest, in KL
  divergence, to the clipped one (TensorRT's calibration, written from its
  description: candidates every few bins, zero bins excluded from the expansion).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx
from onnx import helper

from dslnet.backends.quantize._onnx import FLOAT, QuantizeError
from dslnet.core.console import progress

__all__ = ["Method", "Stats", "clip_range", "collect", "uint8_params"]

Method = Literal["minmax", "percentile", "entropy"]
Array = np.ndarray[Any, Any]
BINS = 2048
_QMIN, _QMAX = 0, 255  # uint8 activations: ORT's u8s8 kernels are its fastest on x86


@dataclass
class Stats:
    """What calibration saw of one tensor."""

    lo: float = np.inf
    hi: float = -np.inf
    hist: Array | None = None  # counts of |x| over [0, width * BINS)
    width: float = 0.0

    finite: bool = True  # False once a NaN/inf was seen: such a tensor stays float

    def observe(self, x: Array, histogram: bool) -> None:
        if x.size == 0:
            return
        if not np.isfinite(x).all():  # e.g. an attention mask of -inf
            self.finite = False
            return
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))
        if not histogram:
            return
        mag = np.abs(x.reshape(-1))
        mag = mag[mag > 0]  # zero is exact whatever the range: only the rest competes
        if mag.size == 0:
            return
        peak = float(mag.max())
        if self.hist is None:
            self.hist = np.zeros(BINS, np.int64)
            self.width = peak / BINS if peak > 0 else 1e-8
        while peak >= self.width * BINS:  # widen: merge pairs of bins, range doubles
            merged = self.hist.reshape(-1, 2).sum(axis=1)
            self.hist = np.concatenate([merged, np.zeros(BINS // 2, np.int64)])
            self.width *= 2
        index = np.minimum((mag / self.width).astype(np.int64), BINS - 1)
        self.hist += np.bincount(index, minlength=BINS)


def collect(
    model: onnx.ModelProto,
    feeds: Sequence[Mapping[str, Array]],
    names: Sequence[str],
    *,
    histogram: bool,
) -> dict[str, Stats]:
    """Run `model` on `feeds` and observe the tensors `names`."""
    import onnxruntime as ort

    if not feeds:
        raise QuantizeError("static quantization needs at least one calibration feed")
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        helper.make_tensor_value_info(n, FLOAT, None) for n in names if n not in present
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    stats = {name: Stats() for name in names}
    wanted = list(names)
    for k, feed in enumerate(progress(feeds, "calibrating")):
        try:
            values = session.run(wanted, dict(feed))
        except Exception as exc:  # ORT raises its own types for bad shapes and values
            raise QuantizeError(f"calibration feed {k} does not run: {exc}") from exc
        for name, value in zip(wanted, values):
            stats[name].observe(np.asarray(value, np.float32), histogram)
    return stats


def clip_range(stats: Stats, method: Method, percentile: float) -> tuple[float, float]:
    """The [lo, hi] range to quantize over, always containing 0."""
    lo, hi = min(stats.lo, 0.0), max(stats.hi, 0.0)
    if method == "minmax" or stats.hist is None or stats.hist.sum() == 0:
        return lo, hi
    signed = stats.lo < 0
    if method == "percentile":
        cdf = np.cumsum(stats.hist) / stats.hist.sum()
        index = int(np.searchsorted(cdf, percentile / 100.0))
        threshold = (index + 1) * stats.width
    else:
        # Signed data spends about half the 256 levels on each side of zero.
        threshold = _kl_threshold(stats.hist, 128 if signed else 256) * stats.width
    return max(lo, -threshold), min(hi, threshold)


def uint8_params(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point of asymmetric uint8 over [lo, hi] (which holds 0): 0 is
    exact, and lo == 0 gives zero point 0, at which ORT folds a Relu into the Q."""
    if hi - lo <= 0 or not np.isfinite(hi - lo):
        return 1.0, _QMIN
    scale = float(np.float32((hi - lo) / (_QMAX - _QMIN)))
    zero = int(np.clip(round(_QMIN - lo / scale), _QMIN, _QMAX))
    return scale, zero


def _kl_threshold(hist: Array, levels: int, stride: int = 8) -> int:
    """The number of bins to keep: the one minimizing KL(P || Q), where P is the
    histogram cut there (outliers added to its last bin) and Q that cut merged into
    `levels` bins and spread back over the nonzero bins it came from."""
    used = int(np.flatnonzero(hist).max()) + 1 if hist.any() else len(hist)
    if used <= levels:
        return used
    counts = hist.astype(np.float64)
    best, best_kl = used, np.inf
    for cut in [*range(levels, used, stride), used]:
        p = counts[:cut].copy()
        p[-1] += counts[cut:].sum()
        edges = (np.arange(levels) * cut) // levels
        nonzero = (counts[:cut] > 0).astype(np.float64)
        sums = np.add.reduceat(counts[:cut], edges)
        spread = np.add.reduceat(nonzero, edges)
        per_bin = np.divide(sums, spread, out=np.zeros_like(sums), where=spread > 0)
        q = np.repeat(per_bin, np.diff(np.append(edges, cut))) * nonzero
        kl = _kl(p, q)
        if kl < best_kl:
            best, best_kl = cut, kl
    return best


def _kl(p: Array, q: Array) -> float:
    p = p / p.sum()
    total = q.sum()
    q = q / total if total > 0 else q
    mask = p > 0
    # A bin P has and Q lacks (the outlier bin) costs as if Q held a tiny mass there.
    q_safe = np.where(q[mask] > 0, q[mask], 1e-12)
    return float(np.sum(p[mask] * np.log(p[mask] / q_safe)))
