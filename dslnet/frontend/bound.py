"""A lower bound on the nodes a block call or a loop adds, read from the syntax first.

Expansion costs time and memory in proportion to what it builds: a block that calls
another twice, forty levels deep, would build 2**40 nodes, and the node limit alone
would stop it only after minutes and gigabytes. The expander asks here first, at every
block call and loop, and stops at once when the bound passes the limit.

Only what is certain counts, so the bound never exceeds what expansion builds: an op
call is one node, a block call what its body adds, a loop its body times its count.
A count, condition or argument that is not known from literals, constants and
parameters counts as nothing: zero iterations, the smaller branch. The walk has a
step budget; when it runs out the sums so far are still lower bounds.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from dslnet.frontend import ast
from dslnet.frontend.builtins import NUMBER_BUILTINS, number_builtin
from dslnet.frontend.limits import value_problem
from dslnet.frontend.resolve import stmt_exprs, walk_exprs, walk_stmts
from dslnet.frontend.values import Callee, EvalError, arith, compare
from dslnet.ops import registry

if TYPE_CHECKING:
    from dslnet.frontend.limits import Limits
    from dslnet.frontend.loader import Spec

UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "<unknown>"})()

# Steps one question may take, and all questions of one expansion together: enough for
# any real network's structure, small against the time the nodes themselves take.
STEPS_PER_QUESTION = 50_000
STEPS_PER_EXPANSION = 500_000

MAX_KNOWN_ITEMS = 256  # a longer list or string counts as unknown
Env = MutableMapping[str, Any]  # name -> known value or UNKNOWN; absent: not bound here


def known(value: Any) -> bool:
    """A compile-time value the bound can compute with (not a tensor, layer or size name;
    not a long list either: values are part of the keys answers are remembered by)."""
    if isinstance(value, (bool, int, float, str)):
        return not isinstance(value, str) or len(value) <= MAX_KNOWN_ITEMS
    if isinstance(value, tuple) and len(value) <= MAX_KNOWN_ITEMS:
        return all(known(v) for v in value)
    return False


class ExpansionBound:
    """Answers "at least how many nodes does this add?" for one network's expansion."""

    def __init__(self, program: Spec, limits: Limits) -> None:
        self.program = program
        self.limits = limits
        self._memo: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._loops: dict[tuple[int, tuple[tuple[str, str], ...]], int] = {}  # per run
        self._bodies: dict[int, tuple[Sequence[ast.Stmt], frozenset[str], frozenset[str]]] = {}
        self._active: list[str] = []
        self._spent = 0  # steps taken, all questions together
        self._left = 0  # steps left to the current question

    # --- questions ----------------------------------------------------------------------

    def block_call(self, decl: ast.BlockDecl, params: Mapping[str, Any]) -> int:
        """Nodes a call of `decl` adds, its parameters bound to `params`."""
        self._start()
        bound = {p.name: _as_known(params.get(p.name, UNKNOWN)) for p in decl.params}
        return self._block(bound, decl)

    def loop(
        self,
        body: Sequence[ast.Stmt],
        variables: Sequence[str],
        count: int,
        env: Mapping[str, Any],
    ) -> int:
        """Nodes `count` runs of a loop `body` with loop `variables` add, run where `env`
        is bound."""
        reads, assigned = self._names(body)
        # Only the names the body reads matter: they make the key of the answer.
        walk_env = {name: _as_known(env[name]) for name in reads if name in env}
        # What changes from one run to the next is unknown in every run.
        walk_env.update(dict.fromkeys((*variables, *assigned), UNKNOWN))
        key = (id(body), tuple(sorted((k, repr(v)) for k, v in walk_env.items())))
        per_run = self._loops.get(key)
        if per_run is None:
            self._start()
            per_run = self._loops[key] = self._stmts(body, walk_env)
        return count * per_run

    def _names(self, body: Sequence[ast.Stmt]) -> tuple[frozenset[str], frozenset[str]]:
        """The names a loop body reads and those it binds (found once per body)."""
        found = self._bodies.get(id(body))
        if found is None or found[0] is not body:
            reads = {
                e.id
                for stmt, _ in walk_stmts(body)
                for top in _exprs(stmt)
                for e in walk_exprs(top)
                if isinstance(e, ast.Name)
            }
            found = self._bodies[id(body)] = (body, frozenset(reads), frozenset(_assigned(body)))
        return found[1], found[2]

    def _start(self) -> None:
        self._left = min(STEPS_PER_QUESTION, STEPS_PER_EXPANSION - self._spent)

    def _step(self) -> bool:
        """Take one step; False when the budget is spent (stop walking)."""
        if self._left <= 0:
            return False
        self._left -= 1
        self._spent += 1
        return True

    # --- blocks and statements ----------------------------------------------------------

    def _block(self, params: dict[str, Any], decl: ast.BlockDecl) -> int:
        # repr tells True, 1 and 1.0 apart, which compare equal
        key = (decl.name, tuple((k, repr(v)) for k, v in params.items() if v is not UNKNOWN))
        found = self._memo.get(key)
        if found is not None:
            return found
        if decl.name in self._active or len(self._active) >= self.limits.max_depth:
            return 0  # recursion is an error of its own; depth past the limit is too
        self._active.append(decl.name)
        try:
            total = self._stmts(decl.body, dict(params))
        finally:
            self._active.pop()
        self._memo[key] = total
        return total

    def _stmts(self, body: Sequence[ast.Stmt], env: Env) -> int:
        total = 0
        for stmt in body:
            if not self._step():
                break
            total += self._stmt(stmt, env)
        return total

    def _stmt(self, stmt: ast.Stmt, env: Env) -> int:
        if isinstance(stmt, ast.InStmt):
            env[stmt.name] = UNKNOWN
            sizes = [e.id for d in stmt.type.dims for e in walk_exprs(d) if isinstance(e, ast.Name)]
            for name in sizes:
                if name not in env and not self.program.has_const(name):
                    env[name] = UNKNOWN  # a size name, bound to the input's size
            return 0
        if isinstance(stmt, ast.AssignStmt):
            nodes = self._expr(stmt.value, env)
            value = self._value(stmt.value, env) if len(stmt.targets) == 1 else UNKNOWN
            for t in stmt.targets:
                env[t] = value
            return nodes
        if isinstance(stmt, ast.OutStmt):
            return self._expr(stmt.value, env)
        if isinstance(stmt, ast.ConstDecl):
            env[stmt.name] = self._value(stmt.value, env)
            return 0
        if isinstance(stmt, ast.LayerStmt):
            env[stmt.name] = UNKNOWN  # applied later: its calls are local names
            return 0
        if isinstance(stmt, ast.ForStmt):
            items = self._value(stmt.iterable, env)
            count = len(items) if isinstance(items, (tuple, range)) else 0
            nodes = self._expr(stmt.iterable, env)
            return nodes + self._repeat(stmt.body, stmt.targets, count, env)
        if isinstance(stmt, ast.RepeatStmt):
            n = self._value(stmt.count, env)
            count = n if type(n) is int and n > 0 else 0
            return self._repeat(stmt.body, (stmt.var,) if stmt.var else (), count, env)
        return self._if(stmt, env)

    def _repeat(
        self, body: Sequence[ast.Stmt], variables: Sequence[str], count: int, env: Env
    ) -> int:
        """A loop: what changes from one run to the next is unknown in every run."""
        changing = {*variables, *_assigned(body)}
        for name in changing:
            env[name] = UNKNOWN
        if count == 0:
            return 0
        return count * self._stmts(body, dict(env))

    def _if(self, stmt: ast.IfStmt, env: Env) -> int:
        for i, (cond, body) in enumerate(stmt.branches):
            decided = self._value(cond, env)
            if decided is True:
                return self._stmts(body, env)
            if decided is not False:  # unknown: the smallest of the branches left
                bodies = [b for _, b in stmt.branches[i:]] + [stmt.orelse]
                least = min(self._stmts(b, dict(env)) for b in bodies)
                for name in {n for b in bodies for n in _assigned(b)}:
                    env[name] = UNKNOWN
                return least
        return self._stmts(stmt.orelse, env)

    # --- expressions: nodes ---------------------------------------------------------------

    def _expr(self, expr: ast.Expr, env: Env) -> int:
        if not self._step():
            return 0
        if isinstance(expr, (ast.ListExpr, ast.TupleExpr)):
            return sum(self._expr(e, env) for e in expr.items)
        if isinstance(expr, ast.Unary):
            return self._expr(expr.operand, env)
        if isinstance(expr, ast.Binary):
            if expr.op in ("and", "or"):
                return self._expr(expr.left, env)  # the right side may not run
            return self._expr(expr.left, env) + self._expr(expr.right, env)
        if isinstance(expr, ast.Index):
            return self._expr(expr.value, env) + self._expr(expr.index, env)
        if isinstance(expr, ast.Attribute):
            return self._expr(expr.value, env)
        if isinstance(expr, ast.IfExpr):
            for i, (cond, value) in enumerate(expr.branches):
                decided = self._value(cond, env)
                if decided is True:
                    return self._expr(value, env)
                if decided is not False:
                    values = [v for _, v in expr.branches[i:]] + [expr.orelse]
                    return min(self._expr(v, env) for v in values)
            return self._expr(expr.orelse, env)
        if isinstance(expr, ast.Pipe):
            stage = expr.stage
            nodes = self._expr(expr.value, env)
            if isinstance(stage, ast.Call):
                return nodes + self._call(stage.func, expr.value, stage.args, stage.kwargs, env)
            return nodes + self._call(stage, expr.value, (), (), env)
        if isinstance(expr, ast.Call):
            return self._call(expr.func, None, expr.args, expr.kwargs, env)
        return 0

    def _call(
        self,
        func: ast.Expr,
        piped: ast.Expr | None,
        args: Sequence[ast.Expr],
        kwargs: Sequence[ast.Keyword],
        env: Env,
    ) -> int:
        """The nodes of the arguments, then of the call itself (`piped` is counted by the
        caller: the value before `->`)."""
        nodes = sum(self._expr(a, env) for a in args)
        nodes += sum(self._expr(k.value, env) for k in kwargs)
        if not isinstance(func, ast.Name):
            return nodes + self._expr(func, env)  # e.g. a layer picked from a list
        name = func.id
        if name in env or self.program.has_const(name):
            return nodes  # a local value: a layer, or not callable
        decl = self.program.block(name)
        if decl is not None:
            every = (piped, *args) if piped is not None else tuple(args)
            return nodes + self._block(self._bind(decl, every, kwargs, env), decl)
        return nodes + (1 if registry.get(name) is not None else 0)

    def _bind(
        self,
        decl: ast.BlockDecl,
        args: Sequence[ast.Expr],
        kwargs: Sequence[ast.Keyword],
        env: Env,
    ) -> dict[str, Any]:
        """The callee's parameters as the call binds them (as `Expander.call_block`
        does: input tensors lead, the arguments after them are parameters in order)."""
        inputs = {s.name for s in decl.body if isinstance(s, ast.InStmt)}
        named = {k.name: k.value for k in kwargs if k.name != "init"}
        n_inputs = len(inputs)
        in_order = not (inputs & named.keys()) and len(args) >= n_inputs
        positional = args[n_inputs:] if in_order else ()
        params: dict[str, Any] = {}
        for i, p in enumerate(decl.params):
            if i < len(positional):
                value = self._value(positional[i], env)
            elif p.name in named:
                value = self._value(named[p.name], env)
            elif not in_order or p.default is None:
                value = UNKNOWN  # given where we cannot tell, or missing (an error)
            else:
                value = self._value(p.default, dict(params))
            params[p.name] = value
        return params

    # --- expressions: compile-time values ------------------------------------------------

    def _value(self, expr: ast.Expr, env: Env) -> Any:
        """The value of a compile-time expression, or UNKNOWN."""
        if not self._step():
            return UNKNOWN
        try:
            value = self._evaluate(expr, env)
        except EvalError:
            return UNKNOWN  # an error expansion reports where it happens
        if value is UNKNOWN or value_problem(value):
            return UNKNOWN
        return value

    def _evaluate(self, expr: ast.Expr, env: Env) -> Any:
        if isinstance(expr, ast.Literal):
            return expr.value
        if isinstance(expr, ast.Name):
            if expr.id in env:
                return env[expr.id]
            if self.program.has_const(expr.id):
                return _as_known(self.program.const(expr.id))
            return UNKNOWN
        if isinstance(expr, (ast.ListExpr, ast.TupleExpr)):
            items = tuple(self._value(e, env) for e in expr.items)
            return UNKNOWN if any(i is UNKNOWN for i in items) else items
        if isinstance(expr, ast.Unary):
            operand = self._value(expr.operand, env)
            if operand is UNKNOWN:
                return UNKNOWN
            if expr.op == "not":
                return (not operand) if isinstance(operand, bool) else UNKNOWN
            return arith(expr.op, 0, operand, expr.span)
        if isinstance(expr, ast.Binary):
            return self._binary(expr, env)
        if isinstance(expr, ast.IfExpr):
            for cond, value in expr.branches:
                decided = self._value(cond, env)
                if decided is not True and decided is not False:
                    return UNKNOWN
                if decided:
                    return self._value(value, env)
            return self._value(expr.orelse, env)
        if isinstance(expr, ast.Index):
            base, index = self._value(expr.value, env), self._value(expr.index, env)
            sequence = isinstance(base, (tuple, range))
            if sequence and type(index) is int and -len(base) <= index < len(base):
                return base[index]
            return UNKNOWN
        if isinstance(expr, ast.Call):
            return self._builtin(expr, env)
        return UNKNOWN

    def _binary(self, expr: ast.Binary, env: Env) -> Any:
        left = self._value(expr.left, env)
        if expr.op in ("and", "or"):
            if not isinstance(left, bool):
                return UNKNOWN
            if (expr.op == "and") != left:
                return left
            right = self._value(expr.right, env)
            return right if isinstance(right, bool) else UNKNOWN
        right = self._value(expr.right, env)
        if any(v is UNKNOWN or isinstance(v, range) for v in (left, right)):
            return UNKNOWN  # a lazy range is a list to the spec: no exact == or + here
        if expr.op in ("==", "!=", "<", "<=", ">", ">="):
            return compare(expr.op, left, right, expr.span)
        return arith(expr.op, left, right, expr.span)

    def _builtin(self, expr: ast.Call, env: Env) -> Any:
        func = expr.func
        if not isinstance(func, ast.Name) or expr.kwargs or func.id in env:
            return UNKNOWN
        callee = self.program.callee(func.id)
        # sqrt, exp, log, abs are ops too: on known values (numbers), the builtin.
        if callee != Callee("builtin", func.id) and func.id not in NUMBER_BUILTINS:
            return UNKNOWN
        if callee is None or callee.kind == "block":
            return UNKNOWN
        args = [self._value(a, env) for a in expr.args]
        if any(a is UNKNOWN for a in args):
            return UNKNOWN
        if func.id == "range":
            if not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
                return UNKNOWN
            span = range(*args)  # kept lazy: a loop needs its length only
            return span if len(span) <= self.limits.max_iterations else UNKNOWN
        if func.id == "len":
            one = len(args) == 1 and isinstance(args[0], (tuple, range, str))
            return len(args[0]) if one else UNKNOWN
        if func.id not in NUMBER_BUILTINS:  # size(): of a tensor, never known here
            return UNKNOWN
        return number_builtin(func.id, args, expr.span)  # an EvalError counts as unknown


def _as_known(value: Any) -> Any:
    return value if known(value) else UNKNOWN


def _assigned(body: Sequence[ast.Stmt]) -> set[str]:
    """Every name a statement in `body` (nested ones too) may bind."""
    names: set[str] = set()
    for stmt, _ in walk_stmts(body):
        if isinstance(stmt, ast.AssignStmt):
            names.update(stmt.targets)
        elif isinstance(stmt, (ast.InStmt, ast.LayerStmt, ast.ConstDecl)):
            names.add(stmt.name)
        elif isinstance(stmt, ast.ForStmt):
            names.update(stmt.targets)
        elif isinstance(stmt, ast.RepeatStmt) and stmt.var:
            names.add(stmt.var)
    return names


def _exprs(stmt: ast.Stmt) -> list[ast.Expr]:
    """The expressions of one statement (not of the statements nested in it)."""
    if isinstance(stmt, ast.InStmt):
        return list(stmt.type.dims)
    return stmt_exprs(stmt)
