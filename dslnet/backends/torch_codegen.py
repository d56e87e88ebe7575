"""PyTorch backend: readable Python source, one nn.Module class per block.

The source imports only torch. `build_module` executes that same source, so
what runs is what a user reads. Forward methods hold no shape logic: every
size was decided at compile time and is written into the constructors.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from dslnet.backends.torch_exec import execute_source
from dslnet.backends.torch_init import torch_lines
from dslnet.backends.torch_names import ClassRequest, class_identifier, class_names, identifier
from dslnet.core.literals import format_value
from dslnet.core.types import shape_str
from dslnet.ir.graph import CallInfo, Graph, Node
from dslnet.ir.located import lowering_node
from dslnet.ir.names import attribute_variant, is_attribute_name
from dslnet.ops import registry


@dataclass
class _Call:
    """A block call (or the network, id 0) with its direct nodes and sub-calls, in order."""

    info: CallInfo | None
    items: list[Node | _Call] = field(default_factory=list)


def _call_tree(graph: Graph) -> _Call:
    root = _Call(None)
    calls: dict[int, _Call] = {0: root}
    for node in graph.nodes:
        parent = root
        for frame in node.chain:
            call = calls.get(frame.call_id)
            if call is None:
                call = calls[frame.call_id] = _Call(graph.calls[frame.call_id])
                parent.items.append(call)
            parent = call
        parent.items.append(node)
    return root


class _Scope:
    """Local names of one forward method: unique, readable identifiers that hide none
    of the module's globals (`reserved`: the ops' helper classes and functions)."""

    def __init__(self, reserved: set[str]) -> None:
        self.names: dict[str, str] = {}
        self.used: set[str] = set(reserved)

    def bind(self, value: str, wanted: str) -> str:
        base = identifier(wanted)
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        self.names[value] = name
        return name


@dataclass(frozen=True)
class _Instantiate:
    """`self.<attr> = <class>()` in a constructor: the class is an index into the
    planned classes, its name decided once every class is known."""

    attr: str
    class_index: int


@dataclass
class _ClassPlan:
    """One class of the source before it is named: what it would be called, its
    docstring and body (constructor lines, forward lines)."""

    request: ClassRequest
    doc: str
    init: list[str | _Instantiate]
    forward: list[str]


class TorchCodegen:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.plans: list[_ClassPlan] = []  # dependencies first
        self.plan_of_body: dict[tuple[object, ...], int] = {}  # identical bodies, one class
        self.reserved: set[str] = set()
        # Values of ops written where they are used (a literal), not bound to a local.
        self.constants = {
            out: node for node in graph.nodes if _inlined(node) for out in node.outputs
        }
        # Values something reads; other outputs of a multi-output op are bound to `_`.
        self.read = {v for v, users in graph.users().items() if users}
        self.read |= {v for _, v in graph.outputs}
        self.read |= {v for call in graph.calls.values() for _, v in call.outputs}

    def generate(self, header: str = "") -> str:
        helpers = sorted(
            {
                part.strip()
                for node in self.graph.nodes
                for part in self.helpers_of(node)
                if part.strip()
            }
        )
        # Block classes and locals must not take the names of the ops' helpers.
        self.reserved = {m for h in helpers for m in re.findall(r"^(?:class|def) (\w+)", h, re.M)}
        self.plan_class(_call_tree(self.graph), class_identifier(self.graph.name))
        names = class_names([plan.request for plan in self.plans], self.reserved)
        classes = [_class_source(plan, name, names) for plan, name in zip(self.plans, names)]
        uses_f = any("F." in src for src in classes) or any("F." in h for h in helpers)
        lines = []
        if header:
            lines += [docstring(header), ""]
        lines += ["import torch", "from torch import nn"]
        if uses_f:
            lines.append("import torch.nn.functional as F")
        for source in [*helpers, *classes]:
            lines += ["", "", source]
        return "\n".join(lines) + "\n"

    def helpers_of(self, node: Node) -> tuple[str, ...]:
        with lowering_node(node, "PyTorch"):
            op = registry.get(node.op)
            assert op is not None
            attrs = op.Attrs.model_validate(node.attrs, strict=False)
            return op.torch_helpers_for(attrs, [self.graph.type_of(v) for v in node.inputs])

    # --- classes ---------------------------------------------------------------------

    def plan_class(self, call: _Call, wanted: str) -> int:
        """Plan the class for `call` (its sub-calls' classes first); identical bodies
        share one class. Returns the class's index in `self.plans`."""
        init, forward = self.class_body(call)
        # Line by line, a sub-call's class by index: bodies equal exactly when their
        # source would be, whatever names the classes get.
        key = tuple(
            line
            for item in [*init, "", *forward]
            for line in (item.split("\n") if isinstance(item, str) else [item])
        )
        if key in self.plan_of_body:
            return self.plan_of_body[key]
        args = None
        if call.info is not None and call.info.instance in self.graph.modules:
            args = self.graph.modules[call.info.instance].args
        plan = _ClassPlan(ClassRequest(wanted, args), self.class_doc(call), init, forward)
        self.plans.append(plan)
        self.plan_of_body[key] = len(self.plans) - 1
        return len(self.plans) - 1

    def class_doc(self, call: _Call) -> str:
        if call.info is None:
            args = ", ".join(f"{k}={format_value(v)}" for k, v in self.graph.args.items())
            return f"{self.graph.name}({args})"
        module = self.graph.modules.get(call.info.instance)
        if module is None:
            return ""
        args = ", ".join(f"{k}={format_value(v)}" for k, v in module.args.items())
        return f"{module.block}({args})"

    def class_body(self, call: _Call) -> tuple[list[str | _Instantiate], list[str]]:
        graph = self.graph
        prefix = call.info.prefix if call.info else ""
        owner = call.info.instance + "." if call.info else ""
        scope = _Scope(self.reserved)
        init: list[str | _Instantiate] = [
            "    def __init__(self) -> None:",
            "        super().__init__()",
        ]
        made: dict[str, str] = {}  # module path below this class's -> its attribute
        if call.info is None:
            params = [(v, v) for v in graph.inputs]
        else:
            params = list(zip(call.info.inputs, call.info.input_names))
        args = []
        for value, wanted in params:
            if value in scope.names:  # the same tensor given twice
                continue
            args.append(f"{scope.bind(value, wanted)}: torch.Tensor")
        body: list[str] = []
        for item in call.items:
            if isinstance(item, _Call):
                assert item.info is not None
                attr, new = _attribute(made, item.info.instance[len(owner) :])
                if new:
                    index = self.plan_class(item, class_identifier(item.info.block))
                    init.append(_Instantiate(attr, index))
                # A tensor given twice is one parameter of the callee (see class_body).
                ins = ", ".join(self.ref(scope, v) for v in dict.fromkeys(item.info.inputs))
                named = item.info.result_name
                # An output that is a value the caller has (an input passed through) keeps
                # its name: the callee returns that same tensor.
                targets = [
                    "_"
                    if v in scope.names or v in self.constants
                    else scope.bind(v, named or v[len(item.info.prefix) :])
                    for _, v in item.info.outputs
                ]
                types = ", ".join(shape_str(graph.type_of(v).shape) for _, v in item.info.outputs)
                body.append(
                    wrap_statement(
                        f"        {', '.join(targets)} = ", f"self.{attr}({ins})", f"  # {types}"
                    )
                )
                continue
            if _inlined(item):
                continue  # written where used
            with lowering_node(item, "PyTorch"):  # an error, located at the node
                body.append(self.node_line(item, scope, owner, prefix, made, init))
        outs = self.outputs(call)
        returns = ", ".join(self.ref(scope, v) for v in outs)
        ret_type = (
            "torch.Tensor"
            if len(outs) == 1
            else "tuple[" + ", ".join(["torch.Tensor"] * len(outs)) + "]"
        )
        forward = _signature("forward", ["self", *args], ret_type)
        forward += [*body, f"        return {returns}"]
        return init, forward

    def outputs(self, call: _Call) -> list[str]:
        if call.info is None:
            return [v for _, v in self.graph.outputs]
        return [v for _, v in call.info.outputs]

    def node_line(
        self,
        node: Node,
        scope: _Scope,
        owner: str,
        prefix: str,
        made: dict[str, str],
        init: list[str | _Instantiate],
    ) -> str:
        graph = self.graph
        op = registry.get(node.op)
        assert op is not None
        attrs = op.Attrs.model_validate(node.attrs, strict=False)
        in_types = [graph.type_of(v) for v in node.inputs]
        args = [self.ref(scope, v) for v in node.inputs]
        ctor = op.torch_module(attrs, in_types)
        if ctor is not None:
            attr, new = _attribute(made, node.module[len(owner) :])
            if new:
                init.append(f"        self.{attr} = {ctor}")
                if node.init:
                    params = op.params(attrs, in_types)
                    init += ["        " + line for line in torch_lines(node.init, attr, params, op)]
                if node.marks.get("freeze"):
                    init.append(f"        self.{attr}.requires_grad_(False)  # @freeze")
            expr = op.torch_call(attrs, f"self.{attr}", args, in_types)
        else:
            expr = op.torch_expr(attrs, args, in_types)
        targets = [
            scope.bind(v, v[len(prefix) :] if v.startswith(prefix) else v)
            if v in self.read or len(node.outputs) == 1
            else "_"
            for v in node.outputs
        ]
        types = ", ".join(shape_str(graph.type_of(v).shape) for v in node.outputs)
        return wrap_statement(
            f"        {op.torch_targets(attrs, targets)} = ", expr, f"  # {types}"
        )

    def ref(self, scope: _Scope, value: str) -> str:
        if value in self.constants:
            node = self.constants[value]
            op = registry.get(node.op)
            assert op is not None
            return op.torch_expr(op.Attrs.model_validate(node.attrs, strict=False), [], [])
        return scope.names[value]


def _inlined(node: Node) -> bool:
    """Whether the op's torch form is written at each use (OpDef.torch_inline)."""
    op = registry.get(node.op)
    return op is not None and op.torch_inline


def _class_source(plan: _ClassPlan, name: str, names: list[str]) -> str:
    """The source of class `name`, `names` holding every planned class's name."""
    init = [
        f"        self.{line.attr} = {names[line.class_index]}()"
        if isinstance(line, _Instantiate)
        else line
        for line in plan.init
    ]
    doc = f"    {docstring(plan.doc)}\n\n" if plan.doc else ""
    return f"class {name}(nn.Module):\n" + doc + "\n".join([*init, "", *plan.forward])


def _attribute(made: dict[str, str], path: str) -> tuple[str, bool]:
    """The attribute holding the module at `path` (below the class's own), and whether
    it is new. A path segment from the IR is an attribute name already, so the module's
    state_dict keys are the IR's parameter names (dslnet.ir.names); anything else is
    made one, distinct from the class's other attributes."""
    if path in made:
        return made[path], False
    taken = set(made.values())
    name = path if is_attribute_name(path) else identifier(path)
    if name in taken or not is_attribute_name(name):
        name = attribute_variant(name, taken)
    made[path] = name
    return name, True


def docstring(text: str) -> str:
    """`text` as a one-line triple-quoted docstring that reads back as `text`, whatever
    it holds: backslashes, control characters (NUL, newlines) and quotes are escaped
    where they could end the string early or change what it says."""
    out: list[str] = []
    for i, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char == '"' and (i + 1 == len(text) or text[i + 1] == '"'):
            out.append('\\"')  # no run of three, nor one against the closing quotes
        elif not char.isprintable():
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return '"""' + "".join(out) + '"""'


def wrap_statement(head: str, expr: str, comment: str, width: int = 100) -> str:
    """`head + expr + comment`, with a call's arguments moved onto indented lines when
    the code would pass `width` columns (as a formatter would)."""
    line = head + expr + comment
    open_at = expr.find("(")
    if len(head + expr) <= width or open_at < 0:
        return line  # a long shape comment alone is not worth breaking the code for
    depth, parts, start, close_at = 0, [], open_at + 1, -1
    for i in range(open_at, len(expr)):
        char = expr[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                close_at = i
                break
        elif char == "," and depth == 1:
            parts.append(expr[start:i].strip())
            start = i + 1
    if close_at < 0:
        return line
    parts.append(expr[start:close_at].strip())
    indent = " " * (len(head) - len(head.lstrip()) + 4)
    first, last = head + expr[: open_at + 1], indent[:-4] + expr[close_at:] + comment
    joined = indent + ", ".join(parts)
    if len(joined) <= width:
        return "\n".join([first, joined, last])
    return "\n".join([first, *(f"{indent}{p}," for p in parts), last])


def _signature(name: str, params: list[str], returns: str) -> list[str]:
    """`def name(params) -> returns:` wrapped as a formatter would past 100 columns."""
    one_line = f"    def {name}({', '.join(params)}) -> {returns}:"
    if len(one_line) <= 100:
        return [one_line]
    inner = f"        {', '.join(params)}"
    if len(inner) <= 100:
        return [f"    def {name}(", inner, f"    ) -> {returns}:"]
    return [f"    def {name}(", *(f"        {p}," for p in params), f"    ) -> {returns}:"]


def generate_torch(graph: Graph, source_file: str | None = None) -> str:
    """Standalone Python source for `graph`: imports torch only."""
    where = f" from {os.path.basename(source_file)}" if source_file else ""
    header = f"{graph.name}: generated by dslnet{where}. Edit the spec, not this file."
    return TorchCodegen(graph).generate(header)


def build_module(graph: Graph, source: str | None = None) -> Any:
    """An instance of the network's class, made by executing the generated source
    (its modules pickle whole: see `torch_exec`)."""
    source = source or generate_torch(graph)
    module_name = f"dslnet_generated_{identifier(graph.name)}"
    namespace = execute_source(source, module_name, graph.name)
    return namespace[class_identifier(graph.name)]()
