"""`dslnet check FILE...`: every error and warning of spec files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dslnet.cli.common import (
    EXIT_OK,
    EXIT_SPEC,
    add_diagnostics_format,
    add_limits,
    limits_from,
    require_file,
)
from dslnet.console import style, use_color
from dslnet.frontend.loader import load


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="report every error and warning of spec files")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_diagnostics_format(p, json_to_stdout=True)
    # The report is check's result, so `--json` (as on summary and ops) is --format json.
    p.add_argument(
        "--json",
        dest="diagnostics_format",
        action="store_const",
        const="json",
        help="the same as --format json",
    )
    add_limits(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for file in args.files:  # all of them first: no half report before a usage error
        require_file(file)
    report = args.report
    failed = False
    for file in args.files:
        program = load(file, limits_from(args), strict=False)
        diags = program.check()
        report.start(file)
        report.add(diags, program.sources)
        errors = sum(d.is_error for d in diags)
        warnings = len(diags) - errors
        failed |= errors > 0
        if not report.json:
            print(f"{file}: {_status(errors, warnings)}", file=sys.stderr)
    return EXIT_SPEC if failed else EXIT_OK


def _status(errors: int, warnings: int) -> str:
    """`ok`, `2 errors` or `1 error, 3 warnings`, coloured on a terminal."""
    color = use_color(sys.stderr)
    if errors:
        status = style(f"{errors} error{'s' * (errors != 1)}", "error", color)
    else:
        status = style("ok", "ok", color)
    if warnings:
        status += ", " + style(f"{warnings} warning{'s' * (warnings != 1)}", "warning", color)
    return status
