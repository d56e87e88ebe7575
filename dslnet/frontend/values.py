"""What a spec expression evaluates to at compile time, and the arithmetic on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dslnet.core import symbolic
from dslnet.core.diagnostics import Span
from dslnet.core.symbolic import SymExpr
from dslnet.core.types import TensorType
from dslnet.frontend.limits import MAX_SYMBOLIC_CHARS


class EvalError(Exception):
    """A located error raised while evaluating; reported at statement level."""

    def __init__(self, message: str, span: Span):
        self.message = message
        self.span = span
        super().__init__(message)


@dataclass(frozen=True)
class TensorVal:
    """A value of the graph being built."""

    name: str
    type: TensorType

    def describe(self) -> str:
        return f"tensor {self.type}"


@dataclass(frozen=True)
class Record:
    """The outputs of a block with several `out`s, in declaration order."""

    fields: tuple[tuple[str, TensorVal], ...]

    def get(self, name: str) -> TensorVal | None:
        return next((v for k, v in self.fields if k == name), None)

    def describe(self) -> str:
        return "outputs (" + ", ".join(k for k, _ in self.fields) + ")"


@dataclass(frozen=True)
class Callee:
    """An op, a block or network, or a compile-time builtin, named in a call."""

    kind: str  # "op" | "block" | "builtin"
    name: str

    def describe(self) -> str:
        return f"{self.kind} '{self.name}'"


@dataclass
class LayerVal:
    """A `layer` instance: an op or block with its arguments bound, applied later.

    Every application uses the same module path, hence the same weights.
    """

    callee: Callee
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    module: str
    span: Span
    uses: int = 0
    arg_spans: dict[str, Span] = field(default_factory=dict)
    marks: dict[str, Any] = field(default_factory=dict)  # from its annotations

    def describe(self) -> str:
        return f"layer '{self.module}'"


class _Poison:
    """The value of something that already failed: using it reports nothing more."""

    _instance: _Poison | None = None

    def __new__(cls) -> _Poison:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<error>"

    def describe(self) -> str:
        return "an earlier error"


POISON = _Poison()

Scalar = int | float | bool | str | SymExpr


def is_poison(value: Any) -> bool:
    if value is POISON:
        return True
    if isinstance(value, (tuple, list)):
        return any(is_poison(v) for v in value)
    return False


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, SymExpr):
        return f"symbolic dimension {value}"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, tuple):
        return "list"
    describe = getattr(value, "describe", None)
    return str(describe()) if callable(describe) else type(value).__name__


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, SymExpr)


def _is_num(v: Any) -> bool:
    return _is_int(v) or isinstance(v, float)


# Compile-time values stay small: ints fit the int64 every backend stores sizes in, and
# strings and lists cannot double in a loop until they exhaust time and memory.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_SEQUENCE = 10_000  # characters of a string, items of a list


def arith(op: str, a: Any, b: Any, span: Span) -> Any:
    """Compile-time `+ - * / // % **` on numbers, symbolic dims, strings and lists."""
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        _check_length(len(a) + len(b), "string", "characters", span)
        return a + b
    if op == "+" and isinstance(a, tuple) and isinstance(b, tuple):
        _check_length(len(a) + len(b), "list", "items", span)
        return a + b
    if not (_is_num(a) and _is_num(b)):
        raise EvalError(f"cannot apply '{op}' to {kind_of(a)} and {kind_of(b)}", span)
    if isinstance(a, SymExpr) or isinstance(b, SymExpr):
        if isinstance(a, float) or isinstance(b, float):
            raise EvalError(f"cannot mix a symbolic dimension and a float in '{op}'", span)
        try:
            if op == "+":
                return symbolic.add(a, b)
            if op == "-":
                return symbolic.sub(a, b)
            if op == "*":
                return symbolic.mul(a, b)
            if op in ("/", "//"):
                return symbolic.floordiv(a, b)
            if op == "**":
                return _symbolic_power(a, b, span)
        except ZeroDivisionError:
            raise EvalError("division by zero", span) from None
        raise EvalError(f"'{op}' is not defined on symbolic dimensions", span)
    if op == "**":
        return _power(a, b, span)
    try:
        result = _numeric(op, a, b)
    except ZeroDivisionError:
        raise EvalError("division by zero", span) from None
    if isinstance(result, int) and not INT_MIN <= result <= INT_MAX:
        raise EvalError(
            f"integer overflow: {a} {op} {b} is outside the 64-bit range of sizes", span
        )
    return result


def _power(a: int | float, b: int | float, span: Span) -> int | float:
    """`a ** b` as Python computes it (an int for ints with b >= 0, else a float), but
    an overflow is an error found before the work: 10 ** 10**9 would take minutes and
    a gigabyte of digits to compute and then be refused."""
    written = f"({a}) ** {b}" if a < 0 else f"{a} ** {b}"
    if isinstance(a, int) and isinstance(b, int) and b >= 0:
        # |a| >= 2**(bits - 1), so |a ** b| >= 2**((bits - 1) * b): past the range at once.
        if abs(a) >= 2 and (abs(a).bit_length() - 1) * b > 64:
            raise EvalError(
                f"integer overflow: {written} is outside the 64-bit range of sizes", span
            )
        result: int | float = a**b
        if not INT_MIN <= result <= INT_MAX:
            raise EvalError(
                f"integer overflow: {written} is outside the 64-bit range of sizes", span
            )
        return result
    if a == 0 and b < 0:
        raise EvalError(f"0 cannot be raised to a negative power ({written})", span)
    if a < 0 and isinstance(b, float) and not b.is_integer():
        raise EvalError(
            f"a negative number to a fractional power has no real value ({written})", span
        )
    try:
        return float(a) ** b
    except OverflowError:
        raise EvalError(f"float overflow: {written} is too large for a float", span) from None


def _symbolic_power(a: Any, b: Any, span: Span) -> Any:
    """`N ** k`: a size times itself k times, for an int k >= 0."""
    if isinstance(b, (SymExpr, bool)) or not isinstance(b, int) or b < 0:
        raise EvalError(
            f"'**' on a symbolic dimension takes a constant int exponent >= 0, got {kind_of(b)}",
            span,
        )
    if b > 63:  # a size of 2 or more to the 64th is past the int64 of every backend
        raise EvalError(f"'**' on a symbolic dimension takes an exponent up to 63, got {b}", span)
    result: Any = 1
    for _ in range(b):  # checked at each step: (N + M + 1) ** 63 is thousands of terms
        result = symbolic.mul(result, a)
        if isinstance(result, SymExpr) and len(str(result)) > MAX_SYMBOLIC_CHARS:
            raise EvalError(
                f"'**' here makes a symbolic size over {MAX_SYMBOLIC_CHARS} characters long",
                span,
            )
    return result


def _check_length(length: int, what: str, unit: str, span: Span) -> None:
    if length > MAX_SEQUENCE:
        raise EvalError(
            f"'+' would make a {what} of {length} {unit}; compile-time strings and lists "
            f"hold at most {MAX_SEQUENCE}",
            span,
        )


def _numeric(op: str, a: int | float, b: int | float) -> int | float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if isinstance(a, int) and isinstance(b, int) and b != 0 and a % b == 0:
            return a // b
        return a / b
    if op == "//":
        return a // b
    if op == "%":
        return a % b
    raise AssertionError(f"unknown operator '{op}'")


def _symbols(d: Any) -> frozenset[str]:
    return d.free_symbols() if isinstance(d, SymExpr) else frozenset()


def compare(op: str, a: Any, b: Any, span: Span) -> bool:
    """Compile-time comparison; symbolic dims compare only when provably (un)equal."""
    if isinstance(a, SymExpr) or isinstance(b, SymExpr):
        if op in ("==", "!=") and _is_int(a) and _is_int(b):
            if symbolic.dims_equal(a, b):
                return op == "=="
            # Two different expressions may still be equal for some sizes.
            names = sorted({*_symbols(a), *_symbols(b)})
            raise EvalError(
                f"condition compares {symbolic.dim_str(a)} and {symbolic.dim_str(b)}, which "
                f"depends on the run-time size {', '.join(names)}; conditions are decided at "
                f"compile time",
                span,
            )
        raise EvalError(f"cannot order symbolic dimensions ({kind_of(a)} {op} {kind_of(b)})", span)
    if op in ("==", "!="):
        same = (a == b and type(a) is type(b)) or (_is_num(a) and _is_num(b) and a == b)
        return same if op == "==" else not same
    if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise EvalError(f"cannot compare {kind_of(a)} {op} {kind_of(b)}", span)
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
