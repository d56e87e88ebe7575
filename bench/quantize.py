"""Quantization: accuracy drift and ONNX Runtime CPU speed-up, against ORT's quantizer.

1. float16 vs float32 (ResNet-18, GPT): drift and latency, as `measure` reports them.
2. Dynamic int8 on an MLP of 6 hidden layers of 1024 at batch 64: our speed-up over
   fp32 next to that of `onnxruntime.quantization.quantize_dynamic` run on the same
   fp32 model (Gemm form, as dslnet emits 2-D linears) and on its MatMul+Add form;
   top-1 agreement with fp32 on random inputs.
3. Static int8 (QDQ) ResNet-18, batchnorm folded, calibrated on generated data: speed-up
   over fp32 at batch 1 and 16, next to ORT's `quantize_static` (QDQ, per-channel, same
   calibration feeds); top-1 agreement on held-back random inputs.

Latencies are medians of interleaved rounds (each round times every candidate, in a
fresh random order), so load from other processes and the position in a round hit
all alike; differences under ~2% are within the noise of a shared 2-core machine.

Run: `python bench/quantize.py [--threads 1 2] [--number 5] [--rounds 7]`.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dslnet.core.console import progress

ROOT = Path(__file__).resolve().parents[1]

Feed = dict[str, np.ndarray[Any, Any]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--number", type=int, default=5, help="calls per timing sample")
    parser.add_argument("--rounds", type=int, default=7, help="timing samples (median)")
    parser.add_argument("--calibration", type=int, default=16, help="calibration feeds")
    parser.add_argument(
        "--only", nargs="+", choices=["fp16", "dynamic", "static"], help="run these parts"
    )
    args = parser.parse_args()
    parts = set(args.only or ["fp16", "dynamic", "static"])

    import onnxruntime as ort

    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer advises pre-processing
    print(
        f"# onnxruntime {ort.__version__}, CPU, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f} at start"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if "fp16" in parts:
            fp16_section(args)
        if "dynamic" in parts:
            dynamic_section(args, Path(tmp))
        if "static" in parts:
            static_section(args, Path(tmp))
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


def session(model: Any, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def run_all(model: Any, feeds: Sequence[Feed]) -> np.ndarray[Any, Any]:
    s = session(model, 1)
    return np.concatenate([s.run(None, feed)[0] for feed in feeds])


def top1(ref: np.ndarray[Any, Any], got: np.ndarray[Any, Any]) -> float:
    return float((ref.argmax(-1) == got.argmax(-1)).mean())


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, number: int) -> dict[str, float]:
    """Median seconds per call of each function, rounds in shuffled order."""
    for fn in fns.values():
        for _ in range(max(2, number)):
            fn()
    order = list(fns)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    shuffle = random.Random(0).shuffle
    for _ in progress(range(rounds), "timing rounds"):
        shuffle(order)
        for key in order:
            start = time.perf_counter()
            for _ in range(number):
                fns[key]()
            samples[key].append((time.perf_counter() - start) / number)
    return {k: statistics.median(v) for k, v in samples.items()}


def timed(models: dict[str, Any], feed: Feed, threads: int, args: Any) -> dict[str, float]:
    """Median ms per call of each model on `feed`, interleaved."""
    sessions = {k: session(m, threads) for k, m in models.items()}
    fns = {k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}
    return {k: v * 1e3 for k, v in interleaved(fns, args.rounds, args.number).items()}


def fp16_section(args: Any) -> None:
    import dslnet
    from dslnet.backends.quantize import load_calibration, measure, to_fp16
    from dslnet.ir.domains import input_domains

    print("\n## 1. float16 vs float32 (ORT CPU; its missing fp16 kernels run behind casts)")
    resnet = dslnet.load(ROOT / "specs/resnet.net").optimize("ResNet18", fold=True).onnx()
    transformer = dslnet.load(ROOT / "specs/transformer.net")
    gpt = transformer.onnx("GPT")
    tokens = input_domains(transformer.ir("GPT"))  # ids over the whole vocabulary
    cases = [
        ("ResNet18, batch 1", resnet, {"N": 1}, {}),
        ("GPT, batch 1 x 64 tokens", gpt, {"N": 1, "T": 64}, tokens),
    ]
    for label, model, symbols, domains in cases:
        feeds = load_calibration(None, model, count=4, seed=1, symbols=symbols, domains=domains)
        half = to_fp16(model)
        for threads in args.threads:
            report = measure(model, half, feeds, threads=threads, repeat=args.rounds)
            print(f"### {label}, {threads} thread(s)\n{report.render()}")
        scale = max(float(np.abs(run_all(model, feeds)).max()), 1e-12)
        relative = report.outputs[0].max_abs / scale
        print(f"(largest |fp32 output| {scale:.4g}: the max drift is {relative:.2e} of it)")


def matmul_form(model: Any) -> Any:
    """The same network with each Gemm(x, W, b, transB=1) as MatMul(x, W^T) + Add(b)."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    weights = {t.name: t for t in out.graph.initializer}
    nodes = []
    for node in out.graph.node:
        if node.op_type != "Gemm":
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weights[node.input[1]])
        name = node.input[1] + "_t"
        out.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T), name))
        mid = node.output[0] + "_mm"
        nodes.append(helper.make_node("MatMul", [node.input[0], name], [mid], node.name + "_mm"))
        nodes.append(helper.make_node("Add", [mid, node.input[2]], [node.output[0]], node.name))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    return out


