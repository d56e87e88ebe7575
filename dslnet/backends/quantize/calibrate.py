"""Calibration data: feeds for a model from a `.npy`/`.npz` file, or generated.

A file holds samples along its first axis; they are cut into feeds along the model
input's batch axis (its first). Generated feeds match the inputs' shapes and dtypes:
floats standard-normal, booleans false (a padding mask that masks nothing), integers
0 or 1; an input in a declared domain (`domains`, from the IR: dslnet.ir.domains) is
drawn over it: embedding ids uniform over the table's rows, class labels below the
class count, probabilities in [0, 1].
"""

from __future__ import annotations

import ast
import operator
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from dslnet.backends.quantize._onnx import QuantizeError
from dslnet.fileio import FileProblem
from dslnet.fileio.arrays import read_npy, read_npz
from dslnet.ir.domains import InputDomain

__all__ = ["CalibrationError", "load_calibration"]

Feed = dict[str, np.ndarray[Any, Any]]


class CalibrationError(QuantizeError, ValueError):
    """Calibration data that does not fit the model (names the file and the mismatch)."""


@dataclass(frozen=True)
class _Input:
    name: str
    dtype: np.dtype[Any]
    dims: tuple[int | str | None, ...]  # int: fixed; str: symbolic; None: unknown

    def shown(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.dims)
        return f"{self.name}: {self.dtype}[{dims}]"


def _inputs(model: onnx.ModelProto) -> list[_Input]:
    weights = {t.name for t in model.graph.initializer}
    found = []
    for value in model.graph.input:
        if value.name in weights:  # an initializer listed as input (old IR): not a feed
            continue
        ttype = value.type.tensor_type
        dims: list[int | str | None] = []
        for d in ttype.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") else d.dim_param or None)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type))
        found.append(_Input(value.name, dtype, tuple(dims)))
    return found


def load_calibration(
    path: str | Path | None,
    model: onnx.ModelProto,
    *,
    count: int = 32,
    seed: int = 0,
    symbols: Mapping[str, int] | None = None,
    domains: Mapping[str, InputDomain] | None = None,
) -> list[Feed]:
    """At most `count` feeds for `model`.

    path: a `.npy` (single-input models; samples along the first axis), a `.npz` with
        one array per graph input, named like it, or None for `count` generated feeds.
    symbols: sizes for symbolic dimensions; a symbolic batch axis sets the batch size
        of each feed cut from a file. In generated feeds unlisted symbols count 1, and
        a dimension written as an expression (`16*H`) is computed from them.
    domains: what the network's ops accept in its inputs (dslnet.ir.domains.
        input_domains of the IR graph the model was emitted from), for generated feeds.
    """
    if count < 1:
        raise CalibrationError(f"count must be at least 1, got {count}")
    specs = _inputs(model)
    sizes = dict(symbols or {})
    if path is None:
        rng = np.random.default_rng(seed)
        known = dict(domains or {})
        return [
            {s.name: _generate(s, sizes, known.get(s.name), rng) for s in specs}
            for _ in range(count)
        ]
    arrays = _read(Path(path), specs)
    return _batches(Path(path), arrays, specs, sizes, count)


def _generate(
    spec: _Input, sizes: Mapping[str, int], domain: InputDomain | None, rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    shape = tuple(d if isinstance(d, int) else _dim_size(d, sizes) for d in spec.dims)
    probabilities = domain is not None and domain.kind == "probabilities"
    if spec.dtype.kind == "f":
        if probabilities:
            return rng.random(shape).astype(spec.dtype)
        return rng.standard_normal(shape).astype(spec.dtype)
    if spec.dtype.kind in "iu":
        high = domain.limit if domain is not None and not probabilities else None
        return rng.integers(0, high or 2, shape).astype(spec.dtype)
    return np.zeros(shape, spec.dtype)


def _dim_size(param: str | None, sizes: Mapping[str, int]) -> int:
    """A symbolic dimension's size: given, or computed when it is an expression of
    symbols (the emitter writes `16*H`), unlisted symbols counting 1."""
    if not param:
        return 1
    if param in sizes:
        return sizes[param]
    try:
        tree = ast.parse(param, mode="eval")
    except SyntaxError:
        return 1
    value = _evaluate(tree.body, sizes)
    return value if value is not None and value > 0 else 1


def _evaluate(node: ast.expr, sizes: Mapping[str, int]) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return sizes.get(node.id, 1)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left, sizes), _evaluate(node.right, sizes)
        if left is None or right is None or (right == 0 and isinstance(node.op, ast.FloorDiv)):
            return None
        return _OPS[type(node.op)](left, right)
    return None


