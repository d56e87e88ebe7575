"""The syntax tree: what the parser produces, before any name is resolved."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, fields

from dslnet.core.diagnostics import Span


class _Node:
    """Equality, hash and repr over the fields, as @dataclass(frozen=True) makes them.

    Written once here rather than generated per class: @dataclass compiles each method
    it makes, and the syntax tree's classes are created at every start of `dslnet check`.
    """

    __slots__ = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        shown = (f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({', '.join(shown)})"


# --- expressions -------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Name(_Node):
    """A name: a value, parameter, constant, block or op."""

    id: str
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Literal(_Node):
    """A number, string or bool written in the spec."""

    value: int | float | str | bool
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class ListExpr(_Node):
    """`[a, b, ...]`."""

    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class TupleExpr(_Node):
    """`(a, b, ...)`."""

    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Unary(_Node):
    """`-x`, `+x` or `not x`."""

    op: str  # "-", "+", "not"
    operand: Expr
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Binary(_Node):
    """`left op right`: arithmetic, a comparison, `and` or `or`."""

    op: str  # + - * / // % ** == != < <= > >= and or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Keyword(_Node):
    """`name=value` in a call or an annotation."""

    name: str
    value: Expr
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Call(_Node):
    """`func(args, kwargs)`: an op, a block or a builtin function."""

    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Pipe(_Node):
    """`value -> stage`: call `stage` with `value` as its first input."""

    value: Expr
    stage: Expr
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Index(_Node):
    """`value[index]`."""

    value: Expr
    index: Expr
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Attribute(_Node):
    """`value.name`."""

    value: Expr
    name: str
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class IfExpr(_Node):
    """`if cond { a } elif cond { b } else { c }` as a value: each (condition, value) in
    turn, else `orelse`."""

    branches: tuple[tuple[Expr, Expr], ...]  # (condition, value)
    orelse: Expr
    span: Span


Expr = (
    Name
    | Literal
    | ListExpr
    | TupleExpr
    | Unary
    | Binary
    | Call
    | Pipe
    | Index
    | Attribute
    | IfExpr
)

# --- statements ----------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class TensorTypeExpr(_Node):
    """`dtype[d0, d1, ...]` of an input; without a dtype, `[d0, ...]`."""

    dtype: str | None
    dims: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class Annotation(_Node):
    """`@name(args)` in front of a block, layer or statement."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class InStmt(_Node):
    """`in name: type`: an input of a block or network."""

    name: str
    type: TensorTypeExpr
    span: Span
    annotations: tuple[Annotation, ...] = ()  # `@noise` in a train declaration


@dataclass(frozen=True, eq=False, repr=False)
class OutStmt(_Node):
    """`out name = value`: an output (unnamed: `out value`)."""

    name: str | None
    value: Expr
    span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class AssignStmt(_Node):
    """`a, b = value`."""

    targets: tuple[str, ...]
    value: Expr
    span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class LayerStmt(_Node):
    """`layer name = op(...)`: one instance, shared by every use of `name`."""

    name: str
    value: Expr
    span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class ConstDecl(_Node):
    """`const NAME = value`."""

    name: str
    value: Expr
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class ForStmt(_Node):
    """`for a, b in iterable { body }`."""

    targets: tuple[str, ...]
    iterable: Expr
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class RepeatStmt(_Node):
    """`repeat count { body }`, or `repeat count as var { body }`."""

    count: Expr
    var: str | None
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class IfStmt(_Node):
    """`if cond { ... } elif cond { ... } else { ... }`: each (condition, body) in turn."""

    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...]
    span: Span


Stmt = InStmt | OutStmt | AssignStmt | LayerStmt | ConstDecl | ForStmt | RepeatStmt | IfStmt

# --- declarations --------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Param(_Node):
    """A parameter of a block, network or train declaration: `name: type = default`."""

    name: str
    type_name: str | None
    default: Expr | None
    span: Span


@dataclass(frozen=True, eq=False, repr=False)
class BlockDecl(_Node):
    """A `block` or a `network` (a network is a block with typed inputs that can be compiled)."""

    kind: str  # "block" | "network"
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class SettingStmt(_Node):
    """`name: value` in a train declaration or step: how to train, not what to compute."""

    name: str
    value: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True, eq=False, repr=False)
class StepDecl(_Node):
    """`step name { ... }`: one optimizer step of an iteration, with its own loss."""

    name: str
    body: tuple[Stmt, ...]
    settings: tuple[SettingStmt, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True, eq=False, repr=False)
class TrainDecl(_Node):
    """`train Name(params) { ... }`: the loss graph, its settings and steps.

    `body` holds the statements every step shares (layers, inputs, values); the
    steps add their own. Without steps, the body itself is the one step.
    """

    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    settings: tuple[SettingStmt, ...]
    steps: tuple[StepDecl, ...]
    span: Span
    name_span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class ImportDecl(_Node):
    """`import "path"`."""

    path: str
    span: Span


Decl = ImportDecl | ConstDecl | BlockDecl | TrainDecl


@dataclass(frozen=True, eq=False, repr=False)
class Module(_Node):
    """A spec file's declarations, in source order."""

    file: str
    decls: tuple[Decl, ...]


def dump(node: object, indent: int = 0) -> str:
    """Readable, stable text of a syntax tree (`--emit ast`)."""
    pad = "  " * indent
    if isinstance(node, tuple):
        if not node:
            return pad + "[]"
        return "\n".join(dump(item, indent) for item in node)
    if not hasattr(node, "__dataclass_fields__"):
        return pad + repr(node)
    span = getattr(node, "span", None)
    where = f"  @{span.line}:{span.col}" if isinstance(span, Span) else ""
    head = f"{pad}{type(node).__name__}{where}"
    lines = [head]
    for f in fields(node):  # type: ignore[arg-type]
        if f.name in ("span", "name_span", "file"):
            continue
        value = getattr(node, f.name)
        if isinstance(value, (str, int, float, bool)) or value is None:
            lines.append(f"{pad}  {f.name}: {value!r}")
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            lines.append(f"{pad}  {f.name}: {', '.join(value) if value else '[]'}")
        else:
            lines.append(f"{pad}  {f.name}:")
            lines.append(dump(value, indent + 2))
    return "\n".join(lines)
