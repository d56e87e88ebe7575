"""The settings of a train declaration (`optimizer: adam(lr=1e-3)`, `epochs: 5`):
which exist where, and their values checked, each problem a located error."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from dslnet.core.diagnostics import Span, did_you_mean
from dslnet.frontend import ast
from dslnet.frontend.train import settings as fn
from dslnet.frontend.values import EvalError, is_poison, kind_of

QUANTIZATIONS = ("fp16", "int8-dynamic", "int8-static")

# Setting name -> what it takes, said in its errors. Step settings may also be written
# at the top level of a declaration without steps (or as defaults for every step).
STEP_SETTINGS = {
    "optimizer": f"an optimizer: {', '.join(fn.functions_for('optimizer'))}",
    "schedule": f"a learning-rate schedule: {', '.join(fn.functions_for('schedule'))}",
    "clip_grad_norm": "a positive number, the largest gradient norm",
    "update": "a list of this declaration's layers, the ones this step's optimizer trains",
    "times": "a positive int, how many times the step runs per iteration",
}
TRAIN_SETTINGS = {
    "batch_size": "a positive int",
    "epochs": "a non-negative int",
    "seed": "a non-negative int",
    "data": 'a ".npz" file name, relative to the spec',
    "validation": 'a ".npz" file name, relative to the spec: held-out data (val_ metrics)',
    "early_stopping": "patience(epochs, metric=...)",
    "load_weights": 'a list of (layer path, ".safetensors" or ".pt" file) pairs',
    "quantize": f"one of {', '.join(repr(q) for q in QUANTIZATIONS)}: the exported ONNX",
    "qat": "true or false: train with fake quantization, export int8",
    "prune": "iterative(target, ...) or lottery(target, ...)",
}


class SettingReader:
    """Reads setting statements: `evaluate` gives a compile-time value (the
    declaration's parameters in scope), `error` reports a located problem."""

    def __init__(
        self, evaluate: Callable[[ast.Expr], Any], error: Callable[[str, Span], None]
    ) -> None:
        self.evaluate = evaluate
        self.error = error

    def settings(
        self,
        stmts: tuple[ast.SettingStmt, ...],
        allowed: dict[str, str],
        layers: Collection[str],
    ) -> dict[str, tuple[Any, Span]]:
        found: dict[str, tuple[Any, Span]] = {}
        for s in stmts:
            if s.name not in allowed:
                hint = did_you_mean(s.name, allowed)
                where = "a step" if allowed is STEP_SETTINGS else "a train declaration"
                self.error(
                    f"unknown setting '{s.name}'{hint} in {where}; expected one of "
                    f"{', '.join(allowed)}",
                    s.name_span,
                )
                continue
            if s.name in found:
                self.error(f"setting '{s.name}' is given twice", s.name_span)
                continue
            try:
                value = self.setting(s, allowed[s.name], layers)
            except EvalError as err:
                if err.message:
                    self.error(err.message, err.span)
                continue
            found[s.name] = (value, s.span)
        return found

    def setting(self, s: ast.SettingStmt, usage: str, layers: Collection[str]) -> Any:
        expr = s.value
        if s.name == "update":
            return self.layer_list(expr, layers, usage)
        if s.name in ("optimizer", "schedule", "early_stopping", "prune"):
            kind = s.name
            return self.function(expr, kind, usage)
        value = self.evaluate(expr)
        if is_poison(value):
            raise EvalError("", expr.span)
        problem = _simple_problem(s.name, value)
        if problem is not None:
            raise EvalError(f"'{s.name}' takes {usage}; got {problem}", expr.span)
        if s.name == "clip_grad_norm":
            return float(value)
        if s.name == "load_weights":
            return [tuple(pair) for pair in value]
        return value

    def function(self, expr: ast.Expr, kind: str, usage: str) -> fn.SettingFunction:
        name = expr.func if isinstance(expr, ast.Call) else expr
        if not isinstance(name, ast.Name) or name.id not in fn.FUNCTIONS:
            text = name.id if isinstance(name, ast.Name) else None
            hint = did_you_mean(text, fn.functions_for(kind)) if text else ""
            raise EvalError(f"'{kind}' takes {usage}{hint}", expr.span)
        cls = fn.FUNCTIONS[name.id]
        if cls.kind != kind:
            raise EvalError(f"{name.id}() is not a {kind.replace('_', ' ')}; {usage}", name.span)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if isinstance(expr, ast.Call):
            args = [self.evaluate(a) for a in expr.args]
            kwargs = {k.name: self.evaluate(k.value) for k in expr.kwargs}
        if is_poison(args) or is_poison(tuple(kwargs.values())):
            raise EvalError("", expr.span)
        try:
            return fn.build(name.id, args, kwargs)
        except fn.SettingError as err:
            raise EvalError(str(err), _argument_span(expr, cls, err.field)) from None

    def layer_list(self, expr: ast.Expr, layers: Collection[str], usage: str) -> tuple[str, ...]:
        items = expr.items if isinstance(expr, (ast.ListExpr, ast.TupleExpr)) else (expr,)
        names: list[str] = []
        for item in items:
            if not isinstance(item, ast.Name) or item.id not in layers:
                text = item.id if isinstance(item, ast.Name) else "an expression"
                hint = did_you_mean(text, layers) if isinstance(item, ast.Name) else ""
                raise EvalError(f"'update' takes {usage}; '{text}' is not one{hint}", item.span)
            names.append(item.id)
        if not names:
            raise EvalError(f"'update' takes {usage}; got an empty list", expr.span)
        return tuple(names)


def _argument_span(expr: ast.Expr, cls: type[fn.SettingFunction], field: str | None) -> Span:
    """Where argument `field` of a setting call is written (else the whole call)."""
    if isinstance(expr, ast.Call) and field is not None:
        for k in expr.kwargs:
            if k.name == field:
                return k.span
        if field in cls.positional and cls.positional.index(field) < len(expr.args):
            return expr.args[cls.positional.index(field)].span
    return expr.span


def _simple_problem(name: str, value: Any) -> str | None:
    """Why `value` does not suit setting `name`, or None."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    shown = f"{kind_of(value)} {value!r}"
    if name in ("batch_size", "times"):
        return None if is_int and value >= 1 else shown
    if name in ("epochs", "seed"):
        return None if is_int and value >= 0 else shown
    if name == "clip_grad_norm":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        return None if ok else shown
    if name in ("data", "validation"):
        return None if isinstance(value, str) and value else shown
    if name == "qat":
        return None if isinstance(value, bool) else shown
    if name == "quantize":
        return None if value in QUANTIZATIONS else shown
    if name == "load_weights":
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in value
        )
        return None if ok else shown
    return None