_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


def _read(path: Path, specs: list[_Input]) -> dict[str, np.ndarray[Any, Any]]:
    """The file's arrays by input name, checked against the inputs' shapes."""
    if not os.path.lexists(path):
        raise CalibrationError(f"{path}: no such calibration file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise CalibrationError(f"{path}: calibration data must be a .npy or .npz file")
    if suffix == ".npy" and len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise CalibrationError(
            f"{path}: a .npy holds one array but the model has {len(specs)} inputs "
            f"({names}); use a .npz with one array per input"
        )
    try:
        arrays = {specs[0].name: read_npy(path)} if suffix == ".npy" else read_npz(path)
    except FileProblem as err:
        raise CalibrationError(f"{err.path}: {err.problem}") from None
    if suffix == ".npz":
        wanted = {s.name for s in specs}
        missing, extra = sorted(wanted - set(arrays)), sorted(set(arrays) - wanted)
        if missing or extra:
            raise CalibrationError(
                f"{path}: arrays must be named like the model's inputs "
                f"({', '.join(sorted(wanted))}); missing: {', '.join(missing) or '-'}, "
                f"unknown: {', '.join(extra) or '-'}"
            )
    for spec in specs:
        arrays[spec.name] = _checked(path, arrays[spec.name], spec)
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise CalibrationError(f"{path}: arrays hold different numbers of samples: {lengths}")
    return arrays


def _checked(path: Path, array: np.ndarray[Any, Any], spec: _Input) -> np.ndarray[Any, Any]:
    """`array` converted to the input's dtype, after checking shape, kind and values."""
    where = f"{path}: array '{spec.name}' of shape {tuple(array.shape)} and dtype {array.dtype}"
    fixed = tuple("samples" if i == 0 else d for i, d in enumerate(spec.dims))
    if array.ndim != len(spec.dims) or any(
        isinstance(d, int) and d != n for d, n in zip(fixed, array.shape)
    ):
        raise CalibrationError(
            f"{where} does not fit input {spec.shown()}: expected shape "
            f"({', '.join(str(d) for d in fixed)}), samples along the first axis"
        )
    if array.shape[0] == 0:
        raise CalibrationError(f"{where} holds no samples")
    kinds = {"f": "f", "i": "iu", "u": "iu", "b": "b"}.get(spec.dtype.kind, spec.dtype.kind)
    if array.dtype.kind not in kinds:
        raise CalibrationError(
            f"{where} cannot feed input {spec.shown()}: wrong kind of data "
            f"({array.dtype} for {spec.dtype})"
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise CalibrationError(f"{where} contains NaN or infinite values")
    return array.astype(spec.dtype, copy=False)


def _batches(
    path: Path,
    arrays: Mapping[str, np.ndarray[Any, Any]],
    specs: list[_Input],
    sizes: Mapping[str, int],
    count: int,
) -> list[Feed]:
    first = specs[0].dims[0] if specs[0].dims else None
    batch = first if isinstance(first, int) else sizes.get(first or "", 1)
    samples = next(iter(arrays.values())).shape[0]
    if batch < 1 or samples < batch:
        raise CalibrationError(f"{path}: {samples} samples cannot fill one batch of {batch}")
    # A fixed batch axis needs whole batches; a symbolic one takes a short last batch.
    stop = samples - samples % batch if isinstance(first, int) else samples
    starts = list(range(0, stop, batch))[:count]
    return [{name: a[i : i + batch] for name, a in arrays.items()} for i in starts]
