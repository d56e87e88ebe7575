"""Data-parallel training under torchrun: one process per rank, each with its share
of every global batch; gradients are averaged across processes after each backward
(dslnet.training.trainer), so N processes follow the same loss curve as one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from dslnet.training.trainer import Distributed


@contextmanager
def session() -> Iterator[Distributed | None]:
    """The process group torchrun asked for (RANK and WORLD_SIZE set), or None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world < 2:
        yield None
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    try:
        yield Distributed(rank=torch.distributed.get_rank(), world=world)
    finally:
        torch.distributed.destroy_process_group()
