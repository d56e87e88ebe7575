"""Expansion: runs a network's compile-time structure and builds its IR graph.

Loops, conditions and block calls run here and only here; what comes out is
a flat graph of op nodes with types inferred as each node is added. Errors
are reported per statement (with the chain of block calls that led there)
and the failed names are poisoned, so one mistake gives one error.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dslnet.core import symbolic
from dslnet.core.diagnostics import Diagnostics, Span, closest, did_you_mean
from dslnet.core.symbolic import SymExpr
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.frontend import ast
from dslnet.frontend.annotations import resolve as resolve_annotation
from dslnet.frontend.bound import ExpansionBound
from dslnet.frontend.limits import (
    Work,
    elements,
    parameters_problem,
    symbolic_work,
    tensor_problem,
    value_problem,
)
from dslnet.frontend.resolve import walk_exprs, walk_stmts
from dslnet.frontend.values import (
    POISON,
    Callee,
    EvalError,
    LayerVal,
    Record,
    TensorVal,
    arith,
    compare,
    is_poison,
    kind_of,
)
from dslnet.frontend.vocabulary import BUILTINS
from dslnet.ir import init as init_schemes
from dslnet.ir.builder import GraphBuilder
from dslnet.ir.graph import CallFrame, CallInfo, Graph
from dslnet.ir.located import call_chain_notes
from dslnet.ir.names import attribute_variant, is_attribute_name
from dslnet.ops import registry
from dslnet.ops.elementwise import Constant
from dslnet.ops.registry import AttrError, ShapeError

if TYPE_CHECKING:
    from dslnet.frontend.limits import Limits
    from dslnet.frontend.loader import Spec

# Other frameworks' names for dslnet's dtypes (torch.float, torch.half, torch.long...).
DTYPE_ALIASES = {
    "float": "float32",
    "fp32": "float32",
    "f32": "float32",
    "half": "float16",
    "fp16": "float16",
    "f16": "float16",
    "bf16": "bfloat16",
    "double": "float64",
    "fp64": "float64",
    "f64": "float64",
    "long": "int64",
    "i64": "int64",
    "int": "int32",
    "i32": "int32",
    "short": "int16",
    "i16": "int16",
    "i8": "int8",
    "byte": "uint8",
    "u8": "uint8",
    "boolean": "bool",
}
_TORCH_DTYPE_NAMES = {"float", "half", "double", "long", "int", "short"}
# What a block call costs in max_steps besides its statements: binding its
# parameters and inputs takes about as long as twenty statements.
BLOCK_CALL_STEPS = 20
NODE_STEPS = 20  # and making a node, with its type checks


@dataclass
class Frame:
    """One running block (or the network itself)."""

    decl: ast.BlockDecl
    env: dict[str, Any]
    value_prefix: str
    module_prefix: str
    chain: tuple[CallFrame, ...]
    inputs: list[TensorVal | Any] = field(default_factory=list)
    next_input: int = 0
    outputs: list[tuple[str | None, Any, Span]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    init: str | None = None  # `init=` given to this block call, inherited by its layers
    layers: frozenset[str] = frozenset()  # the block's layer names: taken module names
    segments: dict[str, str] = field(default_factory=dict)  # layer name -> module segment

    def local_name(self, base: str) -> str:
        """`linear3`: the next automatic name for `base`, never a layer's name."""
        base = base.lstrip("_") or "v"  # a leading `__` would be mangled in a class body
        k = self.counters.get(base, 0)
        while True:
            k += 1
            if f"{base}{k}" not in self.layers:
                break
        self.counters[base] = k
        return f"{base}{k}"

    def layer_segment(self, name: str) -> str:
        """The module path segment of layer `name`: the name itself when the generated
        PyTorch module can have it as an attribute, else a variant (`class_`)."""
        segment = self.segments.get(name)
        if segment is None:
            segment = name
            if not is_attribute_name(name):
                segment = attribute_variant(name, self.layers | set(self.segments.values()))
            self.segments[name] = segment
        return segment


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class Expander:
    def __init__(
        self, program: Spec, diags: Diagnostics, limits: Limits, work: Work | None = None
    ) -> None:
        self.program = program
        self.diags = diags
        self.limits = limits
        self.builder: GraphBuilder | None = None
        self.frame: Frame | None = None
        self.active: list[str] = []
        self.iterations = 0
        self.work = work or Work()  # max_steps: shared by the networks of one check
        self.bound = ExpansionBound(program, limits)  # asked before block calls and loops
        self.parameters = 0  # elements of parameters and buffers so far, for max_parameters
        self.parameters_seen = 0  # entries of graph.parameters already counted
        self.node_limit_reported = False
        self.marks: dict[str, Any] = {}  # what the annotations around us ask of new nodes
        self._layer_names: dict[int, frozenset[str]] = {}  # per block declaration
        self._bound_names: dict[int, list[str]] = {}  # per if, for and repeat statement

    def layer_names(self, decl: ast.BlockDecl) -> frozenset[str]:
        """The names of every `layer` statement of `decl` (nested ones too)."""
        found = self._layer_names.get(id(decl))
        if found is None:
            stmts = walk_stmts(decl.body)
            found = frozenset(s.name for s, _ in stmts if isinstance(s, ast.LayerStmt))
            self._layer_names[id(decl)] = found
        return found

    # --- entry points --------------------------------------------------------------

    def network(self, decl: ast.BlockDecl, overrides: dict[str, Any], span: Span) -> Graph | None:
        env = self.bind_params(decl, (), overrides, span, is_network=True)
        if env is None:
            return None
        args = {p.name: env[p.name] for p in decl.params}
        self.builder = GraphBuilder(decl.name, args, decl.span)
        frame = Frame(decl, env, "", "", (), layers=self.layer_names(decl))
        self.active.append(decl.name)
        self.run_body(frame)
        self.active.pop()
        self.check_outputs(frame)
        for name, value, out_span in frame.outputs:
            if isinstance(value, TensorVal) and self.output_named_as_input(name, value, out_span):
                continue
            if isinstance(value, TensorVal):
                self.builder.add_output(name or "output", value.name)
            elif not is_poison(value):
                what = f"output '{name}'" if name else "the output"
                self.error(f"{what} must be a tensor, got {kind_of(value)}", out_span)
        return self.builder.graph

    def output_named_as_input(self, name: str | None, value: TensorVal, span: Span) -> bool:
        """Report a network output that takes an input's name for another value: the
        model's interface could not tell them apart (ONNX refuses it)."""
        assert self.builder is not None
        shown = name or "output"
        if shown not in self.builder.graph.inputs or value.name == shown:
            return False
        what = f"output '{name}'" if name else "the output, named 'output' by default,"
        self.error(
            f"{what} has the name of an input; a network's inputs and outputs need distinct names",
            span,
        )
        return True

    def constant(self, expr: ast.Expr, env: dict[str, Any]) -> Any:
        """Evaluate a compile-time expression (a `const`, a default) outside any graph."""
        decl = ast.BlockDecl("block", "<const>", (), (), expr.span, expr.span)
        saved = self.frame
        self.frame = Frame(decl, env, "", "", saved.chain if saved else ())
        try:
            return self.eval(expr)
        finally:
            self.frame = saved

    # --- reporting -----------------------------------------------------------------

    def error(self, message: str, span: Span) -> None:
        chain = self.frame.chain if self.frame else ()
        self.diags.error(message, span, call_chain_notes(chain))

    @contextmanager
    def statement(self, targets: Sequence[str] = ()) -> Iterator[None]:
        """Report an EvalError at statement level and poison what it would have bound."""
        try:
            yield
        except EvalError as err:
            if err.message:  # an empty message: the cause was reported already
                self.error(err.message, err.span)
            assert self.frame is not None
            self.work.steps += len(targets)  # charged: a loop may fail here at each turn
            for t in targets:
                self.frame.env[t] = POISON

    @contextmanager
    def marked(self, marks: dict[str, Any]) -> Iterator[None]:
        """Nodes made inside carry these marks (over the outer ones)."""
        saved, self.marks = self.marks, {**self.marks, **marks}
        try:
            yield
        finally:
            self.marks = saved

    @contextmanager
    def annotated(self, notes: Sequence[ast.Annotation]) -> Iterator[None]:
        """Nodes made inside carry these annotations' marks; a wrong one is reported
        and left out."""
        marks: dict[str, Any] = {}
        for note in notes:
            try:
                key, value = resolve_annotation(note, self.eval)
                marks[key] = value
            except EvalError as err:
                if err.message:
                    self.error(err.message, err.span)
        with self.marked(marks):
            yield

    # --- parameters ---------------------------------------------------------------------

    def bind_params(
        self,
        decl: ast.BlockDecl,
        positional: Sequence[Any],
        named: dict[str, Any],
        span: Span,
        is_network: bool = False,
    ) -> dict[str, Any] | None:
        """Bind call arguments to a block's parameters, checking their types; None when
        one fails. A network gets its parameters even then, the failed ones POISON: its
        body is still checked for errors of its own."""
        what = f"{decl.kind} '{decl.name}'"
        params = decl.params
        ok = True
        env: dict[str, Any] = {}
        if len(positional) > len(params):
            self.error(f"{what} takes {len(params)} argument(s), got {len(positional)}", span)
            return None
        given = {p.name: v for p, v in zip(params, positional)}
        misspelt: set[str | None] = set()  # parameters an unknown keyword was meant for
        for key, value in named.items():
            if key not in {p.name for p in params}:
                hint = did_you_mean(key, [p.name for p in params])
                misspelt.add(closest(key, [p.name for p in params]))
                self.error(f"{what} has no parameter '{key}'{hint}", span)
                ok = False
            elif key in given:
                self.error(f"argument '{key}' of {what} is given twice", span)
                ok = False
            else:
                given[key] = value
        for p in params:
            if p.name in given:
                value = given[p.name]
            elif p.default is not None:
                value = self.default(decl, p, env)
                if is_poison(value):
                    env[p.name] = POISON  # later defaults using it stay quiet
                    ok = False
                    continue
            else:
                if p.name not in misspelt:  # else reported as the misspelt keyword
                    self.error(f"{what} needs argument '{p.name}' ({p.type_name or 'any'})", span)
                env[p.name] = POISON
                ok = False
                continue
            if is_poison(value):
                env[p.name] = POISON
                ok = False
                continue
            problem = check_param_type(p, value)
            if problem:
                self.error(f"argument '{p.name}' of {what} {problem}", span)
                ok = False
                value = POISON
            env[p.name] = value
        return env if ok or is_network else None

    def default(self, decl: ast.BlockDecl, param: ast.Param, env: dict[str, Any]) -> Any:
        """The default of `param` given the parameters before it (`env`); its errors are
        located in the default, not at a call, and make it POISON."""
        assert param.default is not None
        try:
            value = self.constant(param.default, dict(env))
        except EvalError as err:
            if err.message:
                self.diags.error(err.message, err.span)
            return POISON
        if not is_poison(value) and check_param_type(param, value):
            self.diags.error(
                f"parameter '{param.name}' of {decl.kind} '{decl.name}' is declared "
                f"{param.type_name}, but its default is {registry.value_words(value)}",
                param.default.span,
            )
            return POISON
        return value

    def check_defaults(self, decl: ast.BlockDecl) -> None:
        """Check every default of `decl` once, called or not. A default that needs a
        parameter without one is left to the calls."""
        env: dict[str, Any] = {}
        for p in decl.params:
            if p.default is None:
                return
            env[p.name] = self.default(decl, p, env)

    # --- statements -----------------------------------------------------------------------

    def run_body(self, frame: Frame) -> None:
        saved, self.frame = self.frame, frame
        try:
            with self.annotated(frame.decl.annotations):
                self.run(frame.decl.body)
        finally:
            self.frame = saved

    def run(self, stmts: Sequence[ast.Stmt]) -> None:
        for index, stmt in enumerate(stmts):
            if self.work.steps >= self.limits.max_steps:
                self.stop(stmts[index:])
                return
            self.work.steps += 1
            self.exec(stmt)

    def charge(self, steps: int, span: Span) -> None:
        """Count `steps` of compile-time work against max_steps, before doing it: a loop
        under max_iterations can still run a long body, or square a symbolic size."""
        self.work.steps += steps
        if self.work.steps > self.limits.max_steps:
            raise EvalError(self.out_of_steps(), span)

    def out_of_steps(self) -> str:
        """The error for passing max_steps, the first time; after that "" (one error
        for the network, not one per statement skipped)."""
        if self.work.reported:
            return ""
        self.work.reported = True
        return (
            f"expansion passes the limit of {self.limits.max_steps} steps of compile-time "
            f"work here (statements, expressions, list items, nodes; one budget for all "
            f"that a check expands): raise it with --max-steps"
        )

    def stop(self, rest: Sequence[ast.Stmt]) -> None:
        """Out of steps: say so once, and leave what `rest` would bind as an error."""
        assert self.frame is not None
        message = self.out_of_steps()
        if message:
            self.error(message, rest[0].span)
        self.poison(_assigned_in(rest))
        outs = [(s.name, POISON, s.span) for s in rest if isinstance(s, ast.OutStmt)]
        self.frame.outputs += outs

    def exec(self, stmt: ast.Stmt) -> None:
        frame = self.frame
        assert frame is not None
        if isinstance(stmt, ast.InStmt):
            with self.statement([stmt.name]):
                if not any(s is stmt for s in frame.decl.body):
                    raise EvalError("", stmt.span)  # a nested 'in', reported statically
                frame.env[stmt.name] = self.bind_input(stmt)
        elif isinstance(stmt, ast.AssignStmt):
            with self.statement(stmt.targets), self.annotated(stmt.annotations):
                # Several targets name an op's outputs in order: `y, h = gru(x, 64)`.
                hint = ",".join(stmt.targets)
                self.assign(stmt.targets, self.eval(stmt.value, hint), stmt.span)
        elif isinstance(stmt, ast.OutStmt):
            value: Any = POISON
            with self.statement(), self.annotated(stmt.annotations):
                value = self.eval(stmt.value, stmt.name)
            frame.outputs.append((stmt.name, value, stmt.span))
        elif isinstance(stmt, ast.LayerStmt):
            with self.statement([stmt.name]), self.annotated(stmt.annotations):
                frame.env[stmt.name] = self.make_layer(stmt)
        elif isinstance(stmt, ast.ConstDecl):
            with self.statement([stmt.name]):
                value = self.eval(stmt.value)
                if isinstance(value, (TensorVal, Record, LayerVal)):
                    raise EvalError(
                        f"const '{stmt.name}' must be a compile-time value, got {kind_of(value)}",
                        stmt.value.span,
                    )
                frame.env[stmt.name] = value
        elif isinstance(stmt, ast.ForStmt):
            self.exec_for(stmt)
        elif isinstance(stmt, ast.RepeatStmt):
            count: Any = POISON
            with self.statement():
                value = self.eval(stmt.count)
                if is_poison(value):
                    raise EvalError("", stmt.count.span)
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise EvalError(
                        f"repeat needs a non-negative int, got {registry.value_words(value)}",
                        stmt.count.span,
                    )
                self.count_iterations(value, stmt.count.span)
                variables = (stmt.var,) if stmt.var else ()
                nodes = self.bound.loop(stmt.body, variables, value, frame.env)
                self.check_growth(nodes, "this loop", stmt.count.span)
                count = value  # only once every check passed
            if not isinstance(count, int):
                self.poison(self.names_bound(stmt, [stmt.body]))
                return
            for i in range(count):
                if stmt.var:
                    frame.env[stmt.var] = i
                self.run(stmt.body)
                if self.work.reported:
                    break
        elif isinstance(stmt, ast.IfStmt):
            # A condition that fails leaves unknown which branch ran: what any of them
            # assigns is poisoned (no error for it).
            branches = [body for _, body in stmt.branches] + [stmt.orelse]
            with self.statement(self.names_bound(stmt, branches)):
                for cond, body in stmt.branches:
                    if self.condition(cond):
                        self.run(body)
                        return
                self.run(stmt.orelse)

    def exec_for(self, stmt: ast.ForStmt) -> None:
        frame = self.frame
        assert frame is not None
        items: Any = POISON
        with self.statement():
            value = self.eval(stmt.iterable)
            if not is_poison(value) and not isinstance(value, tuple):
                raise EvalError(
                    f"for needs a list or range, got {kind_of(value)}", stmt.iterable.span
                )
            if isinstance(value, tuple):
                self.count_iterations(len(value), stmt.iterable.span)
                nodes = self.bound.loop(stmt.body, stmt.targets, len(value), frame.env)
                self.check_growth(nodes, "this loop", stmt.iterable.span)
                items = value  # only once every check passed
        if not isinstance(items, tuple):
            self.poison([*stmt.targets, *self.names_bound(stmt, [stmt.body])])
            return
        for item in items:
            with self.statement(stmt.targets):
                self.assign(stmt.targets, item, stmt.span)
            self.run(stmt.body)
            if self.work.reported:
                break

    def names_bound(self, stmt: ast.Stmt, bodies: Sequence[Sequence[ast.Stmt]]) -> list[str]:
        """The names `bodies` of `stmt` bind, nested ones too; kept, as a loop around
        `stmt` may ask again at each of its iterations."""
        found = self._bound_names.get(id(stmt))
        if found is None:
            found = [name for body in bodies for name in _assigned_in(body)]
            self._bound_names[id(stmt)] = found
        return found

    def poison(self, names: Sequence[str]) -> None:
        assert self.frame is not None
        self.work.steps += len(names)  # a loop may poison a long body at each iteration
        for name in names:
            self.frame.env[name] = POISON

    def count_iterations(self, n: int, span: Span) -> None:
        reported = self.iterations > self.limits.max_iterations
        self.iterations += n
        if reported:
            raise EvalError("", span)  # one error for the network, not one per loop run
        if self.iterations > self.limits.max_iterations:
            raise EvalError(
                f"expansion runs {self.iterations} loop iterations, over the limit of "
                f"{self.limits.max_iterations} (raise it with --max-iterations)",
                span,
            )

    def check_growth(self, nodes: int, what: str, span: Span) -> None:
        """Stop before expanding what is sure to take the network past the node limit
        (`nodes` is a lower bound from dslnet.frontend.bound)."""
        assert self.builder is not None
        made = len(self.builder.graph.nodes)
        if made + nodes > self.limits.max_nodes:
            self.over_node_limit(span)
            so_far = f" to the {made} made so far" if made else ""
            raise EvalError(
                f"{what} adds at least {nodes} nodes{so_far}: the network would have more "
                f"than {self.limits.max_nodes} nodes (raise the limit with --max-nodes)",
                span,
            )

    def condition(self, expr: ast.Expr) -> bool:
        value = self.eval(expr)
        if is_poison(value):
            raise EvalError("", expr.span)  # already reported; silence is poisoned below
        if not isinstance(value, bool):
            raise EvalError(f"condition must be a bool, got {kind_of(value)}", expr.span)
        return value

    def assign(self, targets: Sequence[str], value: Any, span: Span) -> None:
        frame = self.frame
        assert frame is not None
        if len(targets) == 1:
            frame.env[targets[0]] = value
            return
        if is_poison(value):
            items: Sequence[Any] = [POISON] * len(targets)
        elif isinstance(value, Record):
            items = [v for _, v in value.fields]
        elif isinstance(value, tuple):
            items = value
        else:
            raise EvalError(f"cannot unpack {kind_of(value)} into {len(targets)} names", span)
        if len(items) != len(targets) and isinstance(value, Record):
            names = ", ".join(name for name, _ in value.fields)
            raise EvalError(
                f"cannot unpack {len(items)} outputs ({names}) into {len(targets)} names: "
                f"write `{names} = ...` (a name starting with '_' discards one)",
                span,
            )
        if len(items) != len(targets):
            raise EvalError(f"cannot unpack {len(items)} values into {len(targets)} names", span)
        for t, v in zip(targets, items):
            frame.env[t] = v

    def check_outputs(self, frame: Frame) -> None:
        outs = frame.outputs
        if not outs:
            return  # reported statically
        if len(outs) > 1 and any(name is None for name, _, _ in outs):
            span = next(s for name, _, s in outs if name is None)
            self.error("a block with several outputs must name each: out name = value", span)

    # --- inputs -------------------------------------------------------------------------------

    def bind_input(self, stmt: ast.InStmt) -> Any:
        frame = self.frame
        assert frame is not None and self.builder is not None
        is_top = len(self.active) == 1 and not frame.chain
        if is_top:
            return self.network_input(stmt)
        if frame.next_input >= len(frame.inputs):
            raise EvalError(
                f"block '{frame.decl.name}' input '{stmt.name}' was not given", stmt.span
            )
        actual = frame.inputs[frame.next_input]
        frame.next_input += 1
        if is_poison(actual):
            return POISON
        self.match_input(stmt, actual)
        return actual

    def network_input(self, stmt: ast.InStmt) -> TensorVal:
        frame = self.frame
        assert frame is not None and self.builder is not None
        dtype = self.dtype(stmt.type)
        dims = []
        for d in stmt.type.dims:
            # A size name not bound to anything is a free symbol: `N`, or `H` in `16 * H`.
            for part in walk_exprs(d):
                if (
                    isinstance(part, ast.Name)
                    and part.id not in frame.env
                    and not self.program.has_const(part.id)
                ):
                    frame.env[part.id] = SymExpr.symbol(part.id)
            value = self.eval(d)
            if is_poison(value):
                raise EvalError("", d.span)
            if isinstance(value, bool) or not isinstance(value, (int, SymExpr)):
                raise EvalError(
                    f"a dimension must be an int or a size name, got {kind_of(value)}", d.span
                )
            if isinstance(value, int) and value <= 0:
                raise EvalError(f"a dimension must be positive, got {value}", d.span)
            dims.append(value)
        ttype = TensorType(dtype=dtype, shape=tuple(dims))
        problem = tensor_problem(f"input '{stmt.name}' {ttype}", dims, self.limits)
        if problem:
            raise EvalError(problem, stmt.type.span)
        name = self.builder.add_input(stmt.name, ttype)
        return TensorVal(name, ttype)

    def dtype(self, ttype: ast.TensorTypeExpr) -> DType:
        if ttype.dtype is None:
            return DType.float32
        try:
            return DType(ttype.dtype)
        except ValueError:
            span = ttype.span
            where = Span(span.file, span.line, span.col, span.line, span.col + len(ttype.dtype))
            alias = DTYPE_ALIASES.get(ttype.dtype)
            if alias is not None and ttype.dtype in _TORCH_DTYPE_NAMES:
                hint = f" (did you mean '{alias}'? torch.{ttype.dtype} is torch.{alias})"
            elif alias is not None:
                hint = f" (did you mean '{alias}'?)"
            else:
                hint = did_you_mean(ttype.dtype, [d.value for d in DType])
            raise EvalError(f"unknown dtype '{ttype.dtype}'{hint}", where) from None

    def match_input(self, stmt: ast.InStmt, actual: Any) -> None:
        """Match a block input's declared type against the tensor it was given."""
        frame = self.frame
        assert frame is not None
        decl = frame.decl
        if not isinstance(actual, TensorVal):
            raise EvalError(
                f"input '{stmt.name}' of block '{decl.name}' must be a tensor, got "
                f"{kind_of(actual)}",
                stmt.span,
            )
        want = stmt.type
        pattern = "[" + ", ".join(_expr_text(d) for d in want.dims) + "]"
        if want.dtype is not None and self.dtype(want) != actual.type.dtype:
            raise EvalError(
                f"input '{stmt.name}' of block '{decl.name}' expects {want.dtype}"
                f"{pattern}, got {actual.type}",
                stmt.type.span,
            )
        if len(want.dims) != actual.type.rank:
            raise EvalError(
                f"input '{stmt.name}' of block '{decl.name}' expects rank "
                f"{len(want.dims)} {pattern}, got {actual.type}",
                stmt.type.span,
            )
        for axis, (d, got) in enumerate(zip(want.dims, actual.type.shape)):
            if (
                isinstance(d, ast.Name)
                and d.id not in frame.env
                and not self.program.has_const(d.id)
            ):
                frame.env[d.id] = got
                continue
            expected = self.eval(d)
            if is_poison(expected):
                raise EvalError("", d.span)
            if not isinstance(expected, (int, SymExpr)):
                raise EvalError(
                    f"a dimension must be an int or a size name, got {kind_of(expected)}", d.span
                )
            if not symbolic.dims_equal(expected, got):
                raise EvalError(
                    f"input '{stmt.name}' of block '{decl.name}' expects {pattern}, where axis "
                    f"{axis} is {_axis_text(d, expected)}; got {actual.type}",
                    d.span,
                )

    # --- expressions --------------------------------------------------------------------------

    def eval(self, expr: ast.Expr, hint: str | None = None) -> Any:
        method: Callable[[Any, str | None], Any] = getattr(self, "eval_" + type(expr).__name__)
        self.charge(1, expr.span)
        value = method(expr, hint)
        if type(value) is tuple:  # each use of a list walks it (is_poison)
            self.charge(len(value), expr.span)
        return value

    def eval_Name(self, expr: ast.Name, hint: str | None) -> Any:
        frame = self.frame
        assert frame is not None
        if expr.id in frame.env:
            return frame.env[expr.id]
        if self.program.has_const(expr.id):
            return self.program.const(expr.id)
        callee = self.program.callee(expr.id)
        if callee is not None:
            return callee
        if expr.span in self.program.unresolved or expr.id in self.program.broken:
            return POISON  # reported before expansion
        later = self.program.const_decl(expr.id)
        if later is not None and later.span.contains(expr.span):
            raise EvalError(f"constant '{expr.id}' is defined in terms of itself", expr.span)
        if later is not None:  # constants are evaluated in order, each once
            raise EvalError(
                f"constant '{expr.id}' is declared below, on line {later.span.line}: a "
                "constant can use only the constants declared above it",
                expr.span,
            )
        later_stmt = _binding_after(frame.decl.body, expr.id, expr.span)
        if later_stmt is not None:
            declared = isinstance(later_stmt, (ast.LayerStmt, ast.InStmt))
            raise EvalError(
                f"'{expr.id}' is {'declared' if declared else 'assigned'} on line "
                f"{later_stmt.span.line}, after this use",
                expr.span,
            )
        if expr.span.file in self.program.incomplete_files:
            return POISON  # perhaps one a failed import would have given: it said so
        candidates = [*frame.env, *self.program.visible_names()]
        raise EvalError(f"unknown name '{expr.id}'{did_you_mean(expr.id, candidates)}", expr.span)

    def eval_Literal(self, expr: ast.Literal, hint: str | None) -> Any:
        return expr.value

    def eval_ListExpr(self, expr: ast.ListExpr, hint: str | None) -> Any:
        if len(expr.items) > self.limits.max_iterations:  # the bound on list lengths
            raise EvalError(
                f"a list of {len(expr.items)} items is over the limit of "
                f"{self.limits.max_iterations} (raise it with --max-iterations)",
                expr.span,
            )
        return tuple(self.eval(e) for e in expr.items)

    eval_TupleExpr = eval_ListExpr

    def eval_Unary(self, expr: ast.Unary, hint: str | None) -> Any:
        value = self.eval(expr.operand)
        if is_poison(value):
            return POISON
        if expr.op == "not":
            if not isinstance(value, bool):
                raise EvalError(f"'not' needs a bool, got {kind_of(value)}", expr.span)
            return not value
        if isinstance(value, TensorVal):
            if expr.op == "+":
                return value
            zero = self.scalar_tensor(0.0, value, expr.span)
            minus = registry.operators()[expr.op].name  # -x is 0 - x
            return self.apply_op(minus, [zero, value], (), {}, expr.span, hint)
        return arith(expr.op, 0, value, expr.span)

    def eval_Binary(self, expr: ast.Binary, hint: str | None) -> Any:
        if expr.op in ("and", "or"):
            left = self.eval(expr.left)
            if is_poison(left):
                return POISON
            if not isinstance(left, bool):
                raise EvalError(f"'{expr.op}' needs bools, got {kind_of(left)}", expr.left.span)
            if (expr.op == "and") != left:  # short-circuit, like Python
                return left
            right = self.eval(expr.right)
            if not is_poison(right) and not isinstance(right, bool):
                raise EvalError(f"'{expr.op}' needs bools, got {kind_of(right)}", expr.right.span)
            return right
        left, right = self.eval(expr.left), self.eval(expr.right)
        if is_poison(left) or is_poison(right):
            return POISON
        tensors = isinstance(left, TensorVal) or isinstance(right, TensorVal)
        if not tensors:
            self.charge(symbolic_work(expr.op, left, right), expr.span)
            if expr.op in ("==", "!=", "<", "<=", ">", ">="):
                return compare(expr.op, left, right, expr.span)
            result = arith(expr.op, left, right, expr.span)
            problem = value_problem(result)
            if problem:
                raise EvalError(f"'{expr.op}' here makes {problem}", expr.span)
            return result
        on_tensors = registry.operators()  # the ops that declare an operator
        if expr.op not in on_tensors:
            raise EvalError(
                f"'{expr.op}' is not defined on tensors (conditions are compile-time;"
                f" elementwise ops are {' '.join(on_tensors)})",
                expr.span,
            )
        like = left if isinstance(left, TensorVal) else right
        assert isinstance(like, TensorVal)
        a = self.as_tensor(left, like, expr.left.span)
        b = self.as_tensor(right, like, expr.right.span)
        return self.apply_op(on_tensors[expr.op].name, [a, b], (), {}, expr.span, hint)

    def as_tensor(self, value: Any, like: TensorVal, span: Span) -> TensorVal:
        if isinstance(value, TensorVal):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.scalar_tensor(float(value), like, span)
        raise EvalError(f"cannot combine a tensor with {kind_of(value)}", span)

    def scalar_tensor(self, value: float, like: TensorVal, span: Span) -> TensorVal:
        dtype = {"dtype": like.type.dtype}
        result = self.apply_op(Constant.name, [], (value,), dtype, span, None)
        assert isinstance(result, TensorVal)
        return result

    def eval_IfExpr(self, expr: ast.IfExpr, hint: str | None) -> Any:
        for cond, value in expr.branches:
            if self.condition(cond):
                return self.eval(value, hint)
        return self.eval(expr.orelse, hint)

    def eval_Index(self, expr: ast.Index, hint: str | None) -> Any:
        base, index = self.eval(expr.value), self.eval(expr.index)
        if is_poison(base) or is_poison(index):
            return POISON
        if isinstance(base, Record):
            base = tuple(v for _, v in base.fields)
        if not isinstance(base, tuple):
            raise EvalError(f"cannot index {kind_of(base)}", expr.span)
        if isinstance(index, bool) or not isinstance(index, int):
            raise EvalError(f"an index must be an int, got {kind_of(index)}", expr.index.span)
        if not -len(base) <= index < len(base):
            raise EvalError(
                f"index {index} is out of range for a list of {len(base)}", expr.index.span
            )
        return base[index]

    def eval_Attribute(self, expr: ast.Attribute, hint: str | None) -> Any:
        base = self.eval(expr.value)
        if is_poison(base):
            return POISON
        if isinstance(base, Record):
            found = base.get(expr.name)
            if found is None:
                hint_text = did_you_mean(expr.name, [k for k, _ in base.fields])
                raise EvalError(
                    f"no output '{expr.name}' among {base.describe()}{hint_text}", expr.span
                )
            return found
        if isinstance(base, TensorVal):
            if expr.name == "shape":
                return base.type.shape
            if expr.name == "rank":
                return base.type.rank
        raise EvalError(f"{kind_of(base)} has no field '{expr.name}'", expr.span)

    def eval_Pipe(self, expr: ast.Pipe, hint: str | None) -> Any:
        value = self.eval(expr.value)
        stage = expr.stage
        if isinstance(stage, ast.Call):
            func = self.eval_callee(stage.func)
            args = [value, *(self.eval(a) for a in stage.args)]
            kwargs = {k.name: self.eval(k.value) for k in stage.kwargs}
            return self.call(func, args, kwargs, stage.span, hint)
        func = self.eval_callee(stage)
        return self.call(func, [value], {}, stage.span, hint)

    def eval_callee(self, expr: ast.Expr) -> Any:
        """What is called; a local value that hides an op or block of the same name is
        said so, since the call then fails for a reason that is easy to miss."""
        func = self.eval(expr)
        if (
            isinstance(expr, ast.Name)
            and not isinstance(func, (Callee, LayerVal))
            and not is_poison(func)
            and (registry.get(expr.id) is not None or self.program.block(expr.id))
        ):
            what = "op" if registry.get(expr.id) is not None else "block"
            raise EvalError(
                f"'{expr.id}' here names a {kind_of(func)} value, which hides the {what} "
                f"'{expr.id}'; rename the value",
                expr.span,
            )
        return func

    def eval_Call(self, expr: ast.Call, hint: str | None) -> Any:
        func = self.eval_callee(expr.func)
        args = [self.eval(a) for a in expr.args]
        kwargs: dict[str, Any] = {}
        for k in expr.kwargs:
            if k.name in kwargs:
                raise EvalError(f"argument '{k.name}' is given twice", k.span)
            kwargs[k.name] = self.eval(k.value)
        return self.call(func, args, kwargs, expr.span, hint)

    # --- calls ---------------------------------------------------------------------------------

    def call(
        self, func: Any, args: list[Any], kwargs: dict[str, Any], span: Span, hint: str | None
    ) -> Any:
        """The value of a call; a failed one is reported and gives POISON, so the rest of
        the statement (a pipeline's later stages) and what uses it are still checked."""
        if is_poison(func) or is_poison(tuple(kwargs.values())):
            return POISON
        try:
            if any(is_poison(a) for a in args):
                self.check_arguments(func, args, kwargs, span)
                return POISON
            return self.call_checked(func, args, kwargs, span, hint)
        except EvalError as err:
            if err.message:
                self.error(err.message, err.span)
            return POISON

    def check_arguments(
        self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], span: Span
    ) -> None:
        """A call whose input tensors failed earlier: what its other arguments do not fit
        is an independent mistake and is reported; nothing that needs the inputs is.
        Silent when a failed value may be one of those other arguments."""
        if not isinstance(func, Callee) or func.kind == "builtin":
            return  # a layer's arguments were checked where it was declared
        leading = next(
            (i for i, a in enumerate(args) if not (isinstance(a, TensorVal) or is_poison(a))),
            len(args),
        )
        rest = args[leading:]
        if is_poison(tuple(rest)):
            return
        kwargs = {k: v for k, v in kwargs.items() if not isinstance(v, TensorVal)}
        opdef = registry.get(func.name) if func.kind == "op" else None
        if opdef is not None:
            most = len(opdef.inputs) + len(opdef.optional_inputs)
            if opdef.variadic or leading <= most:
                known = [a.type for a in args[:1] if isinstance(a, TensorVal)]
                self.bind_op_attrs(opdef, rest, kwargs, span, known)
            return
        decl = self.program.block(func.name)
        inputs = [s for s in decl.body if isinstance(s, ast.InStmt)] if decl else []
        if decl is not None and leading <= len(inputs) and func.name not in self.active:
            self.take_init(kwargs, span)
            self.bind_params(decl, rest, kwargs, span)

    def call_checked(
        self, func: Any, args: list[Any], kwargs: dict[str, Any], span: Span, hint: str | None
    ) -> Any:
        if isinstance(func, LayerVal):
            return self.apply_layer(func, args, kwargs, span, hint)
        if not isinstance(func, Callee):
            raise EvalError(f"{kind_of(func)} is not callable", span)
        if func.kind == "builtin":
            return self.builtin(func.name, args, kwargs, span)
        tensors, rest = split_inputs(args, span)
        if not tensors and func.kind == "block":
            raise EvalError(
                f"block '{func.name}' is called without an input tensor: write "
                f"x -> {func.name}(...) (or declare it with 'layer' and apply it)",
                span,
            )
        if func.kind == "op":
            opdef = registry.get(func.name)
            assert opdef is not None
            if not tensors and opdef.inputs:
                raise EvalError(
                    f"{func.name} is called without an input tensor: write "
                    f"x -> {func.name}(...) or {func.name}(x, ...)",
                    span,
                )
            return self.apply_op(func.name, tensors, rest, kwargs, span, hint)
        return self.call_block(func.name, tensors, rest, kwargs, span, None, hint)

    def builtin(self, name: str, args: list[Any], kwargs: dict[str, Any], span: Span) -> Any:
        if kwargs:
            raise EvalError(f"{name}() takes no named arguments", span)
        if name == "range":
            if not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
                raise EvalError("range() takes 1 to 3 ints", span)
            if len(args) == 3 and args[2] == 0:
                raise EvalError("range() step must not be zero", span)
            r = range(*args)
            # len() of a range over 2**63 items overflows: count it as Python ints.
            size = max(0, (r.stop - r.start + r.step - (1 if r.step > 0 else -1)) // r.step)
            if size > self.limits.max_iterations:
                raise EvalError(
                    f"range of {size} is over the limit of "
                    f"{self.limits.max_iterations} (raise it with --max-iterations)",
                    span,
                )
            self.charge(size, span)
            return tuple(r)
        if name == "len":
            if len(args) != 1 or not isinstance(args[0], (tuple, str)):
                raise EvalError("len() takes one list or string", span)
            return len(args[0])
        if not args or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in args
        ):
            raise EvalError(f"{name}() takes numbers", span)
        return min(args) if name == "min" else max(args)

    def apply_op(
        self,
        op_name: str,
        tensors: Sequence[TensorVal],
        rest: Sequence[Any],
        kwargs: dict[str, Any],
        span: Span,
        hint: str | None,
        module: str | None = None,
    ) -> Any:
        frame, builder = self.frame, self.builder
        assert frame is not None and builder is not None
        opdef = registry.get(op_name)
        assert opdef is not None
        if not opdef.arity_ok(len(tensors)):
            count, names = opdef.arity_words()
            raise EvalError(
                f"{op_name} takes {count} input tensor(s) ({names}), got {len(tensors)}", span
            )
        attrs, init = self.bind_op_attrs(opdef, rest, kwargs, span, [t.type for t in tensors])
        has_weights = type(opdef).params is not registry.OpDef.params
        local = frame.local_name(opdef.short_name or op_name)
        path = module if module is not None else frame.module_prefix + local
        n_out = len(opdef.outputs)
        targets = hint.split(",") if hint else []
        if n_out > 1 and len(targets) == n_out:
            # Discarded outputs (`_c`) keep the op's own names.
            own = [local] + [f"{local}.{o}" for o in opdef.outputs[1:]]
            hints = [
                frame.value_prefix + (mine if t.startswith("_") else t)
                for t, mine in zip(targets, own)
            ]
        else:
            single = hint if hint and "," not in hint and n_out == 1 else None
            hints = [frame.value_prefix + (single or local)]
            hints += [f"{hints[0]}.{o}" for o in opdef.outputs[1:]]
        self.count_node(span)
        self.charge(NODE_STEPS, span)
        try:
            outs = builder.add_node(
                opdef,
                attrs,
                [t.name for t in tensors],
                module=path,
                out_hints=hints,
                span=span,
                chain=frame.chain,
                init=(init or frame.init) if has_weights else None,
                marks=self.marks,
            )
        except ShapeError as err:
            raise EvalError(str(err), span) from None
        self.check_sizes(op_name, outs, span)
        vals = [TensorVal(o, builder.graph.values[o].type) for o in outs]
        if len(vals) == 1:
            return vals[0]
        return Record(tuple(zip(opdef.outputs, vals)))

    def bind_op_attrs(
        self,
        opdef: registry.OpDef,
        rest: Sequence[Any],
        kwargs: dict[str, Any],
        span: Span,
        inputs: Sequence[TensorType] = (),
    ) -> tuple[Any, str | None]:
        """An op call's attributes and `init=` scheme, checked against its schema
        (`inputs`, its input types where known, for the messages)."""
        kwargs = dict(kwargs)
        init = self.take_init(kwargs, span)
        if init is not None and type(opdef).params is registry.OpDef.params:
            raise EvalError(f"{opdef.name} has no weights to initialise (init=)", span)
        if init is not None and not opdef.takes_init():
            raise EvalError(
                f"{opdef.name} does not say which of its parameters are weights "
                "(OpDef.param_roles), so init= cannot apply to it",
                span,
            )
        try:
            return opdef.bind_attrs(rest, kwargs, inputs), init
        except AttrError as err:
            for message in err.messages[:-1]:
                self.error(message, span)
            raise EvalError(err.messages[-1], span) from None

    def take_init(self, kwargs: dict[str, Any], span: Span) -> str | None:
        """Remove and check an `init=` argument (any op with weights, any block)."""
        if "init" not in kwargs:
            return None
        value = kwargs.pop("init")
        scheme = init_schemes.canonical(value) if isinstance(value, str) else None
        if scheme is None:
            hint = did_you_mean(value, init_schemes.names()) if isinstance(value, str) else ""
            raise EvalError(
                f"init expects one of {', '.join(init_schemes.names())}, got "
                f"{registry.value_words(value) if isinstance(value, str) else kind_of(value)}"
                f"{hint}",
                span,
            )
        return scheme

    def check_sizes(self, op_name: str, outputs: Sequence[str], span: Span) -> None:
        """The tensors a node made and the network's count of parameters and buffers
        (both take memory in the module) against the limits: types and shapes only,
        before any weight exists."""
        assert self.builder is not None
        graph, limits = self.builder.graph, self.limits
        new = len(graph.parameters) - self.parameters_seen
        self.parameters_seen = len(graph.parameters)
        before = self.parameters
        added = list(itertools.islice(reversed(graph.parameters.values()), new))
        for param in reversed(added):  # in the op's order: weight, then bias
            if elements(param.shape) > limits.max_tensor_elements:
                what = f"{op_name}'s {param.role} {shape_str(param.shape)}"
                raise EvalError(tensor_problem(what, param.shape, limits) or "", span)
            self.parameters += param.numel
        # Reported where the count crosses the limit, not again at every later layer.
        if before <= limits.max_parameters < self.parameters:
            raise EvalError(parameters_problem(self.parameters, limits) or "", span)
        for name in outputs:
            ttype = graph.values[name].type
            if elements(ttype.shape) > limits.max_tensor_elements:
                what = f"{op_name}'s output {ttype}"
                raise EvalError(tensor_problem(what, ttype.shape, limits) or "", span)

    def over_node_limit(self, span: Span) -> None:
        """Say the node limit is passed once: after that, every statement that would add
        nodes fails silently (one error for the network, not one per loop run)."""
        if self.node_limit_reported:
            raise EvalError("", span)
        self.node_limit_reported = True

    def count_node(self, span: Span) -> None:
        assert self.builder is not None
        if len(self.builder.graph.nodes) >= self.limits.max_nodes:
            self.over_node_limit(span)
            raise EvalError(
                f"the network has more than {self.limits.max_nodes} nodes "
                f"(raise the limit with --max-nodes)",
                span,
            )

    def make_layer(self, stmt: ast.LayerStmt) -> LayerVal:
        frame = self.frame
        assert frame is not None
        expr = stmt.value
        if isinstance(expr, ast.Call):
            func = self.eval(expr.func)
            args = tuple(self.eval(a) for a in expr.args)
            kwargs = {k.name: self.eval(k.value) for k in expr.kwargs}
        else:
            func, args, kwargs = self.eval(expr), (), {}
        if is_poison(func) or is_poison(args) or is_poison(tuple(kwargs.values())):
            raise EvalError("", expr.span)
        if not isinstance(func, Callee) or func.kind == "builtin":
            raise EvalError(
                f"a layer is an op or block, e.g. layer fc = linear(10); got {kind_of(func)}",
                expr.span,
            )
        if any(isinstance(a, (TensorVal, Record)) for a in (*args, *kwargs.values())):
            raise EvalError(
                f"a layer is declared without inputs (layer {stmt.name} = "
                f"{func.name}(...)); apply it afterwards: {stmt.name}(x)",
                expr.span,
            )
        self.check_layer_arguments(func, args, kwargs, expr.span)
        module = frame.module_prefix + frame.layer_segment(stmt.name)
        return LayerVal(func, args, kwargs, module, stmt.span, marks=dict(self.marks))

    def check_layer_arguments(
        self, func: Callee, args: Sequence[Any], kwargs: dict[str, Any], span: Span
    ) -> None:
        """A layer's arguments, checked where it is declared: a mistake there is one
        error, not one per use."""
        opdef = registry.get(func.name) if func.kind == "op" else None
        if opdef is not None:
            self.bind_op_attrs(opdef, args, kwargs, span)
            return
        decl = self.program.block(func.name)
        if decl is not None:
            params = dict(kwargs)
            self.take_init(params, span)
            if self.bind_params(decl, args, params, span) is None:
                raise EvalError("", span)  # reported by bind_params

    def apply_layer(
        self, layer: LayerVal, args: list[Any], kwargs: dict[str, Any], span: Span, hint: str | None
    ) -> Any:
        if kwargs or not all(isinstance(a, TensorVal) for a in args):
            raise EvalError(
                f"layer '{layer.module}' already has its arguments; call it with input "
                f"tensors only",
                span,
            )
        tensors = [a for a in args if isinstance(a, TensorVal)]
        layer.uses += 1
        with self.marked(layer.marks):
            if layer.callee.kind == "op":
                # Every use names the same module, hence the same parameters.
                return self.apply_op(
                    layer.callee.name,
                    tensors,
                    layer.args,
                    dict(layer.kwargs),
                    span,
                    hint,
                    module=layer.module,
                )
            return self.call_block(
                layer.callee.name, tensors, list(layer.args), dict(layer.kwargs), span, layer, hint
            )

    def call_block(
        self,
        name: str,
        tensors: Sequence[TensorVal],
        rest: Sequence[Any],
        kwargs: dict[str, Any],
        span: Span,
        layer: LayerVal | None,
        hint: str | None = None,
    ) -> Any:
        frame, builder = self.frame, self.builder
        assert frame is not None and builder is not None
        decl = self.program.block(name)
        assert decl is not None
        if name in self.active:
            return POISON  # recursion is reported once, statically
        self.charge(BLOCK_CALL_STEPS, span)
        if len(self.active) >= self.limits.max_depth:
            raise EvalError(
                f"blocks nest deeper than {self.limits.max_depth} levels "
                f"(raise the limit with --max-depth)",
                span,
            )
        inputs = [s for s in decl.body if isinstance(s, ast.InStmt)]
        tensor_kwargs = {k: v for k, v in kwargs.items() if isinstance(v, TensorVal)}
        param_kwargs = {k: v for k, v in kwargs.items() if k not in tensor_kwargs}
        init = self.take_init(param_kwargs, span) or frame.init
        given: list[Any] = list(tensors)
        for stmt in inputs[len(tensors) :]:
            if stmt.name in tensor_kwargs:
                given.append(tensor_kwargs.pop(stmt.name))
        if tensor_kwargs:
            raise EvalError(f"block '{name}' has no input '{next(iter(tensor_kwargs))}'", span)
        if len(given) != len(inputs):
            names = ", ".join(s.name for s in inputs)
            raise EvalError(
                f"block '{name}' takes {len(inputs)} input tensor(s) ({names}), got {len(given)}",
                span,
            )
        env = self.bind_params(decl, rest, param_kwargs, span)
        if env is None:
            raise EvalError("", span)
        self.check_growth(self.bound.block_call(decl, env), f"block '{name}'", span)
        if layer is not None:
            module = layer.module
            value_path = module if layer.uses == 1 else f"{module}@{layer.uses}"
        else:
            module = value_path = frame.module_prefix + frame.local_name(snake(name))
            if frame.value_prefix != frame.module_prefix:
                value_path = frame.value_prefix + module[len(frame.module_prefix) :]
        builder.add_module(module, name, {k: env[k] for k in (p.name for p in decl.params)}, span)
        call_id = builder.new_call_id()
        chain = (*frame.chain, CallFrame(block=name, instance=module, span=span, call_id=call_id))
        callee = Frame(
            decl,
            env,
            value_path + ".",
            module + ".",
            chain,
            inputs=given,
            init=init,
            layers=self.layer_names(decl),
        )
        self.active.append(name)
        try:
            self.run_body(callee)
        finally:
            self.active.pop()
        saved, self.frame = self.frame, callee
        try:
            self.check_outputs(callee)
        finally:
            self.frame = saved
        outs = callee.outputs
        if not outs:
            return POISON
        if not any(is_poison(v) for _, v, _ in outs):
            builder.add_call(
                CallInfo(
                    id=call_id,
                    parent=frame.chain[-1].call_id if frame.chain else 0,
                    block=name,
                    instance=module,
                    prefix=value_path + ".",
                    inputs=[t.name for t in given],
                    input_names=[s.name for s in inputs],
                    result_name=hint if hint and "," not in hint and len(outs) == 1 else None,
                    outputs=[
                        (n or "output", v.name) for n, v, _ in outs if isinstance(v, TensorVal)
                    ],
                    span=span,
                )
            )
        if len(outs) == 1:
            return outs[0][1]
        if any(is_poison(v) for _, v, _ in outs):
            return POISON
        return Record(tuple((n or f"out{i}", v) for i, (n, v, _) in enumerate(outs)))


