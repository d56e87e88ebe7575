"""Normalization layers: batch, layer, instance and group norm.

Parameter and buffer names are those of torch's state_dict (`weight`, `bias`,
`running_mean`, `running_var`, `num_batches_tracked`), so weights move between the
generated module and the ONNX model by name. The ONNX lowerings compute the
eval-mode function (running statistics where torch uses them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import dims_equal
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ops.channels import Channels
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.positional import InferredSize
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, need_static, register
from dslnet.ops.roles import TORCH_SCALE_SHIFT, ParamRoles


def _float_input(op: str, inputs: Sequence[TensorType]) -> TensorType:
    (x,) = inputs
    if not x.dtype.is_float:
        raise ShapeError(f"{op} needs a floating-point input, got {x}")
    return x


def _channels(op: str, x: TensorType) -> int:
    return need_static(x.shape[1], "channel count (axis 1)", op, x)


def _running_stats(channels: int) -> dict[str, tuple[tuple[int, ...], DType]]:
    """torch's buffers of a norm layer that tracks running statistics."""
    return {
        "running_mean": ((channels,), DType.float32),
        "running_var": ((channels,), DType.float32),
        "num_batches_tracked": ((), DType.int64),
    }


def _default_value(role: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """torch's initial values: weight and running_var 1, bias and running_mean 0,
    num_batches_tracked 0 (int64)."""
    if role == "num_batches_tracked":
        return np.zeros(shape, dtype=np.int64)
    if role in ("weight", "running_var"):
        return np.ones(shape, dtype=np.float32)
    return np.zeros(shape, dtype=np.float32)


def _options(*items: tuple[str, Any, Any]) -> str:
    """`, name=value` for each (name, value, torch default) whose value differs."""
    return "".join(f", {name}={value!r}" for name, value, default in items if value != default)


def _unsqueezed(ctx: OnnxNodeContext, name: str, rank: int) -> str:
    """A per-channel vector [C] shaped [C, 1, ...] to broadcast over [N, C, *spatial]."""
    if rank <= 2:
        return name
    axes = ctx.add_initializer("channel_axes", np.arange(1, rank - 1, dtype=np.int64))
    return ctx.add_node("Unsqueeze", [name, axes])[0]


def _inference_batchnorm(ctx: OnnxNodeContext, eps: float, affine: bool) -> None:
    """BatchNormalization with the running statistics (eval mode)."""
    channels = ctx.input_types[0].shape[1]
    assert isinstance(channels, int)
    if affine:
        scale, bias = ctx.param("weight"), ctx.param("bias")
    else:
        scale = ctx.add_initializer("ones", np.ones(channels, dtype=np.float32))
        bias = ctx.add_initializer("zeros", np.zeros(channels, dtype=np.float32))
    stats = [ctx.param("running_mean"), ctx.param("running_var")]
    ctx.add_node(
        "BatchNormalization", [ctx.inputs[0], scale, bias, *stats], ctx.outputs, epsilon=eps
    )


class _ChannelAffineNorm(OpDef):
    """A norm whose optional affine is a per-channel (axis 1) weight and bias, with
    torch's initial values for those and any running statistics."""

    family = "norm"
    param_roles = TORCH_SCALE_SHIFT

    def channels(self, attrs: Any, inputs: Sequence[TensorType]) -> Channels | None:
        # Each channel is normalized on its own: pruning one leaves the rest unchanged.
        roles = [*self.params(attrs, inputs), *self.buffers(attrs, inputs)]
        return Channels("keep", axis=1, params={r: 0 for r in roles if r != "num_batches_tracked"})

    def params(self, attrs: Any, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        if not attrs.affine:
            return {}
        channels = _channels(self.name, inputs[0])
        return {"weight": (channels,), "bias": (channels,)}

    def init_param(
        self, attrs: Any, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        channels = _channels(self.name, inputs[0])
        return _default_value(role, () if role == "num_batches_tracked" else (channels,))


class BatchNormAttrs(OpAttrs):
    eps: float = Field(1e-5, gt=0.0, description="added to the variance for stability")
    momentum: float | None = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="weight of the newest batch in the running statistics; none for a "
        "cumulative average",
    )
    affine: bool = Field(True, description="learn a per-channel scale (weight) and shift (bias)")


_BATCHNORM = {2: "nn.BatchNorm1d", 3: "nn.BatchNorm1d", 4: "nn.BatchNorm2d", 5: "nn.BatchNorm3d"}


@register
class BatchNorm(_ChannelAffineNorm):
    name = "batchnorm"
    inferred = InferredSize("channel count", axis=1)
    doc = (
        "Normalize each channel (axis 1) by batch statistics while training and by running "
        "ones in eval; BatchNorm1d/2d/3d by input rank (2-5)."
    )
    Attrs = BatchNormAttrs
    examples = (
        "in x: float32[N, 3, H, W]\nout y = batchnorm(x)",
        "in x: float32[N, 4, T]\nout y = batchnorm(x, eps=0.001, momentum=0.01, affine=false)",
        "in x: float32[N, 6]\nout y = batchnorm(x)",
    )

    def channels(self, attrs: BatchNormAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        found = super().channels(attrs, inputs)
        return replace(found, foldable_affine=True) if found else None

    def running_statistics(self, attrs: BatchNormAttrs) -> bool:
        return True

    def affine(
        self, attrs: BatchNormAttrs, weights: Mapping[str, np.ndarray[Any, Any]]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Eval mode: (x - mean) / sqrt(var + eps) * gamma + beta, per channel."""
        mean, var = weights["running_mean"], weights["running_var"]
        scale = 1.0 / np.sqrt(var.astype(np.float64) + attrs.eps)
        if attrs.affine:
            scale = scale * weights["weight"]
        shift = -mean * scale + (weights["bias"] if attrs.affine else 0.0)
        return scale.astype(np.float32), shift.astype(np.float32)

    def infer(self, attrs: BatchNormAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = _float_input(self.name, inputs)
        if x.rank not in _BATCHNORM:
            raise ShapeError(
                f"batchnorm needs an input [N, C], [N, C, L], [N, C, H, W] or [N, C, D, H, W] "
                f"(rank 2 to 5), got {x}"
            )
        _channels(self.name, x)
        return (x,)

    def buffers(
        self, attrs: BatchNormAttrs, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[tuple[int, ...], DType]]:
        return _running_stats(_channels(self.name, inputs[0]))

    def torch_module(self, attrs: BatchNormAttrs, inputs: Sequence[TensorType]) -> str:
        x = inputs[0]
        opts = _options(("eps", attrs.eps, 1e-5), ("momentum", attrs.momentum, 0.1))
        opts += _options(("affine", attrs.affine, True))
        return f"{_BATCHNORM[x.rank]}({x.shape[1]}{opts})"

    def onnx(self, attrs: BatchNormAttrs, ctx: OnnxNodeContext) -> None:
        _inference_batchnorm(ctx, attrs.eps, attrs.affine)


class LayerNormAttrs(OpAttrs):
    normalized_shape: int | tuple[int, ...] | None = Field(
        None,
        description="the trailing dims normalized over (an int for the last axis); "
        "none: the input's last axis",
    )
    eps: float = Field(1e-5, gt=0.0, description="added to the variance for stability")
    elementwise_affine: bool = Field(
        True, description="learn a scale (weight) and shift (bias) of normalized_shape"
    )
    bias: bool = Field(True, description="learn the shift too (with elementwise_affine)")


@register
class LayerNorm(OpDef):
    name = "layernorm"
    positional = ("normalized_shape",)
    family = "norm"
    doc = "Normalize over the trailing dims (normalized_shape; default the last axis)."
    Attrs = LayerNormAttrs
    aliases = {"shape": "normalized_shape", "affine": "elementwise_affine"}
    param_roles = ParamRoles(weight="weight", bias="bias")  # of normalized_shape
    examples = (
        "in x: float32[N, T, 8]\nout y = layernorm(x)",
        "in x: float32[N, 3, 4, 5]\nout y = layernorm(x, [4, 5], eps=0.0001)",
        "in x: float32[N, 6]\nout y = layernorm(x, elementwise_affine=false)",
    )

    def normalized(self, attrs: LayerNormAttrs, x: TensorType) -> tuple[int, ...]:
        """The normalized shape, checked against the input's trailing dims."""
        if x.rank == 0:
            raise ShapeError(f"layernorm needs an input of rank >= 1, got {x}")
        wanted = attrs.normalized_shape
        if wanted is None:
            wanted = (need_static(x.shape[-1], "size of the last axis", self.name, x),)
        elif isinstance(wanted, int):
            wanted = (wanted,)
        if not wanted or any(d <= 0 for d in wanted):
            raise ShapeError(
                f"layernorm: normalized_shape must be positive sizes, got {shape_str(wanted)}"
            )
        trailing = x.shape[-len(wanted) :] if len(wanted) <= x.rank else None
        if trailing is None or not all(dims_equal(a, b) for a, b in zip(trailing, wanted)):
            which = shape_str(trailing) if trailing is not None else f"rank {x.rank}"
            raise ShapeError(
                f"layernorm: normalized_shape {shape_str(wanted)} must equal the last "
                f"{len(wanted)} dim(s) of the input {x} ({which})"
            )
        return wanted

    def channels(self, attrs: LayerNormAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        rank = inputs[0].rank
        mixed = tuple(range(rank - len(self.normalized(attrs, inputs[0])), rank))
        return Channels("keep", mixes=mixed)

    def infer(self, attrs: LayerNormAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = _float_input(self.name, inputs)
        self.normalized(attrs, x)
        return (x,)

    def params(
        self, attrs: LayerNormAttrs, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[int, ...]]:
        if not attrs.elementwise_affine:
            return {}
        shape = self.normalized(attrs, inputs[0])
        return {"weight": shape, "bias": shape} if attrs.bias else {"weight": shape}

    def init_param(
        self,
        attrs: LayerNormAttrs,
        role: str,
        inputs: Sequence[TensorType],
        rng: np.random.Generator,
    ) -> np.ndarray[Any, Any]:
        return _default_value(role, self.normalized(attrs, inputs[0]))

    def torch_module(self, attrs: LayerNormAttrs, inputs: Sequence[TensorType]) -> str:
        shape = self.normalized(attrs, inputs[0])
        first = str(shape[0]) if len(shape) == 1 else repr(shape)
        opts = _options(
            ("eps", attrs.eps, 1e-5),
            ("elementwise_affine", attrs.elementwise_affine, True),
            ("bias", attrs.bias, True),
        )
        return f"nn.LayerNorm({first}{opts})"

    def onnx(self, attrs: LayerNormAttrs, ctx: OnnxNodeContext) -> None:
        shape = self.normalized(attrs, ctx.input_types[0])
        if attrs.elementwise_affine:
            args = [ctx.inputs[0], ctx.param("weight")]
            if attrs.bias:
                args.append(ctx.param("bias"))
        else:
            # The scale takes the input's dtype: there are no float32 weights to match.
            ones = np.ones(shape, dtype=ctx.input_types[0].dtype.value)
            args = [ctx.inputs[0], ctx.add_initializer("ones", ones)]
        ctx.add_node("LayerNormalization", args, ctx.outputs, axis=-len(shape), epsilon=attrs.eps)


class InstanceNormAttrs(OpAttrs):
    eps: float = Field(1e-5, gt=0.0, description="added to the variance for stability")
    momentum: float | None = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="weight of the newest batch in the running statistics (if tracked)",
    )
    affine: bool = Field(False, description="learn a per-channel scale and shift")
    track_running_stats: bool = Field(
        False, description="keep running statistics and use them in eval mode"
    )


_INSTANCENORM = {3: "nn.InstanceNorm1d", 4: "nn.InstanceNorm2d", 5: "nn.InstanceNorm3d"}


@register
class InstanceNorm(_ChannelAffineNorm):
    name = "instancenorm"
    inferred = InferredSize("channel count", axis=1)
    doc = (
        "Normalize each channel of each sample over its spatial dims; "
        "InstanceNorm1d/2d/3d by input rank (3-5)."
    )
    Attrs = InstanceNormAttrs
    examples = (
        "in x: float32[N, 3, H, W]\nout y = instancenorm(x)",
        "in x: float32[N, 4, T]\nout y = instancenorm(x, affine=true)",
        "in x: float32[N, 2, 3, H, W]\nout y = instancenorm(x, affine=true, "
        "track_running_stats=true)",
    )

    def infer(
        self, attrs: InstanceNormAttrs, inputs: Sequence[TensorType]
    ) -> tuple[TensorType, ...]:
        x = _float_input(self.name, inputs)
        if x.rank not in _INSTANCENORM:
            raise ShapeError(
                f"instancenorm needs an input [N, C, L], [N, C, H, W] or [N, C, D, H, W] "
                f"(rank 3 to 5), got {x}"
            )
        _channels(self.name, x)
        spatial = x.shape[2:]
        if not attrs.track_running_stats and all(d == 1 for d in spatial):
            # PyTorch refuses it (ONNX Runtime would output zeros): the statistics of
            # one element are no statistics.
            raise ShapeError(
                f"instancenorm needs more than one element per channel to normalize over, "
                f"and {x} has one (PyTorch refuses it)"
            )
        return (x,)

    def running_statistics(self, attrs: InstanceNormAttrs) -> bool:
        return attrs.track_running_stats

    def buffers(
        self, attrs: InstanceNormAttrs, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[tuple[int, ...], DType]]:
        if not attrs.track_running_stats:
            return {}
        return _running_stats(_channels(self.name, inputs[0]))

    def torch_module(self, attrs: InstanceNormAttrs, inputs: Sequence[TensorType]) -> str:
        x = inputs[0]
        opts = _options(
            ("eps", attrs.eps, 1e-5),
            ("momentum", attrs.momentum, 0.1),
            ("affine", attrs.affine, False),
            ("track_running_stats", attrs.track_running_stats, False),
        )
        return f"{_INSTANCENORM[x.rank]}({x.shape[1]}{opts})"

    def onnx(self, attrs: InstanceNormAttrs, ctx: OnnxNodeContext) -> None:
        if attrs.track_running_stats:  # eval mode uses the running statistics
            _inference_batchnorm(ctx, attrs.eps, attrs.affine)
            return
        channels = _channels(self.name, ctx.input_types[0])
        if attrs.affine:
            scale, bias = ctx.param("weight"), ctx.param("bias")
        else:  # in the input's dtype: there are no float32 weights to match
            dtype = ctx.input_types[0].dtype.value
            scale = ctx.add_initializer("ones", np.ones(channels, dtype=dtype))
            bias = ctx.add_initializer("zeros", np.zeros(channels, dtype=dtype))
        ctx.add_node(
            "InstanceNormalization", [ctx.inputs[0], scale, bias], ctx.outputs, epsilon=attrs.eps
        )


class GroupNormAttrs(OpAttrs):
    groups: int = Field(gt=0, description="number of channel groups; divides the channels")
    eps: float = Field(1e-5, gt=0.0, description="added to the variance for stability")
    affine: bool = Field(True, description="learn a per-channel scale (weight) and shift (bias)")


@register
class GroupNorm(_ChannelAffineNorm):
    name = "groupnorm"
    positional = ("groups",)
    inferred = InferredSize("channel count", axis=1, torch_index=1)
    doc = "Normalize each group of channels (axis 1) of each sample; per-channel affine."
    Attrs = GroupNormAttrs
    aliases = {"num_groups": "groups"}
    examples = (
        "in x: float32[N, 6, H, W]\nout y = groupnorm(x, 3)",
        "in x: float32[N, 4, T]\nout y = groupnorm(x, 2, eps=0.001, affine=false)",
        "in x: float32[N, 8]\nout y = groupnorm(x, 4)",
    )

    def channels(self, attrs: GroupNormAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        return None  # statistics are shared within a group: channels are not independent

    def infer(self, attrs: GroupNormAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x = _float_input(self.name, inputs)
        if x.rank < 2:
            raise ShapeError(f"groupnorm needs an input [N, C, ...] of rank >= 2, got {x}")
        channels = _channels(self.name, x)
        if channels % attrs.groups:
            raise ShapeError(
                f"groupnorm: {attrs.groups} groups do not divide the {channels} channels "
                f"(axis 1) of {x}"
            )
        return (x,)

    def torch_module(self, attrs: GroupNormAttrs, inputs: Sequence[TensorType]) -> str:
        opts = _options(("eps", attrs.eps, 1e-5), ("affine", attrs.affine, True))
        return f"nn.GroupNorm({attrs.groups}, {inputs[0].shape[1]}{opts})"

    def onnx(self, attrs: GroupNormAttrs, ctx: OnnxNodeContext) -> None:
        # Opset 18's GroupNormalization takes per-group scale and bias (torch's are per
        # channel), so: [N, C, *] -> [N, G, rest], instance-normalize each group with
        # unit scale, back to the input's shape, then the per-channel affine.
        (x,), (y,) = ctx.inputs, ctx.outputs
        rank = ctx.input_types[0].rank
        groups = attrs.groups
        grouped = ctx.add_initializer("group_shape", np.array([0, groups, -1], dtype=np.int64))
        (h,) = ctx.add_node("Reshape", [x, grouped])
        dtype = ctx.input_types[0].dtype.value  # the input's, as h's
        ones = ctx.add_initializer("group_ones", np.ones(groups, dtype=dtype))
        zeros = ctx.add_initializer("group_zeros", np.zeros(groups, dtype=dtype))
        (h,) = ctx.add_node("InstanceNormalization", [h, ones, zeros], epsilon=attrs.eps)
        (shape,) = ctx.add_node("Shape", [x])
        if not attrs.affine:
            ctx.add_node("Reshape", [h, shape], [y])
            return
        (h,) = ctx.add_node("Reshape", [h, shape])
        (h,) = ctx.add_node("Mul", [h, _unsqueezed(ctx, ctx.param("weight"), rank)])
        ctx.add_node("Add", [h, _unsqueezed(ctx, ctx.param("bias"), rank)], [y])
