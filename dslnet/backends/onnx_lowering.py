"""The flat ONNX lowering of a graph: every IR node's ONNX nodes, in graph order.

Each node is lowered by its op's `onnx` facet through `_NodeContext`, so nothing here
knows an op by name. Values keep the IR's names (renamed only where a spec output
needs the name), names made by a lowering are unique and remember the IR node they
came from, and equal constants of one module are stored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dslnet.backends.onnx_provenance import NODE_KEY, record
from dslnet.core.types import TensorType
from dslnet.ir.graph import Graph, Node
from dslnet.ir.located import lowering_node
from dslnet.ir.oplookup import input_types, resolve_op
from dslnet.ir.weights import Array

# --- naming ---------------------------------------------------------------------------


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_1`, `base_2`, ... : the first not in `taken` (which it joins)."""
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _value_names(graph: Graph) -> dict[str, str]:
    """ONNX names of the IR values: the IR's own, except a value whose name a spec
    output of another value needs (`y = tanh(h); out y = sigmoid(h)`: the IR calls
    the output's value `y_2`, so the first `y` is renamed and `y_2` copied to `y`)."""
    outputs = {out for out, _ in graph.outputs}
    direct = {value for out, value in graph.outputs if out == value}
    for name in graph.inputs:
        if name in outputs and name not in direct:
            raise ValueError(
                f"network '{graph.name}': output '{name}' has the name of an input; "
                "ONNX needs distinct names for a graph's inputs and outputs"
            )
    taken = set(graph.values) | set(graph.parameters) | outputs
    return {
        value: unique_name(value, taken) if value in outputs and value not in direct else value
        for value in graph.values
    }


# --- lowering one node at a time ------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """An emitted ONNX node and the block calls (ids, outermost first) it lies in."""

    proto: onnx.NodeProto
    path: tuple[int, ...]


class _NodeContext:
    """What an op's `onnx` lowering sees of the model being built (OnnxNodeContext)."""

    def __init__(self, lowering: Lowering, node: Node) -> None:
        self._lowering = lowering
        self._node = node
        self._read_weights = False  # constants made after reading weights are weights too
        names = lowering.value_names
        self.inputs: Sequence[str] = [names[v] for v in node.inputs]
        self.outputs: Sequence[str] = [names[v] for v in node.outputs]
        self.input_types: Sequence[TensorType] = input_types(lowering.graph, node)
        self.output_types: Sequence[TensorType] = [lowering.graph.type_of(v) for v in node.outputs]
        self.ort_fused = lowering.ort_fused
        self.opset = lowering.opset

    def param(self, role: str) -> str:
        name = self._node.param_name(role)
        if name not in self._lowering.graph.parameters:
            raise KeyError(f"node '{self._node.name}' ({self._node.op}) has no parameter {name}")
        return name

    def param_array(self, role: str) -> Array:
        self._read_weights = True
        return self._lowering.weights[self.param(role)]

    def scalar_input(self, index: int) -> float | None:
        maker = self._lowering.producers().get(self._node.inputs[index])
        if maker is None:
            return None
        op, attrs = resolve_op(maker)
        return op.scalar_value(attrs)

    def add_initializer(self, hint: str, value: Array) -> str:
        return self._lowering.add_constant(self._node, hint, value, self._read_weights)

    def add_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int | None = None,
        **attrs: Any,
    ) -> list[str]:
        return self._lowering.add_node(self._node, op_type, inputs, outputs, attrs)


