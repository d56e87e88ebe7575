"""Checkpoints as one safetensors file: the layers' weights, each step's optimizer and
schedule state, the random generators and the progress, so that `--resume`
continues exactly where the run stopped.

Tensors go under `model/…`, `optim/<step>/<param>/<key>` and `rng/…`; everything
else (param groups, schedule state, epoch, history) is JSON in the file's metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dslnet.training.errors import TrainError

FORMAT = "dslnet-checkpoint-1"


def save(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(contiguous, tmp, metadata={"format": FORMAT, "state": json.dumps(meta)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        tensors = load_file(path)
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (OSError, SafetensorError) as err:
        raise TrainError(f"cannot read checkpoint {path}: {err}") from None
    if metadata.get("format") != FORMAT:
        raise TrainError(f"{path} is not a dslnet training checkpoint")
    return tensors, json.loads(metadata["state"])


def optimizer_state(
    prefix: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state split into tensors and JSON."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{key}"] = value
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def restore_optimizer(
    prefix: str,
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "/"):
            index, name = key[len(prefix) + 1 :].split("/", 1)
            state.setdefault(int(index), {})[name] = value
    for index, entry in meta["plain"].items():
        state.setdefault(int(index), {}).update(entry)
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise TrainError(f"the checkpoint's optimizer state does not fit: {err}") from None


def rng_tensors(generators: Mapping[str, torch.Generator]) -> dict[str, torch.Tensor]:
    found = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            found[f"rng/cuda{i}"] = state
    for name, gen in generators.items():
        found[f"rng/{name}"] = gen.get_state()
    return found


def restore_rng(
    tensors: Mapping[str, torch.Tensor], generators: Mapping[str, torch.Generator]
) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    for name, gen in generators.items():
        gen.set_state(tensors[f"rng/{name}"])
