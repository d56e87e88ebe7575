"""Small generated datasets for the examples: nothing is downloaded.

`digits` makes a 10-class image task shaped like MNIST: each class is a fixed
random 28x28 prototype, and a sample is its prototype, shifted by up to two
pixels, plus noise. A LeNet learns it in a few epochs on a CPU.
"""

from __future__ import annotations

import torch


def digits(
    count: int, seed: int = 0, classes: int = 10, task: int = 1234
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [count, 1, 28, 28], labels [count]) of the prototype task `task`."""
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(classes, 1, 28, 28, generator=torch.Generator().manual_seed(task))
    prototypes = (prototypes > 0.7).float()  # sparse strokes, one pattern per class
    labels = torch.randint(0, classes, (count,), generator=gen)
    images = prototypes[labels]
    shifts = torch.randint(-2, 3, (count, 2), generator=gen)
    images = torch.stack(
        [torch.roll(img, (int(dy), int(dx)), dims=(1, 2)) for img, (dy, dx) in zip(images, shifts)]
    )
    images = images + 0.3 * torch.randn(images.shape, generator=gen)
    return images, labels
