"""ONNX backend: a ModelProto built straight from the IR with `onnx.helper`.

Each IR node is lowered by its op's `onnx` facet through a small context object, so
this module knows no op by name. Value names follow the IR, parameters become
initializers named like the IR's (`res1.linear1.weight`), and the graph's inputs and
outputs keep the spec's names with symbolic dimensions as `dim_param`s (`N` stays
dynamic). The same graph and weights always give the same bytes.

With `functions=True` every block call becomes a call of an ONNX local function (one
function per distinct body, in the `dslnet.blocks` domain); parameters and constants
used inside are passed in as extra inputs, since functions hold no initializers.

Every node records the IR node it lowers, and every call node its block call, in its
`metadata_props` (`dslnet.backends.onnx_provenance`): the quantization stage reads
that map instead of relying on node names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dslnet.backends.onnx_provenance import (
    CALL_KEY,
    NODE_KEY,
    block_call,
    compose,
    ir_node,
    record,
    record_call_names,
    relative_call,
    relative_name,
    relative_path,
)
from dslnet.core.types import DType, TensorType
from dslnet.core.version import __version__
from dslnet.ir.graph import CallInfo, Graph, Node
from dslnet.ir.located import lowering_node
from dslnet.ir.oplookup import input_types, resolve_op
from dslnet.ir.weights import Array, WeightsSource, init_weights, load_weights

__all__ = ["DOMAIN", "MIN_OPSET", "emit_onnx", "ir_version_for", "run_onnx"]

DOMAIN = "dslnet.blocks"
"""The ONNX domain of the local functions made for blocks."""
MIN_OPSET = 15  # Shape with start/end (flatten) needs 15
PRODUCER = "dslnet"
_FUNCTIONS_MIN_IR = 8  # model-local functions arrived in IR version 8

_ELEM_TYPES: dict[DType, int] = {
    DType.float32: onnx.TensorProto.FLOAT,
    DType.float16: onnx.TensorProto.FLOAT16,
    DType.bfloat16: onnx.TensorProto.BFLOAT16,
    DType.float64: onnx.TensorProto.DOUBLE,
    DType.int8: onnx.TensorProto.INT8,
    DType.uint8: onnx.TensorProto.UINT8,
    DType.int16: onnx.TensorProto.INT16,
    DType.int32: onnx.TensorProto.INT32,
    DType.int64: onnx.TensorProto.INT64,
    DType.bool: onnx.TensorProto.BOOL,
}


def emit_onnx(
    graph: Graph,
    weights: WeightsSource | None = None,
    *,
    opset: int = 18,
    functions: bool = False,
    ort_fused: bool = False,
    seed: int = 0,
) -> onnx.ModelProto:
    """The ONNX model of `graph`.

    Args:
        graph: the IR of one network.
        weights: a state_dict-like mapping or a `.safetensors`/`.pt`/`.pth` path; None
            draws fresh values with `seed` (see `dslnet.ir.weights`).
        opset: the default-domain opset to target.
        functions: emit each block call as a call of an ONNX local function.
        ort_fused: use ONNX Runtime's fused contrib ops (domain com.microsoft) where an
            op has one, e.g. self-attention; faster under ORT, but only ORT runs it.
        seed: the seed for fresh weights.
    """
    model, arrays = _build(
        graph, weights, opset=opset, functions=functions, ort_fused=ort_fused, seed=seed
    )
    for name, array in arrays.items():
        _add_initializer(model.graph, name, array)
    return model


def emit_onnx_bytes(
    graph: Graph,
    weights: WeightsSource | None = None,
    *,
    opset: int = 18,
    functions: bool = False,
    ort_fused: bool = False,
    seed: int = 0,
) -> bytes:
    """The serialized model, as `emit_onnx(...).SerializeToString()` parses, made faster.

    Weights are written straight from their arrays into the protobuf wire format
    instead of being copied into TensorProtos and serialized again: for a model that
    is mostly weights this halves the time (what `dslnet compile --emit onnx` uses).
    """
    model, arrays = _build(
        graph, weights, opset=opset, functions=functions, ort_fused=ort_fused, seed=seed
    )
    graph_bytes = model.graph.SerializeToString()
    model.ClearField("graph")
    # Chunks joined once at the end: each weight's bytes are copied exactly once.
    chunks: list[bytes | memoryview] = []
    size = 0
    for name, array in arrays.items():
        header, data = _tensor_wire(name, array)
        prefix = bytearray()
        _wire_tag_len(prefix, 5, len(header) + len(data))  # GraphProto.initializer
        chunks += [bytes(prefix), header, data]
        size += len(prefix) + len(header) + len(data)
    head = bytearray(model.SerializeToString())
    _wire_tag_len(head, 7, len(graph_bytes) + size)  # ModelProto.graph
    return b"".join([bytes(head), graph_bytes, *chunks])


def _build(
    graph: Graph,
    weights: WeightsSource | None,
    *,
    opset: int,
    functions: bool,
    ort_fused: bool,
    seed: int,
) -> tuple[onnx.ModelProto, dict[str, Array]]:
    """The model without its initializers, and the initializer arrays by name."""
    _check_opset(opset)
    values = init_weights(graph, seed) if weights is None else load_weights(weights, graph)
    lowering = _Lowering(graph, values, ort_fused)
    lowering.lower()
    if functions:
        builder = _FunctionBuilder(lowering, opset)
        nodes, protos = builder.build(), builder.functions
    else:
        nodes, protos = [entry.proto for entry in lowering.entries], []
    return _model(lowering, nodes, protos, opset)


def _varint(buf: bytearray, value: int) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            buf.append(byte | 0x80)
        else:
            buf.append(byte)
            return


def _wire_tag_len(buf: bytearray, field: int, length: int) -> None:
    _varint(buf, field << 3 | 2)  # wire type 2: length-delimited
    _varint(buf, length)


def _wire_field(buf: bytearray, field: int, payload: bytes | bytearray | memoryview) -> None:
    _wire_tag_len(buf, field, len(payload))
    buf += payload


def _tensor_wire(name: str, array: Array) -> tuple[bytes, memoryview]:
    """A TensorProto (dims=1, data_type=2, name=8, raw_data=9) in wire format: the
    fields before the data, and the data itself (not copied)."""
    shape = array.shape  # ascontiguousarray would make a 0-d array 1-d
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    buf = bytearray()
    for dim in shape:
        _varint(buf, 1 << 3)
        _varint(buf, dim)
    _varint(buf, 2 << 3)
    _varint(buf, helper.np_dtype_to_tensor_dtype(data.dtype))
    _wire_field(buf, 8, name.encode("utf-8"))
    raw = memoryview(data.data).cast("B")
    _wire_tag_len(buf, 9, len(raw))
    return bytes(buf), raw


def run_onnx(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], providers: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Run `model` in ONNX Runtime (CPU unless `providers` says otherwise); outputs by name."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=providers or ["CPUExecutionProvider"]
    )
    names = [out.name for out in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))


def ir_version_for(opset: int) -> int:
    """The lowest IR version that carries `opset` (and local functions)."""
    needed = helper.find_min_ir_version_for([helper.make_opsetid("", opset)], True)
    return max(_FUNCTIONS_MIN_IR, int(needed))


def _check_opset(opset: int) -> None:
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset {opset} is not supported: use {MIN_OPSET} to {newest}")


# --- naming ---------------------------------------------------------------------------


def _unique(base: str, taken: set[str]) -> str:
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
        value: _unique(value, taken) if value in outputs and value not in direct else value
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

    def __init__(self, lowering: _Lowering, node: Node) -> None:
        self._lowering = lowering
        self._node = node
        self._read_weights = False  # constants made after reading weights are weights too
        names = lowering.value_names
        self.inputs: Sequence[str] = [names[v] for v in node.inputs]
        self.outputs: Sequence[str] = [names[v] for v in node.outputs]
        self.input_types: Sequence[TensorType] = input_types(lowering.graph, node)
        self.output_types: Sequence[TensorType] = [lowering.graph.type_of(v) for v in node.outputs]
        self.ort_fused = lowering.ort_fused

    def param(self, role: str) -> str:
        name = self._node.param_name(role)
        if name not in self._lowering.graph.parameters:
            raise KeyError(f"node '{self._node.name}' ({self._node.op}) has no parameter {name}")
        return name

    def param_array(self, role: str) -> Array:
        self._read_weights = True
        return self._lowering.weights[self.param(role)]

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


class _Lowering:
    """The flat lowering: every IR node's ONNX nodes, in graph order, with global names.

    Names made here remember the IR node they came from (`origin`), so a function body
    can rename them relative to its block call.
    """

    def __init__(self, graph: Graph, weights: Mapping[str, Array], ort_fused: bool) -> None:
        self.graph = graph
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
            name = _unique(f"{out}/Identity", self.node_names)
            self.entries.append(_Entry(helper.make_node("Identity", [source], [out], name), ()))

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
            name = _unique(f"{node.module}/{hint}", self.taken)
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
        name = _unique(f"{node.name}/{op_type}", taken)
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


# --- local functions for block calls --------------------------------------------------


class _Scope:
    """The names inside one function body: canonical, so equal blocks give equal bodies.

    IR values lose the call's value prefix (`res1.h` -> `h`), parameters and constants
    the module path (`res1.linear1.weight` -> `linear1.weight`), and names made by a
    lowering are rebuilt from their IR node's module (the same in every call).
    """

    def __init__(self, call: CallInfo, lowering: _Lowering, ir_nodes: Mapping[str, Node]) -> None:
        self._prefixes = (call.prefix, call.instance + ".")
        self._lowering = lowering
        self._call = call
        self._ir_nodes = ir_nodes
        self.values: dict[str, str] = {}  # outer name -> local name
        self.taken: set[str] = set()
        self.node_taken: set[str] = set()

    def strip(self, name: str) -> str:
        for prefix in self._prefixes:
            if name.startswith(prefix) and len(name) > len(prefix):
                return name[len(prefix) :]
        return name

    def bind(self, outer: str) -> str:
        found = self._lowering.origin.get(outer)
        if found is not None:
            base = self.strip(found[0].module) + found[1]
        else:
            base = self.strip(self._lowering.ir_names.get(outer, outer))
        self.values[outer] = _unique(base, self.taken)
        return self.values[outer]

    def node_name(self, outer: str) -> str:
        found = self._lowering.node_origin.get(outer)
        base = self.strip(found[0].module) + found[1] if found else self.strip(outer)
        return _unique(base, self.node_taken)

    def constant(self, outer: str, value: Array) -> onnx.NodeProto:
        """A Constant node defining an attribute-only constant inside the body."""
        local = self.bind(outer)
        name = _unique(local, self.node_taken)
        made = helper.make_node("Constant", [], [local], name, value=numpy_helper.from_array(value))
        maker = self._lowering.constant_makers[outer]
        record(made, NODE_KEY, relative_name(maker, self._call))
        return made

    def rename(self, proto: onnx.NodeProto) -> onnx.NodeProto:
        local = onnx.NodeProto()
        local.CopyFrom(proto)
        local.name = self.node_name(proto.name)
        local.input[:] = [self.values[name] if name else name for name in proto.input]
        local.output[:] = [self.values[name] if name else name for name in proto.output]
        # Provenance inside a body is relative to the call, like the body's names.
        node, nested = ir_node(proto), block_call(proto)
        if node is not None:
            record(local, NODE_KEY, relative_name(self._ir_nodes[node], self._call))
        if nested is not None:
            record(local, CALL_KEY, relative_call(nested, self._call))
        return local


class _FunctionBuilder:
    """Regroups the flat lowering into local functions, innermost calls first."""

    def __init__(self, lowering: _Lowering, opset: int) -> None:
        self._lowering = lowering
        self._opset = opset
        self.functions: list[onnx.FunctionProto] = []
        self._by_body: dict[bytes, str] = {}
        self._function_names: set[str] = set()
        self._done: set[int] = set()
        self._uses: dict[str, list[int]] = {}
        self._ir_nodes = {node.name: node for node in lowering.graph.nodes}
        for index, entry in enumerate(lowering.entries):
            for name in entry.proto.input:
                self._uses.setdefault(name, []).append(index)

    def build(self) -> list[onnx.NodeProto]:
        """The top-level nodes; `functions` holds the bodies afterwards."""
        return self._group(0, len(self._lowering.entries), 0)

    def _group(self, lo: int, hi: int, depth: int) -> list[onnx.NodeProto]:
        """Entries lo..hi at call depth `depth`: deeper runs become one call node each."""
        entries = self._lowering.entries
        nodes: list[onnx.NodeProto] = []
        i = lo
        while i < hi:
            path = entries[i].path
            if len(path) == depth:
                nodes.append(entries[i].proto)
                i += 1
                continue
            call_id, j = path[depth], i + 1
            while j < hi and len(entries[j].path) > depth and entries[j].path[depth] == call_id:
                j += 1
            if call_id in self._done:
                raise ValueError(f"the nodes of block call {call_id} are not contiguous")
            self._done.add(call_id)
            nodes.append(self._call(self._lowering.graph.calls[call_id], i, j, depth + 1))
            i = j
        return nodes

    def _escapes(self, name: str, lo: int, hi: int) -> bool:
        used_outside = any(not lo <= i < hi for i in self._uses.get(name, ()))
        return used_outside or name in self._lowering.direct_outputs

    def _call(self, call: CallInfo, lo: int, hi: int, depth: int) -> onnx.NodeProto:
        """The node calling the function for `call` (entries lo..hi), in outer names."""
        low = self._lowering
        body = self._group(lo, hi, depth)
        defined = dict.fromkeys(name for node in body for name in node.output if name)
        scope = _Scope(call, low, self._ir_nodes)
        outputs, call_outputs, passed = self._bind_outputs(call, scope, defined, lo, hi)
        inputs = [low.value_names[v] for v in call.inputs]
        formals = [_unique(name, scope.taken) for name in call.input_names]
        for formal, outer in zip(formals, inputs):
            scope.values.setdefault(outer, formal)  # a value given twice is the first formal
        for name in defined:
            if name not in scope.values:
                scope.bind(name)
        known = {*defined, *inputs}
        used = dict.fromkeys(n for node in body for n in node.input if n and n not in known)
        free = [name for name in used if name not in low.attr_constants]
        extras = [scope.bind(name) for name in free]

        nodes = [scope.constant(n, low.constants[n]) for n in used if n in low.attr_constants]
        nodes += [scope.rename(node) for node in body]
        for outer, local in passed:
            name = _unique(f"{local}/Identity", scope.node_taken)
            nodes.append(helper.make_node("Identity", [scope.values[outer]], [local], name))
        fname = self._function(call.block, formals + extras, outputs, nodes)
        node_name = _unique(call.prefix.rstrip("."), low.node_names)
        made = helper.make_node(fname, inputs + free, call_outputs, node_name, domain=DOMAIN)
        record(made, CALL_KEY, call.prefix.rstrip("."))
        if depth == 1:  # a top-level call node is the only one not shared by calls
            record_call_names(made, self._exceptions(call, lo, hi))
        return made

    def _exceptions(self, call: CallInfo, lo: int, hi: int) -> dict[str, str]:
        """The IR nodes of top-level `call` (entries lo..hi) whose names inlining would
        not compose from the call's path and their relative ones (a layer's later use)."""
        path = call.prefix.rstrip(".")
        calls = self._lowering.graph.calls
        found: dict[str, str] = {}
        for entry in self._lowering.entries[lo:hi]:
            name = ir_node(entry.proto)
            if name is not None:
                relative = relative_path(self._ir_nodes[name], [calls[i] for i in entry.path])
                if compose(path, relative) != name:
                    found[relative] = name
        return found

    def _bind_outputs(
        self, call: CallInfo, scope: _Scope, defined: Mapping[str, None], lo: int, hi: int
    ) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        """Local output names, the call node's output names, and outputs to copy.

        The block's outputs come first, then any other value used after the call.
        A value made in the body is named by its output; an input passed through, or a
        value given twice, is copied by an Identity, and the call's copy goes unused.
        """
        low = self._lowering
        outputs: list[tuple[str | None, str]] = [(o, low.value_names[v]) for o, v in call.outputs]
        declared = {v for _, v in outputs}
        outputs += [(None, v) for v in defined if v not in declared and self._escapes(v, lo, hi)]
        local_names, call_outputs, passed = [], [], []
        for name, outer in outputs:
            local = _unique(name or scope.strip(low.ir_names.get(outer, outer)), scope.taken)
            local_names.append(local)
            if outer in defined and outer not in scope.values:
                scope.values[outer] = local
                call_outputs.append(outer)
            else:
                passed.append((outer, local))
                call_outputs.append(_unique(call.prefix + local, low.taken))
        return local_names, call_outputs, passed

    def _function(
        self, block: str, inputs: list[str], outputs: list[str], nodes: list[onnx.NodeProto]
    ) -> str:
        """The name of the function with this body; made on first sight."""
        opsets = [helper.make_opsetid("", self._opset)]
        opsets += [helper.make_opsetid(d, 1) for d in _domains(nodes)]
        proto = helper.make_function(DOMAIN, "", inputs, outputs, nodes, opsets)
        key = proto.SerializeToString()
        if key not in self._by_body:
            name, k = block, 2
            while name in self._function_names:
                name, k = f"{block}_{k}", k + 1
            self._function_names.add(name)
            proto.name = name
            self.functions.append(proto)
            self._by_body[key] = name
        return self._by_body[key]


# --- the model ------------------------------------------------------------------------


def _domains(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """The non-default operator domains the nodes use (local functions, ORT's ops)."""
    return sorted({node.domain for node in nodes if node.domain not in ("", "ai.onnx")})


def _value_info(name: str, ttype: TensorType) -> onnx.ValueInfoProto:
    """int dims become dim_value, symbolic ones dim_param (their printed form)."""
    dims = [d if isinstance(d, int) else str(d) for d in ttype.shape]
    return helper.make_tensor_value_info(name, _ELEM_TYPES[ttype.dtype], dims)


def _model(
    lowering: _Lowering,
    nodes: list[onnx.NodeProto],
    functions: list[onnx.FunctionProto],
    opset: int,
) -> tuple[onnx.ModelProto, dict[str, Array]]:
    graph = lowering.graph
    inputs = [_value_info(name, graph.type_of(name)) for name in graph.inputs]
    outputs = [_value_info(out, graph.type_of(value)) for out, value in graph.outputs]
    boundary = {*graph.inputs, *(out for out, _ in graph.outputs)}
    value_info = [
        _value_info(name, graph.type_of(lowering.ir_names[name]))
        for node in nodes
        for name in node.output
        if name in lowering.ir_names and name not in boundary
    ]
    used = {name for node in nodes for name in node.input}
    constants = {k: v for k, v in lowering.constants.items() if k in used}
    # State no lowering reads (batchnorm's num_batches_tracked) is left out: ORT would
    # warn about each unused initializer at every session start.
    weights = {k: v for k, v in lowering.weights.items() if k in used}
    arrays = {**weights, **constants}
    opsets = [helper.make_opsetid("", opset)]
    domains = _domains([*nodes, *(n for f in functions for n in f.node)])
    if functions:
        domains = sorted({DOMAIN, *domains})
    opsets += [helper.make_opsetid(d, 1) for d in domains]
    # Built in place: make_graph/make_model would copy every weight twice more, and
    # weights are nearly all of the cost of emission.
    model = onnx.ModelProto(
        ir_version=ir_version_for(opset),
        producer_name=PRODUCER,
        producer_version=__version__,
        opset_import=opsets,
        functions=functions,
    )
    body = model.graph
    body.name = graph.name
    body.node.extend(nodes)
    body.input.extend(inputs)
    body.output.extend(outputs)
    body.value_info.extend(value_info)
    return model, arrays


def _add_initializer(body: onnx.GraphProto, name: str, array: Array) -> None:
    """A raw-data TensorProto written straight into the graph (one copy of the data)."""
    tensor = body.initializer.add()
    tensor.name = name
    tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.dims.extend(array.shape)
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    tensor.raw_data = data.tobytes()
