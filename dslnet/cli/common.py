"""What every `dslnet` command shares: exit codes, usage errors, limits,
network choice, `--set` overrides and atomic writes."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dslnet.diagnostics import Diagnostic
from dslnet.frontend.loader import Limits, Program

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A mistake on the command line (exit 2), as opposed to one in a spec (exit 1)."""


def add_limits(parser: argparse.ArgumentParser) -> None:
    d = Limits()
    parser.add_argument("--max-nodes", type=int, default=d.max_nodes, help="expansion bound")
    parser.add_argument(
        "--max-iterations",
        type=int,
        default=d.max_iterations,
        help="bound on compile-time loop iterations",
    )
    parser.add_argument("--max-depth", type=int, default=d.max_depth, help="block nesting bound")


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(
        max_nodes=args.max_nodes, max_iterations=args.max_iterations, max_depth=args.max_depth
    )


def add_network_choice(parser: argparse.ArgumentParser, help: str) -> None:
    """`-n NET` and repeatable `--set NAME=VALUE`."""
    parser.add_argument("-n", "--network", help=help)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a network parameter (repeatable)",
    )


def require_file(path: str, what: str = "file") -> Path:
    if not Path(path).is_file():
        raise UsageError(f"no such {what}: {path}")
    return Path(path)


def print_diagnostics(diags: Sequence[Diagnostic], program_or_error: Any) -> None:
    sources = program_or_error.sources
    for d in diags:
        print(d.render(sources), file=sys.stderr)


def parse_overrides(program: Program, network: str, pairs: Sequence[str]) -> dict[str, Any]:
    """`--set name=value` pairs, converted to the declared parameter types."""
    decl = program.block(network)
    types = {p.name: p.type_name for p in decl.params} if decl else {}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--set expects NAME=VALUE, got '{pair}'")
        out[name.strip()] = _convert(name.strip(), text.strip(), types.get(name.strip()))
    return out


def _convert(name: str, text: str, kind: str | None) -> Any:
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if kind == "str":
            return text
    except ValueError:
        raise UsageError(f"--set {name}: expected {kind}, got '{text}'") from None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def pick_network(program: Program, requested: str | None) -> str:
    if requested:
        return requested
    if len(program.networks) == 1:
        return program.networks[0]
    have = ", ".join(program.networks) or "none"
    raise UsageError(f"choose a network with -n (this spec has: {have})")


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target, then rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
