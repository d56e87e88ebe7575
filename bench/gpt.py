"""ONNX Runtime latency of GPT: dslnet's emitted ONNX vs torch.onnx.export's.

Both models come from the same generated torch module with the same weights;
the export uses the TorchScript exporter (dynamo=False) at opset 18 with dynamic
batch and sequence axes. One intra-op thread, batch 1, several sequence lengths,
each fed to our one model (its lengths are symbolic). Reports medians of
interleaved rounds and the ratio ours/export (target <= 1.0).

Run: `python bench/gpt.py [--d 256 --layers 4 --heads 4 --lengths 16 64 128]`.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends import interleaved  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=20, help="calls per timing sample")
    args = parser.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch

    import dslnet
    from dslnet.backends.onnx_emit import emit_onnx

    sizes = {"vocab": args.vocab, "d": args.d, "heads": args.heads, "layers": args.layers}
    prog = dslnet.load(ROOT / "specs" / "transformer.net")
    graph = prog.ir("GPT", **sizes)
    module = prog.torch("GPT", **sizes).eval()
    print(
        f"# GPT({', '.join(f'{k}={v}' for k, v in sizes.items())}): "
        f"{graph.num_parameters:,} parameters; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}, 1 intra-op thread, batch 1"
    )

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1

    def session(data: bytes) -> ort.InferenceSession:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def export(length: int) -> bytes:
        buffer = io.BytesIO()
        torch.onnx.export(
            module,
            (torch.randint(0, args.vocab, (1, length)),),
            buffer,
            dynamo=False,
            opset_version=18,
            input_names=["tokens"],
            output_names=["logits"],
            dynamic_axes={"tokens": {0: "N", 1: "T"}},
        )
        return buffer.getvalue()

    warnings.filterwarnings("ignore")
    ours = session(emit_onnx(graph, module.state_dict()).SerializeToString())
    fused = session(emit_onnx(graph, module.state_dict(), ort_fused=True).SerializeToString())
    # The TorchScript export of nn.MultiheadAttention bakes the traced length into its
    # reshapes, so its "dynamic" model only runs at that length: export once per length
    # (a specialised model, if anything an advantage to the reference).
    exported = {length: session(export(length)) for length in args.lengths}
    print("\n## ONNX Runtime latency (ms)")
    print("ours: portable ONNX; fused: --ort-fused (ORT's Attention op)")
    print("length      ours     fused    export   ours/export  fused/export  max |diff|")
    rng = np.random.default_rng(0)
    for length in args.lengths:
        feed = {"tokens": rng.integers(0, args.vocab, (1, length))}
        sessions = {"ours": ours, "fused": fused, "export": exported[length]}
        results = {name: s.run(None, feed)[0] for name, s in sessions.items()}
        diff = max(float(np.abs(results[k] - results["export"]).max()) for k in ("ours", "fused"))
        t = interleaved(
            {name: (lambda s=s, feed=feed: s.run(None, feed)) for name, s in sessions.items()},
            args.rounds,
            args.number,
        )
        print(
            f"{length:6d}  {t['ours'] * 1e3:8.3f}  {t['fused'] * 1e3:8.3f}  "
            f"{t['export'] * 1e3:8.3f}  {t['ours'] / t['export']:11.3f}  "
            f"{t['fused'] / t['export']:12.3f}  {diff:10.1e}"
        )


if __name__ == "__main__":
    main()
