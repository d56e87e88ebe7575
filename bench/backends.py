"""Backend benchmarks, as ratios against references measured in the same run.

1. ONNX emission: dslnet's direct emitter vs `torch.onnx.export` (TorchScript
   exporter) of the generated module; each timed as its first call in a fresh
   process (what a CLI user pays), then warm calls in one process.
2. Forward time of the generated module vs a hand-written equivalent.
3. ONNX Runtime latency of our model vs the model torch.onnx.export writes.

Run: `python bench/backends.py [--spec specs/mlp.net --network ResidualMLP]`.
"""

from __future__ import annotations

import argparse
import io
import json
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
    import torch
    import dslnet
    from dslnet.backends.onnx_emit import emit_onnx_bytes
    warnings.filterwarnings("ignore")
    spec, network, which = sys.argv[1:4]
    prog = dslnet.load(spec)
    graph = prog.ir(network)
    module = prog.torch(network).eval()
    weights = module.state_dict()
    x = torch.randn(1, *[d for d in graph.type_of(graph.inputs[0]).shape[1:]])
    start = time.perf_counter()
    if which == "dslnet":
        data = emit_onnx_bytes(graph, weights)
    else:
        buf = io.BytesIO()
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=18,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}})
        data = buf.getvalue()
    print(json.dumps({"seconds": time.perf_counter() - start, "bytes": len(data)}))
""")


def first_call(spec: str, network: str, which: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_CALL, spec, network, which],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        times.append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    return statistics.median(times)


def cli_process(spec: str, network: str, which: str, out: Path, repeats: int) -> float:
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
        cmd = [sys.executable, "-c", FIRST_CALL, spec, network, "torch"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
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
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    import dslnet
    from dslnet.backends.onnx_emit import emit_onnx, emit_onnx_bytes

    torch.set_num_threads(1)
    print(
        f"# {args.network} from {args.spec}; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}, 1 intra-op thread"
    )

    # 1. emission
    ours_first = first_call(args.spec, args.network, "dslnet", args.repeats)
    theirs_first = first_call(args.spec, args.network, "torch", args.repeats)
    tmp = ROOT / "build" / "bench.onnx"
    tmp.parent.mkdir(exist_ok=True)
    ours_cli = cli_process(args.spec, args.network, "dslnet", tmp, 3)
    theirs_cli = cli_process(args.spec, args.network, "torch", tmp, 3)

    prog = dslnet.load(ROOT / args.spec)
    graph = prog.ir(args.network)
    module = prog.torch(args.network).eval()
    weights = module.state_dict()
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
    ours_warm = timeit(lambda: emit_onnx_bytes(graph, weights), 5, 3)
    theirs_warm = timeit(export, 5, 3)
    print("\n## ONNX emission (s)            dslnet   torch.onnx.export   speed-up")
    print(
        f"first call, fresh process    {ours_first:8.4f}   {theirs_first:17.4f}   "
        f"{theirs_first / ours_first:7.1f}x"
    )
    print(
        f"warm call                    {ours_warm:8.4f}   {theirs_warm:17.4f}   "
        f"{theirs_warm / ours_warm:7.1f}x"
    )
    print(
        f"whole process (CLI)          {ours_cli:8.4f}   {theirs_cli:17.4f}   "
        f"{theirs_cli / ours_cli:7.1f}x"
    )

    # 2. forward time vs hand-written
    if args.network in HAND_WRITTEN:
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

    # 3. ORT latency
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
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
