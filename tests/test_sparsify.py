"""Reduction during training: schedules, masks held through optimizer steps,
iterative (structured) pruning and lottery tickets on small synthetic tasks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import nn

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.training.lottery import (
    EarlySnapshot,
    iterative_pruning,
    iterative_structured_pruning,
    lottery_ticket,
    rewind,
    snapshot,
)
from dslnet.training.sparsify import (
    Masks,
    Scope,
    flops_per_sample,
    flops_schedule,
    geometric_schedule,
    magnitude_masks,
    per_round_ratio,
    ratio_for_flops,
    structured_prune,
)
from dslnet.views.summary import summarize

SPEC = """
network Blobs(features: int = 16, hidden: int = 64, classes: int = 4) {
    in x: float32[N, features]
    out logits = x -> linear(hidden) -> relu -> linear(hidden) -> relu -> linear(classes)
}

network Bars(classes: int = 2) {
    in x: float32[N, 1, 8, 8]
    out logits = x
        -> conv2d(12, k=3, p=1) -> batchnorm -> relu -> maxpool2d(2)
        -> conv2d(16, k=3, p=1) -> relu -> maxpool2d(2)
        -> flatten -> linear(32) -> relu -> linear(classes)
}
"""
PROG = dslnet.loads(SPEC)
Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Train = Callable[[nn.Module, int], float]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is fastest, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(seed: int = 0) -> Data:
    """Four Gaussian clusters in 16-D, overlapping a little (dense accuracy ~95%)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 16, generator=g) * 0.9
    labels = torch.randint(0, 4, (1200,), generator=g)
    x = centres[labels] + torch.randn(1200, 16, generator=g) * 0.8
    return x[:800], labels[:800], x[800:], labels[800:]


