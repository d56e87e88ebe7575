"""The compile-time builtins on numbers: min, max, abs, round, floor, ceil, int, float,
sqrt, exp, log (range, len and size, which take lists, strings and tensors, are the
expander's: dslnet.frontend.expand_calls).

Each computes what Python's function of the same name (or math's) does, with two
differences that keep a spec's values well defined: a result is a finite number (an
int within the 64-bit range of sizes, a float that did not overflow), else a located
error; and a symbolic size (N) passes through the functions that leave an int
unchanged (int, round, floor, ceil) and is refused by the others, which would need its
value. `round` rounds half to even, as Python, torch.round and ONNX's Round do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dslnet.core.diagnostics import Span
from dslnet.core.symbolic import SymExpr
from dslnet.frontend.values import INT_MAX, INT_MIN, EvalError, kind_of

Number = int | float


def _finite(name: str, x: Number, span: Span) -> float:
    if isinstance(x, float) and not math.isfinite(x):
        raise EvalError(f"{name}() of {x}: the result would not be a finite int", span)
    return x


def _to_int(name: str, x: Number, convert: Callable[[Any], int], span: Span) -> int:
    result = convert(_finite(name, x, span))
    if not INT_MIN <= result <= INT_MAX:
        raise EvalError(f"{name}({x}) is outside the 64-bit range of sizes", span)
    return result


def _sqrt(x: Number, span: Span) -> float:
    if x < 0:
        raise EvalError(f"sqrt() of a negative number ({x})", span)
    return math.sqrt(x)


def _log(x: Number, span: Span) -> float:
    if x <= 0:
        what = "0" if x == 0 else f"a negative number ({x})"
        raise EvalError(f"log() of {what}: log takes a number above 0", span)
    return math.log(x)


def _exp(x: Number, span: Span) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise EvalError(f"exp({x}) is too large for a float", span) from None


def _abs(x: Number, span: Span) -> Number:
    result = abs(x)
    if isinstance(result, int) and result > INT_MAX:  # abs of the most negative int64
        raise EvalError(f"abs({x}) is outside the 64-bit range of sizes", span)
    return result


def _float(x: Number, span: Span) -> float:
    return float(x)


# One number in, one out; `int` of a float truncates toward zero, as Python's.
_ONE_NUMBER: dict[str, Callable[[Number, Span], Number]] = {
    "abs": _abs,
    "round": lambda x, span: _to_int("round", x, round, span),
    "floor": lambda x, span: _to_int("floor", x, math.floor, span),
    "ceil": lambda x, span: _to_int("ceil", x, math.ceil, span),
    "int": lambda x, span: _to_int("int", x, int, span),
    "float": _float,
    "sqrt": _sqrt,
    "exp": _exp,
    "log": _log,
}
# Those that leave an int as it is, so also a symbolic size (an int known at run time).
_KEEP_INTS = frozenset({"round", "floor", "ceil", "int"})
NUMBER_BUILTINS = ("min", "max", *_ONE_NUMBER)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_builtin(name: str, args: list[Any], span: Span) -> Any:
    """The value of the builtin `name` (one of NUMBER_BUILTINS) on `args`."""
    if name in ("min", "max"):
        if not args or not all(_is_number(a) for a in args):
            raise EvalError(f"{name}() takes numbers", span)
        return min(args) if name == "min" else max(args)
    if len(args) != 1:
        raise EvalError(f"{name}() takes one number, got {len(args)} arguments", span)
    (x,) = args
    if isinstance(x, SymExpr):
        if name in _KEEP_INTS:
            return x
        raise EvalError(
            f"{name}() needs a number known at compile time; {x} is a size known only at run time",
            span,
        )
    if not _is_number(x):
        raise EvalError(f"{name}() takes a number, got {kind_of(x)}", span)
    return _ONE_NUMBER[name](x, span)
