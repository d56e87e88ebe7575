"""The options of the reduction passes, in one table: the fields of `Options`.

Each field has its default and, made by `option(...)`, its `Spec`: the pass it
belongs to, what values it takes (`Kind`: said in errors, checked, read from a
command-line word), its help text and its command-line flag. From this table

- `Options` checks every value when it is made, so a bad one fails the same way
  whichever way it came in (an `OptionError`, a ValueError, or a TypeError for a
  value of the wrong type, naming the option and what it takes);
- `dslnet compile` adds one flag per option that has one (dslnet/cli/reduction.py);
- `Program.optimize` takes one keyword per option (tests/test_options.py fails
  when its signature or docstring and this table part ways).

The pipeline (dslnet/passes/pipeline.py) turns an `Options` into passes.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dslnet.core.diagnostics import closest

if TYPE_CHECKING:  # the table is read at every command's start: no numpy, no IR here
    from dslnet.passes.prune import Criterion, Scorer

Quantization = Literal["fp16", "int8-dynamic", "int8-static"]
Method = Literal["minmax", "percentile", "entropy"]
Scope = Literal["layer", "global"]
QUANTIZATIONS: tuple[Quantization, ...] = ("fp16", "int8-dynamic", "int8-static")
METHODS: tuple[Method, ...] = ("minmax", "percentile", "entropy")
SCOPES: tuple[Scope, ...] = ("layer", "global")
CRITERIA: tuple[Criterion, ...] = ("l1", "l2", "bn")


class OptionError(ValueError):
    """An option value that no pass takes; `option` names it. (A request the passes
    cannot carry out on a given network raises PassError when they run.)"""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


class OptionValueError(OptionError):
    """A value of the right type outside what the option allows."""


class OptionTypeError(OptionError, TypeError):
    """A value of a type the option does not take."""


@dataclass(frozen=True)
class Kind:
    """What values an option takes.

    allowed: said in errors ("must be <allowed>, got ...") and in help.
    typed: whether a value has a type the option takes (else a TypeError).
    valid: whether a typed value is allowed (else a ValueError).
    parse: a command-line word to a value (ValueError when it is none); None for
        switches (`--fold`) and repeatable patterns (`--prune-exclude P`).
    choices: the words the command line offers, when they are a closed list.
    repeatable: one command-line word per use of the flag, collected in a list.
    """

    allowed: str
    typed: Callable[[Any], bool]
    valid: Callable[[Any], bool] = lambda value: True
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] = ()
    repeatable: bool = False


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integral(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    """A list of strings; a lone string is not one (it would be read letter by letter)."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(v, str) for v in value)
    )


def _in_unit(value: Any, top: bool) -> bool:
    """In [0, 1) when `top` is False (a share removed), (0, 1] when True (a share kept)."""
    return bool(0.0 < value <= 1.0) if top else bool(0.0 <= value < 1.0)


SWITCH = Kind("True or False", lambda value: isinstance(value, bool))
REMOVED = Kind("a ratio in [0, 1)", _real, lambda value: _in_unit(value, top=False), parse=float)
KEPT = Kind("a number in (0, 1]", _real, lambda value: _in_unit(value, top=True), parse=float)
COUNT = Kind("a positive integer", _integral, lambda value: value >= 1, parse=int)
PATTERNS = Kind("a list of module patterns (globs)", _strings, repeatable=True)
RATIOS = Kind(
    "a mapping of module patterns (globs) to numbers in [0, 1)",
    lambda value: (
        isinstance(value, Mapping)
        and all(isinstance(k, str) and _real(v) for k, v in value.items())
    ),
    lambda value: all(_in_unit(v, top=False) for v in value.values()),
)
FILE = Kind("a file name", lambda value: isinstance(value, str | os.PathLike), parse=str)


def _rank(text: str) -> int | float:
    """64 is a rank, 0.25 a fraction of each layer's full rank."""
    try:
        return int(text)
    except ValueError:
        return float(text)


