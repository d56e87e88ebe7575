"""The `dslnet` command: a thin layer over the Python API, one module a command.

Exit codes (the table in README.md): 0 ok, 1 errors in a spec, 2 usage errors (the
command line, a missing or unreadable file, an output that cannot be written),
3 internal error (a bug in dslnet), 130 interrupted. With several spec files, the
worst code of any of them.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from dslnet.cli import bench, check, fmt, graph, ops, summary, train
from dslnet.cli import compile as compile_command
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
from dslnet.ops.userops import PluginError

COMMANDS = (check, summary, ops, compile_command, graph, bench, fmt, train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dslnet", description="Compile .net network specs to PyTorch and ONNX."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    add_color(parser, default="auto")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
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


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_output()
    args = build_parser().parse_args(argv)
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
    except Exception:  # a bug in dslnet, not in the spec
        print(
            "dslnet: internal error (this is a bug in dslnet; please report it with the spec "
            "and this trace):",
            file=sys.stderr,
        )
        print("".join(traceback.format_exc(limit=-8)), file=sys.stderr)
        return EXIT_INTERNAL


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
