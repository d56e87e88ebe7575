"""Transfer learning: a backbone trained on one task, frozen with `@freeze`, and a new
head trained on another task.

The spec marks the backbone `@freeze`, so the generated module turns its gradients
off; the optimizer only gets the parameters that still train. Exits non-zero if the
new task's loss did not fall or a frozen weight moved.

Run: .venv/bin/python examples/transfer_learning.py
"""

from __future__ import annotations

import sys

import torch
from synthetic import digits  # examples/synthetic.py, beside this script
from torch import nn

import dslnet

SPEC = """
block Backbone() {
    in x: [N, 1, 28, 28]
    out features = x
        -> conv2d(6, k=5, p=2) -> relu -> maxpool2d(2)
        -> conv2d(16, k=5) -> relu -> maxpool2d(2)
        -> flatten
}

network Classifier(classes: int = 10) {
    in x: float32[N, 1, 28, 28]
    @freeze
    layer backbone = Backbone()
    out logits = backbone(x) -> linear(64) -> relu -> linear(classes)
}
"""


def train(model: nn.Module, task: int, epochs: int) -> list[float]:
    images, labels = digits(1500, seed=task, task=task)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels), batch_size=64, shuffle=True
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=2e-3)
    losses = []
    for epoch in range(epochs):
        total, seen = 0.0, 0
        for x, y in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(y), seen + len(y)
        losses.append(total / seen)
        print(f"  task {task}, epoch {epoch + 1}: loss {losses[-1]:.4f}")
    return losses


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    prog = dslnet.loads(SPEC, filename="transfer.net")

    # 1. Pre-train a backbone: the same network with the freeze lifted.
    source = prog.torch("Classifier")
    source.requires_grad_(True)
    print("pre-training on task 1")
    train(source, task=1, epochs=3)

    # 2. A fresh network for task 2 takes the trained backbone; @freeze keeps it fixed.
    target = prog.torch("Classifier")
    backbone = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    target.load_state_dict(backbone, strict=False)
    frozen = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("backbone.")}
    print(f"fine-tuning the head on task 2 ({len(frozen)} backbone tensors frozen)")
    losses = train(target, task=2, epochs=3)

    moved = [k for k, v in target.state_dict().items() if k in frozen and not v.equal(frozen[k])]
    if moved or not losses[-1] < 0.5 * losses[0]:
        print(f"failed: moved {moved}, losses {losses}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
