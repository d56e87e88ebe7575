"""Distributed data-parallel training of a compiled module (gloo on CPU).

Run with: .venv/bin/torchrun --standalone --nproc_per_node=2 examples/ddp.py
Each process builds the same MNISTNet from the spec, wraps it in
DistributedDataParallel and trains on its shard of a generated task; gradients are
averaged across processes. Rank 0 prints the loss and exits non-zero if it did
not fall to under half of where it started.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from synthetic import digits  # examples/synthetic.py, beside this script
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import dslnet

SPEC = Path(__file__).resolve().parents[1] / "specs" / "mnist.net"


def train(rank: int, world: int) -> list[float]:
    """Three epochs on this process's shard; the mean loss of each epoch over all."""
    torch.set_num_threads(1)
    torch.manual_seed(0)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    model = DistributedDataParallel(dslnet.load(SPEC).torch("MNISTNet"))
    images, labels = digits(2000)
    dataset = torch.utils.data.TensorDataset(images, labels)
    sampler = torch.utils.data.DistributedSampler(dataset, world, rank, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, sampler=sampler)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    losses = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        total = torch.zeros(2)
        for x, y in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()  # DDP averages the gradients across processes here
            optimizer.step()
            total += torch.tensor([loss.item() * len(y), len(y)])
        dist.all_reduce(total)
        losses.append(float(total[0] / total[1]))
        if rank == 0:
            print(f"epoch {epoch + 1}: loss {losses[-1]:.4f} over {world} processes")
    return losses


def main() -> int:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    losses = train(rank, world)
    # DDP's reducer holds the process group: release it here, not at interpreter exit,
    # then meet the other rank, so that neither tears the group down while the other
    # still uses it (gloo aborts a process whose peer leaves mid-connection).
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    ok = losses[-1] < 0.5 * losses[0]
    if rank == 0 and not ok:
        print("the loss did not fall", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
