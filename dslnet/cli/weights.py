"""`dslnet weights import SRC --spec FILE -n NET [--map MAP] -o OUT.safetensors`: a
checkpoint of another implementation (a reference model's state_dict, whose names
never match the spec's) turned into the network's own weights, the tensors matched by
structure (docs/weights.md). The mapping is the result, on stdout; the weights go to
OUT, keyed as the generated module's state_dict (what `load_weights:`, `--weights` and
`load_state_dict` take).

Exit 1 when the checkpoint does not fit (every ambiguous, unfilled or unused tensor
listed) or the map file is wrong (located there); 2 for files that cannot be read or
written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dslnet.cli.common import (
    EXIT_OK,
    EXIT_SPEC,
    UsageError,
    add_diagnostics_format,
    add_limits,
    add_network_choice,
    parse_overrides,
    pick_network,
    require_file,
    write_files,
)
from dslnet.cli.inputs import STDIN, load_spec, shown


def register(sub: Any) -> None:
    from dslnet.cli import add_color

    p = sub.add_parser(
        "weights",
        help="import a checkpoint of another implementation into a network",
        description="Weights files for a network. `import` matches a checkpoint's tensors "
        "to the network's parameters by structure (layer order, shapes, roles, block "
        "boundaries), not by name.",
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    imp = verbs.add_parser(
        "import",
        help="a checkpoint's tensors as the network's weights, matched by structure",
        description="Match the tensors of SRC to the parameters and buffers of a network "
        "by structure, print the mapping (checkpoint name -> network name, shape) and "
        "write the network's weights. Ambiguities, parameters nothing fills and "
        "tensors nothing uses are errors, all listed; a map file settles what cannot "
        "be inferred (docs/weights.md).",
    )
    imp.add_argument(
        "source",
        metavar="SRC",
        help="the checkpoint: .safetensors, or a .pt/.pth state_dict (read with "
        "torch.load(weights_only=True): no pickled code runs)",
    )
    imp.add_argument("--spec", required=True, metavar="FILE", help="the .net spec")
    add_network_choice(imp, "network to import into (default: the only one)")
    imp.add_argument(
        "--map",
        metavar="MAPFILE",
        help="lines 'CHECKPOINT_NAME = NETWORK_NAME' pinning pairs, "
        "'CHECKPOINT_NAME = -' (wildcards * ?) leaving tensors out, 'transpose PATTERN' "
        "and 'concat PATTERN, PATTERN...' changing tensors before matching "
        "(docs/weights.md)",
    )
    imp.add_argument(
        "--allow-unused",
        action="store_true",
        help="leave out checkpoint tensors no parameter takes (a classifier head the "
        "network does not have); they are listed",
    )
    imp.add_argument(
        "--allow-missing",
        action="store_true",
        help="parameters no tensor fills keep fresh initial values (a new head); listed",
    )
    imp.add_argument(
        "--seed", type=int, default=0, help="seed of the fresh values (--allow-missing)"
    )
    imp.add_argument(
        "-o",
        "--output",
        metavar="OUT.safetensors",
        help="write the weights here (without it: print the mapping only)",
    )
    add_diagnostics_format(imp)
    add_limits(imp)
    add_color(imp, default=argparse.SUPPRESS)  # after the verb too, as after a command
    imp.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from dslnet.fileio import FileProblem
    from dslnet.ir.weight_import import WeightImportError, import_weights, read_checkpoint
    from dslnet.ir.weight_map import read_map
    from dslnet.ir.weights import WeightsError

    if args.spec != STDIN:
        require_file(args.spec, "spec file")
    require_file(args.source, "checkpoint")
    if args.map:
        require_file(args.map, "map file")
    if args.output and Path(args.output).suffix.lower() != ".safetensors":
        raise UsageError(f"-o {args.output}: the weights are written as FILE.safetensors")
    args.report.start(shown(args.spec))
    program = load_spec(args.spec, args)
    args.report.add(program.warnings, program.sources)
    network = pick_network(program, args.network)
    graph = program.ir(network, **parse_overrides(program, network, args.set))
    try:
        tensors, ordered = read_checkpoint(args.source)
        weight_map = read_map(args.map) if args.map else None
    except WeightsError as err:
        raise UsageError(str(err)) from None
    except FileProblem as err:
        raise UsageError(f"cannot read map file {err.path}: {err.problem}") from None
    try:
        imported = import_weights(
            tensors,
            graph,
            weight_map,
            ordered=ordered,
            allow_unused=args.allow_unused,
            allow_missing=args.allow_missing,
            seed=args.seed,
        )
    except WeightImportError as err:
        print(
            f"dslnet: error: {args.source} does not fit network '{network}' by structure "
            f"({len(err.problems)} {'problem' if len(err.problems) == 1 else 'problems'}):",
            file=sys.stderr,
        )
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_SPEC
    sys.stdout.write(imported.render())
    if args.output:
        from safetensors.numpy import save

        write_files({Path(args.output): save(imported.weights)}, args.report)
        args.report.note(f"wrote {args.output}")
    return EXIT_OK
