"""Expression evaluation: names, literals, lists, operators (on values at compile time,
as op nodes on tensors), indexing, fields, pipelines and calls, each charged against
max_steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dslnet.core.diagnostics import Span, did_you_mean
from dslnet.core.symbolic import Dim, SymExpr, terms
from dslnet.frontend import ast
from dslnet.frontend.expand_state import ExpanderState, Frame
from dslnet.frontend.expand_statements import binding_after
from dslnet.frontend.limits import symbolic_work, value_problem
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
from dslnet.ops import registry
from dslnet.ops.elementwise import Constant
from dslnet.ops.reshape import express
from dslnet.ops.size_value import SizeValue


class Expressions(ExpanderState):
    """Evaluates expressions in the running block's frame."""

    def constant(self, expr: ast.Expr, env: dict[str, Any]) -> Any:
        """Evaluate a compile-time expression (a `const`, a default) outside any graph."""
        decl = ast.BlockDecl("block", "<const>", (), (), expr.span, expr.span)
        saved = self.frame
        self.frame = Frame(decl, env, "", "", saved.chain if saved else ())
        try:
            return self.eval(expr)
        finally:
            self.frame = saved

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
        later_stmt = binding_after(frame.decl.body, expr.id, expr.span)
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
                f"'{expr.op}' is not defined on tensors (the operators on tensors are"
                f" {' '.join(on_tensors)})",
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
        if isinstance(value, SymExpr):
            return self.size_tensor(value, like, span)
        raise EvalError(f"cannot combine a tensor with {kind_of(value)}", span)

    def size_tensor(self, size: SymExpr, like: TensorVal, span: Span) -> TensorVal:
        """A size known only at run time (N, N*T, N - 1) as a scalar tensor of `like`'s
        dtype, read from the shape of a tensor that has it (`like` itself, else one in
        scope); a sum of sizes as the sum of its terms, each read so."""
        frame = self.frame
        assert frame is not None
        in_scope = [like, *(v for v in frame.env.values() if isinstance(v, TensorVal))]
        dtype = {"dtype": like.type.dtype}
        total: TensorVal | None = None
        for coef, monomial in [(1, size)] if self.readable(size, in_scope) else terms(size):
            if monomial == 1:
                term = self.scalar_tensor(float(abs(coef)), like, span)
            else:
                part = abs(coef) * monomial
                source = self.readable(part, in_scope)
                if source is None:
                    missing = part if part == size else f"{part} (a term of {size})"
                    raise EvalError(
                        f"cannot combine a tensor with the symbolic size {size}: no tensor in "
                        f"scope has {missing}, nor sizes whose product it is, to read it "
                        f"from at run time",
                        span,
                    )
                term = self.apply_op(SizeValue.name, [source], (part,), dtype, span, None)
            if total is None and coef < 0:
                total = self.scalar_tensor(0.0, like, span)
            if total is None:
                total = term
            else:
                op = registry.operators()["+" if coef > 0 else "-"].name
                total = self.apply_op(op, [total, term], (), {}, span, None)
        assert isinstance(total, TensorVal)
        return total

    def scalar_tensor(self, value: float, like: TensorVal, span: Span) -> TensorVal:
        dtype = {"dtype": like.type.dtype}
        result = self.apply_op(Constant.name, [], (value,), dtype, span, None)
        assert isinstance(result, TensorVal)
        return result

    @staticmethod
    def readable(size: Dim, tensors: list[TensorVal]) -> TensorVal | None:
        """The first of `tensors` whose sizes give `size` (k times a product of them)."""
        return next((t for t in tensors if express(size, t.type.shape) is not None), None)

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
