"""Dropout masks drawn for the global batch, so that a data-parallel run drops the
same units of the same samples as a one-process run.

torch's dropout draws from each process's own generator: N processes would drop
different units than one process does, and the loss curves would part. Here every
dropout layer (nn.Dropout and the channel variants) draws its mask for the whole
global batch from a generator seeded alike in every process, and keeps its own
process's rows. The layer's forward is replaced in place; its state_dict is unchanged.
Dropout inside attention and recurrent ops still uses torch's generator.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import torch
from torch import nn

CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


@dataclass
class MaskSource:
    """The masks' generator and this process's share of every batch."""

    seed: int
    device: torch.device
    rank: int = 0
    world: int = 1
    local_batch: int = 0  # rows of the current batch in this process (set per step)
    batch: int = 0  # rows of the current global batch (set per step)
    offset: int = 0  # where this process's rows begin in it (set per step)
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator(self.device).manual_seed(self.seed)

    def keep(self, x: torch.Tensor, p: float, channels_only: bool) -> torch.Tensor:
        """1 where x's units are kept, for this process's rows of the global batch."""
        shape = list(x.shape)
        if channels_only:  # one draw per sample and channel, shared over positions
            shape = shape[:2] + [1] * (len(shape) - 2)
        rows = shape[0]
        batch_first = rows == self.local_batch and self.world > 1
        if batch_first:  # shares may differ by a row: the global batch is set per step
            shape[0] = self.batch
        drawn = torch.empty(shape, device=x.device, dtype=x.dtype)
        drawn.bernoulli_(1 - p, generator=self.generator)
        return drawn[self.offset : self.offset + rows] if batch_first else drawn


def share_dropout(module: nn.Module, source: MaskSource) -> int:
    """Make every dropout layer of `module` draw from `source`; how many."""
    count = 0
    for layer in module.modules():
        if isinstance(layer, (nn.Dropout, *CHANNEL_DROPOUT)):
            channels_only = isinstance(layer, CHANNEL_DROPOUT)

            def forward(
                self: nn.Module, x: torch.Tensor, channels_only: bool = channels_only
            ) -> torch.Tensor:
                p = float(self.p)  # type: ignore[arg-type]
                if not self.training or p == 0:
                    return x
                if p == 1:
                    return torch.zeros_like(x)
                return x * source.keep(x, p, channels_only) / (1 - p)

            layer.forward = types.MethodType(forward, layer)  # type: ignore[method-assign]
            count += 1
    return count
