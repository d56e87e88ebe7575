"""The syntax tree: what the parser produces, before any name is resolved."""

from __future__ import annotations

from dataclasses import dataclass, fields

from dslnet.core.diagnostics import Span

# --- expressions -------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Literal:
    value: int | float | str | bool
    span: Span


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class TupleExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / // % == != < <= > >= and or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True)
class Pipe:
    """`value -> stage`: call `stage` with `value` as its first input."""

    value: Expr
    stage: Expr
    span: Span


@dataclass(frozen=True)
class Index:
    value: Expr
    index: Expr
    span: Span


@dataclass(frozen=True)
class Attribute:
    value: Expr
    name: str
    span: Span


@dataclass(frozen=True)
class IfExpr:
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


@dataclass(frozen=True)
class TensorTypeExpr:
    dtype: str | None
    dims: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Annotation:
    """`@name(args)` in front of a block, layer or statement."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True)
class InStmt:
    name: str
    type: TensorTypeExpr
    span: Span
    annotations: tuple[Annotation, ...] = ()  # `@noise` in a train declaration


@dataclass(frozen=True)
class OutStmt:
    name: str | None
    value: Expr
    span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class AssignStmt:
    targets: tuple[str, ...]
    value: Expr
    span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class LayerStmt:
    name: str
    value: Expr
    span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class ConstDecl:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class ForStmt:
    targets: tuple[str, ...]
    iterable: Expr
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class RepeatStmt:
    count: Expr
    var: str | None
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class IfStmt:
    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...]
    span: Span


Stmt = InStmt | OutStmt | AssignStmt | LayerStmt | ConstDecl | ForStmt | RepeatStmt | IfStmt

# --- declarations --------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    type_name: str | None
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class BlockDecl:
    """A `block` or a `network` (a network is a block with typed inputs that can be compiled)."""

    kind: str  # "block" | "network"
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class SettingStmt:
    """`name: value` in a train declaration or step: how to train, not what to compute."""

    name: str
    value: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True)
class StepDecl:
    """`step name { ... }`: one optimizer step of an iteration, with its own loss."""

    name: str
    body: tuple[Stmt, ...]
    settings: tuple[SettingStmt, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True)
class TrainDecl:
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


@dataclass(frozen=True)
class ImportDecl:
    path: str
    span: Span


Decl = ImportDecl | ConstDecl | BlockDecl | TrainDecl


@dataclass(frozen=True)
class Module:
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
