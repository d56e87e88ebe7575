"""Activations and dropout: one input, same type out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from dslnet.ir.types import TensorType
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, normalize_axis, register


class _SameType(OpDef):
    """An op whose output has its input's type; floating point only."""

    family = "activation"

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if not x.dtype.is_float:
            raise ShapeError(f"{self.name} needs a floating-point input, got {x}")
        return (x,)


@register
class ReLU(_SameType):
    name = "relu"
    doc = "max(x, 0)."


@register
class Sigmoid(_SameType):
    name = "sigmoid"
    doc = "1 / (1 + exp(-x))."


@register
class Tanh(_SameType):
    name = "tanh"
    doc = "Hyperbolic tangent."


class GeluAttrs(OpAttrs):
    approximate: Literal["none", "tanh"] = Field("none", description="exact (erf) or tanh form")


@register
class GELU(_SameType):
    name = "gelu"
    doc = "Gaussian error linear unit, x * Phi(x)."
    Attrs = GeluAttrs


class SoftmaxAttrs(OpAttrs):
    axis: int = Field(-1, description="axis that sums to one")


@register
class Softmax(_SameType):
    name = "softmax"
    doc = "exp(x) / sum(exp(x)) along `axis`."
    Attrs = SoftmaxAttrs

    def infer(self, attrs: SoftmaxAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = super().infer(attrs, inputs)
        normalize_axis(attrs.axis, x.rank, self.name, x)
        return (x,)


class DropoutAttrs(OpAttrs):
    p: float = Field(0.5, ge=0.0, lt=1.0, description="probability of zeroing an element")


@register
class Dropout(_SameType):
    name = "dropout"
    family = "regularization"
    doc = "Zeroes elements with probability p while training (scaled by 1/(1-p)); identity in eval."
    Attrs = DropoutAttrs
