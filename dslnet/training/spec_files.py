"""The files a train declaration names (`data:`, `validation:`, `load_weights:`):
relative to the spec, and never above its directory."""

from __future__ import annotations

from pathlib import Path

from dslnet.frontend.train.plan import TrainPlan
from dslnet.training.errors import TrainError


def spec_file(plan: TrainPlan, path: str) -> Path:
    """Where `path`, as `plan`'s spec writes it, is: below the spec's directory
    (TrainError otherwise). The file opened is checked again against `plan.spec_roots`
    (a link swapped in after this looked cannot lead out)."""
    base = plan.spec_roots[0]
    try:
        target = (base / path).resolve()
    except (OSError, RuntimeError, ValueError) as err:  # a link loop, a NUL byte
        raise TrainError(f"'{path}' is not a usable file path ({err})") from None
    if not target.is_relative_to(base):
        raise TrainError(f"'{path}' is outside the spec's directory {base}")
    return target
