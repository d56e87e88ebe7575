"""Siamese network with a contrastive loss (Hadsell et al., 2006) on generated images.

`Siamese` from specs/siamese.net embeds both images with one shared encoder and
outputs their distance; pairs of the same class are pulled together, others pushed
past a margin. Exits non-zero if the loss did not fall to under half.

Run: .venv/bin/python examples/siamese.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from synthetic import digits  # examples/synthetic.py, beside this script

import dslnet

SPEC = Path(__file__).resolve().parents[1] / "specs" / "siamese.net"
MARGIN = 1.0


def contrastive(distance: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    apart = torch.clamp(MARGIN - distance, min=0.0)
    return (same * distance.pow(2) + (1 - same) * apart.pow(2)).mean()


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = dslnet.load(SPEC).torch("Siamese", dim=16, size=28)
    images, labels = digits(1024)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    by_class = [torch.nonzero(labels == c).flatten() for c in range(10)]
    for epoch in range(4):
        # Each image's partner: one of its own class half of the time, else any image.
        same_class = torch.stack(
            [by_class[int(c)][torch.randint(len(by_class[int(c)]), ())] for c in labels]
        )
        anyone = torch.randint(len(images), (len(images),))
        partner = torch.where(torch.rand(len(images)) < 0.5, same_class, anyone)
        total, seen = 0.0, 0
        for start in range(0, len(images), 64):
            a = torch.arange(start, min(start + 64, len(images)))
            b = partner[a]
            same = (labels[a] == labels[b]).float()
            optimizer.zero_grad()
            loss = contrastive(model(images[a], images[b]), same)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(a), seen + len(a)
        losses.append(total / seen)
        print(f"epoch {epoch + 1}: contrastive loss {losses[-1]:.4f}")
    if not losses[-1] < 0.5 * losses[0]:
        print("the loss did not fall", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
