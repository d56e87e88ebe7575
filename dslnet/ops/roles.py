"""Declared capabilities of an op that passes, backends and the trainer ask for.

Nothing outside dslnet.ops decides what an op can do from its name or from the names
of its parameters. An op declares it here, `register` checks the declaration
(`capability_problems`), and the code that needs it asks:

* `param_roles`: which parameter is the layer's weight (with its axes of output units
  and input channels) and which is its bias. Batchnorm folding scales the weight and
  adds into the bias, factorisation splits the weight, magnitude pruning scores the
  weight and never the bias, and the IR printer marks the node owning them.
  `is_weight(role)` (the roles' weight unless the op has several, as a recurrent
  layer does) says which parameters init schemes draw and magnitude sparsity thins.
* `running_statistics(attrs)`: the call keeps running statistics while training
  (batchnorm's mean and variance buffers), so a frozen call (`@freeze`) runs in eval
  mode and keeps the statistics it was trained with.
* `differs_in_training(attrs)`: the call's module computes otherwise while training
  (dropout, stochastic depth, a reparameterized sample, running statistics), so a
  frozen call runs in eval mode: a frozen teacher is deterministic.
* `fusable_clamp`: the op is an activation y = clamp(x, low, high) that int8
  quantization fuses into the layer before it (ONNX Runtime folds a Relu into the
  quantized range of that layer's output); quantization-aware training then applies
  the clamp at that layer's output, where the quantization happens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dslnet.ops.opdef import OpDef


@dataclass(frozen=True)
class ParamRoles:
    """Which of an op's parameters (its `params` keys) are its weight and its bias.

    weight: the layer's weight: a matrix or kernel, or a norm's per-channel scale.
    out_axis: the weight's axis of output units (0 for nn.Linear's [out, in], 1 for a
        transposed convolution's [in, out, *kernel]); None when it has none.
    in_axis: the weight's axis of input channels; None when it has none (a scale).
    bias: the parameter added per output unit.
    bias_attr: the bool attribute that gives the layer its bias (linear's `bias`),
        which batchnorm folding turns on when it adds one; None when a bias cannot be
        switched on.

    The default, no roles, is always correct: passes then leave the op's parameters
    alone (nothing folds into it, factorisation and pruning do not score it).
    """

    weight: str | None = None
    out_axis: int | None = None
    in_axis: int | None = None
    bias: str | None = None
    bias_attr: str | None = None


NO_ROLES = ParamRoles()


def capability_problems(cls: type[OpDef]) -> list[str]:
    """What is malformed in the capabilities `cls` declares (empty when nothing is)."""
    from dslnet.ops.opdef import OpDef

    problems = _roles_problems(cls)
    clamp = getattr(cls, "fusable_clamp", None)
    if clamp is not None:
        problems += _clamp_problems(cls, clamp)
    stateful = cls.buffers is not OpDef.buffers
    if cls.running_statistics is not OpDef.running_statistics and not stateful:
        problems.append(
            "it declares running_statistics but no buffers to keep them in: define "
            "buffers(self, attrs, inputs), or leave running_statistics out"
        )
    return problems


def _roles_problems(cls: type[OpDef]) -> list[str]:
    from dslnet.ops.opdef import OpDef

    roles = getattr(cls, "param_roles", NO_ROLES)
    if not isinstance(roles, ParamRoles):
        return [
            f"its param_roles must be a dslnet.ops.ParamRoles(weight=..., bias=...), got {roles!r}"
        ]
    if roles.weight is None and cls.factoring is not OpDef.factoring:
        return [
            "it defines factoring but its param_roles name no weight: low-rank "
            "factorisation splits the weight they name, e.g. ParamRoles(weight='weight', "
            "out_axis=0, in_axis=1, bias='bias')"
        ]
    if roles == NO_ROLES:
        return []
    problems = []
    for field in fields(ParamRoles):
        value = getattr(roles, field.name)
        if field.name.endswith("_axis"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(
                    f"its param_roles.{field.name} must be an int or None, got {value!r}"
                )
            elif isinstance(value, int) and value < 0:
                problems.append(
                    f"its param_roles.{field.name} must count from the front (0, 1, ...), "
                    f"got {value}"
                )
        elif value is not None and (not isinstance(value, str) or not value):
            problems.append(f"its param_roles.{field.name} must be a name or None, got {value!r}")
    if problems:
        return problems
    if roles.weight is None and (roles.out_axis is not None or roles.in_axis is not None):
        problems.append("its param_roles give axes but no weight: name it, weight='...'")
    if roles.in_axis is not None and roles.in_axis == roles.out_axis:
        problems.append(
            f"its param_roles put output units and input channels on the same axis "
            f"({roles.in_axis})"
        )
    if roles.weight is not None and roles.weight == roles.bias:
        problems.append(f"its param_roles name '{roles.weight}' both weight and bias")
    if roles.bias_attr is not None:
        problems += _bias_attr_problems(cls, roles)
    if cls.params is OpDef.params:
        problems.append(
            "it declares param_roles but no parameters: define params(self, attrs, inputs) "
            "returning the roles' shapes"
        )
    return problems


def _bias_attr_problems(cls: type[OpDef], roles: ParamRoles) -> list[str]:
    if roles.bias is None:
        return ["its param_roles give a bias_attr but no bias: name it, bias='...'"]
    model = getattr(cls, "Attrs", None)
    found = getattr(model, "model_fields", {}).get(roles.bias_attr)
    if found is None:
        return [
            f"its param_roles.bias_attr '{roles.bias_attr}' is not one of its attributes "
            f"(a bool attribute that turns the bias on)"
        ]
    if found.annotation is not bool:
        return [f"its param_roles.bias_attr '{roles.bias_attr}' must be a bool attribute"]
    return []


def _clamp_problems(cls: type[OpDef], clamp: Any) -> list[str]:
    if not (
        isinstance(clamp, tuple)
        and len(clamp) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in clamp)
    ):
        return [f"its fusable_clamp must be a pair of numbers (low, high), got {clamp!r}"]
    low, high = clamp
    if math.isnan(low) or math.isnan(high) or not low < high:
        return [f"its fusable_clamp must have low < high, got {clamp!r}"]
    from dslnet.ops.opdef import OpDef

    if len(cls.inputs) != 1 or len(cls.outputs) != 1 or cls.variadic or cls.optional_inputs:
        return ["its fusable_clamp declares an activation: it must take one input and give one"]
    if cls.params is not OpDef.params:
        return ["its fusable_clamp declares a clamp, which has no parameters, but it has params"]
    return []


# The layouts of torch's own layers, which the built-in ops follow.
TORCH_LAYER = ParamRoles(weight="weight", out_axis=0, in_axis=1, bias="bias", bias_attr="bias")
TORCH_TRANSPOSED = ParamRoles(weight="weight", out_axis=1, in_axis=0, bias="bias", bias_attr="bias")
TORCH_SCALE_SHIFT = ParamRoles(weight="weight", out_axis=0, bias="bias")  # a norm's affine
