"""The reduction passes' flags (`--fold`, `--prune RATIO`, ...), one per option of the
table in dslnet/passes/options.py, and the `Options` they ask for."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from dslnet.cli.common import UsageError
from dslnet.passes.options import SWITCH, OptionError, Options, Spec, default, flagged


def add_reduction_flags(group: Any) -> None:
    """One flag per option that has a spelling, in the table's order; each value is
    read and checked as the API checks it, so a bad one is a usage error (exit 2)."""
    for name, spec in flagged():
        kind = spec.kind
        if kind is SWITCH:
            group.add_argument(spec.flag, dest=name, action="store_true", help=spec.help)
        elif kind.repeatable:
            group.add_argument(
                spec.flag,
                dest=name,
                action="append",
                default=[],
                metavar=spec.metavar,
                help=spec.help,
            )
        elif kind.choices:
            group.add_argument(
                spec.flag, dest=name, choices=kind.choices, default=default(name), help=spec.help
            )
        else:
            group.add_argument(
                spec.flag,
                dest=name,
                type=_reader(spec),
                default=default(name),
                metavar=spec.metavar,
                help=spec.help,
            )


def _reader(spec: Spec) -> Callable[[str], Any]:
    """The argparse `type` of a flag: its word read, then checked."""
    kind, parse = spec.kind, spec.kind.parse
    assert parse is not None, f"{spec.flag} takes a value: its kind needs a parse"

    def read(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not kind.typed(value) or not kind.valid(value):
            raise argparse.ArgumentTypeError(f"expected {kind.allowed}, got {text!r}")
        return value

    return read


def options_from(args: argparse.Namespace) -> Options:
    """The options the flags give; a combination no pass takes is a usage error, said
    with the flags' spellings."""
    try:
        return Options(**{name: getattr(args, name) for name, _ in flagged()})
    except OptionError as err:
        flags = {name: str(spec.flag) for name, spec in flagged()}
        names = re.compile(r"\b(" + "|".join(flags) + r")\b")
        raise UsageError(names.sub(lambda m: flags[m.group(1)], str(err))) from None
