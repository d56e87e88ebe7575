"""Data-parallel training under torchrun: one process per rank, each with its share
of every global batch; gradients are averaged across processes after each backward
(dslnet.training.trainer), so N processes follow the same loss curve as one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Distributed:
    """This process's place in a data-parallel run (torch.distributed initialised)."""

    rank: int
    world: int


@contextmanager
def session() -> Iterator[Distributed | None]:
    """The process group torchrun asked for (RANK and WORLD_SIZE set), or None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world < 2:
        yield None
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":  # one GPU per process
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend)
    try:
        yield Distributed(rank=torch.distributed.get_rank(), world=world)
        # Rank 0 still writes the results: the others wait rather than tear down the
        # group under it (gloo aborts a process whose peer left mid-connection).
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def average_gradients(params: list[nn.Parameter], world: int) -> None:
    """What DistributedDataParallel does after backward, done here so that several
    steps may share layers: sum every gradient over the processes, divide by their
    number. One flat all-reduce per step."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
