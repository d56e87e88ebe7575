"""parameter: a bare learned tensor (a layer scale, a class token, learned queries).

`layer gamma = parameter([C], value=1e-6)` then `x * gamma()` gives a ConvNeXt layer
scale; every use of the layer reads the same tensor, saved as `gamma.weight`. The tensor
is its op's weight (ParamRoles), so `init=` schemes draw it and magnitude sparsity thins
it when it has two axes or more (as an embedding's table); structured pruning leaves it
whole (it declares no channels) and int8 quantization keeps it float32, as it keeps a
norm's scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field, PlainValidator

from dslnet.core.lazy import numpy as np
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, register
from dslnet.ops.roles import ParamRoles

_LEARNED = '''
class LearnedTensor(nn.Module):
    """A bare learned tensor: `weight`, every element `value` until trained."""

    def __init__(self, shape: tuple[int, ...], value: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full(shape, value))
'''


def _fixed_sizes(value: Any) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in value
    ):
        return tuple(value)
    raise ValueError("must be a list of ints known at compile time (a weight has fixed sizes)")


class ParameterAttrs(OpAttrs):
    shape: Annotated[tuple[int, ...], PlainValidator(_fixed_sizes)] = Field(
        description="its sizes (known at compile time)"
    )
    value: float = Field(
        0.0, description="the value every element starts at (an init= scheme draws instead)"
    )


@register
class Parameter(OpDef):
    name = "parameter"
    positional = ("shape",)
    family = "embedding"  # a learned table, like an embedding's
    short_name = "param"
    doc = (
        "A learned float32 tensor of a shape, starting at `value` everywhere (or drawn by "
        "init=): a layer scale, a class token; `layer g = parameter(...)` then `g()`."
    )
    Attrs = ParameterAttrs
    inputs = ()
    param_roles = ParamRoles(weight="weight")
    torch_helpers = _LEARNED
    examples = (
        "in x: float32[N, 4, H, W]\nout y = x * parameter([4, 1, 1], value=0.5)",
        'in x: float32[N, T, 8]\nlayer token = parameter([1, 1, 8], init="normal")\n'
        "out y = x + token()",
        'in x: float32[N, 3]\nout y = matmul(x, parameter([3, 2], init="xavier"))',
    )

    def infer(self, attrs: ParameterAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        if any(d < 0 for d in attrs.shape):
            raise ShapeError(f"parameter: sizes must not be negative, got {shape_str(attrs.shape)}")
        return (TensorType(dtype=DType.float32, shape=attrs.shape),)

    def params(
        self, attrs: ParameterAttrs, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[int, ...]]:
        return {"weight": attrs.shape}

    def init_param(
        self,
        attrs: ParameterAttrs,
        role: str,
        inputs: Sequence[TensorType],
        rng: np.random.Generator,
    ) -> np.ndarray[Any, Any]:
        return np.full(attrs.shape, attrs.value, dtype=np.float32)

    def torch_module(self, attrs: ParameterAttrs, inputs: Sequence[TensorType]) -> str:
        shape = (
            f"({attrs.shape[0]},)"
            if len(attrs.shape) == 1
            else f"({', '.join(map(str, attrs.shape))})"
        )
        value = f", {attrs.value!r}" if attrs.value else ""
        return f"LearnedTensor({shape}{value})"

    def torch_call(
        self, attrs: ParameterAttrs, module: str, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        return f"{module}.weight"

    def onnx(self, attrs: ParameterAttrs, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Identity", [ctx.param("weight")], ctx.outputs)
