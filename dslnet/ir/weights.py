"""Parameter values for a graph: fresh ones, or loaded and checked against the network.

Fresh values are drawn from one seeded numpy generator, in graph node order, so the
same graph and seed give the same values: by the node's `init=` scheme when it has one
(`dslnet.ir.init`), else by its op's `init_param` (PyTorch's defaults). Buffers (saved,
not learned: running statistics) always come from `init_param`.

Loaded values come from a `state_dict`-like mapping, a `.safetensors` file or a
`.pt`/`.pth` file (read with `weights_only=True`: never arbitrary pickle).

Both need only the graph and the op registry, so passes and both backends use them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dslnet.core.diagnostics import did_you_mean
from dslnet.fileio import FileProblem
from dslnet.fileio.weights import read_weights
from dslnet.ir import init as init_schemes
from dslnet.ir.graph import Graph, Parameter
from dslnet.ir.oplookup import input_types, resolve_op

Array = np.ndarray[Any, Any]
WeightsSource = Mapping[str, Any] | str | os.PathLike[str]

_KINDS = {"f": "f", "i": "iu", "u": "iu", "b": "b"}  # array kinds accepted per dtype kind


class WeightsError(Exception):
    """Weights that do not fit a network; `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems:\n  " + "\n  ".join(self.problems)
        super().__init__(text)


def init_weights(graph: Graph, seed: int = 0) -> dict[str, Array]:
    """Fresh values for every parameter and buffer, keyed and ordered like `graph.parameters`.

    A parameter shared by several nodes (one module applied twice) is drawn once.
    """
    rng = np.random.default_rng(seed)
    drawn: dict[str, Array] = {}
    for node in graph.nodes:
        op, attrs = resolve_op(node)
        types = input_types(graph, node)
        for role in [*op.params(attrs, types), *op.buffers(attrs, types)]:
            name = node.param_name(role)
            param = graph.parameters.get(name)
            if param is None or name in drawn:
                continue
            weight = op.is_weight(role)
            scheme = node.init if not param.buffer and op.takes_init() else None
            if scheme and init_schemes.draws(scheme, weight, param.shape):
                value = init_schemes.sample(scheme, weight, param.shape, rng)
            else:
                value = np.asarray(op.init_param(attrs, role, types, rng))
            if tuple(value.shape) != param.shape:
                raise ValueError(
                    f"{node.op} drew {name} with shape {_shape(value.shape)}, "
                    f"the graph declares {_shape(param.shape)}"
                )
            drawn[name] = value.astype(_np_dtype(param), copy=False)
    orphans = [name for name in graph.parameters if name not in drawn]
    if orphans:
        raise WeightsError(
            [f"no node of network '{graph.name}' owns parameter '{name}'" for name in orphans]
        )
    return {name: drawn[name] for name in graph.parameters}


def load_weights(source: WeightsSource, graph: Graph) -> dict[str, Array]:
    """Weights from a mapping or a file, checked against `graph.parameters`.

    Raises WeightsError listing every missing, extra, mis-shaped or wrongly typed tensor
    (an integer tensor for a float parameter, say). Values are cast to the parameter's
    dtype (float32 for learned ones) and ordered like the graph's.
    """
    arrays, problems = _to_arrays(_read(source))
    problems += _check(arrays, graph)
    if problems:
        raise WeightsError(problems)
    return {
        name: np.asarray(arrays[name], dtype=_np_dtype(param), order="C")
        for name, param in graph.parameters.items()
    }


def source_arrays(source: WeightsSource) -> dict[str, Array]:
    """Every tensor of a mapping or a weights file as a numpy array, in its order
    (bfloat16 as float32), unchecked against any network; WeightsError when one is
    not a tensor or the file cannot be read."""
    arrays, problems = _to_arrays(_read(source))
    if problems:
        raise WeightsError(problems)
    return arrays


# --- reading ------------------------------------------------------------------------


def _read(source: WeightsSource) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _read_file(Path(source))
    raise WeightsError(
        [f"weights must be a mapping of name to tensor or a file path, got {type(source).__name__}"]
    )


def _read_file(path: Path) -> Mapping[str, Any]:
    if not os.path.lexists(path):
        raise WeightsError([f"no such weights file: {path}"])
    try:
        return read_weights(path, numpy=True)
    except FileProblem as err:
        raise WeightsError([f"cannot read weights from {err.path}: {err.problem}"]) from None


def _to_arrays(raw: Mapping[str, Any]) -> tuple[dict[str, Array], list[str]]:
    arrays: dict[str, Array] = {}
    problems: list[str] = []
    for key, value in raw.items():
        array = _to_array(value)
        if array is None:
            problems.append(f"weight '{key}' is a {type(value).__name__}, not a tensor")
        else:
            arrays[str(key)] = array
    return arrays, problems


def _to_array(value: Any) -> Array | None:
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.split(".")[0] == "torch" and hasattr(value, "numpy"):
        # A torch tensor, read without importing torch (the IR does not).
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            tensor = tensor.float()
        return np.asarray(tensor.numpy())
    return None


# --- checking -----------------------------------------------------------------------


def _check(arrays: Mapping[str, Array], graph: Graph) -> list[str]:
    problems: list[str] = []
    missing = [name for name in graph.parameters if name not in arrays]
    for name, param in graph.parameters.items():
        array = arrays.get(name)
        if array is None:
            problems.append(f"weight '{name}' is missing (the network needs {_shape(param.shape)})")
        elif tuple(array.shape) != param.shape:
            problems.append(
                f"weight '{name}' has shape {_shape(array.shape)}, "
                f"the network needs {_shape(param.shape)}"
            )
        elif array.dtype.kind not in _KINDS[_np_dtype(param).kind]:
            problems.append(
                f"weight '{name}' has dtype {array.dtype}, the network needs {param.dtype}"
            )
    for name, array in arrays.items():
        if name not in graph.parameters:
            problems.append(
                f"weight '{name}' {_shape(array.shape)} is not a parameter of network "
                f"'{graph.name}'{did_you_mean(name, missing)}"
            )
    return problems


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _np_dtype(param: Parameter) -> np.dtype[Any]:
    return np.dtype(param.dtype.value)