def _binding_after(body: Sequence[ast.Stmt], name: str, use: Span) -> ast.Stmt | None:
    """The first statement of `body` after `use` that binds `name`, if any."""
    for stmt, _ in walk_stmts(body):
        if stmt.span > use and name in _assigned_in([stmt], nested=False):
            return stmt
    return None


def _assigned_in(body: Sequence[ast.Stmt], nested: bool = True) -> list[str]:
    """The names that statements of `body` (nested ones too) bind."""
    names: list[str] = []
    for stmt, _ in walk_stmts(body) if nested else ((s, 0) for s in body):
        if isinstance(stmt, (ast.AssignStmt, ast.ForStmt)):
            names += stmt.targets
        elif isinstance(stmt, (ast.LayerStmt, ast.ConstDecl, ast.InStmt)):
            names.append(stmt.name)
        elif isinstance(stmt, ast.RepeatStmt) and stmt.var:
            names.append(stmt.var)
    return names


def split_inputs(args: Sequence[Any], span: Span) -> tuple[list[TensorVal], list[Any]]:
    """Leading tensor arguments are inputs; the rest are attributes."""
    tensors: list[TensorVal] = []
    rest: list[Any] = []
    for a in args:
        if isinstance(a, Record):
            raise EvalError(f"cannot pass {a.describe()} as one input; pick one with .name", span)
        if isinstance(a, TensorVal):
            if rest:
                raise EvalError("input tensors come before the other arguments", span)
            tensors.append(a)
        else:
            rest.append(a)
    return tensors, rest


def check_param_type(param: ast.Param, value: Any) -> str | None:
    """None when `value` fits the declared type, else what is wrong."""
    kind = param.type_name
    if kind is None:
        return None
    ok = {
        "int": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, SymExpr),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, tuple),
    }.get(kind)
    if ok is None:
        return None  # unknown type names are reported statically
    return None if ok(value) else f"expects {kind}, got {registry.value_words(value)}"


def _axis_text(expr: ast.Expr, value: Any) -> str:
    """`16`, or `2 * C = 32` when the declared size is an expression."""
    text, shown = _expr_text(expr), symbolic.dim_str(value)
    return text if text == shown else f"{text} = {shown}"


def _expr_text(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Literal):
        return repr(expr.value)
    if isinstance(expr, ast.Binary):
        return f"{_expr_text(expr.left)} {expr.op} {_expr_text(expr.right)}"
    if isinstance(expr, ast.Unary):
        return f"{expr.op}{_expr_text(expr.operand)}"
    return "..."


__all__ = ["BUILTINS", "Expander", "shape_str"]
