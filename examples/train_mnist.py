"""Train MNISTNet from specs/mnist.net on a generated 10-class image task.

The compiled module is a plain nn.Module: the loop below is ordinary PyTorch.
Prints the loss per epoch and the training accuracy; exits non-zero if the loss
did not fall to under half of where it started.

Run: .venv/bin/python examples/train_mnist.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from synthetic import digits  # examples/synthetic.py, beside this script
from torch import nn

import dslnet

SPEC = Path(__file__).resolve().parents[1] / "specs" / "mnist.net"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    model = dslnet.load(SPEC).torch("MNISTNet")
    images, labels = digits(args.samples)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels), batch_size=64, shuffle=True
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    losses = []
    for epoch in range(args.epochs):
        model.train()
        total, correct, seen = 0.0, 0, 0
        for x, y in loader:
            optimizer.zero_grad()
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        losses.append(total / seen)
        print(f"epoch {epoch + 1}: loss {losses[-1]:.4f}, accuracy {correct / seen:.3f}")
    if not losses[-1] < 0.5 * losses[0]:
        print("the loss did not fall", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
