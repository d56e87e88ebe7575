"""Train MNISTNet briefly, export the trained weights to ONNX, serve with ONNX Runtime.

The ONNX model is emitted from the same IR with the trained state_dict; ORT's
predictions must equal the torch module's on 1,000 inputs (exit non-zero if not).

Run: .venv/bin/python examples/serve_onnx.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from synthetic import digits  # examples/synthetic.py, beside this script
from torch import nn

import dslnet

SPEC = Path(__file__).resolve().parents[1] / "specs" / "mnist.net"


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    prog = dslnet.load(SPEC)
    model = prog.torch("MNISTNet")
    images, labels = digits(1500)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(3):
        for start in range(0, len(images), 64):
            x, y = images[start : start + 64], labels[start : start + 64]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mnist.onnx"
        onnx.save(prog.onnx("MNISTNet", weights=model.state_dict()), path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    test, _ = digits(1000, seed=99)
    model.eval()
    with torch.no_grad():
        expected = model(test).argmax(1).numpy()
    served = session.run(None, {"x": test.numpy()})[0].argmax(1)
    agree = float(np.mean(served == expected))
    print(f"ONNX Runtime and torch agree on {agree:.1%} of 1,000 predictions")
    return 0 if agree == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
