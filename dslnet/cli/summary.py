"""`dslnet summary FILE... [-n NET]`: layers, shapes, parameters, MACs and memory.

The summary is the result, on stdout (a table on a terminal, plain text on a pipe,
JSON with `--json`); spec errors go to stderr. Several files: each is summarized,
the exit code is the worst.
"""

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
    check_network,
    parse_overrides,
)
from dslnet.cli.inputs import add_spec_paths, collect, each_spec, load_spec, shown
from dslnet.core.console import print_table, use_color


def register(sub: Any) -> None:
    p = sub.add_parser(
        "summary",
        help="layers, shapes, parameters, MACs and memory of a network",
        description="Every layer of a network with its output shape, parameters and "
        "multiply-accumulates (MACs), under a totals row per block; then the totals, "
        "with the memory of the parameters and of one sample's activations.",
    )
    add_spec_paths(p)
    add_network_choice(p, "network (default: every network of the file)")
    p.add_argument("--flops", action="store_true", help="also a FLOPs column and total (2 x MACs)")
    p.add_argument(
        "--depth",
        type=_depth,
        metavar="K",
        help="open blocks nested at most K deep and fold deeper ones into their totals "
        "row (0: the network's own blocks one row each), as in `dslnet graph`; "
        "default: every layer",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object (a list for several networks or files); counts that can "
        "depend on input sizes (macs, flops, activation_bytes) are always strings",
    )
    add_diagnostics_format(p)
    add_limits(p)
    p.set_defaults(run=run)


def _depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a depth of 0 or more, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    several = len(collect(args.files)) > 1
    results: list[dict[str, Any]] = []

    def summarize_one(file: str) -> int:
        program = load_spec(file, args)
        args.report.add(program.warnings, program.sources)
        if args.network:
            check_network(program, args.network)
        names = [args.network] if args.network else program.networks
        found = [
            program.summary(name, **parse_overrides(program, name, args.set)) for name in names
        ]
        for summary in found:
            if several:  # which file each came from
                summary["file"] = shown(file)
            if not args.json:
                _print(summary, args)
        results.extend(found)
        return EXIT_OK

    code = each_spec(args, summarize_one)
    if args.json and results:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return code


def _print(summary: dict[str, Any], args: argparse.Namespace) -> None:
    from dslnet.views.summary import render, table

    if use_color(sys.stdout):
        print_table(table(summary, args.depth, args.flops), sys.stdout)
    else:
        print(render(summary, args.depth, args.flops), end="")
