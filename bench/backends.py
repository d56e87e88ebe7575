"""Backend benchmarks, as ratios against references measured in the same run.

1. ONNX emission: dslnet's direct emitter vs `torch.onnx.export` (TorchScript
   exporter, opset 18) of the generated module, with the module's weights; each timed
   as its first call in a fresh process (what a CLI user pays), along the API's two
   paths (`prog.onnx(...).SerializeToString()` and `prog.onnx_bytes(...)`) and the
   CLI's, against the floor (one memcpy of the weights' bytes); then warm calls in one
   process, and whole processes.
2. Forward time of the generated module vs a hand-written equivalent.
3. ONNX Runtime latency of our model vs the model torch.onnx.export writes.

Run: `python bench/backends.py [--spec specs/mlp.net --network ResidualMLP] [--threads 1]
[--sections emission forward ort]`, e.g. ResNet-18's emission:
`python bench/backends.py --spec specs/resnet.net --network ResNet18 --sections emission`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

FIRST_CALL = textwrap.dedent("""
    import io, json, sys, time, warnings
    import onnx
    import torch
    import dslnet
    from dslnet.backends.onnx_emit import emit_onnx_bytes, emit_onnx_files
    warnings.filterwarnings("ignore")
    spec, network, which, threads = sys.argv[1:5]
    torch.set_num_threads(int(threads))
    prog = dslnet.load(spec)
    graph = prog.ir(network)
    module = prog.torch(network).eval()
    weights = module.state_dict()
    x = torch.randn(1, *[d for d in graph.type_of(graph.inputs[0]).shape[1:]])
    arrays = [memoryview(t.numpy()).cast("B") for t in weights.values()]
    built = prog.onnx(network, weights) if which == "serialize" else None
    start = time.perf_counter()
    if which == "torch":
        buf = io.BytesIO()
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=18,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}})
        data = buf.getvalue()
    elif which == "api":
        data = prog.onnx(network, weights).SerializeToString()
    elif which == "api_bytes":
        data = prog.onnx_bytes(network, weights)
    elif which == "cli":  # what `dslnet compile --emit onnx -o F` does before writing F
        data = emit_onnx_files(prog.ir(network), weights, data_name="F.data").model
    elif which == "dslnet":
        data = emit_onnx_bytes(graph, weights)
    elif which == "serialize":  # protobuf's part of the "api" path
        data = built.SerializeToString()
    else:  # the floor: one copy of the weights' bytes into fresh memory
        data = b"".join(arrays)
    print(json.dumps({"seconds": time.perf_counter() - start, "bytes": len(data)}))
""")

# The first-call candidates: each is timed in a fresh process, the same weights (the
# generated module's) given to all.
FIRST_CALLS = {
    "torch": "torch.onnx.export (TorchScript)",
    "api": "prog.onnx(...).SerializeToString()",
    "serialize": "  of which ModelProto.SerializeToString",
    "api_bytes": "prog.onnx_bytes(...)",
    "cli": "compile --emit onnx, in-process",
    "dslnet": "emit_onnx_bytes, graph given",
    "floor": "floor: one memcpy of the weights",
}


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def first_calls(spec: str, network: str, repeats: int, threads: int) -> dict[str, float]:
    """Median seconds of each candidate's first call, each run in its own process; the
    candidates alternate so that drift in machine load hits them alike."""
    times: dict[str, list[float]] = {which: [] for which in FIRST_CALLS}
    for _ in range(repeats):
        for which in FIRST_CALLS:
            out = subprocess.run(
                [sys.executable, "-c", FIRST_CALL, spec, network, which, str(threads)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env=_env(threads),
            )
            times[which].append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    return {which: statistics.median(samples) for which, samples in times.items()}


def cli_process(
    spec: str, network: str, which: str, out: Path, repeats: int, threads: int
) -> float:
    """Whole-process wall time: `dslnet compile --emit onnx` vs a script exporting with torch."""
    if which == "dslnet":
        cmd = [
            sys.executable,
            "-m",
            "dslnet.cli",
            "compile",
            spec,
            "-n",
            network,
            "--emit",
            "onnx",
            "-o",
            str(out),
        ]
    else:
        cmd = [sys.executable, "-c", FIRST_CALL, spec, network, "torch", str(threads)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT, env=_env(threads))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timeit(fn: Any, repeats: int, number: int) -> float:
    """Median over `repeats` of the mean time of `number` calls."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def interleaved(fns: dict[str, Any], rounds: int, number: int) -> dict[str, float]:
    """Alternate the candidates so drift in machine load hits both alike."""
    for fn in fns.values():
        for _ in range(number):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[key].append((time.perf_counter() - start) / number)
    return {k: statistics.median(v) for k, v in samples.items()}


