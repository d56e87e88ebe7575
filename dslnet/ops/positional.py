"""Which attributes a call may give by position, and the error for a call that gives more.

An op declares the leading attributes of its schema that may be positional
(`OpDef.positional`); every other one is keyword-only. The rule for choosing them: a
leading argument is positional only when a PyTorch user reading the call understands
what dslnet does: `conv2d(16, 3)` is nn.Conv2d's out_channels and kernel_size after the
in_channels dslnet reads from the input; `batchnorm(64)` would be eps, so batchnorm
takes none.

A call in the PyTorch habit (`conv2d(3, 16, 3)`, `linear(784, 256)`, `batchnorm(64)`)
gives the size dslnet reads from the input (`OpDef.inferred`) and is refused with what
to write instead, saying so when the value is the input's own size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dslnet.core.literals import format_value
from dslnet.core.types import TensorType

if TYPE_CHECKING:
    from dslnet.ops.opdef import OpDef


@dataclass(frozen=True)
class InferredSize:
    """A size PyTorch's constructor takes and dslnet reads from the input instead
    (nn.Conv2d's in_channels): where a call in the torch habit gives it."""

    what: str  # how the error names it: "input channel count"
    axis: int  # the axis of the first input it is read from
    torch_index: int = 0  # its position among the torch constructor's arguments


def declaration_problems(cls: type[OpDef]) -> list[str]:
    """What is wrong with an op class's `positional` (empty when nothing is)."""
    declared = getattr(cls, "positional", ())
    if not (isinstance(declared, tuple) and all(isinstance(n, str) for n in declared)):
        return [f"its positional must be a tuple of str, got {declared!r}"]
    fields = tuple(getattr(getattr(cls, "Attrs", None), "model_fields", {}))
    if declared != fields[: len(declared)]:
        leading = ", ".join(fields[: len(declared)]) or "none"
        return [
            f"its positional {declared!r} must name the leading attributes of its Attrs in "
            f"order (here: {leading}); the others are keyword-only"
        ]
    return []


def positional_problem(
    op: OpDef, values: Sequence[Any], named: Mapping[str, Any], inputs: Sequence[TensorType]
) -> str:
    """The error for a call that gives more positional values than `op.positional`."""
    fields = list(op.Attrs.model_fields)
    if not fields:
        return f"{op.name} takes no arguments, got {_args(values)}"
    habit = _torch_habit(op, values, named, inputs)
    if habit is not None:
        return habit
    allowed = op.positional
    head = (
        f"{op.name} takes {_count(len(allowed), 'positional argument')}"
        + (f" ({', '.join(allowed)})" if allowed else "")
        + f", got {len(values)}"
    )
    if len(values) > len(fields):
        has = _count(len(fields), "argument")
        return f"{head} ({_args(values)}); it has {has}: {op.signature()}"
    extra = fields[len(allowed) : len(values)]
    verb = "is" if len(extra) == 1 else "are"
    message = f"{head}: {' and '.join(extra)} {verb} keyword-only: write {_call(op, values, named)}"
    size = op.inferred
    if size is not None and inputs:
        message += f" (the {size.what} comes from the input {inputs[0]})"
    return message


def _torch_habit(
    op: OpDef, values: Sequence[Any], named: Mapping[str, Any], inputs: Sequence[TensorType]
) -> str | None:
    """The error for a call that gives the size dslnet reads from the input, or None
    when nothing says it does: the value is the input's size, or an int where the op
    takes nothing positional, or the call means nothing read any other way (the last
    two also when the input is unknown after an earlier error)."""
    size = op.inferred
    if size is None or len(values) <= size.torch_index:
        return None
    given = values[size.torch_index]
    if type(given) is not int:
        return None
    actual = None  # unknown when the input is (an earlier error)
    if inputs:
        shape = inputs[0].shape
        if not -len(shape) <= size.axis < len(shape):
            return None
        actual = shape[size.axis]
    fields = list(op.Attrs.model_fields)
    as_keywords = {**dict(zip(fields, values)), **_canonical(op, named)}
    if actual != given and op.positional and _fits(op, as_keywords):
        return None
    rest = [*values[: size.torch_index], *values[size.torch_index + 1 :]]
    if len(rest) > len(fields):
        return None  # too many even without it: the plain message says so
    source = "its input"
    if actual is not None:
        which = "as given" if actual == given else f"not {given}"
        source = f"its input {inputs[0]} ({actual}, {which})"
    write = _call(op, rest, named)
    message = f"{op.name} takes no {size.what}: it comes from {source}; write {write}"
    if not op.positional and not rest and not named:
        first, info = next(iter(op.Attrs.model_fields.items()))
        if not info.is_required():
            message += f" ({first} and the others are keyword-only: {op.name}({first}="
            message += f"{format_value(info.default)}))"
    return message


def _call(op: OpDef, values: Sequence[Any], named: Mapping[str, Any]) -> str:
    """The call with `values` bound by the positional rule: the positional ones first,
    the rest by name (`name=...` where the value does not fit the attribute)."""
    fields = list(op.Attrs.model_fields)
    allowed = len(op.positional)
    parts = [format_value(v) for v in values[:allowed]]
    by_name = dict(zip(fields[allowed:], values[allowed:]))
    fits = _fits(op, {**dict(zip(fields, values)), **_canonical(op, named)})
    parts += [f"{k}={format_value(v) if fits else '...'}" for k, v in by_name.items()]
    parts += [f"{k}={format_value(v)}" for k, v in named.items()]
    return f"{op.name}({', '.join(parts)})"


def _canonical(op: OpDef, named: Mapping[str, Any]) -> dict[str, Any]:
    """Named arguments by their attributes' own names (`k` is kernel_size)."""
    return {op.aliases.get(k, k): v for k, v in named.items()}


def _fits(op: OpDef, values: Mapping[str, Any]) -> bool:
    from pydantic import ValidationError

    from dslnet.ops.opdef import _tuplify

    try:
        op.Attrs.model_validate({k: _tuplify(v) for k, v in values.items()})
    except (ValidationError, TypeError):  # a validator meeting a value of another kind
        return False
    return True


def _args(values: Sequence[Any]) -> str:
    return ", ".join(format_value(v) for v in values)


def _count(n: int, noun: str) -> str:
    if n == 0:
        return f"no {noun}s"
    return f"{n} {noun}" + ("" if n == 1 else "s")
