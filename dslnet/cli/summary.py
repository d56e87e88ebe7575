"""`dslnet summary FILE [-n NET]`: layers, shapes, parameters and FLOPs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dslnet.cli.common import (
    EXIT_OK,
    add_diagnostics_format,
    add_limits,
    add_network_choice,
    limits_from,
    parse_overrides,
    require_file,
)
from dslnet.console import print_table, use_color
from dslnet.frontend.loader import load


def register(sub: Any) -> None:
    p = sub.add_parser("summary", help="layers, shapes, parameters and FLOPs of a network")
    p.add_argument("file", metavar="FILE")
    add_network_choice(p, "network (default: every network of the file)")
    p.add_argument("--json", action="store_true", help="one JSON object (a list for several)")
    add_diagnostics_format(p)
    add_limits(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dslnet.summary import render, table

    require_file(args.file)
    args.report.start(args.file)
    program = load(args.file, limits_from(args))
    args.report.add(program.warnings, program.sources)
    names = [args.network] if args.network else program.networks
    results = [program.summary(name, **parse_overrides(program, name, args.set)) for name in names]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    elif use_color(sys.stdout):
        for summary in results:
            print_table(table(summary), sys.stdout)
    else:
        print("\n".join(render(s) for s in results), end="")
    return EXIT_OK
