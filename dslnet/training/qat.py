"""Quantization-aware training that simulates exactly what the static int8 pass writes.

`prepare_qat(net, graph)` asks the static pass (dslnet.backends.quantize.static) where it
would put its QDQ pairs on the network's ONNX model and fake-quantizes the same
points of the torch module, in place:

* the weight of every layer the pass quantizes: int8 in 7 bits, symmetric, per output channel,
  the scale max|w| / WEIGHT_QMAX (63) as in `quantize_weight` (the forward of that nn.Linear /
  nn.ConvNd instance is replaced by one that uses the fake-quantized weight);
* every activation that gets a QDQ pair: uint8 per tensor, its range a running
  min/max (exponential moving average) while training, frozen on demand. A pair the
  pass puts after a fusable activation (a Relu: its op declares `fusable_clamp`) is
  applied at the output of the layer feeding it, as the clamp then fake-quantize (the
  Relu after it is then a no-op, as in ORT's fusion);
  pairs that only re-quantize a MaxPool/Flatten output on the same scale are no-ops.

With `fold_batchnorm` (default) the export folds batchnorm into the layer before it, as
the pipeline's `fold` option does, and training fake-quantizes the folded weight
w * gamma / sqrt(var + eps), dividing the factor back out so the batchnorm still
trains (PyTorch's ConvBn QAT scheme; in eval mode this is the folded layer exactly).

A QDQ point no module hook can reach (the output of a functional op such as a
residual `a + b`, read by something other than a layer) stays float in training and
in the export: `QatHandle.float_points` lists them. `export_qat_onnx(handle)` runs the
static pass's own rewriter with the observers' scales and zero points.
"""

from __future__ import annotations

import math
import types
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from dslnet.backends.quantize.dynamic import WEIGHT_QMAX
from dslnet.ir.graph import Graph
from dslnet.training.qat_export import (
    BATCHNORMS,
    Point,
    PointMapper,
    emit_for_plan,
    export_graph,
    plan_qdq,
    quantize_static_with_params,
    skip_names,
)

__all__ = ["QatHandle", "RangeObserver", "export_qat_onnx", "fake_quantize_weight", "prepare_qat"]


