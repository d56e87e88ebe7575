"""The `dslnet` command: a thin layer over the Python API, one module a command.

Exit codes (the table in README.md): 0 ok, 1 errors in a spec, 2 usage errors (the
command line, a missing or unreadable file, an output that cannot be written),
3 internal error (a bug in dslnet), 130 interrupted. With several spec files, the
worst code of any of them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from dslnet.cli.common import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SPEC,
    EXIT_USAGE,
    DiagnosticsReport,
    UsageError,
)
from dslnet.core.console import COLOR_CHOICES, set_color
from dslnet.core.diagnostics import CompileError
from dslnet.ir.located import LocatedError
from dslnet.ops.userops import PluginError

# The commands, in the order `dslnet --help` lists them; each a module of dslnet.cli
# with `register(subparsers)`. A run imports only the one it runs: `dslnet check`
# loads the front end, never torch, numpy or onnx.
COMMANDS = ("check", "summary", "ops", "compile", "graph", "bench", "fmt", "train", "weights")


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"dslnet.cli.{name}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser, with every command (or just `only`, the one a
    command line names: parsing it needs no other)."""
    parser = argparse.ArgumentParser(
        prog="dslnet", description="Compile .net network specs to PyTorch and ONNX."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    add_color(parser, default="auto")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        command_module(name).register(sub)
    for command_parser in {id(p): p for p in sub.choices.values()}.values():
        add_color(command_parser, default=argparse.SUPPRESS)  # after the command too
    return parser


def version() -> str:
    """The installed distribution's version; the package's own when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("dslnet")
    except PackageNotFoundError:
        import dslnet

        return dslnet.__version__


def add_color(parser: argparse.ArgumentParser, default: str) -> None:
    """`--color`, accepted before the command and after it (where it keeps the value
    given before unless repeated: SUPPRESS leaves the attribute alone)."""
    parser.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default=default,
        help="colour and tables: auto (on a terminal, unless NO_COLOR; FORCE_COLOR or "
        "CLICOLOR_FORCE force it), always, never",
    )


def command_named(argv: Sequence[str]) -> str | None:
    """The command `argv` runs, when everything before it is an option of `dslnet`
    itself (`--color never check ...`); None otherwise (help, a typo: the whole
    parser answers)."""
    words = iter(argv)
    for word in words:
        if word in COMMANDS:
            return word
        if word == "--color":
            next(words, None)  # its value: never a command name (it has choices)
        elif not word.startswith("--color="):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_output()
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(command_named(words)).parse_args(words)
    set_color(args.color)
    report = args.report = DiagnosticsReport.for_args(args)
    try:
        code: int = args.run(args)
        report.finish()
        return code
    except CompileError as err:
        report.add(err.diagnostics, err.sources)
        report.finish()
        return EXIT_SPEC
    except (UsageError, PluginError) as err:  # a broken plugin: fix the environment
        print(f"dslnet: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dslnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dslnet ... | head`: the reader has what it wanted
        _silence_stdout()
        return EXIT_OK
    except LocatedError as err:  # after the front end: at the node concerned
        return _report_located(err, report)
    except Exception:  # a bug in dslnet, not in the spec
        print(
            "dslnet: internal error (this is a bug in dslnet; please report it with the spec "
            "and this trace):",
            file=sys.stderr,
        )
        print("".join(traceback.format_exc(limit=-8)), file=sys.stderr)
        return EXIT_INTERNAL


def _report_located(err: LocatedError, report: DiagnosticsReport) -> int:
    """A layer a pass refused (exit 1), or a bug found at a node (exit 3): reported like
    a spec error, where the spec wrote the node, without a traceback."""
    diagnostic = err.diagnostic()
    if diagnostic is not None:
        report.add([diagnostic], err.source_map())
        report.finish()
    else:  # about the request as a whole, not a place in the spec
        print(f"dslnet: error: {err.render()}", file=sys.stderr)
    if err.internal:
        print(
            "dslnet: internal error (this is a bug in dslnet; please report it with the spec "
            "and this message)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return EXIT_SPEC if diagnostic is not None else EXIT_USAGE


def _tolerant_output() -> None:
    """Characters the output encoding lacks (a spec's `é` under PYTHONIOENCODING=ascii)
    are written as escapes, not raised as an error in the middle of a report."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises no second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
