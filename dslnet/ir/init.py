"""Weight initialisation schemes selectable with `init=` on an op or a block call.

Each scheme has a torch form (a line of generated code, run by the module's
constructor) and a numpy form (for ONNX models emitted without weights);
both follow torch's fan-in/fan-out conventions. Biases start at zero under
any scheme but "default", which keeps PyTorch's own initialisation. The schemes
computed from fans (kaiming, xavier) need a weight of two dims or more: a 1-D
weight (a norm's scale) keeps its layer's default, so that `init="kaiming"` on a
block of convolutions and batch norms initialises the convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# name -> (torch call on the weight, description)
SCHEMES: dict[str, tuple[str, str]] = {
    "default": ("", "PyTorch's own default for the layer"),
    "kaiming": (
        'nn.init.kaiming_normal_({w}, nonlinearity="relu")',
        "He normal, fan-in, for ReLU networks",
    ),
    "kaiming_uniform": (
        'nn.init.kaiming_uniform_({w}, nonlinearity="relu")',
        "He uniform, fan-in, for ReLU networks",
    ),
    "xavier": ("nn.init.xavier_uniform_({w})", "Glorot uniform"),
    "xavier_normal": ("nn.init.xavier_normal_({w})", "Glorot normal"),
    "normal": ("nn.init.normal_({w}, 0.0, 0.02)", "N(0, 0.02), as in DCGAN and GPT"),
    "zeros": ("nn.init.zeros_({w})", "all zeros"),
}
ALIASES = {
    "he": "kaiming",
    "he_uniform": "kaiming_uniform",
    "glorot": "xavier",
    "glorot_normal": "xavier_normal",
}


def canonical(name: str) -> str | None:
    """The scheme's canonical name, or None if there is no such scheme."""
    name = ALIASES.get(name, name)
    return name if name in SCHEMES else None


def names() -> list[str]:
    return [*SCHEMES, *ALIASES]


FROM_FANS = frozenset({"kaiming", "kaiming_uniform", "xavier", "xavier_normal"})


def draws(scheme: str, role: str, shape: tuple[int, ...]) -> bool:
    """Whether `scheme` sets this parameter (else it keeps its layer's default)."""
    if scheme == "default":
        return False
    return not (scheme in FROM_FANS and is_weight(role) and len(shape) < 2)


def torch_lines(scheme: str, attr: str, params: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Constructor lines applying `scheme` to `self.<attr>`'s parameters (role -> shape)."""
    lines = []
    for role, shape in params.items():
        target = f"self.{attr}.{role}"
        if not draws(scheme, role, shape):
            continue
        if is_weight(role):
            lines.append(SCHEMES[scheme][0].format(w=target))
        else:
            lines.append(f"nn.init.zeros_({target})")
    return lines


def is_weight(role: str) -> bool:
    """A matrix a scheme draws (`weight`, `weight_ih_l0`, `in_proj_weight`), not a bias."""
    return "weight" in role.rsplit(".", 1)[-1]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    fan_in = (shape[1] if len(shape) > 1 else shape[0]) * receptive
    return fan_in, shape[0] * receptive


def sample(
    scheme: str, role: str, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    """A numpy draw with the same distribution as the torch form."""
    if not is_weight(role) or scheme == "zeros":
        return np.zeros(shape, dtype=np.float32)
    fan_in, fan_out = _fans(shape)
    if scheme == "kaiming":
        values = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    elif scheme == "kaiming_uniform":
        bound = math.sqrt(6.0 / fan_in)
        values = rng.uniform(-bound, bound, shape)
    elif scheme == "xavier":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        values = rng.uniform(-bound, bound, shape)
    elif scheme == "xavier_normal":
        values = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape)
    elif scheme == "normal":
        values = rng.normal(0.0, 0.02, shape)
    else:
        raise ValueError(f"no numpy form for init scheme '{scheme}'")
    return values.astype(np.float32)
