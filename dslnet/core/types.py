"""Tensor types: a dtype and a shape of (possibly symbolic) dimensions."""

from __future__ import annotations

import builtins
from enum import Enum

from pydantic import BaseModel, ConfigDict

from dslnet.core.symbolic import Dim, dim_str, dims_equal, is_symbolic


class DType(str, Enum):
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"
    float64 = "float64"
    int8 = "int8"
    uint8 = "uint8"
    int16 = "int16"
    int32 = "int32"
    int64 = "int64"
    bool = "bool"

    @property
    def is_float(self) -> builtins.bool:
        return self.value.startswith(("float", "bfloat"))

    def __str__(self) -> str:
        return self.value


class TensorType(BaseModel):
    """`dtype[d0, d1, ...]`; each dim is an int or a symbolic expression."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    dtype: DType
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return not any(is_symbolic(d) for d in self.shape)

    def same_as(self, other: TensorType) -> bool:
        return (
            self.dtype == other.dtype
            and self.rank == other.rank
            and all(dims_equal(a, b) for a, b in zip(self.shape, other.shape, strict=True))
        )

    def with_shape(self, shape: tuple[Dim, ...]) -> TensorType:
        return TensorType(dtype=self.dtype, shape=shape)

    def __str__(self) -> str:
        return f"{self.dtype}{shape_str(self.shape)}"


def shape_str(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(dim_str(d) for d in shape) + "]"
