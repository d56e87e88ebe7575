"""Channel dependency groups: which channels must be removed together.

Every layer that makes new units (a conv's filters, a linear's features) starts a
group. Channels then flow through the graph as each op's `channels` facet says:
ops that keep channels (activations, pooling, norms) carry the layout on; an
add ties the layouts of its inputs into one group (a residual branch keeps the
channel set of its shortcut); a concat lays its inputs' groups end to end, so
the next layer sees each at its offset; a flatten of [C, H, W] makes each
channel a run of H*W features. A group is pinned (never pruned) when it reaches
a network output, meets an op that says nothing about channels, or is tied to
a network input. Pruning a group then means slicing, at once, every parameter
axis its channels index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dslnet.ir.graph import Graph, Node
from dslnet.ir.oplookup import resolve_op
from dslnet.ops.channels import Channels

Array = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Layout:
    """The channels of one value: on `axis`, the groups' channels end to end, each
    channel repeated `repeat` times (segments are (group, repeat))."""

    axis: int
    segments: tuple[tuple[int, int], ...]


@dataclass
class Use:
    """A node whose parameters (or count attributes) a group's pruning touches."""

    node: Node
    rule: Channels
    layout: Layout | None  # the channels it reads (None: none that can be pruned)
    made: int | None = None  # make: the group of its output units


@dataclass
class Groups:
    """The result of the analysis over one graph."""

    size: dict[int, int] = field(default_factory=dict)  # group -> channel count
    parent: dict[int, int] = field(default_factory=dict)
    pinned: set[int] = field(default_factory=set)
    uses: list[Use] = field(default_factory=list)
    layouts: dict[str, Layout | None] = field(default_factory=dict)

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.pinned:
                self.pinned.add(ra)

    def new(self, size: int) -> int:
        g = len(self.size)
        self.size[g] = size
        self.parent[g] = g
        return g

    def pin(self, layout: Layout | None) -> None:
        if layout is not None:
            self.pinned.update(self.find(g) for g, _ in layout.segments)

    def roots(self) -> list[int]:
        """The prunable groups (their representatives), in order of creation."""
        pinned = {self.find(p) for p in self.pinned}
        return sorted({self.find(g) for g in self.size} - pinned)

    def tie(self, layouts: Iterable[Layout | None]) -> Layout | None:
        """One layout shared by all: unite their groups segment by segment, or, when
        their shapes differ, pin them all (None)."""
        found = list(layouts)
        first = found[0]
        shape = None if first is None else self._shape(first)
        if first is None or any(la is None or self._shape(la) != shape for la in found):
            for la in found:
                self.pin(la)
            return None
        for la in found[1:]:
            assert la is not None
            for (a, _), (b, _) in zip(first.segments, la.segments):
                self.union(a, b)
        return first

    def _shape(self, layout: Layout) -> tuple[object, ...]:
        return (layout.axis, *((self.size[g], r) for g, r in layout.segments))

    def indices(self, layout: Layout, kept: dict[int, Array]) -> Array:
        """The entries of the layout's axis that stay, given the kept channels per root."""
        parts, offset = [], 0
        for g, r in layout.segments:
            size = self.size[g]
            keep = kept.get(self.find(g), np.arange(size))
            parts.append((keep[:, None] * r + np.arange(r)).ravel() + offset)
            offset += size * r
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def touched(self, layout: Layout | None, kept: dict[int, Array]) -> bool:
        return layout is not None and any(self.find(g) in kept for g, _ in layout.segments)