class Lowering:
    """The flat lowering: every IR node's ONNX nodes, in graph order, with global names.

    Names made here remember the IR node they came from (`origin`), so a function body
    can rename them relative to its block call.
    """

    def __init__(
        self, graph: Graph, weights: Mapping[str, Array], ort_fused: bool, opset: int = 18
    ) -> None:
        self.graph = graph
        self.opset = opset
        self.weights = weights
        self.ort_fused = ort_fused
        self.value_names = _value_names(graph)
        self.ir_names = {onnx_name: ir for ir, onnx_name in self.value_names.items()}
        clash = sorted(set(graph.parameters) & set(self.ir_names))
        if clash:
            raise ValueError(f"parameter '{clash[0]}' has the name of a value")
        self.taken: set[str] = {*self.ir_names, *graph.parameters, *(o for o, _ in graph.outputs)}
        self.node_names: set[str] = set()
        self.constants: dict[str, Array] = {}
        self.attr_constants: set[str] = set()  # constants that depend on attributes only
        self.constant_makers: dict[str, Node] = {}  # constant -> the IR node that made it
        self.origin: dict[str, tuple[Node, str]] = {}  # made value name -> (IR node, suffix)
        self.node_origin: dict[str, tuple[Node, str]] = {}  # the same for node names
        self.entries: list[_Entry] = []
        self.direct_outputs: list[str] = []  # values that are graph outputs under their name
        self._known: dict[tuple[Any, ...], str] = {}
        self._path: tuple[int, ...] = ()
        self._producers: dict[str, Node] | None = None

    def producers(self) -> dict[str, Node]:
        """The IR node making each value (built at the first lowering that asks)."""
        if self._producers is None:
            self._producers = self.graph.producers()
        return self._producers

    def lower(self) -> None:
        """Lower every node, then connect the spec's outputs."""
        for node in self.graph.nodes:
            self._path = tuple(frame.call_id for frame in node.chain)
            with lowering_node(node, "ONNX"):  # an error, located at the node
                op, attrs = resolve_op(node)
                op.onnx(attrs, _NodeContext(self, node))
        self._path = ()
        for out, value in self.graph.outputs:
            source = self.value_names[value]
            if out == source and out not in self.direct_outputs:
                self.direct_outputs.append(out)
                continue
            name = unique_name(f"{out}/Identity", self.node_names)
            self.entries.append(_Entry(helper.make_node("Identity", [source], [out], name), ()))
        self._drop_unread_constants()

    def _drop_unread_constants(self) -> None:
        """Constant nodes whose value no node reads (the exponent of `x ** 0.5`, which
        is lowered as a root) are left out: ONNX Runtime would warn of each one at every
        session start."""
        read = {name for entry in self.entries for name in entry.proto.input}
        read.update(self.direct_outputs)
        self.entries = [
            entry
            for entry in self.entries
            if entry.proto.op_type != "Constant" or read.intersection(entry.proto.output)
        ]

    def add_node(
        self,
        node: Node,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int | None,
        attrs: Mapping[str, Any],
    ) -> list[str]:
        """Append an ONNX node for IR `node`; fresh output names when none are given
        (one, or as many as an int asks for)."""
        if outputs is None or isinstance(outputs, int):
            count = 1 if outputs is None else outputs
            outputs = [self._made(node, op_type, self.taken, self.origin) for _ in range(count)]
        name = self._made(node, op_type, self.node_names, self.node_origin)
        converted = {key: _attribute(value) for key, value in attrs.items()}
        proto = helper.make_node(op_type, list(inputs), list(outputs), name, **converted)
        record(proto, NODE_KEY, node.name)
        self.entries.append(_Entry(proto, self._path))
        return list(outputs)

    def add_constant(self, node: Node, hint: str, value: Array, from_weights: bool) -> str:
        """An initializer made by a lowering; equal ones of one module are stored once."""
        hint = hint.removeprefix(node.module + ".")
        array = np.asarray(value, order="C")
        digest = hashlib.sha256(array.tobytes()).hexdigest()
        key = (node.module, hint, from_weights, array.dtype.str, array.shape, digest)
        if key not in self._known:
            name = unique_name(f"{node.module}/{hint}", self.taken)
            self.constants[name] = array
            self.constant_makers[name] = node
            if not from_weights:
                self.attr_constants.add(name)
            self._known[key] = name
        return self._known[key]

    @staticmethod
    def _made(
        node: Node, op_type: str, taken: set[str], origin: dict[str, tuple[Node, str]]
    ) -> str:
        name = unique_name(f"{node.name}/{op_type}", taken)
        origin[name] = (node, name[len(node.name) :])
        return name


def _attribute(value: Any) -> Any:
    """An attribute value `helper.make_node` accepts (arrays become tensors)."""
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_attribute(v) for v in value]
    return value
