"""`dslnet fmt PATH...`: rewrite spec files in the canonical layout."""

from __future__ import annotations

import argparse
import codecs
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dslnet.cli.common import (
    EXIT_OK,
    EXIT_SPEC,
    UsageError,
    add_diagnostics_format,
    write_atomic,
)
from dslnet.cli.inputs import collect, missing_message
from dslnet.core.diagnostics import CompileError, Diagnostic, Severity, SourceMap, Span
from dslnet.frontend.format import format_source

STDIN = "-"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fmt",
        help="rewrite spec files in the canonical layout",
        description="Lay out spec files the one canonical way: spacing, 4-space indents, "
        "lines of at most 100 columns; comments, single blank lines and line breaks "
        "before '->' are kept. Files are rewritten in place, only when they change.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a .net file, a directory (its .net files, recursively), or - to format "
        "standard input to standard output",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="change nothing: list the files that would change, exit 1 if there are any",
    )
    p.add_argument(
        "--diff",
        action="store_true",
        help="change nothing: print a unified diff of what would change",
    )
    add_diagnostics_format(p)
    p.set_defaults(run=run)


@dataclass
class _Tally:
    changed: int = 0
    unchanged: int = 0
    failed: int = 0


def run(args: argparse.Namespace) -> int:
    files = _collect(args.paths)  # every path first: no half run before a usage error
    write = not (args.check or args.diff)
    tally = _Tally()
    for file in files:
        args.report.start(_shown(file))
        changed = _format_one(file, args, write)
        if changed is None:
            tally.failed += 1
        elif changed:
            tally.changed += 1
        else:
            tally.unchanged += 1
    _say(args, _summary(tally, write))
    failed = tally.failed > 0 or (args.check and tally.changed > 0)
    return EXIT_SPEC if failed else EXIT_OK


def _collect(paths: list[str]) -> list[str]:
    """The files to format, in order, each once: directories give their .net files
    (sorted, hidden folders skipped). A missing path stops the run before any work:
    fmt rewrites files, so half a run is worse than none."""
    specs = collect(paths)
    for spec in specs:
        if not spec.found:
            raise UsageError(missing_message(spec.name))
    return [spec.name for spec in specs]


def _shown(file: str) -> str:
    return "<stdin>" if file == STDIN else file


def _format_one(file: str, args: argparse.Namespace, write: bool) -> bool | None:
    """Format one file as asked; whether it changed, None when it could not be read,
    parsed or written (the error is reported, the file left as it was)."""
    shown = _shown(file)
    try:
        text = _read_stdin() if file == STDIN else _read(Path(file))
        formatted = format_source(text, shown)
        changed = formatted != text
        if args.diff and changed:
            sys.stdout.writelines(_diff(text, formatted, shown))
        if file == STDIN and write:
            sys.stdout.write(formatted)
        elif changed and write:
            _rewrite(Path(file), formatted)
            _say(args, f"reformatted {file}")
        elif changed and args.check:
            _say(args, f"would reformat {shown}")
        return changed
    except CompileError as err:
        args.report.add(err.diagnostics, err.sources)
    except _FileError as err:
        error = Diagnostic(Severity.ERROR, str(err), Span.unknown(shown))
        args.report.add([error], SourceMap())
    return None


def _say(args: argparse.Namespace, message: str) -> None:
    """A line for the user on stderr; none with --format json, whose document is there."""
    if not args.report.json:
        print(message, file=sys.stderr)


class _FileError(Exception):
    """A spec file that cannot be read or written back."""


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _FileError(f"cannot read: {err.strerror}") from None
    try:
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")  # the layout has no BOM
    except UnicodeDecodeError as err:
        raise _FileError(f"not UTF-8 text (byte {err.start})") from None


def _read_stdin() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError as err:
        raise _FileError(f"not UTF-8 text (byte {err.start})") from None


def _rewrite(path: Path, text: str) -> None:
    """Replace the file whole (never half written); write_atomic keeps its permissions."""
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as err:
        raise _FileError(f"cannot write: {err.strerror}") from None


def _diff(before: str, after: str, name: str) -> list[str]:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=name,
        tofile=f"{name} (formatted)",
    )
    # The last line of a file without a final newline still ends its diff line.
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def _summary(tally: _Tally, write: bool) -> str:
    def count(n: int) -> str:
        return f"{n} file{'s' * (n != 1)}"

    changed = "reformatted" if write else "would be reformatted"
    unchanged = "left unchanged" if write else "already formatted"
    parts = [
        f"{count(tally.changed)} {changed}" if tally.changed else "",
        f"{count(tally.unchanged)} {unchanged}" if tally.unchanged else "",
        f"{count(tally.failed)} with errors" if tally.failed else "",
    ]
    return ", ".join(p for p in parts if p) or "no .net files"
