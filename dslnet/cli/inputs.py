"""The spec files a command reads: `FILE...` where each is a `.net` file, a directory
(its `.net` files, recursively, sorted, hidden folders skipped) or `-` (standard input).

Commands that report on every file (`check`, `summary`) go through `each_spec`: a
missing file is reported and the others still run, the exit code is the worst one.
Commands that make one output (`compile`, `graph`, `bench`) take exactly one spec
(`one_spec`); several are a usage error.

A spec read from standard input is named `<stdin>` in messages, and its imports
resolve relative to the current directory (as if it were a file there).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dslnet.api import Program, load, loads
from dslnet.cli.common import EXIT_OK, EXIT_SPEC, EXIT_USAGE, UsageError, limits_from
from dslnet.core.diagnostics import CompileError
from dslnet.fileio.regular import why_unusable

STDIN = "-"
STDIN_NAME = "<stdin>"

PATHS_HELP = (
    "a .net file, a directory (its .net files, recursively), or - for standard input "
    "(imports then resolve relative to the current directory)"
)


def add_spec_paths(parser: argparse.ArgumentParser, one: bool = False) -> None:
    """The positional `FILE...` (`args.files`); `one`: the command makes one output."""
    extra = "; exactly one spec, as the command makes one output" if one else ""
    parser.add_argument("files", nargs="+", metavar="FILE", help=PATHS_HELP + extra)


@dataclass(frozen=True)
class SpecPath:
    """One spec to read, in command-line order; `found` is False for a missing path."""

    name: str
    found: bool = True

    @property
    def shown(self) -> str:
        return STDIN_NAME if self.name == STDIN else self.name


def collect(paths: Sequence[str]) -> list[SpecPath]:
    """Every spec the paths name, each once, in order (a directory's sorted)."""
    specs: list[SpecPath] = []
    for name in paths:
        path = Path(name)
        if name == STDIN or path.is_file():
            specs.append(SpecPath(name))
        elif path.is_dir():
            found = (p for p in path.rglob("*.net") if p.is_file())
            specs += [SpecPath(str(p)) for p in sorted(found) if not hidden(p.relative_to(path))]
        else:
            specs.append(SpecPath(name, found=False))
    return list(dict.fromkeys(specs))


def hidden(path: Path) -> bool:
    return any(part.startswith(".") for part in path.parts)


def shown(name: str) -> str:
    """How a spec is named in messages: `<stdin>` for standard input."""
    return STDIN_NAME if name == STDIN else name


def missing_message(name: str) -> str:
    """Why a path that is neither a spec file nor a directory cannot be read."""
    reason = why_unusable(name)
    if reason is None or reason == "no such file or directory":
        return f"no such file or directory: {name}"
    if reason.startswith("is "):  # "/dev/null is a character device, not a regular file"
        return f"{name} {reason}"
    return f"{name}: {reason}"


def one_spec(args: argparse.Namespace, command: str) -> str:
    """The one spec of a command that makes one output; a usage error for none or several."""
    specs = collect(args.files)
    for spec in specs:
        if not spec.found:
            raise UsageError(missing_message(spec.name))
    if len(specs) != 1:
        given = ", ".join(spec.shown for spec in specs) or "none"
        raise UsageError(
            f"{command} makes one output and reads exactly one spec; got {len(specs)}: {given}"
        )
    return specs[0].name


def load_spec(name: str, args: argparse.Namespace, strict: bool = True) -> Program:
    """Load a spec file, or standard input for `-`. `strict`: CompileError with what
    `dslnet check` reports when that holds an error (Program.checked)."""
    if name != STDIN:
        program = load(name, limits_from(args), strict=False)
    else:
        program = loads(read_stdin(), STDIN_NAME, limits_from(args), strict=False)
    return program.checked() if strict else program


def read_stdin() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError as err:
        raise UsageError(f"cannot read standard input: not UTF-8 text (byte {err.start})") from None


def each_spec(args: argparse.Namespace, run_one: Callable[[str], int]) -> int:
    """Run `run_one` on every spec of `args.files`, in order; the worst exit code.

    A missing path is reported on stderr (exit 2) and the others still run; a spec
    with errors has them reported (exit 1) and does not stop the next one.
    """
    worst = EXIT_OK
    specs = collect(args.files)
    for spec in specs:
        if not spec.found:
            print(f"dslnet: error: {missing_message(spec.name)}", file=sys.stderr)
            worst = max(worst, EXIT_USAGE)
            continue
        args.report.start(spec.shown)
        try:
            code = run_one(spec.name)
        except CompileError as err:
            args.report.add(err.diagnostics, err.sources)
            code = EXIT_SPEC
        except UsageError as err:  # about this spec (-n, --set): name it when several
            where = f"{spec.shown}: " if len(specs) > 1 else ""
            print(f"dslnet: error: {where}{err}", file=sys.stderr)
            code = EXIT_USAGE
        worst = max(worst, code)
    return worst