def analyse(graph: Graph) -> Groups:
    """The channel groups of `graph`, with every pinning rule applied."""
    groups = Groups()
    layouts = groups.layouts
    for name in graph.inputs:
        layouts[name] = None
    by_module: dict[str, Use] = {}  # first use of each module: shared layers tie
    opaque: set[str] = set()  # modules also used by an op that says nothing of channels
    for node in graph.nodes:
        op, attrs = resolve_op(node)
        types = [graph.type_of(v) for v in node.inputs]
        rule = op.channels(attrs, types)
        ins = [layouts.get(v) for v in node.inputs]
        if rule is None:
            opaque.add(node.module)
            for la in ins:
                groups.pin(la)
            layouts.update({v: None for v in node.outputs})
            continue
        carried = [ins[i] for i in rule.inputs if i < len(ins)]
        for i, la in enumerate(ins):  # inputs the rule does not name cannot carry channels
            if i not in rule.inputs and i not in rule.state_inputs:
                groups.pin(la)
        rank = types[0].rank if types else 0
        out_ranks = [graph.type_of(v).rank for v in node.outputs]
        if rule.kind == "make":
            source = carried[0] if carried else None
            if source is not None and source.axis != (rule.axis or 0) % max(rank, 1):
                groups.pin(source)
                source = None
            made = groups.new(int(getattr(attrs, rule.out_attr or "")))
            use = _maker(groups, by_module, Use(node, rule, source, made))
            out_axis = rule.out_axis if rule.out_axis is not None else (rule.axis or 0)
            copies = rule.out_copies or (1,) * len(node.outputs)
            for i in rule.state_inputs:  # an initial state holds the units themselves
                if i < len(ins):
                    state = Layout(out_axis % max(types[i].rank, 1), ((made, 1),))
                    groups.tie([ins[i], state])
            groups.uses.append(use)
            for v, r, c in zip(node.outputs, out_ranks, copies):
                layouts[v] = Layout(out_axis % max(r, 1), ((made, 1),) * c)
            continue
        elif rule.kind == "inner":  # units of its own; its inputs' channels are mixed
            for la in ins:
                groups.pin(la)
            heads = groups.new(int(getattr(attrs, rule.out_attr or "")))
            groups.uses.append(_maker(groups, by_module, Use(node, rule, None, heads)))
            out = None
        elif rule.kind == "join":
            out = _join(groups, carried, rule.axis)
        else:
            out = groups.tie(carried)
            if out is not None and (
                (rule.axis is not None and out.axis != rule.axis % rank)
                or out.axis in {m % rank for m in rule.mixes}
            ):
                groups.pin(out)
                out = None
            if rule.params or rule.count_attrs:
                use = Use(node, rule, out)
                first = by_module.setdefault(node.module, use)
                if first is not use:
                    out = groups.tie([first.layout, out])
                groups.uses.append(use)
            if out is not None and rule.repeat != 1:
                segments = tuple((g, r * rule.repeat) for g, r in out.segments)
                out = Layout(out.axis, segments)
            if out is not None and rule.out_axis is not None:
                out = Layout(rule.out_axis % max(out_ranks[0], 1), out.segments)
        for v in node.outputs:
            layouts[v] = out
    for _, value in graph.outputs:
        groups.pin(layouts.get(value))
    for use in groups.uses:  # its weights are read where the channels are unknown
        if use.node.module in opaque:
            groups.pin(use.layout)
            if use.made is not None:
                groups.pinned.add(groups.find(use.made))
    return groups


def _maker(groups: Groups, by_module: dict[str, Use], use: Use) -> Use:
    """`use`, after tying it to the first use of its module: a shared layer has one
    weight, so one set of units and one layout of the channels it reads."""
    first = by_module.setdefault(use.node.module, use)
    if first is not use:
        assert first.made is not None and use.made is not None
        groups.union(first.made, use.made)
        groups.tie([first.layout, use.layout])
    return use


def _join(groups: Groups, layouts: list[Layout | None], axis: int | None) -> Layout | None:
    """A concat: along the channel axis the segments follow each other; along any
    other axis the inputs must share one layout."""
    if any(la is None for la in layouts):
        for la in layouts:
            groups.pin(la)
        return None
    if all(la is not None and la.axis == axis for la in layouts):
        segments = tuple(s for la in layouts if la is not None for s in la.segments)
        return Layout(axis or 0, segments)
    return groups.tie(layouts)
