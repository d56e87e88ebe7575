"""`@noise(randint(low, high))` on an int input: uniform integers in [low, high) of the
input's dtype, the same under the same seed (a float draw on an int input is refused
where it is written: tests/errors/noise_int_input.net)."""

from __future__ import annotations

import pytest
import torch

import dslnet
from dslnet.frontend.train.noise import Noise
from dslnet.training.data import noise

SPEC = """
network Denoiser() {
    in x: float32[N, 4]
    in t: DTYPE[N]
    out eps = x + embedding(t, 16, 4) -> linear(4)
}

train Diffuse(low: int = 0, high: int = 10) {
    layer net = Denoiser()
    in x: float32[N, 4]
    @noise(randint(low, high)) in t: DTYPE[N]
    out loss = mse_loss(net(x, t), x)
    optimizer: sgd(lr=0.1)
}
"""


def _draw(dtype: str, seed: int, samples: int, **bounds: int) -> torch.Tensor:
    plan = dslnet.loads(SPEC.replace("DTYPE", dtype)).training("Diffuse", **bounds)
    types = {"t": plan.steps[0].graph.type_of("t")}
    return dict(noise(plan.noise_inputs, types, samples, torch.Generator().manual_seed(seed)))["t"]


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_randint_draws_every_integer_of_its_range_evenly(dtype: str) -> None:
    t = _draw(dtype, 0, 20_000, low=3, high=13)
    assert t.dtype == getattr(torch, dtype) and t.shape == (20_000,)
    assert int(t.min()) == 3 and int(t.max()) == 12  # [low, high): never 0 or negative
    counts = torch.bincount(t.long() - 3, minlength=10).double()
    expected = 20_000 / 10
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 27.9  # 9 degrees of freedom, p = 0.001


def test_randint_is_reproducible_under_the_seed() -> None:
    plan = dslnet.loads(SPEC.replace("DTYPE", "int64")).training("Diffuse", high=1000)
    assert plan.noise_inputs["t"] == Noise("randint", 0, 1000)
    assert torch.equal(_draw("int64", 7, 256, high=1000), _draw("int64", 7, 256, high=1000))
    assert not torch.equal(_draw("int64", 7, 256, high=1000), _draw("int64", 8, 256, high=1000))
