"""`dslnet check FILE...`: every error and warning of spec files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dslnet.cli.common import (
    EXIT_OK,
    EXIT_SPEC,
    add_limits,
    limits_from,
    print_diagnostics,
    require_file,
)
from dslnet.frontend.loader import load


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="report every error and warning of spec files")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_limits(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    failed = False
    for file in args.files:
        require_file(file)
        program = load(file, limits_from(args), strict=False)
        diags = program.check()
        print_diagnostics(diags, program)
        errors = sum(d.is_error for d in diags)
        warnings = len(diags) - errors
        failed |= errors > 0
        status = "ok" if not errors else f"{errors} error{'s' * (errors != 1)}"
        extra = f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
        print(f"{file}: {status}{extra}", file=sys.stderr)
    return EXIT_SPEC if failed else EXIT_OK
