"""Drawing the noise inputs of a train declaration (what `@noise` asks for is read and
checked by the front end: dslnet.frontend.train.noise).

Every draw comes from one generator (the trainer's noise generator), so a resumed run
draws what the uninterrupted run would have.
"""

from __future__ import annotations

import torch

from dslnet.frontend.train.noise import INT_DISTRIBUTION, Noise


def draw(noise: Noise, shape: list[int], dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """One batch of `noise` of `shape` and `dtype`, from `gen`."""
    if noise.distribution == INT_DISTRIBUTION:
        return torch.randint(noise.low, noise.high, shape, generator=gen, dtype=torch.int64).to(
            dtype
        )
    if noise.distribution == "uniform":
        return torch.rand(shape, generator=gen).to(dtype)
    return torch.randn(shape, generator=gen).to(dtype)
