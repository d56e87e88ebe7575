"""Structured pruning: whole channels and hidden units removed, weights sliced.

The groups of `dslnet.passes.groups` say which channels must go together; this
pass scores each group's channels, keeps the best, and rewrites every layer the
group touches (its makers' output units, its consumers' input columns, the
per-channel parameters of norms on the way). The result is a smaller network,
not a mask: fewer parameters, fewer FLOPs, a faster model in either backend.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dslnet.ir.graph import Graph, Node
from dslnet.ir.roles import roles_of, weight_of
from dslnet.ops.channels import Placed
from dslnet.passes.base import Array, Model, PassError, PassResult, with_nodes
from dslnet.passes.groups import Groups, Layout, Use, analyse

Criterion = Literal["l1", "l2", "bn"]
Scorer = Callable[["GroupInfo", Mapping[str, Array]], Array]


@dataclass(frozen=True)
class GroupInfo:
    """What a user-supplied score function sees of one group."""

    size: int
    makers: list[Node]  # the layers whose output units form the group
    members: list[Node]  # layers with per-channel parameters on it (norms, depthwise)


@dataclass
class StructuredPrune:
    """Remove `ratio` of the channels of every prunable group.

    Args:
        ratio: the fraction to remove, in [0, 1); a group keeps at least one channel.
        criterion: "l1" / "l2" (mean magnitude of each unit's weights, summed over the
            group's layers), "bn" (|scale| of the batchnorms on the group, L1 where
            there is none), or a function (GroupInfo, weights) -> one score per channel.
        scope: "layer" removes the ratio from each group; "global" ranks all channels
            of all groups together (scores normalised by each group's mean).
        ratios: per-module overrides (glob patterns on a maker's module, e.g.
            `layer4.*`), from the CLI or `@prune(r)` annotations.
        exclude: module patterns whose output units are never removed.
    """

    ratio: float
    criterion: Criterion | Scorer = "l1"
    scope: Literal["layer", "global"] = "layer"
    ratios: Mapping[str, float] | None = None
    exclude: Sequence[str] = ()
    name: str = "prune"

    def run(self, model: Model) -> PassResult:
        for r in [self.ratio, *(self.ratios or {}).values()]:
            if not 0.0 <= r < 1.0:
                raise PassError(f"a pruning ratio must be in [0, 1), got {r}")
        graph, weights = model.graph, model.weights
        groups = analyse(graph)
        for use in groups.uses:
            if use.made is not None and _matches(use.node.module, self.exclude):
                groups.pinned.add(groups.find(use.made))
        roots = groups.roots()
        scores = {root: self._scores(groups, root, weights) for root in roots}
        kept = self._choose(groups, scores)
        if not kept:
            return PassResult(model, False, ["no channel removed"])
        nodes, new_weights = _rewrite(graph, weights, groups, kept)
        pruned = with_nodes(graph, nodes)
        removed = sum(groups.size[g] - len(k) for g, k in kept.items())
        total = sum(groups.size[g] for g in roots)
        notes = [f"removed {removed} of {total} prunable channels in {len(kept)} groups"]
        return PassResult(Model(pruned, new_weights), True, notes)

    def _ratio_of(self, groups: Groups, root: int) -> float:
        """A ratio given for a maker's module wins, then a `@prune(r)` in the spec."""
        makers = [u.node.module for u in _makers(groups, root)]
        for pattern, ratio in (self.ratios or {}).items():
            if any(_matches(m, [pattern]) for m in makers):
                return ratio
        for use in _makers(groups, root):
            marked = use.node.marks.get("prune")
            if isinstance(marked, float):
                return marked
        return self.ratio

    def _scores(self, groups: Groups, root: int, weights: Mapping[str, Array]) -> Array:
        makers = _makers(groups, root)
        if callable(self.criterion):
            members = [u.node for u in _members(groups, root)]
            info = GroupInfo(groups.size[root], [u.node for u in makers], members)
            return _user_scores(self.criterion, info, weights)
        if self.criterion == "bn":
            # The scale of each norm on the group: the weight its op declares.
            names = [weight_of(u.node) for u in _members(groups, root) if u.rule.foldable_affine]
            scales = [np.abs(weights[n]) for n in names if n is not None and n in weights]
            if scales:
                return np.asarray(sum(scales), dtype=np.float64)
        power = 2 if self.criterion == "l2" else 1
        size = groups.size[root]
        total = np.zeros(size)
        for use in makers:
            bias = roles_of(use.node).bias  # a bias says nothing of a unit's importance
            placed = [Placed(r, axis, scored=r != bias) for r, axis in use.rule.out_params.items()]
            for role, axis, copies, _, scored in [*placed, *use.rule.unit_params]:
                name = use.node.param_name(role)
                if name in weights and scored:
                    w = np.moveaxis(np.abs(weights[name].astype(np.float64)), axis, 0)
                    # [copies * size * repeat, ...] -> one row of magnitudes per unit
                    per_unit = np.swapaxes(w.reshape(copies, size, -1), 0, 1).reshape(size, -1)
                    total += (per_unit**power).mean(axis=1) ** (1 / power)
        return total

    def _choose(self, groups: Groups, scores: Mapping[int, Array]) -> dict[int, Array]:
        """Kept channel indices (sorted) of each group that loses any."""
        counts: dict[int, int] = {}
        overridden = self.ratios or any("prune" in u.node.marks for u in groups.uses)
        if self.scope == "global" and not overridden:
            # Scores relative to their group's mean, so groups of any scale compare.
            relative = {root: s / (s.mean() or 1.0) for root, s in scores.items()}
            if relative:
                pooled = np.concatenate(list(relative.values()))
                cut = np.quantile(pooled, self.ratio) if self.ratio > 0 else -np.inf
                for root, r in relative.items():
                    counts[root] = max(1, int(np.sum(r > cut)))
        else:
            for root in scores:
                size = groups.size[root]
                counts[root] = max(1, size - round(size * self._ratio_of(groups, root)))
        kept: dict[int, Array] = {}
        for root, count in counts.items():
            if count < groups.size[root]:
                best = np.argsort(-scores[root], kind="stable")[:count]
                kept[root] = np.sort(best).astype(np.int64)
        return kept


def _user_scores(criterion: Scorer, info: GroupInfo, weights: Mapping[str, Array]) -> Array:
    """A user's score function on one group: one finite score per channel, or a
    PassError at the group's first layer (the user's code, not a bug in the pass)."""
    where = info.makers[0] if info.makers else None
    try:
        scores = np.asarray(criterion(info, weights), dtype=np.float64)
    except Exception as err:
        message = f"the pruning criterion failed: {type(err).__name__}: {err}"
        raise PassError(message, where) from err
    if scores.shape != (info.size,):
        raise PassError(
            f"the pruning criterion gave scores of shape {list(scores.shape)} for a group of "
            f"{info.size} channels: it must give one score per channel",
            where,
        )
    return scores


def _matches(module: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(module, p) for p in patterns)


def _makers(groups: Groups, root: int) -> list[Use]:
    return [u for u in groups.uses if u.made is not None and groups.find(u.made) == root]


def _members(groups: Groups, root: int) -> list[Use]:
    return [
        u
        for u in groups.uses
        if u.made is None
        and u.layout is not None
        and any(groups.find(g) == root for g, _ in u.layout.segments)
    ]


def _rewrite(
    graph: Graph, weights: Mapping[str, Array], groups: Groups, kept: dict[int, Array]
) -> tuple[list[Node], dict[str, Array]]:
    """Nodes with new unit counts and the sliced weights."""
    new_weights = dict(weights)
    done: set[tuple[str, int]] = set()
    changed: dict[str, Node] = {}
    for use in groups.uses:
        node, rule = changed.get(use.node.name, use.node), use.rule
        attrs = dict(node.attrs)
        if use.made is not None and groups.find(use.made) in kept:
            root = groups.find(use.made)
            attrs.update(rule.set_attrs)
            attrs[rule.out_attr or ""] = len(kept[root])
            _slice(new_weights, node, rule.out_params, kept[root], done)
            for p in rule.unit_params:
                laid = groups.indices(Layout(p.axis, ((root, p.repeat),) * p.copies), kept)
                _slice(new_weights, node, {p.role: p.axis}, laid, done)
        if groups.touched(use.layout, kept):
            assert use.layout is not None
            index = groups.indices(use.layout, kept)
            if use.made is not None:
                _slice(new_weights, node, rule.in_params, index, done)
            else:
                _slice(new_weights, node, rule.params, index, done)
                for name in rule.count_attrs:
                    attrs[name] = len(index)
        if attrs != node.attrs:
            changed[node.name] = node.model_copy(update={"attrs": attrs})
    nodes = [changed.get(n.name, n) for n in graph.nodes]
    return nodes, new_weights


def _slice(
    weights: dict[str, Array],
    node: Node,
    axes: Mapping[str, int],
    index: Array,
    done: set[tuple[str, int]],
) -> None:
    for role, axis in axes.items():
        name = node.param_name(role)
        if name in weights and (name, axis) not in done:
            done.add((name, axis))  # a shared layer's weight is sliced once
            weights[name] = np.take(weights[name], index, axis=axis)
