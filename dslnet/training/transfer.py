"""Transfer learning: weights from a `.safetensors` (or torch `.pt`) file into a layer or
sub-block, checked key by key before anything is loaded."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dslnet.fileio import FileProblem
from dslnet.fileio.weights import read_weights
from dslnet.training.errors import TrainError


def load_weights_into(
    module: nn.Module, path: str, file: Path, roots: list[Path] | None = None
) -> None:
    """Load `file`, keyed as `module`'s own state_dict, into `module` (at `path`);
    with `roots`, the file opened must lie below one of them."""
    try:
        weights = read_weights(file, roots)
    except FileProblem as err:
        raise TrainError(f"load_weights: cannot read {err.path}: {err.problem}") from None
    own = module.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or extra:
        parts = [f"missing {', '.join(missing[:5])}"] if missing else []
        parts += [f"unexpected {', '.join(extra[:5])}"] if extra else []
        raise TrainError(f"load_weights: {file} does not fit '{path}': {'; '.join(parts)}")
    for key, value in weights.items():
        if value.shape != own[key].shape or value.dtype != own[key].dtype:
            raise TrainError(
                f"load_weights: '{key}' in {file} is {value.dtype}{list(value.shape)}, "
                f"'{path}' needs {own[key].dtype}{list(own[key].shape)}"
            )
    module.load_state_dict(weights)
