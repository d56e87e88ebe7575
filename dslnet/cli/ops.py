"""`dslnet ops [NAME]`: the op reference, generated from the registry."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from dslnet.cli.common import EXIT_OK, UsageError
from dslnet.core.console import console, print_table, use_color

if TYPE_CHECKING:
    from rich.table import Table


def register(sub: Any) -> None:
    p = sub.add_parser("ops", help="the registered ops, or the reference of one")
    p.add_argument("name", nargs="?", metavar="NAME", help="an op (default: list them all)")
    form = p.add_mutually_exclusive_group()
    form.add_argument(
        "--markdown", action="store_true", help="the whole reference as markdown (docs/ops.md)"
    )
    form.add_argument(
        "--json",
        action="store_true",
        help="the registry as data: a list of ops (one object with NAME), each with its "
        "family, inputs, outputs and attributes (type, default, doc)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dslnet import opdocs
    from dslnet.core.diagnostics import did_you_mean
    from dslnet.ops import registry

    if args.markdown:
        if args.name is not None:
            raise UsageError("--markdown writes the whole reference: leave out NAME")
        sys.stdout.write(opdocs.reference())
        return EXIT_OK
    if args.name is None:
        ops = registry.all_ops()
        if args.json:
            print(json.dumps([opdocs.op_data(op) for op in ops.values()], indent=2))
        elif use_color(sys.stdout):
            print_table(_table([opdocs.op_data(op) for op in ops.values()]), sys.stdout)
        else:
            sys.stdout.write(opdocs.op_list())
        return EXIT_OK
    op = registry.get(args.name)
    if op is None:
        hint = did_you_mean(args.name, opdocs.op_names())
        raise UsageError(f"no op '{args.name}'{hint}; `dslnet ops` lists them")
    if args.json:
        print(json.dumps(opdocs.op_data(op), indent=2))
    elif use_color(sys.stdout):
        from rich.markdown import Markdown

        console(sys.stdout).print(Markdown(opdocs.op_text(op)))
    else:
        sys.stdout.write(opdocs.op_text(op) + "\n")
    return EXIT_OK


def _table(ops: list[dict[str, Any]]) -> Table:
    """The listing for a terminal: ops by family, descriptions wrapped to its width."""
    from rich.table import Table

    grid = Table("op", "description", show_edge=False)
    families = sorted({op["family"] for op in ops})
    for family in families:
        grid.add_row(f"{family}:", "", style="bold")
        for op in sorted((o for o in ops if o["family"] == family), key=lambda o: o["name"]):
            grid.add_row("  " + op["name"], op["summary"])
        grid.add_section()
    return grid
