"""The one reader of torch `.pt`/`.pth` weight files: a state_dict of plain tensors,
read with `torch.load(weights_only=True)` (no pickled code runs) from the bytes of the
checked, opened file, then every value checked: a dense tensor with data, of a dtype
numpy and the backends know."""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dslnet.fileio.regular import FileProblem, read_bytes

if TYPE_CHECKING:
    import torch

DTYPES = (
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
)


def read_torch(
    path: str | os.PathLike[str], roots: list[Path] | None = None
) -> dict[str, torch.Tensor]:
    """The state_dict in a torch file (a checkpoint may nest it under 'state_dict'),
    every value a CPU tensor; FileProblem naming what is wrong."""
    import torch

    data = read_bytes(path, roots)
    try:
        loaded = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:  # not a torch file, or one holding Python objects
        raise FileProblem(
            path,
            "not a file of plain tensors; .pt and .pth files are read with "
            "torch.load(weights_only=True), which runs no pickled code (save a state_dict "
            "of tensors, or use .safetensors)",
        ) from None
    except Exception as err:  # torch's unpickler raises many kinds on damaged files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileProblem(path, f"not a readable torch file ({first[:300]})") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise FileProblem(path, f"holds a {type(loaded).__name__}, not a state_dict")
    state: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        problem = _tensor_problem(value)
        if problem:
            raise FileProblem(path, f"'{key}' {problem}")
        state[str(key)] = value
    return state


def _tensor_problem(value: Any) -> str | None:
    import torch

    if not isinstance(value, torch.Tensor):
        return f"is a {type(value).__name__}, not a tensor"
    if value.layout != torch.strided:
        return f"is a {value.layout} tensor; only dense tensors are read"
    if value.is_meta:
        return "is a meta tensor: it has a shape but no data"
    if str(value.dtype).removeprefix("torch.") not in DTYPES:
        return f"has dtype {value.dtype}, which dslnet does not read (it reads {', '.join(DTYPES)})"
    return None
