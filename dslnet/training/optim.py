"""Optimizer and schedule settings made into torch objects."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from dslnet.frontend.train import settings as fn
from dslnet.training.errors import TrainError

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def make_optimizer(
    spec: fn.Optimizer, named: Sequence[tuple[str, nn.Parameter]], step: str
) -> torch.optim.Optimizer:
    """`spec` over the trainable parameters in `named`, a group per `block_lr` entry."""
    trainable = [(n, p) for n, p in named if p.requires_grad]
    if not trainable:
        raise TrainError(f"step '{step}' has nothing to train: every parameter is frozen")
    groups: list[dict[str, object]] = []
    taken: set[str] = set()
    for prefix, lr in spec.block_lr:
        chosen = [p for n, p in trainable if n not in taken and _under(n, prefix)]
        if not chosen:
            known = sorted({n.rsplit(".", 1)[0] for n, _ in trainable})[:8]
            raise TrainError(
                f"block_lr: no trainable parameter under '{prefix}' in step '{step}'; "
                f"modules there include {', '.join(known)}"
            )
        taken |= {n for n, _ in trainable if _under(n, prefix)}
        groups.append({"params": chosen, "lr": lr})
    rest = [p for n, p in trainable if n not in taken]
    if rest:
        groups.insert(0, {"params": rest})
    common: dict[str, Any] = {"lr": spec.lr, "weight_decay": spec.weight_decay}
    if isinstance(spec, fn.SGD):
        return torch.optim.SGD(
            groups,
            momentum=spec.momentum,
            dampening=spec.dampening,
            nesterov=spec.nesterov,
            **common,
        )
    if isinstance(spec, fn.AdamW):
        return torch.optim.AdamW(
            groups, betas=spec.betas, eps=spec.eps, amsgrad=spec.amsgrad, **common
        )
    if isinstance(spec, fn.Adam):
        return torch.optim.Adam(
            groups, betas=spec.betas, eps=spec.eps, amsgrad=spec.amsgrad, **common
        )
    if isinstance(spec, fn.RMSprop):
        return torch.optim.RMSprop(
            groups,
            alpha=spec.alpha,
            eps=spec.eps,
            momentum=spec.momentum,
            centered=spec.centered,
            **common,
        )
    if isinstance(spec, fn.Adagrad):
        return torch.optim.Adagrad(groups, lr_decay=spec.lr_decay, eps=spec.eps, **common)
    raise AssertionError(f"unhandled optimizer {spec.name}")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def make_scheduler(
    spec: fn.Schedule | None, optimizer: torch.optim.Optimizer, iterations: int
) -> Scheduler | None:
    """`spec` on `optimizer`; per-iteration schedules span `iterations` in all."""
    sched = torch.optim.lr_scheduler
    if spec is None:
        return None
    if isinstance(spec, fn.StepLR):
        return sched.StepLR(optimizer, step_size=spec.every, gamma=spec.gamma)
    if isinstance(spec, fn.Exponential):
        return sched.ExponentialLR(optimizer, gamma=spec.gamma)
    if isinstance(spec, fn.Cosine):
        return sched.LambdaLR(optimizer, _cosine(spec, optimizer, max(iterations, 1)))
    if isinstance(spec, fn.OneCycle):
        return sched.OneCycleLR(
            optimizer, max_lr=spec.max_lr, total_steps=max(iterations, 2), pct_start=spec.pct_start
        )
    if isinstance(spec, fn.Plateau):
        mode = metric_mode(spec.metric) if spec.mode == "auto" else spec.mode
        return sched.ReduceLROnPlateau(
            optimizer, mode=mode, factor=spec.factor, patience=spec.patience
        )
    raise AssertionError(f"unhandled schedule {spec.name}")


def _cosine(spec: fn.Cosine, optimizer: torch.optim.Optimizer, total: int) -> list:  # type: ignore[type-arg]
    """One factor function per group: warm up linearly, then follow a half cosine
    from the group's learning rate down to `min_lr`."""

    def factor_for(base: float):  # type: ignore[no-untyped-def]
        floor = min(spec.min_lr / base, 1.0) if base > 0 else 0.0

        def factor(i: int) -> float:
            if i < spec.warmup:
                return (i + 1) / spec.warmup
            span = max(total - spec.warmup, 1)
            progress = min((i - spec.warmup) / span, 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return factor

    return [factor_for(float(g["lr"])) for g in optimizer.param_groups]


def metric_mode(metric: str) -> Literal["min", "max"]:
    """Whether a metric improves downwards ("min": losses, errors) or upwards."""
    lowered = metric.lower()
    return "min" if any(w in lowered for w in ("loss", "error", "distance")) else "max"


def scheduler_state(scheduler: Scheduler | None) -> dict[str, Any] | None:
    if scheduler is None:
        return None
    state = scheduler.state_dict()
    state.pop("lr_lambdas", None)  # functions, rebuilt from the plan
    return {k: v for k, v in state.items() if k != "_scale_fn_ref"}


def load_scheduler_state(scheduler: Scheduler, state: dict[str, Any]) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        state = {**state, "lr_lambdas": [None] * len(scheduler.lr_lambdas)}
    scheduler.load_state_dict(state)