RANK = Kind(
    "an integer rank of at least 1, or a fraction of each full rank in (0, 1]",
    _real,
    lambda value: value >= 1 if _integral(value) else _in_unit(value, top=True),
    parse=_rank,
)


def one_of(choices: Sequence[str], or_function: bool = False) -> Kind:
    """One of `choices` (words), or also a function when `or_function`."""
    words = ", ".join(repr(c) for c in choices)
    return Kind(
        f"one of {words}" + (" or a function" if or_function else ""),
        lambda value: isinstance(value, str) or (or_function and callable(value)),
        lambda value: callable(value) or value in choices,
        parse=str,
        choices=tuple(choices),
    )


@dataclass(frozen=True)
class Spec:
    """One option: the pass it tunes, what it takes, its help and its flag.

    turns_on: setting it (to anything but its default) asks for its pass.
    flag: the command-line spelling; None for an option only the API can give (a
        mapping, say). metavar: the flag's value as help shows it.
    """

    pass_name: str
    kind: Kind
    help: str
    flag: str | None = None
    metavar: str | None = None
    turns_on: bool = False


def option(
    pass_name: str,
    kind: Kind,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    turns_on: bool = False,
) -> dict[str, Spec]:
    """The metadata of a field of `Options`: its `Spec`."""
    return {"option": Spec(pass_name, kind, help, flag, metavar, turns_on)}


@dataclass(frozen=True)
class Options:
    """What to do to a network; each pass off by default. The fields are the table
    of options: each one's metadata is its `Spec` (see `table()`)."""

    fold: bool = field(
        default=False,
        metadata=option(
            "fold",
            SWITCH,
            "fold batchnorm into the layer before it",
            flag="--fold",
            turns_on=True,
        ),
    )
    prune: float | None = field(
        default=None,
        metadata=option(
            "prune",
            REMOVED,
            "remove this fraction of channels",
            flag="--prune",
            metavar="RATIO",
            turns_on=True,
        ),
    )
    prune_by: Criterion | Scorer = field(
        default="l1",
        metadata=option(
            "prune", one_of(CRITERIA, or_function=True), "channel importance", flag="--prune-by"
        ),
    )
    prune_scope: Scope = field(
        default="layer",
        metadata=option(
            "prune",
            one_of(SCOPES),
            "the ratio per group of channels, or ranked over the whole network",
            flag="--prune-scope",
        ),
    )
    prune_ratios: Mapping[str, float] | None = field(
        default=None,
        metadata=option(
            "prune",
            RATIOS,
            "per-module ratios (glob patterns on a layer's module, e.g. `layer4.*`), over "
            "`prune` and over `@prune(r)` annotations in the spec",
            turns_on=True,
        ),
    )
    exclude: Sequence[str] = field(
        default=(),
        metadata=option(
            "prune",
            PATTERNS,
            "modules (glob) whose output channels stay (repeatable)",
            flag="--prune-exclude",
            metavar="PATTERN",
        ),
    )
    lowrank: float | None = field(
        default=None,
        metadata=option(
            "lowrank",
            KEPT,
            "factorise dense and conv layers, keeping this share of each weight's "
            "singular-value energy (e.g. 0.9)",
            flag="--lowrank",
            metavar="ENERGY",
            turns_on=True,
        ),
    )
    lowrank_rank: int | float | None = field(
        default=None,
        metadata=option(
            "lowrank",
            RANK,
            "factorise at this rank instead (an int, or a fraction of each full rank)",
            flag="--lowrank-rank",
            metavar="R",
            turns_on=True,
        ),
    )
    lowrank_exclude: Sequence[str] = field(
        default=(),
        metadata=option(
            "lowrank",
            PATTERNS,
            "modules (glob) that stay whole (repeatable)",
            flag="--lowrank-exclude",
            metavar="PATTERN",
        ),
    )
    sparsity: float | None = field(
        default=None,
        metadata=option(
            "sparsity",
            REMOVED,
            "zero this fraction of weights by magnitude (smaller files, not faster)",
            flag="--sparsity",
            metavar="RATIO",
            turns_on=True,
        ),
    )
    sparsity_scope: Scope = field(
        default="layer",
        metadata=option(
            "sparsity",
            one_of(SCOPES),
            "the fraction of each weight tensor, or ranked over all of them (large layers "
            "then lose more)",
            flag="--sparsity-scope",
        ),
    )
    quantize: Quantization | None = field(
        default=None,
        metadata=option(
            "quantize",
            one_of(QUANTIZATIONS),
            "quantize the ONNX model (with --emit onnx); the drift and latency against "
            "float32 are reported, with a warning when it is not faster",
            flag="--quantize",
            turns_on=True,
        ),
    )
    calibrate: str | Path | None = field(
        default=None,
        metadata=option(
            "quantize",
            FILE,
            "calibration inputs for int8-static: .npy (one input) or .npz (by input "
            "name); default: generated inputs",
            flag="--calibrate",
            metavar="FILE",
        ),
    )
    calibration_method: Method = field(
        default="minmax",
        metadata=option(
            "quantize",
            one_of(METHODS),
            "how int8-static chooses each activation's range",
            flag="--calibration-method",
        ),
    )
    calibration_samples: int = field(
        default=32,
        metadata=option(
            "quantize",
            COUNT,
            "calibration batches to use (default 32)",
            flag="--calibration-samples",
            metavar="N",
        ),
    )

    def __post_init__(self) -> None:
        for name, spec in table().items():
            value = getattr(self, name)
            check(name, spec, value)
            if spec.kind is PATTERNS:  # a caller's list changed later changes nothing here
                object.__setattr__(self, name, tuple(value))
            elif spec.kind is RATIOS and value is not None:
                object.__setattr__(self, name, dict(value))
        if self.lowrank is not None and self.lowrank_rank is not None:
            raise OptionValueError(
                "lowrank",
                f"give lowrank or lowrank_rank, not both (got lowrank={self.lowrank}, "
                f"lowrank_rank={self.lowrank_rank})",
            )

    def asks_for_passes(self) -> bool:
        """Whether any option that turns a pass on is set."""
        return any(_set(getattr(self, name), default(name)) for name in turning_on())


