"""What a graph costs: learned parameters and multiply-accumulates, node by node.

Parameters of a shared layer count once (at its first use); MACs count every use.
MACs are the multiply-accumulates of one forward pass (FLOPs are 2 x MACs), from
each op's `flops` rule, so with symbolic input sizes they are formulas. The
summary (`dslnet.views.summary`) and the pass manager's report both count with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dslnet.core import symbolic
from dslnet.core.symbolic import Dim
from dslnet.core.types import TensorType
from dslnet.ir.graph import Graph, Node, Parameter
from dslnet.ir.oplookup import input_types, resolve_op


@dataclass(frozen=True)
class NodeCost:
    node: Node
    output_types: list[TensorType]
    params: int  # learned values first counted at this node (buffers not counted)
    macs: Dim


def node_costs(graph: Graph) -> list[NodeCost]:
    """The cost of every node, in graph order."""
    by_module: dict[str, list[Parameter]] = {}
    for param in graph.parameters.values():
        if not param.buffer:
            by_module.setdefault(param.module, []).append(param)
    counted: set[str] = set()
    costs = []
    for node in graph.nodes:
        op, attrs = resolve_op(node)
        outputs = [graph.type_of(v) for v in node.outputs]
        params = 0
        for param in by_module.get(node.module, ()):
            if param.name not in counted:
                counted.add(param.name)
                params += param.numel
        macs = op.flops(attrs, input_types(graph, node), outputs)
        costs.append(NodeCost(node, outputs, params, macs))
    return costs


def total_macs(costs: Sequence[NodeCost]) -> Dim:
    """The MACs of one forward pass, as a symbolic dimension."""
    total: Dim = 0
    for cost in costs:
        total = symbolic.add(total, cost.macs)
    return total


def top_block_params(costs: Sequence[NodeCost]) -> dict[str, int]:
    """Learned values of each block instance the network calls itself (not nested
    ones), in order of first use; an instance without parameters counts 0."""
    found: dict[str, int] = {}
    for cost in costs:
        if cost.node.chain:
            instance = cost.node.chain[0].instance
            found[instance] = found.get(instance, 0) + cost.params
    return found
