"""Which block instances `dslnet graph` opens as clusters and which it folds into one
box: --depth, --expand, and without either a choice by size (`BOX_BUDGET`).

Separate from dslnet.views.graphview because it decides only what is open, from the call
chains of a graph's nodes and the options; what the boxes and clusters of the picture
then say is dslnet.views.graphview's part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from dslnet.core.diagnostics import did_you_mean
from dslnet.ir.graph import CallFrame, Graph, Node

Direction = Literal["TB", "LR"]

# Without --depth or --expand a picture is kept to about this many boxes (a page or
# two, each label legible): past it, repeated blocks fold (see `_opened_by_size`).
BOX_BUDGET = 40


class ViewError(ValueError):
    """Options that do not fit the graph (an --expand name no block has)."""


@dataclass(frozen=True)
class ViewOptions:
    """What to draw.

    depth: open block instances nested at most this deep (1: the network's own
    blocks) and fold deeper ones into boxes; expand: open only these block types or
    instance paths (and the instances holding them); neither: chosen by size.
    """

    depth: int | None = None
    expand: tuple[str, ...] = ()
    direction: Direction = "TB"


@dataclass(frozen=True)
class BlockCalls:
    """The block calls of a graph, indexed for folding and sharing."""

    calls_by_instance: dict[str, list[int]]
    block_of: dict[str, str]  # instance path -> block name, in order of first use
    holders: frozenset[str]  # instances with block calls inside

    @staticmethod
    def of(graph: Graph) -> BlockCalls:
        calls: dict[str, dict[int, None]] = {}  # dicts as ordered sets
        block_of: dict[str, str] = {}
        holders: set[str] = set()
        for node in graph.nodes:
            holders.update(frame.instance for frame in node.chain[:-1])
            for frame in node.chain:
                calls.setdefault(frame.instance, {})[frame.call_id] = None
                block_of[frame.instance] = frame.block
        by_instance = {instance: list(ids) for instance, ids in calls.items()}
        return BlockCalls(by_instance, block_of, frozenset(holders))

    def runs(self, instance: str) -> int:
        """How often an instance runs ('' is the network: once)."""
        return len(self.calls_by_instance[instance]) if instance else 1


def open_instances(graph: Graph, options: ViewOptions) -> frozenset[str]:
    """The instance paths drawn as clusters; every other instance is one box."""
    if options.expand:
        return _opened_by_name(graph, options.expand)
    if options.depth is not None:
        if options.depth < 0:
            raise ViewError(f"--depth must be 0 or more, got {options.depth}")
        return _opened_to_depth(graph, options.depth)
    return _opened_by_size(graph)


def _opened_to_depth(graph: Graph, depth: int) -> frozenset[str]:
    return frozenset(frame.instance for node in graph.nodes for frame in node.chain[:depth])


def expandable(graph: Graph) -> set[str]:
    """What --expand takes for `graph`: its block names and instance paths."""
    calls = BlockCalls.of(graph)
    return set(calls.block_of) | set(calls.block_of.values())


def check_expand(graphs: Sequence[Graph], names: Sequence[str]) -> None:
    """ViewError for a name that none of `graphs` has as a block or an instance."""
    known = set().union(*(expandable(g) for g in graphs))
    blocks = {f.block for g in graphs for node in g.nodes for f in node.chain}
    for name in names:
        if name not in known:
            hint = did_you_mean(name, sorted(known))
            where = " or ".join(f"'{g.name}'" for g in graphs)
            raise ViewError(
                f"--expand {name}: no block or instance '{name}' in {where}{hint} "
                f"(blocks: {', '.join(sorted(blocks)) or 'none'})"
            )


def _opened_by_name(graph: Graph, names: Sequence[str]) -> frozenset[str]:
    """The named instances or block types, and every instance that holds one."""
    check_expand([graph], names)
    wanted = set(names)
    opened: set[str] = set()
    for node in graph.nodes:
        last = max(
            (i for i, f in enumerate(node.chain) if f.instance in wanted or f.block in wanted),
            default=-1,
        )
        opened.update(f.instance for f in node.chain[: last + 1])
    return frozenset(opened)


def _opened_by_size(graph: Graph) -> frozenset[str]:
    """The most open of these that fits BOX_BUDGET: everything; the blocks that hold
    blocks, and the first instance of each other block type (an example of what its
    folded instances hold); the first instance of every block type; that to a depth."""
    calls = BlockCalls.of(graph)
    everything = frozenset(calls.block_of)
    examples = _first_of_each_type(calls, everything)
    candidates = [
        everything,
        calls.holders | _first_of_each_type(calls, everything - calls.holders),
        examples,
    ]
    deepest = max((len(node.chain) for node in graph.nodes), default=0)
    candidates += [examples & _opened_to_depth(graph, d) for d in range(deepest - 1, -1, -1)]
    return next((c for c in candidates if box_count(graph, c) <= BOX_BUDGET), frozenset())


def _first_of_each_type(calls: BlockCalls, instances: frozenset[str]) -> frozenset[str]:
    first: dict[str, str] = {}
    for instance, block in calls.block_of.items():  # in order of first use
        if instance in instances:
            first.setdefault(block, instance)
    return frozenset(first.values())


def box_count(graph: Graph, opened: frozenset[str]) -> int:
    """How many boxes (inputs, outputs, layers, folded blocks) a picture has."""
    drawn = {representative(node, opened)[0] for node in graph.nodes}
    return len(graph.inputs) + len(graph.outputs) + len(drawn)


def representative(node: Node, opened: frozenset[str]) -> tuple[str, CallFrame | None]:
    """The drawn box standing for `node`: its folded block (the outermost closed
    instance it is in), else the layer itself, keyed by module so uses of a shared
    layer meet in one box."""
    for frame in node.chain:
        if frame.instance not in opened:
            return f"block:{frame.instance}", frame
    return f"layer:{node.module}", None
