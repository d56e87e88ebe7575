"""Annotations: `@prune(0.3)`, `@quantize(skip)`, `@freeze` in front of a block,
network, layer or statement.

An annotation marks every IR node that what it annotates makes (`Node.marks`); an
inner annotation overrides an outer one. The reduction passes and the backends read
the marks, so a request written in the spec and one given on the command line reach
the same passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dslnet.core.diagnostics import did_you_mean
from dslnet.frontend import ast
from dslnet.frontend.values import EvalError, is_poison, kind_of

# What each annotation takes, said first in its errors.
USAGE = {
    "prune": "@prune takes one ratio in [0, 1), the fraction of the units made here to remove",
    "quantize": "@quantize takes one word, skip (keep these layers in float32 when quantizing)",
    "freeze": "@freeze takes no arguments (the parameters made here are not trained)",
}
QUANTIZE_MODES = ("skip",)


def resolve(note: ast.Annotation, evaluate: Callable[[ast.Expr], Any]) -> tuple[str, Any]:
    """The (mark, value) an annotation sets; EvalError, located, when it is wrong."""
    if note.name not in USAGE:
        hint = did_you_mean(note.name, USAGE)
        known = ", ".join(f"@{n}" for n in USAGE)
        raise EvalError(f"unknown annotation '@{note.name}'{hint}; expected {known}", note.span)
    if note.kwargs:
        raise EvalError(f"{USAGE[note.name]}; got a keyword argument", note.kwargs[0].span)
    if note.name == "freeze":
        if note.args:
            count = len(note.args)
            raise EvalError(
                f"{USAGE['freeze']}; got {count} argument{'s' * (count != 1)}", note.args[0].span
            )
        return "freeze", True
    if len(note.args) != 1:
        raise EvalError(f"{USAGE[note.name]}; got {len(note.args)} arguments", note.span)
    (arg,) = note.args
    if note.name == "quantize":
        # A word, not a variable: `@quantize(skip)`.
        word = arg.id if isinstance(arg, ast.Name) else None
        if word not in QUANTIZE_MODES:
            raise EvalError(f"{USAGE['quantize']}; got {_text(arg)}", arg.span)
        return "quantize", word
    ratio = evaluate(arg)
    if is_poison(ratio):
        raise EvalError("", arg.span)  # reported where it went wrong
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise EvalError(f"{USAGE['prune']}; got {kind_of(ratio)} {ratio!r}", arg.span)
    return "prune", float(ratio)


def _text(expr: ast.Expr) -> str:
    return f"'{expr.id}'" if isinstance(expr, ast.Name) else "an expression"