def hand_written_residual_mlp(hidden: int, blocks: int, classes: int) -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(hidden, 2 * hidden)
            self.drop = nn.Dropout(0.1)
            self.fc2 = nn.Linear(2 * hidden, hidden)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.fc2(self.drop(torch.relu(self.fc1(torch.relu(x)))))

    class ResidualMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Linear(784, hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(blocks))
            self.head = nn.Linear(hidden, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.stem(x)
            for block in self.blocks:
                h = block(h)
            return self.head(torch.relu(h))

    return ResidualMLP()


def hand_written_resnet18(classes: int) -> Any:
    """ResNet-18 as one would write it in plain torch (torchvision's layout)."""
    import torch
    from torch import nn

    class Basic(nn.Module):
        def __init__(self, cin: int, c: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.down = None
            if stride != 1 or cin != c:
                self.down = nn.Sequential(
                    nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
            layers, cin = [], 64
            for c, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                layers += [Basic(cin, c, stride), Basic(c, c, 1)]
                cin = c
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(512, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.layers(self.stem(x))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))

    return ResNet18()


HAND_WRITTEN = {
    "ResidualMLP": lambda a: hand_written_residual_mlp(a["hidden"], a["blocks"], a["classes"]),
    "ResNet18": lambda a: hand_written_resnet18(a["classes"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="specs/mlp.net")
    parser.add_argument("--network", default="ResidualMLP")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--number", type=int, default=200, help="calls per timing sample")
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op threads (torch, ORT, OMP_NUM_THREADS)"
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=["emission", "forward", "ort"],
        default=["emission", "forward", "ort"],
    )
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import onnxruntime as ort
    import torch

    import dslnet

    torch.set_num_threads(args.threads)
    print(
        f"# {args.network} from {args.spec}; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}, {args.threads} intra-op thread(s)"
    )
    prog = dslnet.load(ROOT / args.spec)
    graph = prog.ir(args.network)
    module = prog.torch(args.network).eval()
    width = graph.type_of(graph.inputs[0]).shape[1:]
    x1 = torch.randn(1, *width)

    def export() -> bytes:
        buf = io.BytesIO()
        torch.onnx.export(
            module,
            (x1,),
            buf,
            dynamo=False,
            opset_version=18,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}},
        )
        return buf.getvalue()

    import warnings

    warnings.filterwarnings("ignore")
    if "emission" in args.sections:
        emission(args, graph, module.state_dict(), export)
    if "forward" in args.sections and args.network in HAND_WRITTEN:
        forward(args, graph, module, width)
    if "ort" in args.sections:
        ort_latency(args, graph, module.state_dict(), export, width)


def emission(args: argparse.Namespace, graph: Any, weights: Any, export: Any) -> None:
    """1. ONNX emission against torch.onnx.export: first calls, warm calls, processes."""
    from dslnet.backends.onnx_emit import emit_onnx_bytes

    first = first_calls(args.spec, args.network, args.repeats, args.threads)
    tmp = ROOT / "build" / "bench.onnx"
    tmp.parent.mkdir(exist_ok=True)
    ours_cli = cli_process(args.spec, args.network, "dslnet", tmp, 3, args.threads)
    theirs_cli = cli_process(args.spec, args.network, "torch", tmp, 3, args.threads)
    ours_warm = timeit(lambda: emit_onnx_bytes(graph, weights), 5, 3)
    theirs_warm = timeit(export, 5, 3)

    megabytes = sum(t.numel() * t.element_size() for t in weights.values()) / 1e6
    print(
        f"\n## ONNX emission, first call in a fresh process ({megabytes:.1f} MB of weights, "
        f"the module's, given to all; median of {args.repeats}, each in its own process)"
    )
    print(f"{'':38s} {'seconds':>8s} {'vs export':>10s} {'x floor':>8s}")
    for which, label in FIRST_CALLS.items():
        seconds = first[which]
        print(
            f"{label:38s} {seconds:8.4f} {first['torch'] / seconds:9.1f}x "
            f"{seconds / first['floor']:7.1f}x"
        )
    print("\n## ONNX emission, dslnet vs torch.onnx.export (s)   dslnet   export   speed-up")
    print(
        f"warm call (emit_onnx_bytes, graph given)        {ours_warm:8.4f} {theirs_warm:8.4f} "
        f"{theirs_warm / ours_warm:7.1f}x"
    )
    print(
        f"whole process (dslnet compile vs a script)      {ours_cli:8.4f} {theirs_cli:8.4f} "
        f"{theirs_cli / ours_cli:7.1f}x"
    )


def forward(args: argparse.Namespace, graph: Any, module: Any, width: Any) -> None:
    """2. Forward time of the generated module vs a hand-written equivalent."""
    import torch

    hand = HAND_WRITTEN[args.network](graph.args).eval()
    print("\n## forward, generated vs hand-written (ms)")
    for batch in args.batches:
        x = torch.randn(batch, *width)
        with torch.no_grad():
            t = interleaved(
                {"gen": lambda x=x: module(x), "hand": lambda x=x: hand(x)}, 15, args.number
            )
        print(
            f"batch {batch:3d}: generated {t['gen'] * 1e3:.4f}  hand-written "
            f"{t['hand'] * 1e3:.4f}  ratio {t['gen'] / t['hand']:.3f}"
        )


def ort_latency(
    args: argparse.Namespace, graph: Any, weights: Any, export: Any, width: Any
) -> None:
    """3. ONNX Runtime latency of our model vs the one torch.onnx.export writes."""
    import onnxruntime as ort
    import torch

    from dslnet.backends.onnx_emit import emit_onnx

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    ours_sess = ort.InferenceSession(
        emit_onnx(graph, weights).SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    theirs_sess = ort.InferenceSession(export(), so, providers=["CPUExecutionProvider"])
    our_in = graph.inputs[0]
    print("\n## ONNX Runtime latency, ours vs torch.onnx.export's (ms)")
    for batch in args.batches:
        x = torch.randn(batch, *width).numpy()
        t = interleaved(
            {
                "ours": lambda x=x: ours_sess.run(None, {our_in: x}),
                "theirs": lambda x=x: theirs_sess.run(None, {"x": x}),
            },
            15,
            args.number,
        )
        print(
            f"batch {batch:3d}: ours {t['ours'] * 1e3:.4f}  export {t['theirs'] * 1e3:.4f}  "
            f"ratio {t['ours'] / t['theirs']:.3f}"
        )


if __name__ == "__main__":
    main()
