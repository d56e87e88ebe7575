"""Noise inputs of a train declaration: what `@noise` means, read and checked.

`@noise` (or `@noise(normal)`) draws a float input from N(0, 1) for every step,
`@noise(uniform)` from [0, 1), and `@noise(randint(low, high))` an int input from the
integers in [low, high), e.g. a diffusion model's timesteps. Each fits one kind of
input: a float draw would be truncated to zeros or negative indices in an int tensor,
so the pairing is checked where the annotation is written. The draws themselves are
the training runtime's (dslnet.training.noise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dslnet.core.diagnostics import Span
from dslnet.core.types import DType
from dslnet.frontend import ast
from dslnet.frontend.values import EvalError

FLOAT_DISTRIBUTIONS = ("normal", "uniform")
INT_DISTRIBUTION = "randint"
_INT_RANGES = {
    DType.int8: (-(2**7), 2**7),
    DType.uint8: (0, 2**8),
    DType.int16: (-(2**15), 2**15),
    DType.int32: (-(2**31), 2**31),
    DType.int64: (-(2**63), 2**63),
}


@dataclass(frozen=True)
class Noise:
    """How one noise input is drawn: `normal`, `uniform`, or `randint` in [low, high)."""

    distribution: str
    low: int = 0
    high: int = 0


Constant = Callable[[ast.Expr], Any]  # evaluates a compile-time expression
Report = Callable[[str, Span], None]


def read_noise(note: ast.Annotation, stmt: ast.InStmt, constant: Constant, error: Report) -> Noise:
    """The noise `note` (an `@noise` on input `stmt`) asks for; problems go to `error`
    (the result is then a stand-in that lets checking go on)."""
    dtype = _dtype(stmt)
    noise = _distribution(note, constant, error)
    if noise is None or dtype is None:
        return noise or Noise("normal")
    what = f"'{stmt.name}' is {dtype}"
    if dtype == DType.bool:
        error(f"@noise draws numbers and {what}: draw an int input with randint", note.span)
    elif noise.distribution == INT_DISTRIBUTION and dtype.is_float:
        error(
            f"@noise(randint(...)) draws integers, but {what}: use @noise (normal) or "
            f"@noise(uniform), or declare it an int input",
            note.span,
        )
    elif noise.distribution != INT_DISTRIBUTION and not dtype.is_float:
        written = f"@noise({noise.distribution})" if note.args else "@noise"
        error(
            f"{written} draws floats, but {what} (its draws would be "
            f"truncated): draw integers with @noise(randint(low, high))",
            note.span,
        )
    elif noise.distribution == INT_DISTRIBUTION:
        least, limit = _INT_RANGES.get(dtype, (0, 0))
        if noise.low < least or noise.high > limit:
            error(
                f"randint({noise.low}, {noise.high}) does not fit {dtype}, the dtype of "
                f"'{stmt.name}' (from {least} to {limit - 1})",
                note.span,
            )
    return noise


def _dtype(stmt: ast.InStmt) -> DType | None:
    """The input's dtype; None when it is not one (reported where the input expands)."""
    if stmt.type.dtype is None:
        return DType.float32
    try:
        return DType(stmt.type.dtype)
    except ValueError:
        return None


def _distribution(note: ast.Annotation, constant: Constant, error: Report) -> Noise | None:
    if not note.args and not note.kwargs:
        return Noise("normal")
    arg = note.args[0] if len(note.args) == 1 and not note.kwargs else None
    if (
        isinstance(arg, ast.Call)
        and isinstance(arg.func, ast.Name)
        and arg.func.id == INT_DISTRIBUTION
    ):
        return _randint(arg, constant, error)
    word = arg.id if isinstance(arg, ast.Name) else None
    if word in FLOAT_DISTRIBUTIONS:
        return Noise(word)
    got = f"'{word}'" if word else "another expression"
    error(
        f"@noise takes normal (the default), uniform or randint(low, high); got {got}",
        note.span,
    )
    return None


def _randint(call: ast.Call, constant: Constant, error: Report) -> Noise | None:
    if len(call.args) != 2 or call.kwargs:
        error("randint takes two ints, low and high: it draws from [low, high)", call.span)
        return None
    bounds = []
    for expr in call.args:
        try:
            value = constant(expr)
        except EvalError as err:
            error(err.message, err.span)
            return None
        if type(value) is not int:
            kind = "bool" if isinstance(value, bool) else type(value).__name__
            error(f"randint's bounds are ints, got {kind} {value!r}", expr.span)
            return None
        bounds.append(value)
    low, high = bounds
    if high <= low:
        error(f"randint({low}, {high}) is empty: high must be above low", call.span)
        return None
    return Noise(INT_DISTRIBUTION, low, high)
