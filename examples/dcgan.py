"""DCGAN (Radford et al., 2015): an adversarial loop over the generator and
discriminator pair of specs/gan.net, on generated 64x64 images of discs.

Each step trains the discriminator on a real and a generated batch, then the
generator to make the discriminator call its images real. Exits non-zero if a
loss turned non-finite, if the discriminator ended stuck at 0 or 1 (its mean
score of generated images over the last 50 steps), or if the
generated pixels did not move towards the real ones (their distribution
distance must fall to under half of what it was at the start).

Run: .venv/bin/python examples/dcgan.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

import dslnet

SPEC = Path(__file__).resolve().parents[1] / "specs" / "gan.net"
Z, WIDTH, BATCH, STEPS, NOISE, G_STEPS = 32, 16, 32, 200, 0.5, 2


def discs(count: int, gen: torch.Generator) -> torch.Tensor:
    """[count, 1, 64, 64] in [-1, 1]: one bright disc of random place and size each."""
    grid = torch.arange(64, dtype=torch.float32)
    cy, cx = (torch.rand(2, count, 1, 1, generator=gen) * 32 + 16).unbind(0)
    radius = torch.rand(count, 1, 1, generator=gen) * 10 + 8
    distance = ((grid.view(1, 64, 1) - cy) ** 2 + (grid.view(1, 1, 64) - cx) ** 2).sqrt()
    return torch.tanh(radius - distance).unsqueeze(1)  # a soft, anti-aliased edge


def pixel_distance(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Wasserstein-1 distance between the two batches' pixel-value distributions."""
    return float((fake.flatten().sort().values - real.flatten().sort().values).abs().mean())


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    program = dslnet.load(SPEC)
    generator = program.torch("DCGANGenerator", z=Z, ngf=WIDTH, channels=1)
    discriminator = program.torch("DCGANDiscriminator", ndf=WIDTH, channels=1)
    bce = nn.BCELoss()
    # The DCGAN paper's optimizer settings.
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    fixed_noise = torch.randn(256, Z, 1, 1, generator=gen)
    probe = discs(256, gen)
    with torch.no_grad():
        start = pixel_distance(generator(fixed_noise), probe)
    recent_fake: list[float] = []  # D's mean score of generated images, per step
    began = time.perf_counter()
    for step in range(1, STEPS + 1):
        real = discs(BATCH, gen)
        fake = generator(torch.randn(BATCH, Z, 1, 1, generator=gen))
        ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)

        # Instance noise (Sønderby et al., 2016), fading out: early on, real and
        # generated images overlap, so the discriminator cannot win outright.
        sigma = NOISE * (1 - step / STEPS)
        opt_d.zero_grad()
        d_real = discriminator(real + sigma * torch.randn_like(real))
        d_fake = discriminator(fake.detach() + sigma * torch.randn_like(fake))
        # One-sided label smoothing (Salimans et al., 2016) keeps D from saturating.
        loss_d = bce(d_real, 0.9 * ones) + bce(d_fake, zeros)
        loss_d.backward()
        opt_d.step()

        # Two generator steps a round: the discriminator learns faster here.
        for _ in range(G_STEPS):
            opt_g.zero_grad()
            fake = generator(torch.randn(BATCH, Z, 1, 1, generator=gen))
            loss_g = bce(discriminator(fake + sigma * torch.randn_like(fake)), ones)
            loss_g.backward()
            opt_g.step()

        recent_fake.append(d_fake.mean().item())
        if not (math.isfinite(loss_d.item()) and math.isfinite(loss_g.item())):
            print(f"step {step}: a loss is not finite", file=sys.stderr)
            return 1
        if step % 50 == 0:
            with torch.no_grad():
                distance = pixel_distance(generator(fixed_noise), probe)
            print(
                f"step {step}: loss D {loss_d.item():.3f}  G {loss_g.item():.3f}  "
                f"D(real) {d_real.mean().item():.2f}  D(fake) {d_fake.mean().item():.2f}  "
                f"pixel distance {distance:.3f}"
            )
    late = sum(recent_fake[-50:]) / 50
    print(
        f"{STEPS} steps in {time.perf_counter() - began:.1f} s; "
        f"pixel distance {start:.3f} -> {distance:.3f}; D(fake) over the last 50 steps {late:.3f}"
    )
    if not 0.01 < late < 0.99:
        print("the discriminator is stuck", file=sys.stderr)
        return 1
    if not distance < 0.5 * start:
        print("the generated images did not approach the real ones", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
