"""Weight files by their suffix: `.safetensors`, or a torch `.pt`/`.pth` state_dict."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dslnet.fileio.regular import FileProblem
from dslnet.fileio.safetensors_format import read_safetensors

TORCH_SUFFIXES = (".pt", ".pth")


def read_weights(
    path: str | os.PathLike[str], roots: list[Path] | None = None, *, numpy: bool = False
) -> Mapping[str, Any]:
    """The tensors of a weights file, checked (see the format readers): torch tensors,
    or numpy arrays from a `.safetensors` file when `numpy` (torch is not imported)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".safetensors":
        found = read_safetensors(path, roots)
        return found.numpy() if numpy else found.torch()
    if suffix in TORCH_SUFFIXES:
        from dslnet.fileio.torch_format import read_torch

        return read_torch(path, roots)
    raise FileProblem(path, "use a .safetensors, .pt or .pth file")