def ort_dynamic(model: Any, tmp: Path, name: str, per_channel: bool = False) -> bytes:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = tmp / f"{name}.onnx", tmp / f"{name}.int8.onnx"
    onnx.save(model, src)
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=per_channel)
    return dst.read_bytes()


def dynamic_section(args: Any, tmp: Path) -> None:
    import dslnet
    from dslnet.backends.quantize import load_calibration, quantize_dynamic_int8

    print("\n## 2. dynamic int8, MLP 6 x 1024 (+ 10 classes), batch 64")
    gemm = dslnet.load(ROOT / "specs/mlp.net").onnx("MLP", hidden=1024, depth=6)
    mm = matmul_form(gemm)
    models = {
        "fp32 (Gemm form)": gemm,
        "ours": quantize_dynamic_int8(gemm),
        "ORT quantize_dynamic": ort_dynamic(gemm, tmp, "mlp"),
        "ORT quantize_dynamic per_channel": ort_dynamic(gemm, tmp, "mlp_pc", per_channel=True),
        "fp32 (MatMul form)": mm,
        "ours (MatMul form)": quantize_dynamic_int8(mm),
        "ORT quantize_dynamic (MatMul form)": ort_dynamic(mm, tmp, "mlp_mm"),
    }
    feeds = load_calibration(None, gemm, count=16, seed=3, symbols={"N": 64})
    ref = run_all(gemm, feeds)
    for name, model in models.items():
        if not name.startswith("fp32"):
            print(f"top-1 agreement with fp32, {name}: {top1(ref, run_all(model, feeds)):.4f}")
    for threads in args.threads:
        ms = timed(models, feeds[0], threads, args)
        print(f"### {threads} thread(s): median ms per batch")
        for name, value in ms.items():
            base = ms["fp32 (MatMul form)" if "MatMul" in name else "fp32 (Gemm form)"]
            print(f"  {name:36s} {value:8.3f} ms   speed-up over fp32 {base / value:5.2f}x")
        ours = ms["fp32 (Gemm form)"] / ms["ours"]
        ort_gemm = ms["fp32 (Gemm form)"] / ms["ORT quantize_dynamic"]
        ort_pc = ms["fp32 (Gemm form)"] / ms["ORT quantize_dynamic per_channel"]
        ort_mm = ms["fp32 (MatMul form)"] / ms["ORT quantize_dynamic (MatMul form)"]
        print(
            f"  our speed-up / ORT's: {ours / ort_gemm:.3f} (same fp32 model, ORT default "
            f"per-tensor weights), {ours / ort_pc:.3f} (ORT per_channel=True), "
            f"{ours / ort_mm:.3f} (ORT on the MatMul form)"
        )


def ort_static(model: Any, feeds: Sequence[Feed], tmp: Path) -> bytes:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> Feed | None:
            return next(self.feeds, None)

    src, dst = tmp / "resnet.onnx", tmp / "resnet.qdq.onnx"
    onnx.save(model, src)
    quantize_static(
        src,
        dst,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return dst.read_bytes()


def static_section(args: Any, tmp: Path) -> None:
    import dslnet
    from dslnet.backends.quantize import load_calibration, quantize_static_int8

    print("\n## 3. static int8 (QDQ), ResNet-18 with batchnorm folded, 224x224")
    model = dslnet.load(ROOT / "specs/resnet.net").optimize("ResNet18", fold=True).onnx()
    calibration = load_calibration(None, model, count=args.calibration, seed=0)
    held_back = load_calibration(None, model, count=8, seed=99, symbols={"N": 16})
    ref = run_all(model, held_back)
    centre = ref.mean(axis=0)
    gap = np.sort(ref, axis=1)
    print(
        f"fp32 on {len(ref)} held-back random inputs: {len(set(ref.argmax(1)))} distinct "
        f"top-1 classes, median top-1/top-2 gap {np.median(gap[:, -1] - gap[:, -2]):.4f}, "
        f"logit std {ref.std():.4f}"
    )
    models: dict[str, Any] = {"fp32": model}
    for method in ("minmax", "percentile", "entropy"):
        models[f"ours {method}"] = quantize_static_int8(model, calibration, method=method)
    models["ORT quantize_static"] = ort_static(model, calibration, tmp)
    for name, quantized in list(models.items())[1:]:
        got = run_all(quantized, held_back)
        print(
            f"{name:22s} top-1 agreement {top1(ref, got):.4f}, max |diff| "
            f"{np.abs(ref - got).max():.4f}; with the class means removed: top-1 "
            f"{top1(ref - centre, got - centre):.3f}"
        )
    timed_models = {k: models[k] for k in ("fp32", "ours minmax", "ORT quantize_static")}
    for threads in args.threads:
        for batch in (1, 16):
            feed = load_calibration(None, model, count=1, seed=5, symbols={"N": batch})[0]
            ms = timed(timed_models, feed, threads, args)
            fp32, ours, ref_ms = ms["fp32"], ms["ours minmax"], ms["ORT quantize_static"]
            print(
                f"threads {threads}, batch {batch:2d}: fp32 {fp32:8.2f} ms, ours {ours:8.2f} ms "
                f"({fp32 / ours:.2f}x), ORT QDQ {ref_ms:8.2f} ms ({fp32 / ref_ms:.2f}x); "
                f"ours / ORT speed {ref_ms / ours:.2f}"
            )


if __name__ == "__main__":
    main()
