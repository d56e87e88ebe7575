"""The statement runner: runs a block's body, its loops and conditions, binds what
each statement assigns, and keeps loops and node counts within the limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dslnet.core.diagnostics import Span
from dslnet.frontend import ast
from dslnet.frontend.expand_state import ExpanderState, Frame
from dslnet.frontend.resolve import walk_stmts
from dslnet.frontend.values import (
    POISON,
    EvalError,
    LayerVal,
    Record,
    TensorVal,
    is_poison,
    kind_of,
)
from dslnet.ops import registry


class StatementRunner(ExpanderState):
    """Runs statements in the running block's frame."""

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

    def stop(self, rest: Sequence[ast.Stmt]) -> None:
        """Out of steps: say so once, and leave what `rest` would bind as an error."""
        assert self.frame is not None
        message = self.out_of_steps()
        if message:
            self.error(message, rest[0].span)
        self.poison(assigned_in(rest))
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
            found = [name for body in bodies for name in assigned_in(body)]
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
            hint = (
                " (an if is decided at compile time; where(cond, a, b) chooses elementwise)"
                if isinstance(value, TensorVal)
                else ""
            )
            raise EvalError(f"condition must be a bool, got {kind_of(value)}{hint}", expr.span)
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


def binding_after(body: Sequence[ast.Stmt], name: str, use: Span) -> ast.Stmt | None:
    """The first statement of `body` after `use` that binds `name`, if any."""
    for stmt, _ in walk_stmts(body):
        if stmt.span > use and name in assigned_in([stmt], nested=False):
            return stmt
    return None


def assigned_in(body: Sequence[ast.Stmt], nested: bool = True) -> list[str]:
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
