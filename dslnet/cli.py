"""The `dslnet` command: a thin layer over the Python API.

Exit codes: 0 ok, 1 errors in a spec, 2 usage errors, 3 internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dslnet.diagnostics import CompileError, Diagnostic
from dslnet.frontend import ast
from dslnet.frontend.loader import Limits, Program, load

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dslnet", description="Compile .net network specs to PyTorch and ONNX."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def limits(p: argparse.ArgumentParser) -> None:
        d = Limits()
        p.add_argument("--max-nodes", type=int, default=d.max_nodes, help="expansion bound")
        p.add_argument(
            "--max-iterations",
            type=int,
            default=d.max_iterations,
            help="bound on compile-time loop iterations",
        )
        p.add_argument("--max-depth", type=int, default=d.max_depth, help="block nesting bound")

    check = sub.add_parser("check", help="report every error and warning of spec files")
    check.add_argument("files", nargs="+", metavar="FILE")
    limits(check)

    summ = sub.add_parser("summary", help="layers, shapes, parameters and FLOPs of a network")
    summ.add_argument("file", metavar="FILE")
    summ.add_argument("-n", "--network", help="network (default: every network of the file)")
    summ.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a network parameter (repeatable)",
    )
    summ.add_argument("--json", action="store_true", help="one JSON object (a list for several)")
    limits(summ)

    ops = sub.add_parser("ops", help="the registered ops, or the reference of one")
    ops.add_argument("name", nargs="?", metavar="NAME", help="an op (default: list them all)")
    ops.add_argument(
        "--markdown", action="store_true", help="the whole reference as markdown (docs/ops.md)"
    )

    comp = sub.add_parser("compile", help="print or write a compiled form of a network")
    comp.add_argument("file", metavar="FILE")
    comp.add_argument("-n", "--network", help="network to compile (default: the only one)")
    comp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a network parameter (repeatable)",
    )
    comp.add_argument(
        "--emit",
        choices=["ast", "ir", "ir-opt", "torch", "onnx"],
        default="ir",
        help="what to produce: syntax tree, typed IR, IR after the reduction passes, "
        "PyTorch source, ONNX model",
    )
    comp.add_argument("-o", "--output", help="write here instead of standard output")
    comp.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
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
        "--weights",
        metavar="FILE",
        help="ONNX weights: a .safetensors file or a torch state_dict (.pt)",
    )
    reduce = comp.add_argument_group(
        "model reduction",
        "passes run on the IR and the weights (--weights, else fresh values); with --emit "
        "torch -o FILE.py the reduced weights are written beside it as FILE.safetensors",
    )
    reduce.add_argument(
        "--fold", action="store_true", help="fold batchnorm into the layer before it"
    )
    reduce.add_argument(
        "--prune", type=float, metavar="RATIO", help="remove this fraction of channels"
    )
    reduce.add_argument(
        "--prune-by", choices=["l1", "l2", "bn"], default="l1", help="channel importance"
    )
    reduce.add_argument(
        "--prune-scope",
        choices=["layer", "global"],
        default="layer",
        help="the ratio per group of channels, or ranked over the whole network",
    )
    reduce.add_argument(
        "--prune-exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="modules (glob) whose output channels stay (repeatable)",
    )
    reduce.add_argument(
        "--sparsity",
        type=float,
        metavar="RATIO",
        help="zero this fraction of weights by magnitude (smaller files, not faster)",
    )
    reduce.add_argument(
        "--lowrank",
        type=float,
        metavar="ENERGY",
        help="factorise dense and conv layers, keeping this share of each weight's "
        "singular-value energy (e.g. 0.9)",
    )
    reduce.add_argument(
        "--lowrank-rank",
        type=_rank,
        metavar="R",
        help="factorise at this rank instead (an int, or a fraction of each full rank)",
    )
    reduce.add_argument(
        "--lowrank-exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="modules (glob) that stay whole (repeatable)",
    )
    reduce.add_argument(
        "--quantize",
        choices=["fp16", "int8-dynamic", "int8-static"],
        help="quantize the ONNX model (with --emit onnx); the drift and latency against "
        "float32 are reported, with a warning when it is not faster",
    )
    reduce.add_argument(
        "--calibrate",
        metavar="FILE",
        help="calibration inputs for int8-static: .npy (one input) or .npz (by input "
        "name); default: generated inputs",
    )
    reduce.add_argument(
        "--calibration-method",
        choices=["minmax", "percentile", "entropy"],
        default="minmax",
        help="how int8-static chooses each activation's range",
    )
    reduce.add_argument(
        "--calibration-samples",
        type=int,
        default=32,
        metavar="N",
        help="calibration batches to use (default 32)",
    )
    reduce.add_argument("--report", action="store_true", help="print what each pass did")
    limits(comp)
    return parser


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        max_nodes=args.max_nodes, max_iterations=args.max_iterations, max_depth=args.max_depth
    )


def _print_diagnostics(diags: Sequence[Diagnostic], program_or_error: Any) -> None:
    sources = program_or_error.sources
    for d in diags:
        print(d.render(sources), file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    failed = False
    for file in args.files:
        if not Path(file).is_file():
            raise UsageError(f"no such file: {file}")
        program = load(file, _limits(args), strict=False)
        diags = program.check()
        _print_diagnostics(diags, program)
        errors = sum(d.is_error for d in diags)
        warnings = len(diags) - errors
        failed |= errors > 0
        status = "ok" if not errors else f"{errors} error{'s' * (errors != 1)}"
        extra = f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
        print(f"{file}: {status}{extra}", file=sys.stderr)
    return EXIT_SPEC if failed else EXIT_OK


def parse_overrides(program: Program, network: str, pairs: Sequence[str]) -> dict[str, Any]:
    """`--set name=value` pairs, converted to the declared parameter types."""
    decl = program.block(network)
    types = {p.name: p.type_name for p in decl.params} if decl else {}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--set expects NAME=VALUE, got '{pair}'")
        out[name.strip()] = _convert(name.strip(), text.strip(), types.get(name.strip()))
    return out


def _convert(name: str, text: str, kind: str | None) -> Any:
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if kind == "str":
            return text
    except ValueError:
        raise UsageError(f"--set {name}: expected {kind}, got '{text}'") from None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def pick_network(program: Program, requested: str | None) -> str:
    if requested:
        return requested
    if len(program.networks) == 1:
        return program.networks[0]
    have = ", ".join(program.networks) or "none"
    raise UsageError(f"choose a network with -n (this spec has: {have})")


def cmd_summary(args: argparse.Namespace) -> int:
    import json

    from dslnet.summary import render

    if not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    program = load(args.file, _limits(args))
    names = [args.network] if args.network else program.networks
    results = []
    for name in names:
        results.append(program.summary(name, **parse_overrides(program, name, args.set)))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        print("\n".join(render(s) for s in results), end="")
    return EXIT_OK


def cmd_ops(args: argparse.Namespace) -> int:
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


def cmd_compile(args: argparse.Namespace) -> int:
    if not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    program = load(args.file, _limits(args))
    for w in program.warnings:
        print(w.render(program.sources), file=sys.stderr)
    if args.emit == "onnx" and not args.output:
        raise UsageError("--emit onnx writes a binary model: give -o FILE.onnx")
    if args.weights and args.emit != "onnx" and not _reducing(args):
        raise UsageError("--weights goes with --emit onnx or a reduction flag")
    if args.weights and not Path(args.weights).is_file():
        raise UsageError(f"no such weights file: {args.weights}")
    if args.quantize and args.emit != "onnx":
        raise UsageError("--quantize makes an ONNX model: use it with --emit onnx -o FILE")
    if args.calibrate and args.quantize != "int8-static":
        raise UsageError("--calibrate goes with --quantize int8-static")
    if args.calibrate and not Path(args.calibrate).is_file():
        raise UsageError(f"no such calibration file: {args.calibrate}")
    from dslnet.passes.pipeline import marked

    sidecar: bytes | None = None  # reduced weights beside a torch source
    if args.emit == "ast":
        data = ("\n".join(ast.dump(m) for m in program.modules) + "\n").encode("utf-8")
    else:
        network = pick_network(program, args.network)
        graph = program.ir(network, **parse_overrides(program, network, args.set))
        weights, reduced = args.weights, None
        if _reducing(args) or args.emit == "ir-opt" or marked(graph, "prune"):
            reduced = _reduce(graph, args)
            graph, weights = reduced.graph, reduced.weights
            if args.emit == "torch" and args.output:  # the source alone loses them
                from safetensors.numpy import save

                sidecar = save(dict(weights))
        data = _quantized(reduced, args) if args.quantize else _emit(graph, args, weights)
    if args.output:
        if sidecar is not None:
            write_atomic(Path(args.output).with_suffix(".safetensors"), sidecar)
        write_atomic(Path(args.output), data)
    else:
        sys.stdout.write(data.decode("utf-8"))
    return EXIT_OK


def _reducing(args: argparse.Namespace) -> bool:
    asked = (args.prune, args.sparsity, args.lowrank, args.lowrank_rank)
    return bool(args.fold or args.quantize or any(a is not None for a in asked))


def _rank(text: str) -> int | float:
    """`--lowrank-rank`: 64 is a rank, 0.25 a fraction of each layer's full rank."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a rank: {text!r}") from None


