"""Rounds of pruning around a training callback: iterative magnitude pruning,
iterative structured pruning and lottery tickets.

Each orchestration takes `train_epochs(module, epochs) -> metric` (the trainer's
loop, building its own optimizer for the module it is given; `epochs=0` must only
measure), so it does not depend on any trainer, and returns a `PruningReport`:
one row per round with the sparsity, parameter counts, FLOPs and the metric.

Lottery tickets follow Frankle & Carbin (2019): train, prune the smallest weights,
reset the survivors to their values at the start, train again, repeat. With
`rewind_epochs` the reset goes to the weights after that much training instead
(Frankle et al., 2020, "rewinding"), which is what makes tickets appear in deeper
networks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from dslnet.ir.graph import Graph
from dslnet.ir.roles import weight_of
from dslnet.passes.options import Scope
from dslnet.passes.prune import Criterion, Scorer
from dslnet.training.sparsify import (
    Masks,
    flops_per_sample,
    flops_schedule,
    geometric_schedule,
    layer_flops,
    magnitude_masks,
    masked,
    per_round_ratio,
    ratio_for_flops,
    structured_prune,
)

TrainEpochs = Callable[[nn.Module, int], float]
Snapshot = dict[str, torch.Tensor]


@dataclass(frozen=True)
class RoundRecord:
    """The network after one round (round 0: dense, before any pruning)."""

    round: int
    # weights: share of prunable entries zeroed; channels: share removed (with a FLOPs
    # budget: share of the dense FLOPs removed)
    sparsity: float
    params: int  # learned parameters in the network
    nonzero_params: int
    flops: int  # multiply-accumulates per sample, dense kernels
    effective_flops: int  # skipping zeroed weights (what a sparse kernel could reach)
    metric: float


@dataclass
class PruningReport:
    method: str
    rounds: list[RoundRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "rounds": [asdict(r) for r in self.rounds]}

    def render(self) -> str:
        header = f"{'round':>5}  {'sparsity':>8}  {'params':>10}  {'nonzero':>10}  "
        header += f"{'FLOPs':>12}  {'eff. FLOPs':>12}  {'metric':>8}"
        lines = [self.method, header]
        for r in self.rounds:
            lines.append(
                f"{r.round:>5}  {r.sparsity:>8.1%}  {r.params:>10,}  {r.nonzero_params:>10,}  "
                f"{r.flops:>12,}  {r.effective_flops:>12,}  {r.metric:>8.4f}"
            )
        return "\n".join(lines) + "\n"


def measure(
    round_: int,
    module: nn.Module,
    metric: float,
    *,
    graph: Graph | None = None,
    masks: Masks | None = None,
    sparsity: float | None = None,
) -> RoundRecord:
    """A report row for `module` as it is now (FLOPs need its graph)."""
    params = dict(module.named_parameters())
    total = sum(p.numel() for p in params.values())
    nonzero = sum(int(torch.count_nonzero(p)) for p in params.values())
    flops = effective = 0
    if graph is not None:
        per_layer = layer_flops(graph)
        flops = sum(per_layer.values())
        weights = {node.name: weight_of(node) for node in graph.nodes}
        density = {
            name: masks.density(weight) if masks and weight else 1.0
            for name, weight in weights.items()
        }
        effective = round(sum(f * density[name] for name, f in per_layer.items()))
    if sparsity is None:
        sparsity = masks.sparsity if masks else 0.0
    return RoundRecord(round_, sparsity, total, nonzero, flops, effective, metric)


def snapshot(module: nn.Module) -> Snapshot:
    """A copy of the module's whole state (weights and buffers), to rewind to."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class EarlySnapshot:
    """The module's state after `iteration` optimizer steps, for rewinding to an
    iteration rather than an epoch: the trainer calls `step()` after each step."""

    def __init__(self, module: nn.Module, iteration: int) -> None:
        self.module, self.iteration, self.steps = module, iteration, 0
        self.weights: Snapshot | None = snapshot(module) if iteration == 0 else None

    def step(self) -> None:
        self.steps += 1
        if self.steps == self.iteration:
            self.weights = snapshot(self.module)


def rewind(module: nn.Module, saved: Snapshot, masks: Masks) -> None:
    """Reset `module` to `saved`, then zero what `masks` prune: the survivors get
    their snapshot values back."""
    module.load_state_dict(saved)
    masks.apply(module)


def iterative_pruning(
    module: nn.Module,
    train_epochs: TrainEpochs,
    *,
    sparsity: float,
    cycles: int,
    epochs: int,
    dense_epochs: int | None = None,
    graph: Graph | None = None,
    scope: Scope = "layer",
    exclude: Sequence[str] = (),
    prune_output_layer: bool = False,
) -> tuple[Masks, PruningReport]:
    """Train dense (`dense_epochs`, default `epochs`; 0 for a module already trained),
    then `cycles` rounds of: prune by magnitude to the next `geometric_schedule`
    target, fine-tune `epochs` with the masks held. The module is pruned in place;
    the returned masks are the final ones (keep applying them if training goes on)."""
    report = PruningReport("iterative magnitude pruning")
    metric = train_epochs(module, epochs if dense_epochs is None else dense_epochs)
    report.rounds.append(measure(0, module, metric, graph=graph))
    masks = _magnitude_rounds(
        module,
        train_epochs,
        report,
        sparsity=sparsity,
        rounds=cycles,
        epochs=epochs,
        graph=graph,
        scope=scope,
        exclude=exclude,
        prune_output_layer=prune_output_layer,
    )
    return masks, report


@dataclass
class LotteryTicket:
    """The winning ticket: its masks, the weights it was rewound to, the report."""

    masks: Masks
    rewind_point: Snapshot
    report: PruningReport


