"""Reads the text dslnet.ir.printer writes back into a Graph: `print_graph(parse_graph(t))
== t` for any printed graph, so passes can be tested IR-in / IR-out, as in MLIR.

    from dslnet.ir.parser import parse_graph
    graph = parse_graph(path.read_text(), str(path))

Each node is rebuilt the way the front end builds it: its op is looked up in the
registry, its attributes bound by the op's schema (`OpDef.bind_attrs`), its output
types inferred by the op's rule and compared with the ones written, and its parameters
made by the rule found among the `param`/`buffer` lines. The graph then passes
dslnet.ir.verifier. Errors are IRParseError: `file:line:col: error: ...` and the line.

The text does not carry everything a Graph holds, so a parsed graph has:
- no block calls (`calls` empty, every node's `chain` empty): the backends lower it
  flat, one class and no ONNX functions, whatever blocks the spec had;
- spans that start at the printed `file:line:col` and end there (the file's base name
  only); a node or module line without a location gets its place in the IR text;
- node names rebuilt by the builder's rule (`fc`, `fc@2`...), and for a node written
  without `@module` and without parameters a module chosen here,
  `<prefix><op short name><k>`: the name the front end gives an unnamed op (so the
  first use of `enc.relu1` is found when later uses say `@enc.relu1`), but not a name
  the spec gives (`layer drop = dropout(0.1)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dslnet.core.diagnostics import Span, did_you_mean
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ir.graph import Graph, ModuleInfo, Node, Parameter, Value
from dslnet.ir.irtext import IRParseError, LineReader, Token
from dslnet.ir.roles import role_parameters
from dslnet.ir.verifier import VerifyError, verify
from dslnet.ops import registry
from dslnet.ops.registry import AttrError, OpDef, ShapeError

__all__ = ["IRParseError", "parse_graph"]

_KEYWORDS = ("in", "param", "buffer", "module", "out")


@dataclass
class _NodeLine:
    reader: LineReader
    outputs: list[tuple[Token, TensorType, int]]  # name, declared type, its column
    op: Token
    inputs: list[Token]
    attrs: dict[str, Any]
    module: Token | None = None
    init: str | None = None
    marks: dict[str, Any] = field(default_factory=dict)
    span: Span | None = None


def parse_graph(text: str, filename: str = "<ir>") -> Graph:
    """The graph `text` prints; raises IRParseError at the first problem."""
    return _Parser(text, filename).parse()


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.text, self.file = text, filename
        self.graph = Graph(name="")
        self.node_lines: list[_NodeLine] = []
        self.claimed: set[str] = set()  # modules whose parameters a node has taken
        self.reserved: set[str] = set()  # module paths a generated module must not take
        self.written: dict[str, str] = {}  # each `@module` of the text: its first node's op
        self.node_names: set[str] = set()
        self.counters: dict[str, int] = {}

    def parse(self) -> Graph:
        lines = self.text.split("\n")
        if lines[-1] == "":
            lines.pop()
        readers = [
            LineReader(line.removesuffix("\r"), i, self.file, self.text)
            for i, line in enumerate(lines, 1)
        ]
        readers = [r for r in readers if r.peek.kind not in ("end", "comment")]
        if not readers:
            raise IRParseError("expected 'network NAME(...)'", Span(self.file, 1, 1, 1, 2), "")
        self.header(readers[0])
        outputs = []
        for reader in readers[1:]:
            first, second = reader.tokens[0], reader.tokens[1]
            if first.text in _KEYWORDS and second.kind == "name":
                reader.next()
                if first.text == "out":
                    outputs.append(reader)  # read once every value is known
                elif first.text == "in":
                    self.in_line(reader)
                elif first.text == "module":
                    self.module_line(reader)
                else:
                    self.param_line(reader, buffer=first.text == "buffer")
            else:
                self.node_lines.append(self.node_line(reader))
        for line in self.node_lines:
            if line.module is not None:
                self.reserved.add(line.module.text)
                self.written.setdefault(line.module.text, line.op.text)
        for name in self.graph.parameters:
            parts = name.split(".")
            self.reserved |= {".".join(parts[:i]) for i in range(1, len(parts))}
        for line in self.node_lines:
            self.add_node(line)
        for reader in outputs:
            self.out_line(reader)
        try:
            verify(self.graph)
        except VerifyError as err:  # what the checks above missed
            readers[0].fail(f"the graph does not verify: {err.message}", 1)
        return self.graph

    # One method per kind of line, in the order the printer writes them.

    def header(self, r: LineReader) -> None:
        r.expect("network")
        self.graph.name = r.name("the network's name").text
        self.graph.args = self.arguments(r)
        r.end()

    def arguments(self, r: LineReader) -> dict[str, Any]:
        args: dict[str, Any] = {}
        r.expect("(")
        while not r.accept(")"):
            if args:
                r.expect(",")
            key = r.name("an argument name")
            if key.text in args:
                r.fail_at(key, f"argument '{key.text}' is given twice")
            r.expect("=")
            args[key.text] = r.value()
        return args

    def in_line(self, r: LineReader) -> None:
        name = self.new_value(r, r.name("an input name"))
        r.expect(":")
        self.graph.values[name] = Value(name=name, type=r.ttype())
        self.graph.inputs.append(name)
        r.end()

    def param_line(self, r: LineReader, buffer: bool = False) -> None:
        token = r.name("a parameter name")
        if token.text in self.graph.parameters:
            r.fail_at(token, f"parameter {token.text} is declared twice")
        r.expect(":")
        dtype = r.dtype()
        shape = tuple(r.bracketed(r.int))
        module, _, role = token.text.rpartition(".")  # a node that uses it may say otherwise
        self.graph.parameters[token.text] = Parameter(
            name=token.text, module=module, role=role, shape=shape, dtype=dtype, buffer=buffer
        )
        r.end()

    def module_line(self, r: LineReader) -> None:
        path = r.name("a module path")
        if path.text in self.graph.modules:
            r.fail_at(path, f"module {path.text} is declared twice")
        r.expect(":")
        block = r.name("a block name").text
        args = self.arguments(r)
        span = r.location() or r.span(path.col)
        r.end()
        self.graph.modules[path.text] = ModuleInfo(
            path=path.text, block=block, args=args, span=span
        )

    def out_line(self, r: LineReader) -> None:
        out_name = r.name("an output name").text
        r.expect("=")
        value = r.name("a value name")
        r.expect(":")
        col = r.peek.col
        declared = r.ttype()
        r.end()
        recorded = self.graph.values.get(value.text)
        if recorded is None:
            r.fail_at(value, f"value '{value.text}' is not defined")
        elif not recorded.type.same_as(declared):
            r.fail(f"'{value.text}' is {recorded.type}, not {declared}", col, len(str(declared)))
        self.graph.outputs.append((out_name, value.text))

    def node_line(self, r: LineReader) -> _NodeLine:
        """`y: float32[N, 8] = linear(x, features=8, bias=true)  @fc  init=normal
        [@freeze]  # net.net:3:7`"""
        outputs: list[tuple[Token, TensorType, int]] = []
        while not outputs or r.accept(","):
            name = r.name("a value name or a line keyword (in, param, module, out)")
            r.expect(":")
            col = r.peek.col
            outputs.append((name, r.ttype(), col))
        r.expect("=")
        line = _NodeLine(r, outputs, r.name("an op name"), [], {})
        r.expect("(")
        while not r.accept(")"):
            if line.inputs or line.attrs:
                r.expect(",")
            token = r.name("an input value or an attribute")
            if r.accept("="):
                if token.text in line.attrs:
                    r.fail_at(token, f"attribute '{token.text}' is given twice")
                line.attrs[token.text] = r.value()
            elif line.attrs:
                r.fail_at(token, "inputs come before the attributes")
            else:
                line.inputs.append(token)
        if r.accept("@"):
            line.module = r.name("a module path")
        if r.peek.text == "init" and r.tokens[r.pos + 1].text == "=":
            r.next(), r.next()
            line.init = r.name("an init scheme").text
        if r.accept("["):
            while not r.accept("]"):
                r.expect("@")
                key = r.name("an annotation").text
                line.marks[key] = self.mark_value(r) if r.accept("(") else True
        line.span = r.location() or r.span(outputs[0][0].col)
        r.end()
        return line

    def mark_value(self, r: LineReader) -> Any:
        """What `@prune(0.3)` or `@quantize(skip)` holds, as the printer's str() wrote it."""
        token = r.next()
        kinds = {"float": float, "int": int, "name": str}
        if token.kind not in kinds:
            r.fail_at(token, f"expected a number or a word, found '{token.text}'")
        r.expect(")")
        return kinds[token.kind](token.text)

    # Nodes: the op's rules, as the builder runs them.

    def add_node(self, line: _NodeLine) -> None:
        r, graph = line.reader, self.graph
        op = registry.get(line.op.text)
        if op is None:
            hint = did_you_mean(line.op.text, registry.all_ops())
            r.fail_at(line.op, f"unknown op '{line.op.text}'{hint}")
        for token in line.inputs:
            if token.text not in graph.values:
                r.fail_at(token, f"value '{token.text}' is not defined before this line")
        in_types = [graph.values[t.text].type for t in line.inputs]
        if not op.arity_ok(len(in_types)):
            count, names = op.arity_words()
            r.fail_at(line.op, f"{op.name} takes {count} input(s) ({names}), got {len(in_types)}")
        try:
            attrs = op.bind_attrs((), line.attrs, in_types)
            out_types = op.infer(attrs, in_types)
            roles = {k: (s, DType.float32, False) for k, s in op.params(attrs, in_types).items()}
            roles |= {k: (s, d, True) for k, (s, d) in op.buffers(attrs, in_types).items()}
        except AttrError as err:
            r.fail_at(line.op, "; ".join(err.messages))
        except ShapeError as err:
            r.fail_at(line.op, str(err))
        if len(out_types) != len(line.outputs):
            r.fail_at(
                line.op, f"{op.name} gives {len(out_types)} output(s) here, not {len(line.outputs)}"
            )
        for (token, declared, col), inferred in zip(line.outputs, out_types):
            self.new_value(r, token)
            if not declared.same_as(inferred):
                message = f"'{token.text}' is declared {declared} but {op.name} gives {inferred}"
                r.fail(message, col, len(str(declared)))
            graph.values[token.text] = Value(name=token.text, type=declared)
        module = self.module_of(line, op, roles)
        for role, (shape, dtype, buffer) in roles.items():
            self.claim(line, op, module, role, shape, dtype, buffer)
        self.claimed.add(module)
        name = self.node_name(op, module, written=line.module is not None)
        assert line.span is not None
        graph.nodes.append(
            Node(
                name=name,
                op=op.name,
                attrs=attrs.model_dump(),
                inputs=tuple(t.text for t in line.inputs),
                outputs=tuple(t.text for t, _, _ in line.outputs),
                module=module,
                span=line.span,
                init=line.init,
                marks=line.marks,
            )
        )

    def module_of(self, line: _NodeLine, op: OpDef, roles: Mapping[str, Any]) -> str:
        if line.module is not None:
            return line.module.text
        if not roles:
            return self.fresh_module(op, line.outputs[0][0].text)
        # Its first use: the module whose parameters, one per role, no node has taken yet.
        for name in self.graph.parameters:
            for role in roles:
                module = name.removesuffix("." + role)
                if (
                    module != name
                    and module not in self.claimed
                    and all(f"{module}.{r}" in self.graph.parameters for r in roles)
                ):
                    return module
        line.reader.fail_at(
            line.op,
            f"{op.name} makes {', '.join(roles)} but no declared parameters fit; "
            f"name its module with '@path'",
        )

    def claim(
        self,
        line: _NodeLine,
        op: OpDef,
        module: str,
        role: str,
        shape: tuple[int, ...],
        dtype: DType,
        buffer: bool,
    ) -> None:
        name = f"{module}.{role}"
        wanted = f"{'buffer' if buffer else 'param'} {name}: {dtype}{shape_str(shape)}"
        found = self.graph.parameters.get(name)
        if found is None or (found.shape, found.dtype, found.buffer) != (shape, dtype, buffer):
            said = "is not declared" if found is None else "is declared otherwise"
            line.reader.fail_at(line.op, f"{op.name} needs `{wanted}`, which {said}")
        if (found.module, found.role) != (module, role):  # a role with a dot in it
            self.graph.parameters[name] = found.model_copy(update={"module": module, "role": role})

    def fresh_module(self, op: OpDef, first_output: str) -> str:
        prefix = first_output.rpartition(".")[0]
        base = (prefix + "." if prefix else "") + ((op.short_name or op.name).lstrip("_") or "v")
        k = self.counters.get(base, 0)
        while True:
            k += 1
            name = f"{base}{k}"
            # The first use of a shared layer of this op, when later uses name it.
            first_use = self.written.get(name) == op.name and name not in self.claimed
            if name not in self.node_names and (name not in self.reserved or first_use):
                break
        self.counters[base] = k
        return name

    def node_name(self, op: OpDef, module: str, written: bool) -> str:
        """A name the printer's `@module` rule reads back: the module itself where the text
        does not name one or the module owns the weight or bias `op` declares, else
        `module@k`."""
        owns = any(p in self.graph.parameters for p in role_parameters(op.param_roles, module))
        k = 1 if not written or owns else 2
        name = module if k == 1 else f"{module}@{k}"
        while name in self.node_names:
            k += 1
            name = f"{module}@{k}"
        self.node_names.add(name)
        return name

    def new_value(self, r: LineReader, token: Token) -> str:
        if token.text in self.graph.values:
            r.fail_at(token, f"value '{token.text}' is defined twice")
        return token.text
