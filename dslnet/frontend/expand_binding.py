"""Binding: a block's parameters from a call's arguments (with their defaults and
declared types), and its inputs from the tensors it is given, or, for the network,
from the types its `in` statements declare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dslnet.core import symbolic
from dslnet.core.diagnostics import Span, closest, did_you_mean
from dslnet.core.symbolic import SymExpr
from dslnet.core.types import DType, TensorType
from dslnet.frontend import ast
from dslnet.frontend.expand_state import ExpanderState
from dslnet.frontend.limits import tensor_problem
from dslnet.frontend.resolve import walk_exprs
from dslnet.frontend.values import POISON, EvalError, TensorVal, is_poison, kind_of
from dslnet.ops import registry

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


class Binding(ExpanderState):
    """Parameters and inputs of the running block."""

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
