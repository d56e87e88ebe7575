"""`dslnet compile FILE`: the syntax tree, IR, PyTorch source or ONNX model of a
network, optionally through the reduction passes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dslnet.cli.common import (
    EXIT_OK,
    UsageError,
    add_diagnostics_format,
    add_limits,
    add_network_choice,
    parse_overrides,
    pick_network,
    require_file,
    write_files,
)
from dslnet.cli.inputs import add_spec_paths, load_spec, one_spec, shown
from dslnet.cli.reduction import add_reduction_flags, options_from
from dslnet.frontend import ast
from dslnet.passes.options import Options


def register(sub: Any) -> None:
    comp = sub.add_parser("compile", help="print or write a compiled form of a network")
    add_spec_paths(comp, one=True)
    add_network_choice(comp, "network to compile (default: the only one)")
    comp.add_argument(
        "--emit",
        choices=["ast", "ir", "ir-opt", "torch", "onnx"],
        default="ir",
        help="what to produce: syntax tree, typed IR, IR after the reduction passes, "
        "PyTorch source, ONNX model",
    )
    comp.add_argument(
        "-o",
        "--output",
        help="write here instead of standard output (a missing directory is created, "
        "and said so on stderr)",
    )
    comp.add_argument("--opset", type=_opset, default=18, help="ONNX opset (default 18)")
    comp.add_argument(
        "--onnx-functions",
        action="store_true",
        help="emit blocks as ONNX local functions instead of inlining them",
    )
    comp.add_argument(
        "--ort-fused",
        action="store_true",
        help="use ONNX Runtime's fused ops (com.microsoft) where they exist, e.g. attention; "
        "faster under ONNX Runtime, which is then the only runtime that runs the model",
    )
    comp.add_argument(
        "--external-data",
        action="store_true",
        help="write the ONNX weights to FILE.data beside -o FILE (done anyway for a model "
        "over 2 GiB, protobuf's limit)",
    )
    comp.add_argument(
        "--weights",
        metavar="FILE",
        help="ONNX weights: a .safetensors file or a torch state_dict (.pt)",
    )
    reduce = comp.add_argument_group(
        "model reduction",
        "passes run on the IR and the weights (--weights, else fresh values); with --emit "
        "torch -o FILE.py the reduced weights are written beside it as FILE.safetensors",
    )
    add_reduction_flags(reduce)
    # Not `report`: main() keeps the diagnostics report there, which is always true.
    reduce.add_argument(
        "--report", dest="pass_report", action="store_true", help="print what each pass did"
    )
    add_diagnostics_format(comp)
    add_limits(comp)
    comp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    args.file = one_spec(args, "compile")
    args.report.start(shown(args.file))
    program = load_spec(args.file, args)
    args.report.add(program.warnings, program.sources)
    if args.emit == "onnx" and not args.output:
        raise UsageError("--emit onnx writes a binary model: give -o FILE.onnx")
    options = options_from(args)
    if args.weights and args.emit != "onnx" and not options.asks_for_passes():
        raise UsageError("--weights goes with --emit onnx or a reduction flag")
    if args.weights:
        require_file(args.weights, "weights file")
    if args.external_data and args.emit != "onnx":
        raise UsageError("--external-data goes with --emit onnx -o FILE")
    if args.quantize and args.emit != "onnx":
        raise UsageError("--quantize makes an ONNX model: use it with --emit onnx -o FILE")
    if args.calibrate and args.quantize != "int8-static":
        raise UsageError("--calibrate goes with --quantize int8-static")
    if args.calibrate:
        require_file(args.calibrate, "calibration file")
    from dslnet.passes.pipeline import marked

    sidecar: bytes | None = None  # reduced weights beside a torch source
    if args.emit == "ast":
        data = ("\n".join(ast.dump(m) for m in program.modules) + "\n").encode("utf-8")
    else:
        network = pick_network(program, args.network)
        graph = program.ir(network, **parse_overrides(program, network, args.set))
        weights, reduced = args.weights, None
        if options.asks_for_passes() or args.emit == "ir-opt" or marked(graph, "prune"):
            reduced = _reduce(graph, options, args)
            graph, weights = reduced.graph, reduced.weights
            if args.emit == "torch" and args.output:  # the source alone loses them
                from safetensors.numpy import save

                sidecar = save(dict(weights))
        if args.emit == "onnx":
            return _write_onnx(graph, reduced, weights, args)
        data = _emit(graph, args, weights)
    if args.output:
        output = Path(args.output)
        files = {output: data}
        if sidecar is not None:  # both or neither: a source without its weights misleads
            beside = output.with_suffix(".safetensors")
            if beside == output:
                raise UsageError(
                    f"-o {output}: the reduced weights are written beside the source as "
                    f"{beside}; name the source FILE.py"
                )
            files[beside] = sidecar
        write_files(files, args.report)
    else:
        sys.stdout.write(data.decode("utf-8"))
    return EXIT_OK


def _reduce(graph: Any, options: Options, args: argparse.Namespace) -> Any:
    """The reduction passes the flags ask for, over `--weights` (or fresh ones)."""
    from dslnet.api import optimize
    from dslnet.ir.weights import WeightsError
    from dslnet.passes.base import PassError

    try:
        reduced = optimize(graph, options, args.weights)
    except WeightsError as err:
        raise UsageError(f"weights do not fit network '{graph.name}': {err}") from None
    except PassError as err:
        if err.span is not None:  # refused for one layer: reported there (exit 1)
            raise
        raise UsageError(str(err)) from None
    if args.pass_report:
        print(reduced.report.render(), end="", file=sys.stderr)
    return reduced


def _write_onnx(graph: Any, reduced: Any, weights: Any, args: argparse.Namespace) -> int:
    """The ONNX model to -o FILE, its weights in FILE.data beside it when asked or when
    one protobuf cannot hold them; to standard output with -o -, where it fits whole."""
    from dslnet.backends.onnx_external import data_file_name, file_map

    to_stdout = args.output == "-"
    if to_stdout and args.external_data:
        raise UsageError("--external-data writes two files: give -o FILE.onnx, not -o -")
    output = Path(args.output)
    data_name = data_file_name(output)
    if args.quantize:
        from dslnet.backends.onnx_external import model_files

        files = model_files(_quantized(reduced, args), data_name, args.external_data)
    else:
        files = _emit_onnx(graph, args, weights, data_name)
    if files.data is None and to_stdout:
        sys.stdout.buffer.write(files.model)
        sys.stdout.buffer.flush()
    elif to_stdout:
        raise UsageError(
            "the model is over 2 GiB, protobuf's limit: its weights go to a file beside "
            "it (external data); give -o FILE.onnx, not -o -"
        )
    else:
        write_files(file_map(output, files), args.report)
    return EXIT_OK


def _quantized(reduced: Any, args: argparse.Namespace) -> Any:
    """The quantized ONNX model; its drift and latency report goes to stderr."""
    from dslnet.backends.quantize import QuantizeError
    from dslnet.passes.base import PassError

    try:
        model, report = reduced.quantization(
            opset=args.opset, functions=args.onnx_functions, ort_fused=args.ort_fused
        )
    except (QuantizeError, PassError) as err:
        if isinstance(err, PassError) and err.span is not None:  # at a layer (exit 1)
            raise
        raise UsageError(str(err)) from None
    print(f"quantized ({args.quantize}):\n{report.render()}", file=sys.stderr)
    return model


def _emit(graph: Any, args: argparse.Namespace, weights: Any) -> bytes:
    if args.emit in ("ir", "ir-opt"):
        from dslnet.ir.printer import print_graph

        return print_graph(graph).encode("utf-8")
    from dslnet.backends.torch_codegen import generate_torch

    return generate_torch(graph, shown(args.file)).encode("utf-8")


def _emit_onnx(graph: Any, args: argparse.Namespace, weights: Any, data_name: str) -> Any:
    from dslnet.backends.onnx_emit import emit_onnx_files
    from dslnet.ir.weights import WeightsError

    try:
        return emit_onnx_files(
            graph,
            weights,
            data_name=data_name,
            external=args.external_data,
            opset=args.opset,
            functions=args.onnx_functions,
            ort_fused=args.ort_fused,
        )
    except WeightsError as err:
        raise UsageError(f"weights do not fit network '{graph.name}': {err}") from None


def _opset(text: str) -> int:
    """An ONNX opset the emitter writes and the installed onnx knows."""
    import onnx

    from dslnet.backends.onnx_emit import MIN_OPSET

    newest = onnx.defs.onnx_opset_version()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not MIN_OPSET <= value <= newest:
        raise argparse.ArgumentTypeError(
            f"opset {value} is not supported: use {MIN_OPSET} to {newest}"
        )
    return value
