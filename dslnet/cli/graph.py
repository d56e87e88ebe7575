"""`dslnet graph FILE`: a picture of a network (Graphviz DOT, SVG or PNG)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dslnet.api import Program
from dslnet.cli.common import (
    EXIT_OK,
    UsageError,
    add_diagnostics_format,
    add_limits,
    parse_overrides,
    pick_network,
    write_atomic,
)
from dslnet.cli.inputs import add_spec_paths, load_spec, one_spec, shown
from dslnet.core.diagnostics import did_you_mean
from dslnet.ir.graph import Graph


def register(sub: Any) -> None:
    p = sub.add_parser(
        "graph",
        help="draw a network: DOT text, or SVG/PNG through Graphviz",
        description="Draw a network from its typed IR: layers coloured by op family, "
        "shapes on the edges, blocks as clusters or folded boxes, a shared layer as one "
        "box (marked 'shared xN') with the edges of every use. Without -o the DOT text "
        "goes to standard output.",
    )
    add_spec_paths(p, one=True)
    p.add_argument(
        "-n",
        "--network",
        action="append",
        default=[],
        metavar="NET",
        help="network to draw (default: the only one); repeat it to draw several side by "
        "side, an output of one that another takes as input noted on both (a GAN pair)",
    )
    p.add_argument(
        "--all", action="store_true", help="every network of the file, each in its own cluster"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a network parameter (repeatable; with several networks, each "
        "network that has it)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="write OUT; its suffix picks the format: .dot (or .gv), .svg, .png "
        "(.svg and .png need Graphviz's dot program); a missing directory is created, "
        "and said so on stderr",
    )
    fold = p.add_mutually_exclusive_group()
    fold.add_argument(
        "--depth",
        type=int,
        metavar="K",
        help="open blocks nested at most K deep (1: the network's own blocks) and fold "
        "deeper ones into one box each; default: small networks whole, bigger ones with "
        "the first instance of each repeated block open and the others folded",
    )
    fold.add_argument(
        "--expand",
        action="append",
        default=[],
        metavar="BLOCK",
        help="open only this block type or instance (and what holds it), fold the others "
        "(repeatable)",
    )
    p.add_argument(
        "--direction",
        choices=["TB", "LR"],
        default="TB",
        help="top to bottom (default) or left to right",
    )
    add_diagnostics_format(p)
    add_limits(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dslnet.views.graphfold import ViewError, ViewOptions
    from dslnet.views.graphrender import FORMATS, RenderError, find_dot, render, to_dot

    args.file = one_spec(args, "graph")
    if args.all and args.network:
        raise UsageError("give either -n NET or --all, not both")
    fmt = _format(args.output, FORMATS)
    try:
        if fmt is not None:  # before compiling: nothing is worth doing without it
            find_dot(fmt)
        args.report.start(shown(args.file))
        program = load_spec(args.file, args)
        args.report.add(program.warnings, program.sources)
        graphs = _graphs(program, _chosen(program, args), args.set)
        options = ViewOptions(args.depth, tuple(args.expand), args.direction)
        text = to_dot(graphs, options)
        data = render(text, fmt) if fmt is not None else text.encode("utf-8")
    except (RenderError, ViewError) as err:
        raise UsageError(str(err)) from None
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    write_atomic(Path(args.output), data, args.report)  # OutputError: a usage error
    return EXIT_OK


def _format(output: str | None, formats: dict[str, str | None]) -> str | None:
    """The `dot -T` format `output` asks for (None: DOT text)."""
    if output is None:
        return None
    suffix = Path(output).suffix.lower()
    if suffix not in formats:
        known = ", ".join(formats)
        raise UsageError(f"-o {output}: unknown picture format '{suffix}' (use one of {known})")
    return formats[suffix]


def _chosen(program: Program, args: argparse.Namespace) -> list[str]:
    if args.all:
        if not program.networks:
            raise UsageError(f"{shown(args.file)} has no network")
        return program.networks
    if not args.network:
        if len(program.networks) > 1:
            have = ", ".join(program.networks)
            raise UsageError(
                f"choose a network with -n NET (repeat -n, or give --all, to draw several "
                f"side by side); this spec has: {have}"
            )
        return [pick_network(program, None)]
    for name in args.network:
        if name not in program.networks:
            hint = did_you_mean(name, program.networks)
            have = ", ".join(program.networks) or "none"
            raise UsageError(f"no network '{name}'{hint}; this spec has: {have}")
    return list(dict.fromkeys(args.network))


def _graphs(program: Program, names: Sequence[str], pairs: Sequence[str]) -> list[Graph]:
    """Each network's IR; with several, a `--set` reaches those that declare it."""
    if len(names) == 1:
        return [program.ir(names[0], **parse_overrides(program, names[0], pairs))]
    declared = {name: _param_names(program, name) for name in names}
    for pair in pairs:
        key = pair.partition("=")[0].strip()
        if not any(key in params for params in declared.values()):
            raise UsageError(f"--set {key}: none of {', '.join(names)} has a parameter '{key}'")
    graphs = []
    for name in names:
        mine = [p for p in pairs if p.partition("=")[0].strip() in declared[name]]
        graphs.append(program.ir(name, **parse_overrides(program, name, mine)))
    return graphs


def _param_names(program: Program, network: str) -> set[str]:
    decl = program.block(network)
    return {p.name for p in decl.params} if decl is not None else set()
