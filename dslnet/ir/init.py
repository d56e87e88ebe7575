"""Weight initialisation schemes selectable with `init=` on an op or a block call.

Each scheme has a numpy form (here: for weights drawn without torch, e.g. ONNX
models emitted without weights) and a torch form (`dslnet.backends.torch_init`:
a line of generated code, run by the module's constructor); both follow torch's
fan-in/fan-out conventions. Biases start at zero under
any scheme but "default", which keeps PyTorch's own initialisation. The schemes
computed from fans (kaiming, xavier) need a weight of two dims or more: a 1-D
weight (a norm's scale) keeps its layer's default, so that `init="kaiming"` on a
block of convolutions and batch norms initialises the convolutions.
"""

from __future__ import annotations

import math
from typing import Any

from dslnet.core.lazy import numpy as np

# name -> description
SCHEMES: dict[str, str] = {
    "default": "PyTorch's own default for the layer",
    "kaiming": "He normal, fan-in, for ReLU networks",
    "kaiming_uniform": "He uniform, fan-in, for ReLU networks",
    "xavier": "Glorot uniform",
    "xavier_normal": "Glorot normal",
    "normal": "N(0, 0.02), as in DCGAN and GPT",
    "zeros": "all zeros",
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


def draws(scheme: str, weight: bool, shape: tuple[int, ...]) -> bool:
    """Whether `scheme` sets this parameter (else it keeps its layer's default).
    `weight`: its op calls it a weight (`OpDef.is_weight`), which the scheme draws;
    the others it sets to zero."""
    if scheme == "default":
        return False
    return not (scheme in FROM_FANS and weight and len(shape) < 2)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    fan_in = (shape[1] if len(shape) > 1 else shape[0]) * receptive
    return fan_in, shape[0] * receptive


def sample(
    scheme: str, weight: bool, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    """A numpy draw with the same distribution as the torch form (zeros for a
    parameter that is not a weight)."""
    if not weight or scheme == "zeros":
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