def lottery_ticket(
    module: nn.Module,
    train_epochs: TrainEpochs,
    *,
    sparsity: float,
    rounds: int,
    epochs: int,
    rewind_epochs: int = 0,
    rewind_point: Snapshot | EarlySnapshot | None = None,
    graph: Graph | None = None,
    scope: Scope = "layer",
    exclude: Sequence[str] = (),
    prune_output_layer: bool = False,
) -> LotteryTicket:
    """Find a sparse subnetwork that trains as well as the dense one.

    Snapshot the weights (at initialisation, or after `rewind_epochs` of training, or
    `rewind_point`: given, or an `EarlySnapshot` the trainer feeds during the first
    training), train to `epochs` in all, then `rounds` times: prune to the next
    `geometric_schedule` target by magnitude, rewind the survivors to the snapshot,
    retrain the masked network from there (`epochs - rewind_epochs`; all `epochs`
    after an iteration snapshot). The module ends as the last retrained ticket."""
    report = PruningReport(
        "lottery ticket" + (f" (rewind to epoch {rewind_epochs})" if rewind_epochs else "")
    )
    if rewind_point is not None and rewind_epochs:
        raise ValueError("give rewind_epochs or rewind_point, not both")
    if rewind_point is None:
        if rewind_epochs:
            train_epochs(module, rewind_epochs)
        rewind_point = snapshot(module)
    remaining = epochs - rewind_epochs
    metric = train_epochs(module, remaining)
    report.rounds.append(measure(0, module, metric, graph=graph))
    if isinstance(rewind_point, EarlySnapshot):
        if rewind_point.weights is None:
            raise ValueError(
                f"the rewind point (iteration {rewind_point.iteration}) was never reached: "
                f"training made {rewind_point.steps} steps"
            )
        rewind_point = rewind_point.weights
    saved = rewind_point
    masks = _magnitude_rounds(
        module,
        train_epochs,
        report,
        sparsity=sparsity,
        rounds=rounds,
        epochs=remaining,
        graph=graph,
        scope=scope,
        exclude=exclude,
        prune_output_layer=prune_output_layer,
        before_training=lambda masks: rewind(module, saved, masks),
    )
    return LotteryTicket(masks, rewind_point, report)


def _magnitude_rounds(
    module: nn.Module,
    train_epochs: TrainEpochs,
    report: PruningReport,
    *,
    sparsity: float,
    rounds: int,
    epochs: int,
    graph: Graph | None,
    scope: Scope,
    exclude: Sequence[str],
    prune_output_layer: bool,
    before_training: Callable[[Masks], None] | None = None,
) -> Masks:
    """`rounds` of: prune by magnitude to the next `geometric_schedule` target, then
    (after `before_training`, a lottery ticket's rewind) train `epochs` with the masks
    held; each round reported. The final masks."""
    masks: Masks | None = None
    for k, target in enumerate(geometric_schedule(sparsity, rounds), start=1):
        masks = magnitude_masks(
            module,
            target,
            graph=graph,
            scope=scope,
            previous=masks,
            exclude=exclude,
            prune_output_layer=prune_output_layer,
        )
        if before_training is not None:
            before_training(masks)
        with masked(masks, module):
            metric = train_epochs(module, epochs)
        report.rounds.append(measure(k, module, metric, graph=graph, masks=masks))
    assert masks is not None
    return masks


def iterative_structured_pruning(
    graph: Graph,
    module: nn.Module,
    train_epochs: TrainEpochs,
    *,
    cycles: int,
    epochs: int,
    ratio: float | None = None,
    flops_budget: float | int | None = None,
    dense_epochs: int | None = None,
    criterion: Criterion | Scorer = "l1",
    scope: Scope = "layer",
    exclude: Sequence[str] = (),
) -> tuple[Graph, nn.Module, PruningReport]:
    """Train dense, then `cycles` rounds of: remove channels, fine-tune `epochs`.

    The target is a channel `ratio` (cumulative, reached geometrically; exact counts
    with layer scope) or a `flops_budget` (a fraction of the dense FLOPs, or a FLOPs
    count per sample; each round searches the ratio meeting its share). The module
    is replaced each round: the last graph and module are returned."""
    if (ratio is None) == (flops_budget is None):
        raise ValueError("give one of ratio or flops_budget")
    original, dense_flops = graph, flops_per_sample(graph)
    flops_targets = (
        flops_schedule(dense_flops, flops_budget, cycles) if flops_budget is not None else []
    )
    ratios = geometric_schedule(ratio, cycles) if ratio is not None else []
    report = PruningReport("iterative structured pruning")
    metric = train_epochs(module, epochs if dense_epochs is None else dense_epochs)
    report.rounds.append(measure(0, module, metric, graph=graph))
    previous = 0.0
    for k in range(1, cycles + 1):
        if flops_targets:
            step = ratio_for_flops(
                graph,
                module.state_dict(),
                flops_targets[k - 1],
                criterion=criterion,
                scope=scope,
                exclude=exclude,
            )
            graph, module = structured_prune(
                graph, module, step, criterion=criterion, scope=scope, exclude=exclude
            )
            removed = 1.0 - flops_per_sample(graph) / dense_flops
        elif scope == "layer":
            removed = ratios[k - 1]
            graph, module = structured_prune(
                graph, module, removed, criterion=criterion, exclude=exclude, original=original
            )
        else:
            removed = ratios[k - 1]
            step = per_round_ratio(previous, removed)
            graph, module = structured_prune(
                graph, module, step, criterion=criterion, scope=scope, exclude=exclude
            )
        previous = removed
        metric = train_epochs(module, epochs)
        report.rounds.append(measure(k, module, metric, graph=graph, sparsity=removed))
    return graph, module, report