def bars(seed: int = 0) -> Data:
    """8x8 images with one horizontal (class 0) or vertical (class 1) bar, in noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (600,), generator=g)
    where = torch.randint(0, 8, (600,), generator=g)
    x = torch.randn(600, 1, 8, 8, generator=g) * 0.5
    for i in range(600):
        if labels[i] == 0:
            x[i, 0, where[i], :] += 1.5
        else:
            x[i, 0, :, where[i]] += 1.5
    return x[:400], labels[:400], x[400:], labels[400:]


def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    module.eval()
    with torch.no_grad():
        return float((module(x).argmax(1) == y).float().mean())


def trainer(
    data: Data, lr: float = 0.05, batch: int = 50, after_step: Callable[[], None] | None = None
) -> Train:
    """A plain loop (SGD with momentum and weight decay) as the orchestration callback."""
    x, y, x_test, y_test = data

    def train_epochs(module: nn.Module, epochs: int) -> float:
        optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        for _ in range(epochs):
            module.train()
            for i in torch.randperm(len(x)).split(batch):
                optimizer.zero_grad()
                nn.functional.cross_entropy(module(x[i]), y[i]).backward()
                optimizer.step()
                if after_step is not None:
                    after_step()
        return accuracy(module, x_test, y_test)

    return train_epochs


def zero_fraction(module: nn.Module, masks: Masks) -> float:
    params = dict(module.named_parameters())
    return sum(int((params[n] == 0).sum()) for n in masks.keep) / sum(
        m.numel() for m in masks.keep.values()
    )


def test_geometric_schedule_reaches_the_target_exactly() -> None:
    targets = geometric_schedule(0.8, 3)
    assert targets[-1] == 0.8
    assert targets == sorted(targets)
    each = 1 - 0.2 ** (1 / 3)  # the same share of what is left, every round
    previous = 0.0
    for t in targets:
        assert per_round_ratio(previous, t) == pytest.approx(each, abs=1e-12)
        previous = t
    assert flops_schedule(1000, 0.3, 4)[-1] == 300
    assert flops_schedule(1000, 250, 2) == [500, 250]
    with pytest.raises(ValueError):
        geometric_schedule(1.0, 2)


def test_layer_masks_drop_the_smallest_and_spare_the_classifier() -> None:
    torch.manual_seed(0)
    graph, net = PROG.ir("Blobs"), PROG.torch("Blobs")
    masks = magnitude_masks(net, 0.7, graph=graph)
    assert set(masks.keep) == {"linear1.weight", "linear2.weight"}
    params = dict(net.named_parameters())
    for name, keep in masks.keep.items():
        w = params[name].detach().abs()
        assert int((~keep).sum()) == round(w.numel() * 0.7)
        assert w[keep].min() >= w[~keep].max()
    every = magnitude_masks(net, 0.7, graph=graph, prune_output_layer=True, scope="global")
    assert "linear3.weight" in every.keep
    pooled = torch.cat([params[n].detach().abs().flatten() for n in every.keep])
    assert sum(int((~k).sum()) for k in every.keep.values()) == round(pooled.numel() * 0.7)


def test_masks_are_monotone() -> None:
    torch.manual_seed(0)
    net = PROG.torch("Blobs")
    first = magnitude_masks(net, 0.5, graph=PROG.ir("Blobs"))
    with torch.no_grad():  # training moves weights: a pruned one may now look large
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    first.apply(net)
    second = magnitude_masks(net, 0.3, previous=first)
    for name, keep in second.keep.items():
        assert not bool((keep & ~first.keep[name]).any())
    assert second.sparsity == pytest.approx(first.sparsity)


def _steps(
    net: nn.Module, optimizer: torch.optim.Optimizer, count: int, masks: Masks | None
) -> None:
    x = torch.randn(32, 16)
    y = torch.randint(0, 4, (32,))
    for _ in range(count):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        if masks is not None:
            masks.apply(net)


def test_pruned_weights_stay_zero_through_momentum_and_weight_decay() -> None:
    torch.manual_seed(0)
    graph, net = PROG.ir("Blobs"), PROG.torch("Blobs")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    _steps(net, optimizer, 5, None)  # momentum now points everywhere
    masks = magnitude_masks(net, 0.8, graph=graph)
    masks.apply(net)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    _steps(net, optimizer, 5, masks)  # the trainer's call after each step
    assert zero_fraction(net, masks) == pytest.approx(0.8, abs=1e-3)
    params = dict(net.named_parameters())
    for name, keep in masks.keep.items():  # the survivors did train
        assert not torch.equal(params[name][keep], before[name][keep])

    # Without that call: masked gradients, and the stale momentum cleared, suffice.
    masks.clear_optimizer_state(optimizer, net)
    hooks = masks.attach(net)
    _steps(net, optimizer, 5, None)
    assert zero_fraction(net, masks) == pytest.approx(0.8, abs=1e-3)
    hooks.remove()
    adam = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.1)
    _steps(net, adam, 2, None)  # hooks removed: the weights revive
    assert zero_fraction(net, masks) < 0.1


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_iterative_pruning_to_80_percent_keeps_accuracy(scope: Scope) -> None:
    torch.manual_seed(0)
    graph, net = PROG.ir("Blobs"), PROG.torch("Blobs")
    masks, report = iterative_pruning(
        net,
        trainer(blobs()),
        sparsity=0.8,
        cycles=3,
        epochs=4,
        dense_epochs=8,
        graph=graph,
        scope=scope,
    )
    print(report.render())
    dense, last = report.rounds[0], report.rounds[-1]
    assert masks.sparsity == pytest.approx(0.8, abs=1e-3)
    assert zero_fraction(net, masks) == pytest.approx(0.8, abs=1e-3)
    assert last.sparsity == masks.sparsity
    assert last.nonzero_params < dense.nonzero_params * 0.4
    assert last.flops == dense.flops and last.effective_flops < dense.flops * 0.4
    assert dense.metric > 0.85
    assert last.metric >= dense.metric - 0.03


def test_structured_prune_lands_on_exact_channel_counts() -> None:
    torch.manual_seed(0)
    graph, net = PROG.ir("Bars"), PROG.torch("Bars")
    for ratio in geometric_schedule(0.5, 2):
        graph, net = structured_prune(graph, net, ratio, original=PROG.ir("Bars"))
    widths = {name: p.shape[0] for name, p in net.named_parameters() if name.endswith("weight")}
    assert widths == {
        "conv2d1.weight": 6,
        "batchnorm1.weight": 6,
        "conv2d2.weight": 8,
        "linear1.weight": 16,
        "linear2.weight": 2,  # the output's units are never removed
    }


def test_structured_iterative_pruning_shrinks_and_matches_onnx() -> None:
    torch.manual_seed(0)
    graph, net = PROG.ir("Bars"), PROG.torch("Bars")
    holder = nn.Sequential(net)  # the network may be part of a bigger training module
    graph, holder[0], report = iterative_structured_pruning(
        graph,
        holder[0],
        trainer(bars()),
        ratio=0.6,
        cycles=2,
        epochs=2,
        dense_epochs=4,
        criterion="bn",
    )
    print(report.render())
    params = [r.params for r in report.rounds]
    flops = [r.flops for r in report.rounds]
    assert params == sorted(params, reverse=True) and len(set(params)) == 3
    assert flops == sorted(flops, reverse=True) and len(set(flops)) == 3
    assert params[-1] == graph.num_parameters
    assert report.rounds[-1].metric >= report.rounds[0].metric - 0.1

    pruned = holder[0].eval()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        expected = pruned(x).numpy()
    model = emit_onnx(graph, pruned.state_dict())
    got = run_onnx(model, {graph.inputs[0]: x.numpy()})
    np.testing.assert_allclose(next(iter(got.values())), expected, atol=1e-4, rtol=1e-4)


def test_flops_budget_is_met_with_the_least_ratio() -> None:
    torch.manual_seed(0)
    graph, net = PROG.ir("Bars"), PROG.torch("Bars")
    dense = flops_per_sample(graph)
    assert summarize(graph)["macs"] == f"{dense}*N"  # what `dslnet summary` prints
    target = round(dense * 0.4)
    ratio = ratio_for_flops(graph, net.state_dict(), target)
    small, _ = structured_prune(graph, net, ratio)
    assert flops_per_sample(small) <= target
    larger, _ = structured_prune(graph, net, max(0.0, ratio - 0.02))
    assert flops_per_sample(larger) > target

    noop = trainer(bars())
    graph, _, report = iterative_structured_pruning(
        graph, net, lambda m, e: noop(m, 0), flops_budget=0.4, cycles=2, epochs=0
    )
    steps = [r.flops for r in report.rounds]
    assert steps[-1] <= target < steps[1] < steps[0]
    assert flops_per_sample(graph) == steps[-1]


def test_rewind_restores_the_snapshot_on_survivors() -> None:
    torch.manual_seed(0)
    graph, net = PROG.ir("Blobs"), PROG.torch("Blobs")
    start = snapshot(net)
    trainer(blobs())(net, 2)
    masks = magnitude_masks(net, 0.6, graph=graph)
    rewind(net, start, masks)
    params = dict(net.named_parameters())
    for name, p in params.items():
        keep = masks.keep.get(name, torch.ones_like(p, dtype=torch.bool))
        assert torch.equal(p[keep], start[name][keep])
        assert bool((p[~keep] == 0).all())


def test_lottery_ticket_at_80_percent_trains_like_dense() -> None:
    torch.manual_seed(0)
    graph, net = PROG.ir("Blobs"), PROG.torch("Blobs")
    train = trainer(blobs())
    ticket = lottery_ticket(net, train, sparsity=0.8, rounds=2, epochs=6, graph=graph)
    print(ticket.report.render())
    dense, last = ticket.report.rounds[0], ticket.report.rounds[-1]
    assert ticket.masks.sparsity == pytest.approx(0.8, abs=1e-3)
    assert zero_fraction(net, ticket.masks) == pytest.approx(0.8, abs=1e-3)
    assert last.metric >= dense.metric - 0.03

    torch.manual_seed(1)  # control: the same masks on a fresh random initialisation
    control = PROG.torch("Blobs")
    ticket.masks.attach(control)
    random_reinit = train(control, 6)
    print(f"dense {dense.metric:.3f}  ticket {last.metric:.3f}  random reinit {random_reinit:.3f}")
    assert math.isfinite(random_reinit)


def test_rewinding_goes_back_to_the_weights_after_early_training() -> None:
    torch.manual_seed(0)
    net = PROG.torch("Blobs")
    train = trainer(blobs())
    calls: list[int] = []
    early: dict[str, torch.Tensor] = {}

    def recorded(module: nn.Module, epochs: int) -> float:
        calls.append(epochs)
        metric = train(module, epochs)
        if len(calls) == 1:
            early.update(snapshot(module))
        return metric

    ticket = lottery_ticket(net, recorded, sparsity=0.5, rounds=1, epochs=3, rewind_epochs=1)
    assert calls == [1, 2, 2]  # to the rewind point, the rest, then the ticket's retraining
    assert all(torch.equal(ticket.rewind_point[k], v) for k, v in early.items())


def test_rewinding_to_an_iteration() -> None:
    torch.manual_seed(0)
    net = PROG.torch("Blobs")
    early = EarlySnapshot(net, iteration=5)
    seen: list[dict[str, torch.Tensor]] = []

    def step() -> None:
        early.step()
        if early.steps == 5:
            seen.append(snapshot(net))

    ticket = lottery_ticket(
        net, trainer(blobs(), after_step=step), sparsity=0.5, rounds=1, epochs=1, rewind_point=early
    )
    assert all(torch.equal(ticket.rewind_point[k], v) for k, v in seen[0].items())
    assert not torch.equal(ticket.rewind_point["linear1.weight"], net.linear1.weight)
    late = EarlySnapshot(PROG.torch("Blobs"), iteration=10**6)
    with pytest.raises(ValueError, match="never reached"):
        lottery_ticket(net, trainer(blobs()), sparsity=0.5, rounds=1, epochs=1, rewind_point=late)
