"""What a `train` declaration's settings may say: optimizers, schedules, early stopping
and reduction during training, each a function with checked keyword arguments.

`optimizer: adam(lr=1e-3)` is not an op call: these functions only exist on the
right of a setting, and each builds one of the models below. The models are plain
data (part of a TrainPlan); dslnet.training.optim turns them into torch objects.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dslnet.core.diagnostics import did_you_mean


class SettingFunction(BaseModel):
    """A function a setting may call; its fields are the keyword arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]  # which setting takes it: "optimizer", "schedule", ...
    name: ClassVar[str]  # how a spec spells it
    positional: ClassVar[tuple[str, ...]] = ()  # arguments that may be given in order


BlockRates = list[tuple[str, float]]


class Optimizer(SettingFunction):
    kind: ClassVar[str] = "optimizer"
    positional: ClassVar[tuple[str, ...]] = ("lr",)
    lr: float = Field(gt=0, allow_inf_nan=False)
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
    # Per-block learning rates: (module path prefix, lr), e.g. [("net.backbone", 1e-4)].
    block_lr: BlockRates = []


class SGD(Optimizer):
    name: ClassVar[str] = "sgd"
    lr: float = Field(0.01, gt=0, allow_inf_nan=False)
    momentum: float = Field(0.0, ge=0, lt=1)
    dampening: float = Field(0.0, ge=0, le=1)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGD:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=true needs momentum > 0 and dampening 0")
        return self


class Adam(Optimizer):
    name: ClassVar[str] = "adam"
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    amsgrad: bool = False

    @model_validator(mode="after")
    def _betas_in_range(self) -> Adam:
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must each be in [0, 1), got {list(self.betas)}")
        return self


class AdamW(Adam):
    name: ClassVar[str] = "adamw"
    weight_decay: float = Field(0.01, ge=0, allow_inf_nan=False)


class RMSprop(Optimizer):
    name: ClassVar[str] = "rmsprop"
    lr: float = Field(0.01, gt=0, allow_inf_nan=False)
    alpha: float = Field(0.99, gt=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    centered: bool = False


class Adagrad(Optimizer):
    name: ClassVar[str] = "adagrad"
    lr: float = Field(0.01, gt=0, allow_inf_nan=False)
    lr_decay: float = Field(0.0, ge=0)
    eps: float = Field(1e-10, gt=0)


class Schedule(SettingFunction):
    kind: ClassVar[str] = "schedule"
    per_iteration: ClassVar[bool] = False  # else stepped once an epoch


class StepLR(Schedule):
    """Multiply the learning rate by `gamma` every `every` epochs."""

    name: ClassVar[str] = "step"
    positional: ClassVar[tuple[str, ...]] = ("every",)
    every: int = Field(ge=1)
    gamma: float = Field(0.1, gt=0, le=1)


class Exponential(Schedule):
    """Multiply the learning rate by `gamma` every epoch."""

    name: ClassVar[str] = "exponential"
    positional: ClassVar[tuple[str, ...]] = ("gamma",)
    gamma: float = Field(gt=0, le=1)


class Cosine(Schedule):
    """Linear warm-up over `warmup` iterations, then a cosine down to `min_lr`."""

    name: ClassVar[str] = "cosine"
    per_iteration: ClassVar[bool] = True
    warmup: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)


class OneCycle(Schedule):
    """Up to `max_lr` over the first `pct_start` of training, then down (Smith, 2018)."""

    name: ClassVar[str] = "one_cycle"
    per_iteration: ClassVar[bool] = True
    positional: ClassVar[tuple[str, ...]] = ("max_lr",)
    max_lr: float = Field(gt=0)
    pct_start: float = Field(0.3, gt=0, lt=1)


class Plateau(Schedule):
    """Multiply the learning rate by `factor` when `metric` stops improving."""

    name: ClassVar[str] = "plateau"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(10, ge=0)
    metric: str = "loss"
    mode: Literal["min", "max", "auto"] = "auto"


