"""`dslnet ops [NAME]`: the op reference, generated from the registry."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dslnet.cli.common import EXIT_OK, UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("ops", help="the registered ops, or the reference of one")
    p.add_argument("name", nargs="?", metavar="NAME", help="an op (default: list them all)")
    p.add_argument(
        "--markdown", action="store_true", help="the whole reference as markdown (docs/ops.md)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dslnet import opdocs
    from dslnet.diagnostics import did_you_mean
    from dslnet.ops import registry

    if args.markdown:
        sys.stdout.write(opdocs.reference())
    elif args.name is None:
        sys.stdout.write(opdocs.op_list())
    else:
        op = registry.get(args.name)
        if op is None:
            hint = did_you_mean(args.name, opdocs.op_names())
            raise UsageError(f"no op '{args.name}'{hint}; `dslnet ops` lists them")
        sys.stdout.write(opdocs.op_text(op) + "\n")
    return EXIT_OK
