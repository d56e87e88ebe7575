"""The `dslnet` command: a thin layer over the Python API, one module a command.

Exit codes: 0 ok, 1 errors in a spec, 2 usage errors, 3 internal error.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from dslnet.cli import check, ops, summary
from dslnet.cli import compile as compile_command
from dslnet.cli.common import EXIT_INTERNAL, EXIT_SPEC, EXIT_USAGE, UsageError
from dslnet.diagnostics import CompileError

COMMANDS = (check, summary, ops, compile_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dslnet", description="Compile .net network specs to PyTorch and ONNX."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except CompileError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_SPEC
    except UsageError as err:
        print(f"dslnet: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dslnet: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug in dslnet, not in the spec
        print(
            "dslnet: internal error (this is a bug in dslnet; please report it with the spec "
            "and this trace):",
            file=sys.stderr,
        )
        print("".join(traceback.format_exc(limit=-8)), file=sys.stderr)
        return EXIT_INTERNAL