class Patience(SettingFunction):
    """Early stopping: stop after `patience` epochs without a better `metric`."""

    kind: ClassVar[str] = "early_stopping"
    name: ClassVar[str] = "patience"
    positional: ClassVar[tuple[str, ...]] = ("epochs",)
    epochs: int = Field(ge=1)
    metric: str = "loss"
    min_delta: float = Field(0.0, ge=0)
    mode: Literal["min", "max", "auto"] = "auto"


class Iterative(SettingFunction):
    """Prune, fine-tune, prune again: `cycles` rounds to a final `target` (the share
    of weights, or of channels when structured) or, structured, to `flops` (the share
    of the dense network's FLOPs to keep)."""

    kind: ClassVar[str] = "prune"
    name: ClassVar[str] = "iterative"
    positional: ClassVar[tuple[str, ...]] = ("target",)
    target: float | None = Field(None, gt=0, lt=1)
    flops: float | None = Field(None, gt=0, lt=1)
    cycles: int = Field(3, ge=1)
    epochs: int = Field(1, ge=0)  # of fine-tuning after each cut
    structured: bool = False  # channels (real speed) rather than weights (masks)
    scope: Literal["layer", "global"] = "global"

    @model_validator(mode="after")
    def _one_goal(self) -> Iterative:
        if (self.target is None) == (self.flops is None):
            raise ValueError("give a target sparsity or a flops budget (one of them)")
        if self.flops is not None and not self.structured:
            raise ValueError("a flops budget needs structured=true (masks save no FLOPs)")
        return self


class Lottery(SettingFunction):
    """Lottery ticket: train, keep the largest weights, rewind the rest, retrain."""

    kind: ClassVar[str] = "prune"
    name: ClassVar[str] = "lottery"
    positional: ClassVar[tuple[str, ...]] = ("target",)
    target: float = Field(gt=0, lt=1)
    rounds: int = Field(3, ge=1)
    rewind: int = Field(0, ge=0)  # iteration whose weights the survivors return to
    scope: Literal["layer", "global"] = "global"


FUNCTIONS: dict[str, type[SettingFunction]] = {
    f.name: f
    for f in (
        SGD,
        Adam,
        AdamW,
        RMSprop,
        Adagrad,
        StepLR,
        Exponential,
        Cosine,
        OneCycle,
        Plateau,
        Patience,
        Iterative,
        Lottery,
    )
}


def functions_for(kind: str) -> list[str]:
    return [name for name, f in FUNCTIONS.items() if f.kind == kind]


class SettingError(ValueError):
    """A setting function called wrongly; `field` names the argument at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def build(name: str, args: list[Any], kwargs: dict[str, Any]) -> SettingFunction:
    """The setting `name(*args, **kwargs)`; SettingError with a readable message."""
    cls = FUNCTIONS[name]
    if len(args) > len(cls.positional):
        takes = ", ".join(cls.positional) or "only keyword arguments"
        raise SettingError(f"{name}() takes {takes} in order; got {len(args)} arguments")
    for field, value in zip(cls.positional, args):
        if field in kwargs:
            raise SettingError(f"argument '{field}' of {name}() is given twice", field)
        kwargs[field] = value
    try:
        return cls(**kwargs)
    except ValidationError as err:
        message, culprit = _first_problem(err, cls)
        raise SettingError(f"{name}(): {message}", culprit) from None


def _first_problem(err: ValidationError, cls: type[SettingFunction]) -> tuple[str, str | None]:
    problem = err.errors()[0]
    loc = problem["loc"]
    field = str(loc[0]) if loc else None
    if problem["type"] == "extra_forbidden":
        known = list(cls.model_fields)
        hint = did_you_mean(str(field), known)
        return f"no argument '{field}'{hint}; it takes {', '.join(known)}", field
    if problem["type"] == "missing" and len(loc) == 1:
        return f"needs argument '{field}'", field
    sized = problem["type"] in ("too_long", "too_short") or (
        problem["type"] == "missing" and len(loc) > 1
    )
    if sized and field in cls.model_fields:
        default = cls.model_fields[field].default
        count = len(default) if isinstance(default, tuple) else None
        wanted = f"{count} values" if count else "another number of values"
        return f"{field}: expected {wanted}", field
    message = str(problem["msg"]).removeprefix("Value error, ")
    return (f"{field}: {message}" if field else message), field
