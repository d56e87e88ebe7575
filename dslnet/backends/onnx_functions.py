"""Local functions for block calls: the flat lowering regrouped, one function per body.

`FunctionBuilder` turns each run of nodes of one block call into a call node of an
ONNX local function in the `dslnet.blocks` domain, innermost calls first; `_Scope`
gives a body canonical names, so equal blocks share one function. Parameters and
constants used inside are passed in as extra inputs (functions hold no
initializers), and provenance inside a body is relative to its call.
"""

from __future__ import annotations

from collections.abc import Mapping

import onnx
from onnx import helper, numpy_helper

from dslnet.backends.onnx_lowering import Lowering, unique_name
from dslnet.backends.onnx_model import DOMAIN, extra_domains
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
from dslnet.ir.graph import CallInfo, Node
from dslnet.ir.weights import Array


class _Scope:
    """The names inside one function body: canonical, so equal blocks give equal bodies.

    IR values lose the call's value prefix (`res1.h` -> `h`), parameters and constants
    the module path (`res1.linear1.weight` -> `linear1.weight`), and names made by a
    lowering are rebuilt from their IR node's module (the same in every call).
    """

    def __init__(self, call: CallInfo, lowering: Lowering, ir_nodes: Mapping[str, Node]) -> None:
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
        self.values[outer] = unique_name(base, self.taken)
        return self.values[outer]

    def node_name(self, outer: str) -> str:
        found = self._lowering.node_origin.get(outer)
        base = self.strip(found[0].module) + found[1] if found else self.strip(outer)
        return unique_name(base, self.node_taken)

    def constant(self, outer: str, value: Array) -> onnx.NodeProto:
        """A Constant node defining an attribute-only constant inside the body."""
        local = self.bind(outer)
        name = unique_name(local, self.node_taken)
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


class FunctionBuilder:
    """Regroups the flat lowering into local functions, innermost calls first."""

    def __init__(self, lowering: Lowering, opset: int) -> None:
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
        formals = [unique_name(name, scope.taken) for name in call.input_names]
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
            name = unique_name(f"{local}/Identity", scope.node_taken)
            nodes.append(helper.make_node("Identity", [scope.values[outer]], [local], name))
        fname = self._function(call.block, formals + extras, outputs, nodes)
        node_name = unique_name(call.prefix.rstrip("."), low.node_names)
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
            local = unique_name(name or scope.strip(low.ir_names.get(outer, outer)), scope.taken)
            local_names.append(local)
            if outer in defined and outer not in scope.values:
                scope.values[outer] = local
                call_outputs.append(outer)
            else:
                passed.append((outer, local))
                call_outputs.append(unique_name(call.prefix + local, low.taken))
        return local_names, call_outputs, passed

    def _function(
        self, block: str, inputs: list[str], outputs: list[str], nodes: list[onnx.NodeProto]
    ) -> str:
        """The name of the function with this body; made on first sight."""
        opsets = [helper.make_opsetid("", self._opset)]
        opsets += [helper.make_opsetid(d, 1) for d in extra_domains(nodes)]
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
