"""Structured pruning: does the latency fall with the FLOPs?

Compiles a network folded (the reference) and folded + pruned, runs both under
ONNX Runtime CPU (one intra-op thread) with interleaved rounds, and prints, per
batch size, the latency reduction next to the FLOPs reduction and their ratio
(target: latency reduction >= 0.8 x FLOPs reduction).

Run: `python bench/prune.py [--spec specs/resnet.net --network ResNet18 --ratio 0.5]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends import interleaved  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default=str(ROOT / "specs" / "resnet.net"))
    parser.add_argument("--network", default="ResNet18")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=5)
    args = parser.parse_args()

    import onnxruntime as ort

    import dslnet
    from dslnet.core.console import progress
    from dslnet.passes.manager import flops_ratio, total_flops
    from dslnet.testing import random_inputs

    prog = dslnet.load(args.spec)
    folded = prog.optimize(args.network, fold=True)
    pruned = prog.optimize(args.network, fold=True, prune=args.ratio)
    kept = flops_ratio(total_flops(pruned.graph), total_flops(folded.graph))
    print(
        f"# {args.network}, prune {args.ratio:.0%} by L1: params "
        f"{folded.graph.num_parameters:,} -> {pruned.graph.num_parameters:,}; FLOPs "
        f"reduction {1 - kept:.1%}; onnxruntime {ort.__version__}, 1 intra-op thread"
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = {
        name: ort.InferenceSession(
            model.onnx().SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        for name, model in (("folded", folded), ("pruned", pruned))
    }
    print("batch   folded ms   pruned ms   latency reduction   / FLOPs reduction")
    for batch in progress(args.batches, "timing batch sizes"):
        feeds = random_inputs(folded.graph, {"N": batch}, seed=0)
        t = interleaved(
            {k: (lambda s=s, f=feeds: s.run(None, f)) for k, s in sessions.items()},
            args.rounds,
            args.number,
        )
        cut = 1 - t["pruned"] / t["folded"]
        print(
            f"{batch:5d}  {t['folded'] * 1e3:10.2f}  {t['pruned'] * 1e3:10.2f}  "
            f"{cut:18.1%}  {cut / (1 - kept):17.2f}"
        )


if __name__ == "__main__":
    main()
