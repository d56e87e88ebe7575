"""Differential execution: an accepted network run in PyTorch and in ONNX Runtime.

Both backends get the same weights (drawn once, `init_weights`) and the same random
inputs (`dslnet.testing.random_feeds`: each in the domain the ops reading it declare,
other integers small enough to index any table of two rows), at two sizes of the
symbolic dims, in eval mode. At each size:

- both run, and each output has the shape the IR says (its symbolic dims evaluated)
  and the IR's dtype, the same NaN and ±inf positions, and values within tolerance
  (1e-4 of the output's largest finite magnitude, at least 1e-4; looser for 16-bit
  floats): accumulation order differs between the backends, and its error grows with
  the size of the values added, not with each element's own;
- or both refuse the inputs (a size the network cannot take, e.g. a window larger than
  the input): that is agreement too. One refusing what the other runs is not.

Building the torch module or the ONNX Runtime session is not allowed to fail: the
caller counts that as a crash. Not run, and counted with the reason: a network whose
ops a backend's CPU kernels lack for a 16-bit float (ONNX Runtime's Resize, PyTorch's
avg_pool3d: valid models all the same); one over `MAX_ELEMENTS` (weights plus the
largest value); one with a bfloat16 input or output, which numpy cannot hold; one no
tried size makes non-empty (or puts inside the fixed bounds of a slice of a symbolic
axis: the IR's shape assumes them).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dslnet.backends.onnx_emit import emit_onnx
from dslnet.backends.torch_codegen import build_module
from dslnet.core.symbolic import SymExpr
from dslnet.core.types import DType, TensorType
from dslnet.ir.graph import Graph
from dslnet.ir.oplookup import input_types, resolve_op
from dslnet.ir.weights import init_weights
from dslnet.testing import concrete_shape, input_symbols, random_feeds

MAX_ELEMENTS = 4_000_000
# Sizes tried for every symbolic dim, a pair at a time: the first pair at which every
# value of the network is non-empty is used. (At an empty one, a window wider than its
# input, PyTorch raises where ONNX Runtime returns an empty tensor.)
SIZE_PAIRS = ((2, 3), (4, 6), (8, 9), (16, 17))
TOLERANCE = {DType.float16: 2e-2, DType.bfloat16: 1e-1}
FLOAT32_TOLERANCE = 1e-4

Array = np.ndarray[Any, Any]


class Disagreement(Exception):
    """The backends differ on an accepted network; the message says where and how."""


@dataclass(frozen=True)
class _Run:
    outputs: list[Array] | None  # None: the backend refused the inputs
    error: str = ""


def run_both(graph: Graph, source: str | None = None, max_elements: int = MAX_ELEMENTS) -> str:
    """Run `graph` in both backends and compare ('' when it ran, else why it did not).
    Raises Disagreement, or whatever building either backend raised."""
    if any(graph.type_of(v).dtype == DType.bfloat16 for v in _io_values(graph)):
        return "a bfloat16 input or output"
    envs = _size_pair(graph)
    if envs is None:
        return "no sizes tried make every value non-empty"
    if _elements(graph, envs[-1]) > max_elements:
        return f"over {max_elements:,} elements"
    weights = init_weights(graph, seed=0)
    module = _torch_module(graph, source, weights)
    try:
        session = _ort_session(graph, weights)
    except Exception as err:
        missing = re.search(r"Could not find an implementation for (\w+)\(", str(err))
        if type(err).__name__ == "NotImplemented" and missing:  # a valid model all the same
            return f"ONNX Runtime's CPU provider lacks {missing.group(1)} for these dtypes"
        raise
    rng = np.random.default_rng(0)
    refused = []  # the sizes both backends refused (they agree on it)
    for env in envs:
        feeds = random_feeds(graph, env, rng)
        where = f"at {_sizes(env)}" if env else "at its sizes"
        try:
            ours = _run_torch(graph, module, feeds)
        except NotImplementedError as err:
            missing = re.search(r'"(\w+)" not implemented for \'(Half|BFloat16)\'', str(err))
            if not missing:
                raise
            return f"PyTorch's CPU kernels lack {missing.group(1)} for {missing.group(2)}"
        theirs = _run_ort(graph, session, feeds)
        if (ours.outputs is None) != (theirs.outputs is None):
            failed, ran = (
                ("torch", "ONNX Runtime") if ours.outputs is None else ("ONNX Runtime", "torch")
            )
            message = ours.error or theirs.error
            raise Disagreement(f"{where}: {failed} refused the inputs, {ran} ran: {message}")
        if ours.outputs is None or theirs.outputs is None:
            refused.append(env)
            continue
        for (name, value), mine, other in zip(graph.outputs, ours.outputs, theirs.outputs):
            _compare(graph.type_of(value), env, mine, other, f"{where}: output '{name}'")
    return (
        "both backends refused the inputs at every size tried" if len(refused) == len(envs) else ""
    )


def _io_values(graph: Graph) -> list[str]:
    return [*graph.inputs, *(value for _, value in graph.outputs)]


def _sizes(env: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(env.items()))


def _size_pair(graph: Graph) -> list[dict[str, int]] | None:
    """The environments to run at (one, empty, without symbolic dims); None when no
    pair makes every value non-empty."""
    symbols = sorted(input_symbols(graph))
    pairs = (
        [[dict.fromkeys(symbols, n) for n in pair] for pair in SIZE_PAIRS] if symbols else [[{}]]
    )
    assumed = _assumed_sizes(graph)
    for envs in pairs:
        if all(_non_empty(graph, env, assumed) for env in envs):
            return envs
    return None


def _non_empty(graph: Graph, env: Mapping[str, int], assumed: list[tuple[SymExpr, int]]) -> bool:
    shapes = _all_shapes(graph, env)
    if shapes is None or any(min(shape, default=1) < 1 for shape in shapes):
        return False
    return all(size.evaluate(dict(env)) >= least for size, least in assumed)


def _assumed_sizes(graph: Graph) -> list[tuple[SymExpr, int]]:
    """The symbolic sizes the IR's shapes assume are at least so long at run time
    (OpDef.least_sizes: x[:, 2:7] of [N, T] is [N, 5]); at a shorter one the backends
    give fewer elements than the IR says, both of them."""
    assumed = []
    for node in graph.nodes:
        op, attrs = resolve_op(node)
        types = input_types(graph, node)
        for (position, axis), least in op.least_sizes(attrs, types).items():
            size = types[position].shape[axis]
            if isinstance(size, SymExpr):
                assumed.append((size, least))
    return assumed


def _all_shapes(graph: Graph, env: Mapping[str, int]) -> list[tuple[int, ...]] | None:
    try:
        return [concrete_shape(value.type, env) for value in graph.values.values()]
    except (ValueError, ZeroDivisionError):
        return None


def _elements(graph: Graph, env: Mapping[str, int]) -> int:
    weights = sum(p.numel for p in graph.parameters.values())
    largest = max(int(np.prod(s, dtype=np.float64)) for s in _all_shapes(graph, env) or [()])
    return weights + largest


def _torch_module(graph: Graph, source: str | None, weights: Mapping[str, Array]) -> Any:
    import torch

    module = build_module(graph, source)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
    return module.eval()


def _ort_session(graph: Graph, weights: Mapping[str, Array]) -> Any:
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # inputs both backends refuse are not news
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False  # memory back after each case
    model = emit_onnx(graph, weights)
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _run_torch(graph: Graph, module: Any, feeds: Mapping[str, Array]) -> _Run:
    import torch

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on odd inputs: not findings
            out = module(*(torch.from_numpy(feeds[v]) for v in graph.inputs))
    except NotImplementedError:  # a RuntimeError, but no refusal of these inputs
        raise
    except (RuntimeError, ValueError, IndexError) as err:
        return _Run(None, f"{type(err).__name__}: {_first_line(err)}")
    outputs = [out] if isinstance(out, torch.Tensor) else list(out)
    return _Run([t.detach().numpy() for t in outputs])


def _run_ort(graph: Graph, session: Any, feeds: Mapping[str, Array]) -> _Run:
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

    names = [out.name for out in session.get_outputs()]
    try:
        return _Run(list(session.run(names, dict(feeds))))
    except (Fail, InvalidArgument, RuntimeException) as err:
        return _Run(None, f"{type(err).__name__}: {_first_line(err)}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return re.sub(r"\s+", " ", text[0])[:300] if text else ""


def _compare(
    ttype: TensorType, env: Mapping[str, int], mine: Array, other: Array, where: str
) -> None:
    want = concrete_shape(ttype, env)
    for backend, got in (("torch", mine), ("ONNX Runtime", other)):
        if tuple(got.shape) != want:
            raise Disagreement(
                f"{where} is {list(got.shape)} in {backend}, the IR says {list(want)}"
            )
        if got.dtype != np.dtype(ttype.dtype.value):
            raise Disagreement(
                f"{where} is {got.dtype} in {backend}, the IR says {ttype.dtype.value}"
            )
    if not mine.size:
        return
    if not ttype.dtype.is_float:
        if not np.array_equal(mine, other):
            raise Disagreement(
                f"{where} differs at {_first(mine != other)}: {_pair(mine, other, mine != other)}"
            )
        return
    a, b = mine.astype(np.float64), other.astype(np.float64)
    for what, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        if not np.array_equal(test(a), test(b)):
            differ = test(a) != test(b)
            raise Disagreement(
                f"{where}: {what} at {_first(differ)} in one backend only: {_pair(a, b, differ)}"
            )
    finite = np.isfinite(a)
    if not finite.any():
        return
    tol = TOLERANCE.get(ttype.dtype, FLOAT32_TOLERANCE)
    scale = max(1.0, float(np.abs(a[finite]).max()))
    diff = np.zeros_like(a)
    diff[finite] = np.abs(a[finite] - b[finite])
    if float(diff.max()) > tol * scale:
        worst = diff == diff.max()
        raise Disagreement(
            f"{where} differs by {float(diff.max()):.3g} at {_first(worst)} (allowed {tol:g} x "
            f"{scale:.3g}): {_pair(a, b, worst)}"
        )


def _first(mask: Array) -> list[int]:
    return [int(i) for i in np.argwhere(mask)[0]]


def _pair(mine: Array, other: Array, mask: Array) -> str:
    index = tuple(_first(mask))
    return f"torch {mine[index].item()!r}, ONNX Runtime {other[index].item()!r}"
