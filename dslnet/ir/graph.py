"""The IR: one flat graph of op nodes per network, in the style of torch.fx.

Nodes keep the module path that owns their parameters (two nodes with the
same `module` share weights: a `layer` used twice) and the chain of block
calls they were expanded through, so late errors still point at the spec.
The block hierarchy is kept beside the nodes in `modules`, for backends that
emit one class per block.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dslnet.core.diagnostics import Span
from dslnet.core.types import DType, TensorType

ScalarAttr = int | float | bool | str | None
AttrValue = Any  # ScalarAttr or (nested) tuples of them; dims may be symbolic


def _new_dict() -> dict[Any, Any]:
    # A Python function, not `dict`: pydantic reads a default factory's signature, and
    # a builtin's costs tokenizing its text signature (milliseconds at every start).
    return {}


def _new_list() -> list[Any]:
    return []


class CallFrame(BaseModel):
    """One block call on the way from a network to a node."""

    model_config = ConfigDict(frozen=True)

    block: str
    instance: str
    span: Span
    call_id: int = 0


class CallInfo(BaseModel):
    """One expansion of a block: which nodes form it, what flows in and out.

    The nodes of a call are contiguous in `Graph.nodes` and carry its id as the
    `call_id` of their innermost CallFrame; the network itself is call 0.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    parent: int
    block: str
    instance: str  # module path; two calls of one `layer` share it
    prefix: str  # value-name prefix of this call's values
    inputs: list[str]  # value names given, in the order of the block's `in`s
    input_names: list[str]  # the block's own names for them
    outputs: list[tuple[str, str]]  # (output name, value name)
    span: Span
    result_name: str | None = None  # what the caller named a single result


class Value(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type: TensorType


class Parameter(BaseModel):
    """A learned tensor, named `<module>.<role>` (e.g. `enc.linear1.weight`)."""

    model_config = ConfigDict(frozen=True)

    name: str
    module: str
    role: str
    shape: tuple[int, ...]
    dtype: DType = DType.float32
    buffer: bool = False  # saved state that is not learned (running statistics)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    op: str
    attrs: dict[str, AttrValue]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    module: str
    span: Span
    chain: tuple[CallFrame, ...] = ()
    init: str | None = None  # an init scheme (dslnet.ir.init) for this node's weights
    # From the spec's annotations: "prune" (ratio), "quantize" ("skip"), "freeze" (True).
    marks: dict[str, AttrValue] = Field(default_factory=_new_dict)

    def param_name(self, role: str) -> str:
        return f"{self.module}.{role}"


class ModuleInfo(BaseModel):
    """A block instance in the hierarchy (`path` is its dotted attribute path)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: str
    block: str
    args: dict[str, AttrValue]
    span: Span


class Graph(BaseModel):
    # Built on first validation: GraphBuilder makes graphs with model_construct, so
    # `dslnet check` never pays for this schema.
    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)

    name: str
    args: dict[str, AttrValue] = Field(default_factory=_new_dict)
    inputs: list[str] = Field(default_factory=_new_list)
    outputs: list[tuple[str, str]] = Field(default_factory=_new_list)  # (output name, value name)
    values: dict[str, Value] = Field(default_factory=_new_dict)
    nodes: list[Node] = Field(default_factory=_new_list)
    parameters: dict[str, Parameter] = Field(default_factory=_new_dict)
    modules: dict[str, ModuleInfo] = Field(default_factory=_new_dict)
    calls: dict[int, CallInfo] = Field(default_factory=_new_dict)
    span: Span | None = None

    def type_of(self, value: str) -> TensorType:
        return self.values[value].type

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def users(self) -> dict[str, list[Node]]:
        """The nodes reading each value, in node order, once per read (a node reading a
        value twice is there twice); every value has an entry, [] when nothing reads it.
        Graph outputs and block calls are not nodes: callers that count them add them."""
        found: dict[str, list[Node]] = {name: [] for name in self.values}
        for node in self.nodes:
            for name in node.inputs:
                found.setdefault(name, []).append(node)
        return found

    @property
    def num_parameters(self) -> int:
        """Learned values, counted once however often a layer is used (no buffers)."""
        return sum(p.numel for p in self.parameters.values() if not p.buffer)

    def to_networkx(self) -> Any:
        """A derived networkx DiGraph: op nodes, with an edge per value use."""
        import networkx as nx  # imported here: only graph views need it

        g = nx.DiGraph(name=self.name)
        for name in self.inputs:
            g.add_node(name, kind="input", type=str(self.type_of(name)))
        for node in self.nodes:
            g.add_node(node.name, kind="op", op=node.op, module=node.module)
        producer = self.producers()
        for node in self.nodes:
            for value in node.inputs:
                src = producer[value].name if value in producer else value
                g.add_edge(src, node.name, value=value, type=str(self.type_of(value)))
        for out_name, value in self.outputs:
            key = f"out:{out_name}"
            g.add_node(key, kind="output", type=str(self.type_of(value)))
            src = producer[value].name if value in producer else value
            g.add_edge(src, key, value=value, type=str(self.type_of(value)))
        return g
