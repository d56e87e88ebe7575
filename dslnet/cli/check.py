"""`dslnet check FILE...`: every error and warning of spec files.

Like ruff and mypy, the findings are the result, so they go to stdout: each
diagnostic, a status line per file (`a.net: 2 errors`), and with several files a
final total (`Found 3 errors in 2 files (checked 5 files)`). A missing file is a
usage error on stderr; the others are still checked.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from dslnet.cli.common import EXIT_OK, EXIT_SPEC, add_diagnostics_format, add_limits
from dslnet.cli.inputs import add_spec_paths, collect, each_spec, load_spec, shown
from dslnet.core.console import style, use_color


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="report every error and warning of spec files")
    add_spec_paths(p)
    add_diagnostics_format(p, to_stdout=True)
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


@dataclass
class _Tally:
    checked: int = 0
    failed: int = 0  # files with errors
    errors: int = 0
    warnings: int = 0


def run(args: argparse.Namespace) -> int:
    report = args.report
    tally = _Tally()

    def check_one(file: str) -> int:
        program = load_spec(file, args, strict=False)
        diags = program.check()
        report.add(diags, program.sources)
        errors = sum(d.is_error for d in diags)
        warnings = len(diags) - errors
        tally.checked += 1
        tally.failed += errors > 0
        tally.errors += errors
        tally.warnings += warnings
        if not report.json:
            print(f"{shown(file)}: {_status(errors, warnings)}")
        return EXIT_SPEC if errors else EXIT_OK

    code = each_spec(args, check_one)
    if not report.json and len(collect(args.files)) > 1:
        print(_total(tally))
    return code


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _status(errors: int, warnings: int) -> str:
    """`ok`, `2 errors` or `1 error, 3 warnings`, coloured on a terminal."""
    color = use_color(sys.stdout)
    status = style(_count(errors, "error"), "error", color) if errors else style("ok", "ok", color)
    if warnings:
        status += ", " + style(_count(warnings, "warning"), "warning", color)
    return status


def _total(tally: _Tally) -> str:
    """The last line with several files, in mypy's words."""
    checked = _count(tally.checked, "file")
    warned = f", {_count(tally.warnings, 'warning')}" if tally.warnings else ""
    if tally.errors:
        where = _count(tally.failed, "file")
        return f"Found {_count(tally.errors, 'error')}{warned} in {where} (checked {checked})"
    return f"No errors{warned} (checked {checked})"
