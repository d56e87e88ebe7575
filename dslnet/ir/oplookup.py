"""A node's registered op, its validated attributes and its input types.

The lookups every pass, backend and counter starts from: the op registry is the
only source of what a node means, and a node's attributes are checked against
its op's schema each time they are read.
"""

from __future__ import annotations

from dslnet.core.types import TensorType
from dslnet.ir.graph import Graph, Node
from dslnet.ops import registry
from dslnet.ops.registry import OpAttrs, OpDef


def resolve_op(node: Node) -> tuple[OpDef, OpAttrs]:
    """The registered op of `node` and its validated attributes."""
    op = registry.get(node.op)
    if op is None:
        raise ValueError(f"node '{node.name}' uses op '{node.op}', which is not registered")
    return op, op.Attrs.model_validate(node.attrs, strict=False)


def input_types(graph: Graph, node: Node) -> list[TensorType]:
    """The IR types of a node's inputs."""
    return [graph.type_of(name) for name in node.inputs]
