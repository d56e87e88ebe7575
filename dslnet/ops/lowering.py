"""What an op's backend facets receive: the interfaces the backends implement.

Ops import only these protocols (never a backend), so the registry stays
free of torch and onnx imports; the backends pass concrete objects in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from dslnet.core.lazy import numpy as np
from dslnet.core.types import TensorType


class OnnxNodeContext(Protocol):
    """One IR node being lowered to ONNX."""

    inputs: Sequence[str]  # ONNX value names of the node's inputs
    outputs: Sequence[str]  # ONNX value names the node must define
    input_types: Sequence[TensorType]
    output_types: Sequence[TensorType]
    ort_fused: bool  # ONNX Runtime's contrib ops (domain com.microsoft) may be used
    opset: int  # the default domain's opset targeted (where an operator's form changed)

    def param(self, role: str) -> str:
        """The initializer name of the node's parameter `role` (e.g. `linear1.weight`)."""
        ...

    def param_array(self, role: str) -> np.ndarray[Any, Any]:
        """The value of that parameter (for lowerings that reshape weights once)."""
        ...

    def add_initializer(self, hint: str, value: np.ndarray[Any, Any]) -> str:
        """A constant tensor; returns its unique name."""
        ...

    def add_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int | None = None,
        **attrs: Any,
    ) -> list[str]:
        """Append an ONNX node; without `outputs` (or with a count), fresh names are
        made. Returns the output names. A `domain=` keyword picks an operator domain."""
        ...


def torch_bound_uniform(
    shape: tuple[int, ...], fan_in: int, rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    """PyTorch's default for weights and biases of linear and conv layers.

    kaiming_uniform_(a=sqrt(5)) on a weight and the bias rule both reduce to
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)