def table() -> dict[str, Spec]:
    """The options by name, in pipeline order."""
    return {f.name: f.metadata["option"] for f in fields(Options)}


def default(name: str) -> Any:
    """The default value of option `name`."""
    return next(f.default for f in fields(Options) if f.name == name)


def turning_on() -> list[str]:
    """The options that, when set, ask for their pass."""
    return [name for name, spec in table().items() if spec.turns_on]


def _set(value: Any, off: Any) -> bool:
    """Whether `value` differs from `off`, the default; an empty mapping is no request."""
    return value != off and not (isinstance(value, Mapping) and not value)


def flagged() -> Iterator[tuple[str, Spec]]:
    """The options the command line gives, with their specs."""
    return ((name, spec) for name, spec in table().items() if spec.flag is not None)


def check(name: str, spec: Spec, value: Any) -> None:
    """Raise an OptionError when `value` is not one option `name` takes."""
    if value is None and default(name) is None:  # the option is off
        return
    if not spec.kind.typed(value):
        raise OptionTypeError(name, f"{name} must be {spec.kind.allowed}, got {value!r}")
    if not spec.kind.valid(value):
        raise OptionValueError(name, f"{name} must be {spec.kind.allowed}, got {value!r}")


def refuse_misspelt(keywords: Iterable[str], parameters: Collection[str], network: str) -> None:
    """Raise an OptionTypeError for a keyword that is no parameter of `network` and is
    closest to an option's name (`sparsity_scop=`): it was meant for the passes."""
    for key in keywords:
        close = None if key in parameters else closest(key, [*parameters, *table()])
        if close is not None and close not in parameters:
            raise OptionTypeError(
                key,
                f"{key} is neither an option nor a parameter of network '{network}' "
                f"(did you mean the option '{close}'?)",
            )
