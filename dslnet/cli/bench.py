"""`dslnet bench FILE [-n NET]`: latency and throughput of the torch module and of
ONNX Runtime on the float32 and quantized models, in one table."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dslnet.benchmark import (
    ROUND_SECONDS,
    RUNTIMES,
    BenchError,
    BenchRow,
    benchmark,
    unavailable,
    unbound_dims,
)
from dslnet.cli.common import (
    EXIT_OK,
    UsageError,
    add_limits,
    add_network_choice,
    parse_overrides,
    pick_network,
    require_file,
)
from dslnet.cli.inputs import add_spec_paths, load_spec, one_spec, shown
from dslnet.cli.machine import load_warnings, this_machine
from dslnet.passes.options import QUANTIZATIONS

if TYPE_CHECKING:
    from dslnet.ir.graph import Graph

HEADERS = ("batch", "form", "latency ms", "min-max ms", "samples/s", "speed-up", "max |diff|")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="latency and throughput: torch, ONNX Runtime fp32 and quantized"
    )
    add_spec_paths(p, one=True)
    add_network_choice(p, "network to measure (default: the only one)")
    p.add_argument("--batch", nargs="+", type=_count, metavar="B", help="batch sizes (default 1)")
    p.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="size of another symbolic input dim, e.g. T=128 (repeatable)",
    )
    p.add_argument(
        "--quantize",
        nargs="+",
        choices=QUANTIZATIONS,
        default=[],
        metavar="FORM",
        help=f"also measure these ONNX quantizations: {', '.join(QUANTIZATIONS)}",
    )
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="a .safetensors file or a torch state_dict (.pt); default: fresh weights",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda: torch on the GPU and ORT's CUDA provider; a runtime without CUDA "
        "support here is skipped with a message (default: cpu)",
    )
    p.add_argument(
        "--threads", type=_count, metavar="T", help="intra-op threads of torch and ORT alike"
    )
    p.add_argument(
        "--number",
        type=_count,
        metavar="K",
        help=f"calls per round (default: enough to fill about {ROUND_SECONDS:g} s)",
    )
    p.add_argument("--rounds", type=_count, default=5, metavar="R", help="rounds (default 5)")
    p.add_argument(
        "--warmup", type=_count_or_zero, default=2, metavar="W", help="warm-up calls (default 2)"
    )
    p.add_argument("--json", action="store_true", help="the rows as a JSON list")
    add_limits(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dslnet.backends.quantize import QuantizeError
    from dslnet.ir.weights import WeightsError
    from dslnet.passes.base import PassError

    args.file = one_spec(args, "bench")
    if args.weights:
        require_file(args.weights, "weights file")
    dims = _dims(args.dim)
    args.report.start(shown(args.file))
    program = load_spec(args.file, args)
    args.report.add(program.warnings, program.sources)
    network = pick_network(program, args.network)
    graph = program.ir(network, **parse_overrides(program, network, args.set))
    unbound = unbound_dims(graph, dims)
    if unbound:
        example = " ".join(f"--dim {name}=VALUE" for name in unbound)
        raise UsageError(
            f"network '{network}' has symbolic input dims {', '.join(unbound)} "
            f"({_inputs(graph)}): give their sizes, e.g. {example}"
        )
    _warn_if_loaded(args)
    missing = unavailable(args.device)
    if len(missing) < len(RUNTIMES):  # else `benchmark` says that nothing can run
        for runtime, why in missing.items():
            print(f"dslnet: skipping {runtime} on {args.device}: {why}", file=sys.stderr)
    try:
        rows = benchmark(
            graph,
            batches=args.batch,
            quantize=args.quantize,
            dims=dims,
            weights=args.weights,
            device=args.device,
            threads=args.threads,
            number=args.number,
            rounds=args.rounds,
            warmup=args.warmup,
        )
    except BenchError as err:
        raise UsageError(str(err)) from None
    except WeightsError as err:
        raise UsageError(f"weights do not fit network '{network}': {err}") from None
    except (QuantizeError, PassError) as err:
        if isinstance(err, PassError) and err.span is not None:  # at a layer (exit 1)
            raise
        raise UsageError(str(err)) from None
    if args.json:
        print(json.dumps([_finite(row.as_dict()) for row in rows], indent=2))
    else:
        _print_table(_title(network, args, rows), rows)
    return EXIT_OK


def _warn_if_loaded(args: argparse.Namespace) -> None:
    """Warnings, through the diagnostics report, when timings here cannot be trusted."""
    import torch

    from dslnet.core.diagnostics import Diagnostic, Severity, SourceMap, Span

    machine = this_machine()
    if machine is None or args.device != "cpu":
        return
    threads = args.threads or torch.get_num_threads()
    where = Span.unknown("dslnet bench")
    found = [Diagnostic(Severity.WARNING, text, where) for text in load_warnings(machine, threads)]
    args.report.add(found, SourceMap())


def _count(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count_or_zero(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _dims(pairs: Sequence[str]) -> dict[str, int]:
    """`--dim NAME=VALUE` pairs as sizes."""
    sizes: dict[str, int] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not sep or not name or value < 1:
            raise UsageError(f"--dim expects NAME=SIZE with a size of 1 or more, got '{pair}'")
        sizes[name] = value
    return sizes


def _inputs(graph: Graph) -> str:
    return ", ".join(f"{name}: {graph.type_of(name)}" for name in graph.inputs)


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN and inf as null: JSON has no spelling for them."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _title(network: str, args: argparse.Namespace, rows: Sequence[BenchRow]) -> str:
    threads = rows[0].threads if rows else args.threads
    return (
        f"{network} on {args.device}, {threads} thread{'s' * (threads != 1)}: per-call "
        f"latency, median of {args.rounds} round{'s' * (args.rounds != 1)} (min-max across "
        "rounds); speed-up vs ORT fp32 at the same batch"
    )


CAPTION = "max |diff|: largest absolute difference of the outputs from torch's (CPU, fp32)"


def _cells(row: BenchRow) -> tuple[str, ...]:
    speedup = "-" if row.speedup is None else f"{row.speedup:.2f}x"
    return (
        str(row.batch),
        row.label,
        f"{row.median_ms:.4g}",
        f"{row.min_ms:.4g}-{row.max_ms:.4g}",
        f"{row.samples_per_s:,.0f}",
        speedup,
        f"{row.max_abs_diff:.3g}",
    )


def _print_table(title: str, rows: Sequence[BenchRow]) -> None:
    """A rich table where stdout takes styling (a terminal), else aligned plain text."""
    from dslnet.core.console import console, use_color

    cells = [_cells(row) for row in rows]
    if use_color(sys.stdout):
        from rich.table import Table

        table = Table(title=title, caption=CAPTION)
        for i, header in enumerate(HEADERS):
            table.add_column(header, justify="left" if i == 1 else "right")
        for line in cells:
            table.add_row(*line)
        console(sys.stdout).print(table)
        return
    widths = [max(len(c) for c in column) for column in zip(HEADERS, *cells)]
    print(title)
    for line in [HEADERS, *cells]:
        print(
            "  ".join(
                c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))
            ).rstrip()
        )
    print(CAPTION)
