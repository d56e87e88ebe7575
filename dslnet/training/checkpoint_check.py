"""What `--resume` checks in a checkpoint before restoring anything from it.

A checkpoint is a file: it may have been edited, damaged or written by another
version. Its JSON state must have the form this trainer saves (the progress fields
with their types; optimizer and schedule state shaped like the ones the trainer has
now), and its tensors must fit: random-generator states of the generator's own size,
optimizer state of a parameter's shape. Each problem is a TrainError naming the file
and the entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dslnet.training.errors import TrainError
from dslnet.training.optim import scheduler_state

if TYPE_CHECKING:
    from dslnet.training.trainer import Trainer


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _numbers(v: Any) -> bool:
    return isinstance(v, dict) and all(_number(x) for x in v.values())


def _counts(v: Any) -> bool:
    return isinstance(v, dict) and all(_count(x) for x in v.values())


def _records(v: Any) -> bool:
    return isinstance(v, list) and all(_numbers(x) for x in v)


def _step_losses(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _number(p[1]) for p in v
    )


# Each progress field and what its value must be.
PROGRESS_FORMS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "epoch": ("a count", _count),
    "position": ("a count", _count),
    "stale": ("a count", _count),
    "seconds": ("a number", _number),
    "best": ("a number or null", lambda v: v is None or _number(v)),
    "stopped_early": ("true or false", lambda v: isinstance(v, bool)),
    "sums": ("an object of numbers", _numbers),
    "counts": ("an object of counts", _counts),
    "history": ("a list of objects of numbers", _records),
    "losses": ("a list of [step, loss] pairs", _step_losses),
}


def check_state(trainer: Trainer, state: Any, path: Path) -> None:
    """The JSON state of checkpoint `path` has the form `trainer` saves."""

    def bad(what: str) -> TrainError:
        return TrainError(f"checkpoint {path} is damaged: {what}")

    if not isinstance(state, dict):
        raise bad("its state is not a JSON object")
    for key in ("train", "progress", "optimizers", "schedulers"):
        if key not in state:
            raise bad(f"its state has no '{key}'")
    progress = state["progress"]
    if not isinstance(progress, dict):
        raise bad("'progress' is not an object")
    for name, (form, test) in PROGRESS_FORMS.items():
        if name not in progress:
            raise bad(f"'progress' has no '{name}'")
        if not test(progress[name]):
            raise bad(f"progress '{name}' must be {form}")
    for key in ("optimizers", "schedulers"):
        if not isinstance(state[key], dict):
            raise bad(f"'{key}' is not an object")
    for rt in trainer.runtimes:
        saved = state["optimizers"].get(rt.plan.name)
        fresh = rt.optimizer.state_dict()["param_groups"]
        if not isinstance(saved, dict) or not isinstance(saved.get("plain"), dict):
            raise bad(f"no optimizer state for step '{rt.plan.name}'")
        if not all(isinstance(v, dict) for v in saved["plain"].values()) or not all(
            k.isdigit() for k in saved["plain"]
        ):
            raise bad(f"the optimizer state of step '{rt.plan.name}' is malformed")
        mismatch = differs(saved.get("param_groups"), fresh, "param_groups")
        if mismatch:
            raise bad(f"the optimizer of step '{rt.plan.name}' does not fit: {mismatch}")
        if rt.scheduler is not None and state["schedulers"].get(rt.plan.name) is not None:
            saved, fresh = state["schedulers"][rt.plan.name], scheduler_state(rt.scheduler)
            mismatch = differs(saved, fresh, "schedule")
            if mismatch:
                raise bad(f"the schedule of step '{rt.plan.name}' does not fit: {mismatch}")
            if fresh and saved.get("total_steps") != fresh.get("total_steps"):
                # a schedule over the whole run (one_cycle) cannot be stretched
                raise TrainError(
                    f"{path} holds a schedule of {saved['total_steps']} steps; this run "
                    f"needs {fresh['total_steps']}: resume with the run's own --epochs"
                )


def differs(saved: Any, fresh: Any, where: str) -> str | None:
    """Where `saved` (from JSON) has another form than `fresh` (the trainer's own):
    other keys, another length of list, another kind of value; None when alike."""
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, list) or len(saved) != len(fresh):
            return f"{where} must be a list of {len(fresh)}"
        for i, (s, f) in enumerate(zip(saved, fresh)):
            found = differs(s, f, f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or set(saved) != {str(k) for k in fresh}:
            return f"{where} must have the keys {', '.join(sorted(map(str, fresh)))}"
        for key, value in fresh.items():
            found = differs(saved[str(key)], value, f"{where}.{key}")
            if found:
                return found
        return None
    if fresh is None or isinstance(fresh, bool) or isinstance(saved, bool):
        # a None or a flag may hold either (an optional bound, a switch)
        ok = saved is None or isinstance(saved, bool) or _number(saved) or fresh is None
    elif _number(fresh):
        ok = _number(saved) or saved is None
    elif isinstance(fresh, str):
        ok = isinstance(saved, str)
    else:
        ok = True  # no JSON form to compare with
    return None if ok else f"{where} must be like {fresh!r}"


def check_tensors(
    trainer: Trainer,
    tensors: Mapping[str, torch.Tensor],
    generators: Mapping[str, torch.Generator],
    path: Path,
) -> None:
    """The generator states (`generators`, by tensor name) and optimizer tensors of
    checkpoint `path` fit `trainer`."""

    def bad(what: str) -> TrainError:
        return TrainError(f"checkpoint {path} is damaged: {what}")

    expected = {"rng/torch": torch.get_rng_state()}
    expected.update({name: gen.get_state() for name, gen in generators.items()})
    for key, fresh in expected.items():
        saved = tensors.get(key)
        if saved is None:
            raise bad(f"it has no '{key}'")
        if saved.dtype != fresh.dtype or saved.shape != fresh.shape:
            raise bad(
                f"'{key}' is {saved.dtype}{list(saved.shape)}, a generator state is "
                f"{fresh.dtype}{list(fresh.shape)}"
            )
    for rt in trainer.runtimes:
        prefix = f"optim/{rt.plan.name}/"
        params = [p for group in rt.optimizer.param_groups for p in group["params"]]
        for key, value in tensors.items():
            if not key.startswith(prefix):
                continue
            index, _, name = key[len(prefix) :].partition("/")
            if not index.isdigit() or not name or int(index) >= len(params):
                raise bad(f"'{key}' is not the state of a parameter of step '{rt.plan.name}'")
            shape = params[int(index)].shape
            if value.dim() and value.shape != shape:
                raise bad(f"'{key}' has shape {list(value.shape)}, its parameter {list(shape)}")
