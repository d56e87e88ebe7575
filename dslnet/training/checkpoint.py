"""Checkpoints as one safetensors file: the layers' weights, each step's optimizer and
schedule state, the random generators and the progress, so that `--resume`
continues exactly where the run stopped.

Tensors go under `model/…`, `optim/<step>/<param>/<key>` and `rng/…`; everything
else (param groups, schedule state, epoch, history) is JSON in the file's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save as safetensors_bytes

from dslnet.fileio import FileProblem, atomic
from dslnet.fileio.regular import os_reason
from dslnet.fileio.safetensors_format import read_safetensors
from dslnet.training.checkpoint_check import check_state, check_tensors
from dslnet.training.errors import TrainError
from dslnet.training.optim import load_scheduler_state, scheduler_state

if TYPE_CHECKING:
    from dslnet.training.trainer import Trainer

FORMAT = "dslnet-checkpoint-1"


def save(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write atomically (`dslnet.fileio.atomic`): a crash mid-write, a full disk or a
    read-only directory leaves the previous checkpoint; the last two are a TrainError
    naming the file and the system's reason."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    data = safetensors_bytes(contiguous, metadata={"format": FORMAT, "state": json.dumps(meta)})
    try:
        atomic.write_all({path: data})
    except OSError as err:
        raise TrainError(f"cannot write checkpoint {err.filename}: {os_reason(err)}") from None


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the JSON state of a checkpoint, read by the one safetensors
    reader; TrainError when it is unreadable, not a checkpoint, or its state not JSON."""
    try:
        found = read_safetensors(path)
    except FileProblem as err:
        raise TrainError(f"cannot read checkpoint {err.path}: {err.problem}") from None
    if found.metadata.get("format") != FORMAT:
        raise TrainError(f"{path} is not a dslnet training checkpoint")
    try:
        state = json.loads(found.metadata.get("state", ""))
    except ValueError as err:
        raise TrainError(f"checkpoint {path} is damaged: its state is not JSON ({err})") from None
    if not isinstance(state, dict):
        raise TrainError(f"checkpoint {path} is damaged: its state is not a JSON object")
    return found.torch(), state


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


def generators(trainer: Trainer) -> dict[str, torch.Generator]:
    """The run's own generators, by the name their state is saved under: the noise
    inputs', and the one drawing the masks of the ops random in training (saved under
    `rng/dropout` since the first checkpoints)."""
    return {"rng/noise": trainer.noise_gen, "rng/dropout": trainer.masks.generator}


def rng_tensors(generators: Mapping[str, torch.Generator]) -> dict[str, torch.Tensor]:
    found = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            found[f"rng/cuda{i}"] = state
    for name, gen in generators.items():
        found[name] = gen.get_state()
    return found


def restore_rng(
    tensors: Mapping[str, torch.Tensor], generators: Mapping[str, torch.Generator]
) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    for name, gen in generators.items():
        gen.set_state(tensors[name])


# What a checkpoint keeps of the run's progress, besides weights and optimizer state.
PROGRESS = (
    "epoch",
    "history",
    "losses",
    "position",
    "sums",
    "counts",
    "seconds",
    "best",
    "stale",
    "stopped_early",
)


def save_trainer(trainer: Trainer, path: Path) -> None:
    """A checkpoint of everything the rest of the run depends on."""
    tensors: dict[str, torch.Tensor] = {
        f"model/{k}": v for k, v in trainer.layers.state_dict().items()
    }
    optimizers: dict[str, Any] = {}
    for rt in trainer.runtimes:
        found, meta = optimizer_state(f"optim/{rt.plan.name}", rt.optimizer)
        tensors.update(found)
        optimizers[rt.plan.name] = meta
    tensors.update(rng_tensors(generators(trainer)))
    for layer, handle in trainer.qat.items():
        tensors.update({f"qat/{layer}/{k}": v for k, v in handle.observer_state().items()})
    state = {
        "train": trainer.plan.name,
        "progress": {name: getattr(trainer, name) for name in PROGRESS},
        "optimizers": optimizers,
        "schedulers": {rt.plan.name: scheduler_state(rt.scheduler) for rt in trainer.runtimes},
    }
    save(path, tensors, state)


def resume_trainer(trainer: Trainer, path: Path) -> None:
    """Continue from a checkpoint `save` wrote (of this same declaration)."""
    tensors, state = load(path)
    if state.get("train") != trainer.plan.name:
        raise TrainError(
            f"{path} is a checkpoint of '{state.get('train')}', not '{trainer.plan.name}'"
        )
    saved_generators = generators(trainer)
    check_state(trainer, state, path)
    check_tensors(trainer, tensors, saved_generators, path)
    model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        trainer.layers.load_state_dict(model)
    except RuntimeError as err:
        raise TrainError(f"the checkpoint's weights do not fit the layers: {err}") from None
    for rt in trainer.runtimes:
        meta = state["optimizers"][rt.plan.name]
        restore_optimizer(f"optim/{rt.plan.name}", rt.optimizer, tensors, meta)
        saved = state["schedulers"].get(rt.plan.name)
        if rt.scheduler is not None and saved is not None:
            load_scheduler_state(rt.scheduler, saved)
    restore_rng(tensors, saved_generators)
    for layer, handle in trainer.qat.items():
        prefix = f"qat/{layer}/"
        handle.load_observer_state(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
    for name in PROGRESS:
        setattr(trainer, name, state["progress"][name])
    trainer.losses = [(step, loss) for step, loss in trainer.losses]  # JSON made them lists