class RangeObserver:
    """The range of one activation: an exponential moving average of each batch's min
    and max (the first batch sets it), widened to hold 0, as uint8 parameters."""

    def __init__(self, momentum: float = 0.01) -> None:
        self.momentum = momentum
        self.frozen = False
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None

    def observe(self, x: torch.Tensor) -> None:
        lo, hi = torch.aminmax(x.detach().float())
        if self.lo is None or self.hi is None:
            self.lo, self.hi = lo.clone(), hi.clone()
            return
        self.lo += self.momentum * (lo - self.lo)
        self.hi += self.momentum * (hi - self.hi)

    def qparams_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale (float32) and zero point (int32) over [min(lo, 0), max(hi, 0)], as
        `uint8_params` chooses them (lo == 0 gives zero point 0)."""
        if self.lo is None or self.hi is None:
            raise RuntimeError("the observer has seen no data: run the model once first")
        lo, hi = torch.clamp(self.lo, max=0.0), torch.clamp(self.hi, min=0.0)
        span = hi - lo
        scale = torch.where(span > 0, span / 255.0, torch.ones_like(span))
        zero = torch.clamp(torch.round(-lo / scale), 0, 255).to(torch.int32)
        return scale.reshape(1), zero.reshape(1)

    def qparams(self) -> tuple[float, int]:
        scale, zero = self.qparams_tensors()
        return float(scale.item()), int(zero.item())

    def fake_quantize(self, x: torch.Tensor, observe: bool) -> torch.Tensor:
        if self.lo is not None and self.hi is not None and self.lo.device != x.device:
            self.lo, self.hi = self.lo.to(x.device), self.hi.to(x.device)  # module moved
        if self.lo is None or (observe and not self.frozen):
            self.observe(x)
        scale, zero = self.qparams_tensors()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)


def fake_quantize_weight(weight: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """`weight` rounded as `quantize_weight` stores it (int8 in [-WEIGHT_QMAX,
    WEIGHT_QMAX], scale max|w| / WEIGHT_QMAX per output channel, or over the whole
    tensor), gradients passed straight through."""
    flat = weight.detach().reshape(weight.shape[0] if per_channel else 1, -1)
    peak = flat.abs().amax(dim=1)
    scale = torch.where(peak > 0, peak / WEIGHT_QMAX, torch.ones_like(peak)).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    if per_channel:
        return torch.fake_quantize_per_channel_affine(
            weight, scale, zero, 0, -WEIGHT_QMAX, WEIGHT_QMAX
        )
    return torch.fake_quantize_per_tensor_affine(weight, scale, zero, -WEIGHT_QMAX, WEIGHT_QMAX)


def batchnorm_factor(bn: nn.Module) -> torch.Tensor:
    """gamma / sqrt(running_var + eps) per channel, computed as Canonicalize folds it
    (in float64, then float32), so the folded weight matches the export bit for bit."""
    assert isinstance(bn, BATCHNORMS) and bn.running_var is not None
    factor = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        factor = factor * bn.weight.double()
    return factor.float()


def _weight(layer: nn.Module) -> torch.Tensor:
    weight = layer.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _channel_shape(weight: torch.Tensor) -> tuple[int, ...]:
    return (-1, *([1] * (weight.dim() - 1)))


def folded_weight(layer: nn.Module, bn: nn.Module | None) -> torch.Tensor:
    """The weight the export quantizes: the layer's, times the batchnorm factor when
    the batchnorm folds into it."""
    weight = _weight(layer)
    if bn is None:
        return weight
    return weight * batchnorm_factor(bn).reshape(_channel_shape(weight))


_CONFIG = "_dslnet_qat"  # the attribute holding a prepared layer's _WeightQuant


@dataclass
class _WeightQuant:
    """What the replaced forward of one layer needs. A plain attribute, not a
    submodule: the batchnorm must not appear twice in the state_dict."""

    per_channel: bool
    batchnorm: nn.Module | None = None


def _quantized_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """nn.Linear / nn.ConvNd forward with the fake-quantized (folded) weight."""
    config: _WeightQuant = getattr(self, _CONFIG)
    weight = _weight(self)
    if config.batchnorm is None:
        weight = fake_quantize_weight(weight, config.per_channel)
    else:  # quantize the folded weight, then divide the factor back out for the BN
        factor = batchnorm_factor(config.batchnorm).reshape(_channel_shape(weight))
        folded = fake_quantize_weight(folded_weight(self, config.batchnorm), config.per_channel)
        weight = torch.where(factor != 0, folded / factor, weight)
    if isinstance(self, nn.Linear):
        return F.linear(x, weight, self.bias)
    assert isinstance(self, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    out: torch.Tensor = self._conv_forward(x, weight, self.bias)
    return out


@dataclass
class QatHandle:
    """A network prepared for QAT: its observers, the hooks, and what export needs."""

    module: nn.Module
    graph: Graph
    fold_batchnorm: bool
    per_channel: bool
    skip: frozenset[str]
    observers: dict[str, RangeObserver]  # range root (ONNX tensor) -> observer
    points: list[Point]
    weights: dict[str, _WeightQuant]  # module path -> its weight quantization
    float_points: tuple[str, ...] = ()  # QDQ tensors no hook reaches: float everywhere
    float_weights: tuple[str, ...] = ()  # quantized at export, not simulated
    hooks: list[RemovableHandle] = field(default_factory=list)

    def freeze_observers(self, frozen: bool = True) -> None:
        """Stop (or restart) updating the activation ranges in training mode."""
        for observer in self.observers.values():
            observer.frozen = frozen

    def qparams(self) -> dict[str, tuple[float, int]]:
        """(scale, zero point) of each range, by the ONNX tensor it is observed on."""
        return {name: obs.qparams() for name, obs in self.observers.items()}

    def observer_state(self) -> dict[str, torch.Tensor]:
        """The observed ranges, to save beside the module's state_dict: `name.lo`,
        `name.hi` for each range seen so far."""
        state: dict[str, torch.Tensor] = {}
        for name, obs in self.observers.items():
            if obs.lo is not None and obs.hi is not None:
                state[f"{name}.lo"], state[f"{name}.hi"] = obs.lo.clone(), obs.hi.clone()
        return state

    def load_observer_state(self, state: Mapping[str, torch.Tensor]) -> None:
        for name, obs in self.observers.items():
            if f"{name}.lo" in state:
                obs.lo, obs.hi = state[f"{name}.lo"].clone(), state[f"{name}.hi"].clone()

    def remove(self) -> None:
        """Undo prepare_qat: the module runs in float again."""
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()
        for path in self.weights:
            layer = self.module.get_submodule(path)
            del layer.forward
            delattr(layer, _CONFIG)


def prepare_qat(
    module: nn.Module,
    graph: Graph,
    *,
    skip: Collection[str] = (),
    fold_batchnorm: bool = True,
    per_channel: bool = True,
    momentum: float = 0.01,
) -> QatHandle:
    """Make `module` (the torch module generated from `graph`, possibly a submodule of
    a bigger one) fake-quantize what the static int8 pass quantizes; in place.

    skip: IR nodes to leave float, besides those the spec marks `@quantize(skip)`;
    fold_batchnorm: export with batchnorm folded (and train the folded weight);
    per_channel: one weight scale per output channel (as the static pass's default);
    momentum: of the observers' running min/max.
    """
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    exported = export_graph(graph, state, fold=fold_batchnorm)
    skipped = skip_names(exported.graph, skip)
    found = plan_qdq(emit_for_plan(exported, 18), skipped)
    mapper = PointMapper(module, graph, exported, found)
    points, lost = mapper.points()
    float_points = tuple(sorted(n for n, r in found.plan.root.items() if r in lost))
    found.plan.drop(lost)
    observers = {p.root: RangeObserver(momentum) for p in points if p.root == p.tensor}
    handle = QatHandle(
        module, graph, fold_batchnorm, per_channel, frozenset(skip), observers, points, {}
    )
    handle.float_points = float_points
    layers, float_weights = mapper.weights()
    handle.float_weights = tuple(float_weights)
    for path, batchnorm in layers.items():
        layer = module.get_submodule(path)
        handle.weights[path] = config = _WeightQuant(per_channel, batchnorm)
        setattr(layer, _CONFIG, config)
        layer.forward = types.MethodType(_quantized_forward, layer)
    _install(handle)
    return handle


def _install(handle: QatHandle) -> None:
    module = handle.module
    inputs = [p for p in handle.points if p.where == "input"]

    def quantize_inputs(net: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(args)
        for point in inputs:
            if point.index < len(values):
                values[point.index] = _apply(handle, point, values[point.index], net.training)
        return tuple(values)

    if inputs:
        handle.hooks.append(module.register_forward_pre_hook(quantize_inputs))
    for point in handle.points:
        for path in point.modules:
            target = module.get_submodule(path)
            if point.where == "output":
                hook = _output_hook(handle, point)
                handle.hooks.append(target.register_forward_hook(hook))
            else:
                handle.hooks.append(target.register_forward_pre_hook(_input_hook(handle, point)))


def _apply(handle: QatHandle, point: Point, x: torch.Tensor, training: bool) -> torch.Tensor:
    observer = handle.observers[point.root]
    return observer.fake_quantize(x, observe=training and point.root == point.tensor)


def _clamped(x: torch.Tensor, clamp: tuple[float, float] | None) -> torch.Tensor:
    """x through the fused activation of its point (a relu clamps to [0, inf))."""
    if clamp is None:
        return x
    low, high = (None if math.isinf(v) else v for v in clamp)
    return x if low is None and high is None else torch.clamp(x, min=low, max=high)


def _output_hook(handle: QatHandle, point: Point) -> Any:
    def hook(layer: nn.Module, args: tuple[Any, ...], out: Any) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"QAT point {point.tensor}: {type(layer).__name__} returns no tensor")
        return _apply(handle, point, _clamped(out, point.clamp), layer.training)

    return hook


def _input_hook(handle: QatHandle, point: Point) -> Any:
    def hook(layer: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (_apply(handle, point, args[0], layer.training), *args[1:])

    return hook


def export_qat_onnx(handle: QatHandle, *, opset: int = 18) -> onnx.ModelProto:
    """The int8 QDQ ONNX of the trained network: the static pass's placement, its
    activation ranges the observers', its weights rounded as the fake-quant did.
    Ranges no hook reached (`handle.float_points`) stay float, as in training."""
    module = handle.module
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    exported = export_graph(handle.graph, state, fold=handle.fold_batchnorm)
    with torch.no_grad():  # the folded weights exactly as training computed them
        for path, config in handle.weights.items():
            if config.batchnorm is not None:
                layer = module.get_submodule(path)
                value = folded_weight(layer, config.batchnorm).cpu().numpy()
                exported.weights[f"{path}.weight"] = value.astype(np.float32)
    return quantize_static_with_params(
        emit_for_plan(exported, opset),
        handle.qparams(),
        per_channel=handle.per_channel,
        skip=skip_names(exported.graph, handle.skip),
        unlisted="float",
    )
