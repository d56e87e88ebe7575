"""Reduction during training: schedules, magnitude masks and structured steps.

What a trainer calls between epochs to make a network smaller while it learns:

- `geometric_schedule`: the cumulative sparsity after each pruning cycle when every
  cycle removes the same share of what is left (`flops_schedule`: the same for a
  FLOPs budget, as channel ratios found by search).
- `magnitude_masks` / `Masks`: unstructured pruning of conv and linear weights kept
  through training (`Masks.apply` after each `optimizer.step()`, or `Masks.attach`).
- `structured_prune`: whole channels removed from a live module by the prune pass
  (`dslnet.passes.prune`), giving the smaller graph and a new module in its place.

The orchestration (iterative pruning, lottery tickets) is in `dslnet.training.lottery`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from dslnet.api import optimize
from dslnet.core import symbolic
from dslnet.ir.cost import node_costs
from dslnet.ir.graph import Graph
from dslnet.ir.roles import weight_parameters
from dslnet.passes.groups import analyse
from dslnet.passes.options import Options, Scope
from dslnet.passes.prune import Criterion, Scorer

# --- schedules ----------------------------------------------------------------------


def geometric_schedule(final: float, cycles: int) -> list[float]:
    """Cumulative targets after each of `cycles` rounds, each removing the same share
    of what is left: 1 - (1 - final) ** (k / cycles). The last is `final` exactly.

    Serves weight sparsity (fraction zeroed) and channel ratios (fraction removed)."""
    if not 0.0 <= final < 1.0:
        raise ValueError(f"a final sparsity must be in [0, 1), got {final}")
    if cycles < 1:
        raise ValueError(f"cycles must be at least 1, got {cycles}")
    targets = [1.0 - (1.0 - final) ** (k / cycles) for k in range(1, cycles + 1)]
    targets[-1] = final
    return targets


def per_round_ratio(previous: float, target: float) -> float:
    """The share of what is left after `previous` that must go to reach `target`."""
    return 1.0 - (1.0 - target) / (1.0 - previous)


def flops_per_sample(graph: Graph, sizes: Mapping[str, int] | None = None) -> int:
    """Multiply-accumulates of one forward pass as `dslnet summary` counts them, with
    symbolic sizes (the batch `N`, ...) set from `sizes`, else 1 (so: per sample)."""
    return sum(layer_flops(graph, sizes).values())


def layer_flops(graph: Graph, sizes: Mapping[str, int] | None = None) -> dict[str, int]:
    """FLOPs per node name (the summary's per-layer column, evaluated)."""
    return {cost.node.name: _evaluate(cost.macs, sizes) for cost in node_costs(graph)}


def _evaluate(dim: symbolic.Dim, sizes: Mapping[str, int] | None) -> int:
    if isinstance(dim, int):
        return dim
    env = {name: 1 for name in dim.free_symbols()} | dict(sizes or {})
    return dim.evaluate(env)


def ratio_for_flops(
    graph: Graph,
    weights: Mapping[str, Any],
    target: int,
    *,
    criterion: Criterion | Scorer = "l1",
    scope: Scope = "layer",
    exclude: Sequence[str] = (),
    steps: int = 24,
) -> float:
    """The smallest channel ratio whose structured pruning of `graph` brings its FLOPs
    (per sample) to `target` or below, by bisection over the prune pass itself.

    Raises ValueError when even the largest ratio cannot (pinned groups keep theirs)."""
    if flops_per_sample(graph) <= target:
        return 0.0
    arrays = _as_arrays(weights)

    def pruned_flops(ratio: float) -> int:
        options = _prune_options(ratio, criterion, scope, exclude)
        return flops_per_sample(optimize(graph, options, arrays).graph)

    high = 0.999
    if pruned_flops(high) > target:
        raise ValueError(
            f"no channel ratio brings {graph.name} to {target:,} FLOPs: the least "
            f"reachable is {pruned_flops(high):,}"
        )
    low = 0.0
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if pruned_flops(middle) <= target else (middle, high)
    return high


def flops_schedule(dense_flops: int, budget: float | int, cycles: int) -> list[int]:
    """FLOPs targets after each cycle, falling geometrically to `budget` (a fraction of
    `dense_flops` when a float <= 1, else a FLOPs count); the last is the budget."""
    final = round(budget * dense_flops) if isinstance(budget, float) else int(budget)
    if not 0 < final <= dense_flops:
        raise ValueError(f"a FLOPs budget must be in (0, {dense_flops:,}], got {final:,}")
    share = final / dense_flops
    targets = [round(dense_flops * share ** (k / cycles)) for k in range(1, cycles + 1)]
    targets[-1] = final
    return targets


# --- magnitude masks ----------------------------------------------------------------


def prunable_weights(
    module: nn.Module,
    graph: Graph | None = None,
    *,
    exclude: Sequence[str] = (),
    prune_output_layer: bool = False,
) -> list[str]:
    """Names of the weights unstructured pruning may zero: conv / linear kernels
    (matrices and up, not biases or norm scales), minus modules matching `exclude`
    (glob patterns) and, unless asked, the layer(s) making a network output.

    The output layer stays dense by default: it is small, and every one of its weights
    feeds a logit directly, so pruning it costs accuracy for almost no saving."""
    params = dict(module.named_parameters())
    if graph is not None:
        names = _kernels(graph)
        modules = {name: graph.parameters[name].module for name in names}
        outputs = output_layers(graph)
    else:
        names = [n for n, p in params.items() if _torch_weight(n) and p.dim() >= 2]
        modules = {name: name.rpartition(".")[0] for name in names}
        outputs = {modules[names[-1]]} if names else set()
    return [
        name
        for name in names
        if name in params
        and not any(fnmatch.fnmatchcase(modules[name], p) for p in exclude)
        and (prune_output_layer or modules[name] not in outputs)
    ]


def output_layers(graph: Graph) -> set[str]:
    """Modules of the weighted layers nearest each network output (the classifier),
    found walking back through one-input ops without a kernel (activations, reshapes,
    norms); a join (a residual add) ends the walk: what is behind it is the body."""
    producers = graph.producers()
    weighted = {graph.parameters[name].module for name in _kernels(graph)}
    found: set[str] = set()
    seen: set[str] = set()
    pending = [value for _, value in graph.outputs]
    while pending:
        value = pending.pop()
        node = producers.get(value)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.module in weighted:
            found.add(node.module)
        elif len(node.inputs) == 1:
            pending.extend(node.inputs)
    return found


def _kernels(graph: Graph) -> list[str]:
    """Learned weights of two or more dimensions (what `MagnitudeSparsity` zeroes)."""
    return [n for n in weight_parameters(graph) if len(graph.parameters[n].shape) >= 2]


def _torch_weight(name: str) -> bool:
    """A weight of a plain torch module, which has no ops to ask: torch's own layers
    name theirs `weight`, `weight_ih_l0`, `in_proj_weight`."""
    return "weight" in name.rsplit(".", 1)[-1]


@dataclass
class Masks:
    """Which entries of each pruned weight survive (True) and which stay zero."""

    keep: dict[str, torch.Tensor] = field(default_factory=dict)  # weight name -> bool

    @property
    def sparsity(self) -> float:
        """The fraction of the masked weights' entries that are pruned."""
        total = sum(m.numel() for m in self.keep.values())
        return 1.0 - self.kept / total if total else 0.0

    @property
    def kept(self) -> int:
        return sum(int(m.sum()) for m in self.keep.values())

    def density(self, name: str) -> float:
        mask = self.keep.get(name)
        return 1.0 if mask is None else float(mask.float().mean())

    def apply(self, module: nn.Module) -> None:
        """Zero the pruned entries: call after every `optimizer.step()`."""
        params = dict(module.named_parameters())
        with torch.no_grad():
            for name, mask in self.keep.items():
                params[name].masked_fill_(~mask.to(params[name].device), 0.0)

    def attach(self, module: nn.Module) -> MaskHooks:
        """Keep pruned entries at zero without the trainer's help: gradient hooks zero
        their gradients (so momentum and Adam moments stay zero and weight decay has
        nothing to decay), and a forward pre-hook re-applies the masks, in case a stale
        optimizer state moved them. `remove()` the returned hooks before new masks."""
        params = dict(module.named_parameters())
        handles: list[RemovableHandle] = []
        for name, mask in self.keep.items():
            param = params[name]
            hook = _gradient_mask(~mask.to(param.device))
            handles.append(param.register_hook(hook))  # type: ignore[no-untyped-call]
        handles.append(module.register_forward_pre_hook(lambda mod, args: self.apply(mod)))
        self.apply(module)
        return MaskHooks(handles)

    def clear_optimizer_state(self, optimizer: torch.optim.Optimizer, module: nn.Module) -> None:
        """Zero the optimizer's per-weight state (momentum, Adam moments) at pruned
        entries, so a persistent optimizer cannot move them on the next step."""
        params = dict(module.named_parameters())
        with torch.no_grad():
            for name, mask in self.keep.items():
                param = params[name]
                for value in optimizer.state.get(param, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == param.shape:
                        value.masked_fill_(~mask.to(value.device), 0)


def _gradient_mask(drop: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def zero_pruned(grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(drop, 0)

    return zero_pruned


@dataclass
class MaskHooks:
    """The hooks `Masks.attach` installed."""

    handles: list[RemovableHandle]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


@contextmanager
def masked(masks: Masks, module: nn.Module) -> Iterator[Masks]:
    """`masks` attached to `module` for the duration of a `with` block."""
    hooks = masks.attach(module)
    try:
        yield masks
    finally:
        hooks.remove()
        masks.apply(module)


def magnitude_masks(
    module: nn.Module,
    sparsity: float,
    *,
    graph: Graph | None = None,
    scope: Scope = "layer",
    previous: Masks | None = None,
    exclude: Sequence[str] = (),
    prune_output_layer: bool = False,
) -> Masks:
    """Masks pruning the smallest-magnitude `sparsity` of the prunable weights (see
    `prunable_weights`): of each weight ("layer") or of all of them ranked together
    ("global"). With `previous`, entries it pruned stay pruned (they go first), the
    weights masked are the same ones, and `sparsity` is cumulative."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"a sparsity must be in [0, 1), got {sparsity}")
    if previous is not None:
        names = list(previous.keep)
    else:
        names = prunable_weights(
            module, graph, exclude=exclude, prune_output_layer=prune_output_layer
        )
    params = dict(module.named_parameters())
    scores = {name: _scores(params[name], previous, name) for name in names}
    if scope == "global" and names:
        pooled = torch.cat([s.flatten() for s in scores.values()])
        drop = _smallest(pooled, round(pooled.numel() * sparsity))
        dropped, offset = {}, 0
        for name, score in scores.items():
            dropped[name] = drop[offset : offset + score.numel()].view_as(score)
            offset += score.numel()
    else:
        dropped = {n: _smallest(s, round(s.numel() * sparsity)) for n, s in scores.items()}
    keep = {n: ~dropped[n] for n in names}
    if previous is not None:  # monotone even when asked for less than before
        keep = {n: keep[n] & previous.keep[n].to(keep[n].device) for n in names}
    return Masks(keep)


def _scores(param: torch.Tensor, previous: Masks | None, name: str) -> torch.Tensor:
    score = param.detach().abs().float()
    if previous is not None:  # already pruned: below every live magnitude
        score = score.masked_fill(~previous.keep[name].to(score.device), -1.0)
    return score


def _smallest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """A bool tensor marking exactly `count` smallest entries (ties by position)."""
    flat = scores.flatten()
    marked = torch.zeros_like(flat, dtype=torch.bool)
    if count > 0:
        marked[torch.argsort(flat, stable=True)[:count]] = True
    return marked.view_as(scores)


# --- structured pruning of a live module --------------------------------------------


def structured_prune(
    graph: Graph,
    module: nn.Module,
    ratio: float,
    *,
    criterion: Criterion | Scorer = "l1",
    scope: Scope = "layer",
    exclude: Sequence[str] = (),
    original: Graph | None = None,
) -> tuple[Graph, nn.Module]:
    """Remove channels from `module` (the generated module of `graph`) with the prune
    pass: the pruned graph and a new module holding the kept weights, on the same
    device and in the same train/eval mode, to put in the old one's place.

    `ratio` is the share of each group's channels to remove now; with `original` (the
    graph before any pruning; layer scope only) it is the cumulative share of the
    original channel counts instead, so rounds of pruning land on exact counts."""
    weights = _as_arrays(module.state_dict())
    ratios: dict[str, float] = {}
    if original is not None:
        if scope != "layer":
            raise ValueError("cumulative ratios (original=...) need scope='layer'")
        ratios = cumulative_channel_ratios(original, graph, ratio)
        ratio = 0.0
    options = _prune_options(ratio, criterion, scope, exclude, ratios)
    reduced = optimize(graph, options, weights)
    new = reduced.torch()
    reference = next(iter(module.parameters()), None)
    if reference is not None:
        new = new.to(reference.device)
    new.train(module.training)
    return reduced.graph, new


def cumulative_channel_ratios(original: Graph, current: Graph, ratio: float) -> dict[str, float]:
    """Per-module ratios (for `StructuredPrune.ratios`) taking each prunable group of
    `current` to round((1 - ratio) * its size in `original`) channels (at least one)."""
    before = analyse(original)
    sizes = {
        u.node.module: before.size[before.find(u.made)] for u in before.uses if u.made is not None
    }
    now = analyse(current)
    ratios: dict[str, float] = {}
    for root in now.roots():
        makers = [
            u.node.module for u in now.uses if u.made is not None and now.find(u.made) == root
        ]
        first = sizes.get(makers[0]) if makers else None
        if first is None:
            continue
        size = now.size[root]
        wanted = min(size, max(1, first - round(first * ratio)))
        for maker in makers:
            ratios[_literal_pattern(maker)] = (size - wanted) / size
    return ratios


def _literal_pattern(name: str) -> str:
    """A glob pattern matching `name` only (module names may hold `[`)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _prune_options(
    ratio: float,
    criterion: Criterion | Scorer,
    scope: Scope,
    exclude: Sequence[str],
    ratios: Mapping[str, float] | None = None,
) -> Options:
    return Options(
        prune=ratio,
        prune_by=criterion,
        prune_scope=scope,
        prune_ratios=dict(ratios or {}),
        exclude=tuple(exclude),
    )


def _as_arrays(weights: Mapping[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    return {
        k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        for k, v in weights.items()
    }
