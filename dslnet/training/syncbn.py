"""Batch normalisation over the global batch in data-parallel training.

Each process sees only its share of a batch; left alone, batchnorm would normalise
with that share's statistics and the loss curve would drift from a one-process run.
torch's SyncBatchNorm only runs on GPUs, so this does the same on any device: the
sums and squared sums go through one autograd-aware all-reduce, and the layer's own
forward is replaced in place (its parameters, buffers and state_dict keys stay).
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def sync_batchnorm(module: nn.Module) -> int:
    """Make every batchnorm in `module` normalise over all processes; how many."""
    count = 0
    for layer in module.modules():
        if isinstance(layer, _BatchNorm) and not isinstance(layer, nn.SyncBatchNorm):
            layer.forward = types.MethodType(_synced_forward, layer)  # type: ignore[method-assign]
            count += 1
    return count


def _synced_forward(self: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    if not self.training and self.track_running_stats:
        running: torch.Tensor = type(self).forward(self, x)  # eval: the running statistics
        return running
    axes = [0, *range(2, x.dim())]
    local = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
    local_sums = torch.cat([x.sum(axes), (x * x).sum(axes), local])
    totals: torch.Tensor = _SumOverProcesses.apply(local_sums)  # type: ignore[no-untyped-call]
    channels = x.shape[1]
    count = totals[-1]
    mean = totals[:channels] / count
    var = totals[channels : 2 * channels] / count - mean * mean  # biased, as batchnorm uses
    if self.training and self.track_running_stats:
        _update_running(self, mean.detach(), var.detach(), float(count.detach()))
    shape = [1, channels, *[1] * (x.dim() - 2)]
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
    if self.affine:
        y = y * self.weight.view(shape) + self.bias.view(shape)
    return y


class _SumOverProcesses(torch.autograd.Function):
    """A sum over all processes whose gradient is the sum of the processes' gradients:
    every process's loss depends on every process's share through the statistics."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        total = x.clone()
        torch.distributed.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        torch.distributed.all_reduce(total)
        return total


def _update_running(bn: _BatchNorm, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
    """What nn.BatchNorm does to its buffers: momentum (or a cumulative average when
    momentum is None) over the mean and the unbiased variance."""
    assert bn.running_mean is not None and bn.running_var is not None
    assert bn.num_batches_tracked is not None
    bn.num_batches_tracked.add_(1)
    momentum = bn.momentum
    if momentum is None:
        momentum = 1.0 / float(bn.num_batches_tracked)
    unbiased = var * count / max(count - 1, 1)
    bn.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
    bn.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