def _reduce(graph: Any, args: argparse.Namespace) -> Any:
    """The reduction passes the flags ask for, over `--weights` (or fresh ones)."""
    from dslnet.backends.weights import WeightsError
    from dslnet.passes.base import PassError
    from dslnet.passes.pipeline import Options, optimize

    options = Options(
        fold=args.fold,
        prune=args.prune,
        prune_by=args.prune_by,
        prune_scope=args.prune_scope,
        exclude=args.prune_exclude,
        sparsity=args.sparsity,
        lowrank=args.lowrank,
        lowrank_rank=args.lowrank_rank,
        lowrank_exclude=args.lowrank_exclude,
        quantize=args.quantize,
        calibrate=args.calibrate,
        calibration_method=args.calibration_method,
        calibration_samples=args.calibration_samples,
    )
    try:
        reduced = optimize(graph, options, args.weights)
    except WeightsError as err:
        raise UsageError(f"weights do not fit network '{graph.name}': {err}") from None
    except PassError as err:
        raise UsageError(str(err)) from None
    if args.report:
        print(reduced.report.render(), end="", file=sys.stderr)
    return reduced


def _quantized(reduced: Any, args: argparse.Namespace) -> bytes:
    """The quantized ONNX model; its drift and latency report goes to stderr."""
    from dslnet.passes.base import PassError
    from dslnet.passes.quantize import QuantizeError

    try:
        model, report = reduced.quantization(
            opset=args.opset, functions=args.onnx_functions, ort_fused=args.ort_fused
        )
    except (QuantizeError, PassError) as err:
        raise UsageError(str(err)) from None
    print(f"quantized ({args.quantize}):\n{report.render()}", file=sys.stderr)
    data: bytes = model.SerializeToString()
    return data


def _emit(graph: Any, args: argparse.Namespace, weights: Any) -> bytes:
    if args.emit in ("ir", "ir-opt"):
        from dslnet.ir.printer import print_graph

        return print_graph(graph).encode("utf-8")
    if args.emit == "torch":
        from dslnet.backends.torch_codegen import generate_torch

        return generate_torch(graph, args.file).encode("utf-8")
    from dslnet.backends.onnx_emit import emit_onnx_bytes
    from dslnet.backends.weights import WeightsError

    try:
        return emit_onnx_bytes(
            graph,
            weights,
            opset=args.opset,
            functions=args.onnx_functions,
            ort_fused=args.ort_fused,
        )
    except WeightsError as err:
        raise UsageError(f"weights do not fit network '{graph.name}': {err}") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target, then rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "summary":
            return cmd_summary(args)
        if args.command == "ops":
            return cmd_ops(args)
        return cmd_compile(args)
    except CompileError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_SPEC
    except UsageError as err:
        print(f"dslnet: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dslnet: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug in dslnet, not in the spec
        print(
            "dslnet: internal error (this is a bug in dslnet; please report it with the spec "
            "and this trace):",
            file=sys.stderr,
        )
        print("".join(traceback.format_exc(limit=-8)), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
