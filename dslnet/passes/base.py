"""The pass contract: a graph and its weights in, a new graph and weights out.

A pass never edits what it is given: it returns a new `Model` and whether it
changed anything (the torch.fx / onnx-ir `PassResult`). The manager re-runs
shape inference and the verifier after each pass, so a pass that leaves types
or parameter shapes inconsistent fails at once, naming the pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dslnet.core.types import DType
from dslnet.ir.graph import Graph, Node, Parameter, Value
from dslnet.ir.located import LocatedError
from dslnet.ir.oplookup import resolve_op

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Model:
    """One network's IR and the values of its parameters and buffers (by name)."""

    graph: Graph
    weights: Mapping[str, Array]


@dataclass(frozen=True)
class PassResult:
    model: Model
    modified: bool
    notes: list[str] = field(default_factory=list)  # what the pass did, for the report


class Pass(Protocol):
    name: str

    def run(self, model: Model) -> PassResult: ...


class PassError(LocatedError):
    """A pass request that cannot be carried out (bad ratio, missing weights...): the
    user's to fix. Given the `node` it is about, it is reported there, at the layer's
    span with its call chain (`str()` is then the located report; `message` the text)."""


def reinfer(graph: Graph) -> Graph:
    """The graph with every value type and parameter shape recomputed from its nodes.

    Passes edit nodes (attributes, inputs) and leave types to this: the op
    registry's rules are the only source of shapes.
    """
    values = {name: graph.values[name] for name in graph.inputs}
    parameters: dict[str, Parameter] = {}
    for node in graph.nodes:
        op, attrs = resolve_op(node)
        types = [values[v].type for v in node.inputs]
        for name, ttype in zip(node.outputs, op.infer(attrs, types)):
            values[name] = Value(name=name, type=ttype)
        facets: list[tuple[str, tuple[int, ...], DType | None]] = [
            (role, shape, None) for role, shape in op.params(attrs, types).items()
        ]
        facets += [
            (role, shape, dtype) for role, (shape, dtype) in op.buffers(attrs, types).items()
        ]
        for role, shape, dtype in facets:
            name = node.param_name(role)
            old = graph.parameters.get(name)
            parameters.setdefault(
                name,
                Parameter(
                    name=name,
                    module=node.module,
                    role=role,
                    shape=shape,
                    dtype=dtype or (old.dtype if old else Parameter.model_fields["dtype"].default),
                    buffer=dtype is not None,
                ),
            )
    return graph.model_copy(update={"values": values, "parameters": parameters})


def check_weights(graph: Graph, weights: Mapping[str, Array]) -> None:
    """Every parameter has a value of its shape, and there is nothing else."""
    missing = [name for name in graph.parameters if name not in weights]
    extra = [name for name in weights if name not in graph.parameters]
    wrong = [
        f"{name}: {list(np.shape(weights[name]))} for {list(p.shape)}"
        for name, p in graph.parameters.items()
        if name in weights and tuple(np.shape(weights[name])) != p.shape
    ]
    if missing or extra or wrong:
        raise AssertionError(f"weights do not fit: missing {missing}, extra {extra}, {wrong}")


def with_nodes(graph: Graph, nodes: list[Node]) -> Graph:
    """The graph with a new node list, its types and parameters re-inferred."""
    return reinfer(graph.model_copy(update={"nodes": nodes}))


def replace_uses(graph: Graph, renames: Mapping[str, str]) -> Graph:
    """Every read of a value `old` in `renames` (by nodes, outputs and block calls)
    reads `renames[old]` instead, followed through chains (a -> b -> c reads c)."""

    def swap(name: str) -> str:
        while name in renames:
            name = renames[name]
        return name

    nodes = [
        n.model_copy(update={"inputs": tuple(swap(v) for v in n.inputs)})
        if any(v in renames for v in n.inputs)
        else n
        for n in graph.nodes
    ]
    calls = {
        cid: call.model_copy(
            update={
                "inputs": [swap(v) for v in call.inputs],
                "outputs": [(o, swap(v)) for o, v in call.outputs],
            }
        )
        for cid, call in graph.calls.items()
    }
    outputs = [(o, swap(v)) for o, v in graph.outputs]
    return graph.model_copy(update={"nodes": nodes, "calls": calls, "outputs": outputs})
