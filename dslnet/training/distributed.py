"""Data-parallel training under torchrun: one process per rank, each with its share
of every global batch; gradients are averaged across processes after each backward
(dslnet.training.trainer), so N processes follow the same loss curve as one. A batch
that does not split evenly (the last of an epoch) gives the first processes one row
more, and each process's loss counts by its share of the rows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from dslnet.training.errors import TrainError


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
    rank = torch.distributed.get_rank()
    try:
        yield Distributed(rank=rank, world=world)
        # Rank 0 still writes the results: the others wait rather than tear down the
        # group under it (gloo aborts a process whose peer left mid-connection).
        torch.distributed.barrier()
    except RuntimeError as err:  # DistBackendError and DistNetworkError are ones too
        died = peer_died(err, rank, world)
        if died is None:
            raise
        raise died from None
    finally:
        torch.distributed.destroy_process_group()


class PeerDied(TrainError):
    """Another process of a data-parallel run is gone: not a bug here; its own output
    (or torchrun's report of it) says why."""


# How gloo, nccl and the rendezvous store word a connection the other end dropped.
_PEER_GONE = (
    "connection closed by peer",
    "connection reset by peer",
    "remote worker crashing",
    "broken pipe",
)


def peer_died(err: BaseException, rank: int, world: int) -> PeerDied | None:
    """The error to report when `err`, raised in process `rank` of `world`, means that
    another process died mid-run (with two processes, which one is known); else None."""
    text = str(err).lower()
    lost = isinstance(err, torch.distributed.DistNetworkError) or any(
        words in text for words in _PEER_GONE
    )
    if not lost:
        return None
    other = f"the process of rank {1 - rank}" if world == 2 else "another process"
    return PeerDied(
        f"rank {rank}: {other} of this {world}-process run died (its output, or "
        f"torchrun's report of it, says why); this one stops too"
    )


def share(size: int, rank: int, world: int) -> slice:
    """`rank`'s rows of a global batch of `size`: contiguous, the first `size % world`
    processes one row more (a process may get none when the batch is smaller than the
    number of processes)."""
    base, extra = divmod(size, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def average_gradients(params: list[nn.Parameter], counted: bool = True) -> None:
    """What DistributedDataParallel does after backward, done here so that several
    steps may share layers: the gradients summed over the processes. Each process's
    loss was scaled by its share of the global batch before backward (1/world when
    the batch splits evenly): the mean over the global batch is the share-weighted sum
    of the processes' means, and weighting the loss, not the gradient, also weights
    what flows between processes through batchnorm's statistics. A process that is not
    `counted` (no rows) adds zeros, whatever backward left (NaN from an empty mean).
    One flat all-reduce per step."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    if not counted:
        flat.zero_()
    torch.distributed.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
