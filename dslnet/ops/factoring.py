"""What an op tells low-rank factorisation: how it splits into two thinner layers.

A layer whose weight is a matrix W [outputs, inputs] (a convolution's is
[out, in * prod(kernel)]) can become a first layer making r units without bias
(a convolution keeps its window, stride, padding and dilation) and a second one
mapping those r units to the original outputs with the original bias (a 1x1
convolution). The pass does the linear algebra; the op names the two layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Factoring:
    """The two layers one call becomes at rank r.

    first: (op, attributes) making the r units from the input, without bias.
    second: (op, attributes) mapping the r units to the outputs, with the bias.
    out_axis: the weight's axis of output units (1 for a transposed convolution's
        [in, out, *kernel]); the rest, flattened, is the input side.
    """

    first: tuple[str, dict[str, Any]]
    second: tuple[str, dict[str, Any]]
    out_axis: int = 0
