"""What an op is: OpDef, its attribute schema and how call arguments bind to it.

An op definition carries its attribute schema (a pydantic model), its inputs,
its symbolic shape/dtype rule and its parameter shapes. Passes and backends
look ops up by name (dslnet.ops.registry) and ask; they never test op names themselves.

Separate from the registry so that defining an op needs nothing of the store of
registered ops and its first-load machinery (and the registry can import this
module without a cycle).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, SymExpr
from dslnet.core.types import DType, TensorType
from dslnet.ops.channels import Channels
from dslnet.ops.domains import Domain
from dslnet.ops.factoring import Factoring
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.positional import InferredSize, positional_problem
from dslnet.ops.roles import NO_ROLES, ParamRoles


class ShapeError(Exception):
    """An op's rule rejected its inputs; the message names what failed."""


class AttrError(Exception):
    """Attributes that do not fit an op's schema; one message per problem."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("; ".join(messages))


FLOAT32_MAX = (2 - 2**-23) * 2.0**127  # float(np.finfo(np.float32).max), without numpy

# The spec language's binary arithmetic and comparison operators, in the order messages
# list them; an op may declare one as its own (OpDef.operator).
OPERATORS = ("+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=")

# PyTorch's names for attributes dslnet spells otherwise (`softmax(dim=1)`), for the hint
# an unknown argument gets when no spelling of ours is close to it.
TORCH_SPELLINGS = {
    "dim": "axis",
    "out_features": "features",
    "num_heads": "heads",
    "kernel": "kernel_size",
    "start_dim": "start_axis",
    "end_dim": "end_axis",
    "dim0": "axis0",
    "dim1": "axis1",
}


class OpAttrs(BaseModel):
    """Base of every op's attribute schema. Field order is the signature's order; the
    op's `positional` says which leading fields a call may give by position.

    Every float attribute (alone or in a tuple) is a number both backends can hold: not
    nan, finite, and within float32's range, as ONNX float attributes are; except the
    fields in `dtype_range` (a fill or a constant), which the op checks against its
    tensor's dtype (dslnet.ops.elementwise.number_problem)."""

    # The built-in ops' validators are built when an op is first called, not when its
    # module is imported: `dslnet check` builds the few a spec uses, not all of them.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)
    dtype_range: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not cls.__module__.startswith("dslnet."):
            # A user's op: a schema pydantic cannot build fails here, when its module
            # is imported (and the op registered), not at its first use in a spec.
            cls.model_rebuild(force=True)

    @field_validator("*")
    @classmethod
    def _representable(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name in cls.dtype_range:
            return value
        numbers = value if isinstance(value, tuple) else (value,)
        for number in numbers:
            if isinstance(number, float):
                problem = float_problem(number)
                if problem:
                    raise ValueError(problem)
        return value


def float_problem(value: float) -> str | None:
    """Why a float attribute is refused (None: it is not): see OpAttrs."""
    if math.isnan(value):
        return "must be a number"
    if math.isinf(value):
        return "must be finite"
    if abs(value) > FLOAT32_MAX:
        return f"is out of float32's range (largest {FLOAT32_MAX:g})"
    return None


class NoAttrs(OpAttrs):
    pass


class OpDef:
    """One op. Subclasses set the class attributes and override `infer`/`params`."""

    name: ClassVar[str]
    family: ClassVar[str]
    doc: ClassVar[str] = ""
    # What unnamed instances are called (`attn1` rather than `multihead_attention1`).
    short_name: ClassVar[str | None] = None
    Attrs: ClassVar[type[OpAttrs]] = NoAttrs
    aliases: ClassVar[Mapping[str, str]] = {}  # short attribute names: {"k": "kernel_size"}
    # The leading attributes a call may give by position (dslnet.ops.positional says
    # which); the others are keyword-only. A user's op: none unless it says so.
    positional: ClassVar[tuple[str, ...]] = ()
    # The size PyTorch's constructor takes that dslnet reads from the input (nn.Conv2d's
    # in_channels), for the error a call in the torch habit gets.
    inferred: ClassVar[InferredSize | None] = None
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    variadic: ClassVar[bool] = False  # the last input may repeat (at least once)
    # Trailing inputs a call may leave out (an RNN's initial state, an attention mask);
    # `infer` and the lowerings see only the inputs given.
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ("y",)
    # Inputs a call may give as a number or a size (`where(c, x, 0.0)`): the expander
    # makes it a scalar tensor of the dtype of the first of them given as a tensor.
    number_inputs: ClassVar[tuple[str, ...]] = ()
    # The infix operator a spec writes for this binary op on tensors (`+` for add): `a + b`
    # calls it on (a, b), and `-x` calls the `-` op on (0, x). One of OPERATORS, each
    # taken by at most one op (dslnet.ops.registry.operators).
    operator: ClassVar[str | None] = None
    # The values an input that consumes data must hold, by input name (class labels
    # below the class count, probabilities, table indices): dslnet.ops.domains. What
    # generates or checks data for a network asks (dslnet.ir.domains); the rest of the
    # inputs take any value of their dtype.
    input_domains: ClassVar[Mapping[str, Domain]] = {}
    # Spec bodies using the op (inputs named, `out y = ...`); they document the op in
    # `dslnet ops` and are what the conformance test runs through every backend.
    examples: ClassVar[tuple[str, ...]] = ()
    # Source of small nn.Module classes the generated code needs for this op (e.g. one
    # that behaves differently in training), written once at the top of the file.
    torch_helpers: ClassVar[str] = ""
    # True for an op without inputs whose torch_expr is a literal (a constant's `0.5`):
    # the generated code writes it at each use instead of binding it to a local.
    torch_inline: ClassVar[bool] = False
    # Capabilities the passes, backends and trainer ask for (dslnet.ops.roles), checked
    # by `register`. Which parameter is the layer's weight (with its axes of output
    # units and input channels) and which its bias: folding, factorisation, pruning and
    # the IR printer rewrite and show them by these roles, never by name.
    param_roles: ClassVar[ParamRoles] = NO_ROLES
    # An activation y = clamp(x, low, high) that int8 quantization fuses into the layer
    # before it (ONNX Runtime folds a Relu into that layer's quantized range); QAT then
    # applies it at that layer's output. None: not fusable.
    fusable_clamp: ClassVar[tuple[float, float] | None] = None

    def factoring(self, attrs: Any, rank: int) -> Factoring | None:
        """The two thinner layers this call becomes at `rank` (dslnet.ops.factoring),
        or None when it cannot be factorised."""
        return None

    def torch_helpers_for(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[str, ...]:
        """The helper sources one call needs (the class-wide helpers unless an op's
        attributes call for more)."""
        return (self.torch_helpers,)

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        """Output types for these inputs; raise ShapeError with a clear reason."""
        raise NotImplementedError

    def params(self, attrs: Any, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        """Learned parameter shapes by role (`weight`, `bias`); empty for stateless ops."""
        return {}

    def buffers(
        self, attrs: Any, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[tuple[int, ...], DType]]:
        """State that is saved but not learned (batchnorm's running statistics)."""
        return {}

    def flops(self, attrs: Any, inputs: Sequence[TensorType], outputs: Sequence[TensorType]) -> Dim:
        """Multiply-accumulates of one forward call (the convention of published
        model tables); symbolic when the sizes are. Zero for data movement."""
        return 0

    def channels(self, attrs: Any, inputs: Sequence[TensorType]) -> Channels | None:
        """How channels flow through this call (dslnet.ops.channels), for pruning and
        folding; None pins every channel it touches (never pruned)."""
        return None

    def least_sizes(self, attrs: Any, inputs: Sequence[TensorType]) -> dict[tuple[int, int], int]:
        """{(input, axis): n} for the symbolic axes the shape rule assumes are at least n
        long at run time (a slice's fixed bounds); empty when it assumes nothing."""
        return {}

    def run_time_sizes(self, attrs: Any) -> tuple[Dim, ...]:
        """The symbolic sizes an op needs at run time: what an op without `inputs` makes
        (`ones([T, T])`'s T), an expand's target. For those its inputs lack, the expander
        passes the call, as inputs after its own, tensors in scope that have them, which
        the lowerings read only the shapes of (dslnet.ops.run_time_sizes)."""
        return ()

    def identity_in_eval(self, attrs: Any) -> bool:
        """True when the op returns its input unchanged at inference (dropout)."""
        return False

    def scalar_value(self, attrs: Any) -> float | None:
        """The number this op makes when the torch code writes it as a Python number
        (a constant's 0.5), else None. Lowerings that must treat a number operand as
        torch does (`x ** 0.5` is sqrt there) ask for it: OnnxNodeContext.scalar_input."""
        return None

    def is_weight(self, role: str) -> bool:
        """Whether parameter `role` is a weight: what an `init=` scheme draws and
        magnitude sparsity thins; the other parameters (a bias, an attention vector, a
        token) start at zero under a scheme. By default the weight of `param_roles`;
        an op with several weights (a recurrent layer's) says which they are."""
        return role == self.param_roles.weight

    def takes_init(self) -> bool:
        """Whether an `init=` scheme applies to this op's parameters: it says which of
        them are weights (`param_roles`, or its own `is_weight`). An op that says none
        keeps its own initialisation under a block's scheme, and `init=` on a call of it
        is refused: drawing nothing or zeroing all would silently build another model."""
        return self.param_roles.weight is not None or type(self).is_weight is not OpDef.is_weight

    def running_statistics(self, attrs: Any) -> bool:
        """True when the call keeps running statistics in its `buffers` while training
        (batchnorm's mean and variance): a frozen call (`@freeze`) then runs in eval
        mode, so that the statistics stay as they were trained."""
        return False

    def differs_in_training(self, attrs: Any) -> bool:
        """True when the call's module computes something else while training than in
        eval mode: it draws at random (dropout, stochastic depth, a reparameterized
        sample, dropout inside attention or a recurrent layer) or updates running
        statistics. A frozen call (`@freeze`) runs in eval mode, so that a frozen
        network (a distillation teacher) is deterministic and keeps its statistics.
        By default: what is the identity in eval, and what keeps running statistics."""
        return self.identity_in_eval(attrs) or self.running_statistics(attrs)

    def affine(
        self, attrs: Any, weights: Mapping[str, np.ndarray[Any, Any]]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Per-channel (scale, shift) of an op whose `channels` says foldable_affine."""
        raise NotImplementedError(f"{self.name} is not a per-channel affine")

    def init_param(
        self, attrs: Any, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        """A fresh value for parameter or buffer `role`, as PyTorch initialises the layer."""
        raise NotImplementedError(f"{self.name} has no parameters")

    # --- backends -------------------------------------------------------------------

    def torch_module(self, attrs: Any, inputs: Sequence[TensorType]) -> str | None:
        """Constructor source (`nn.Linear(784, 256)`) for an op that owns a submodule,
        because it has weights or behaves differently in training; None otherwise."""
        return None

    def torch_call(
        self, attrs: Any, module: str, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        """The forward expression of an op that owns `module` (e.g. `self.fc`): calling
        it, unless one use of a shared layer needs another form (a tied projection)."""
        return f"{module}({', '.join(args)})"

    def torch_targets(self, attrs: Any, targets: Sequence[str]) -> str:
        """The left side binding the outputs: `y, idx`, or `y, (h, c)` where the torch
        module returns nested tuples."""
        return ", ".join(targets)

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        """The forward expression of a functional op, e.g. `torch.relu(x)`."""
        raise NotImplementedError(f"{self.name} has no functional torch form")

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        """Emit the ONNX nodes computing this op (see dslnet.ops.lowering)."""
        raise NotImplementedError(f"{self.name} has no ONNX lowering")

    # --- attributes -------------------------------------------------------------

    def bind_attrs(
        self,
        positional: Sequence[Any],
        named: Mapping[str, Any],
        inputs: Sequence[TensorType] = (),
    ) -> OpAttrs:
        """Validate call arguments against the schema; AttrError lists every problem.
        `inputs`, the call's input types where known, make the messages precise."""
        fields = list(self.Attrs.model_fields)
        problems: list[str] = []
        values: dict[str, Any] = {}
        if len(positional) > len(self.positional):
            raise AttrError([positional_problem(self, positional, named, inputs)])
        for field_name, value in zip(fields, positional):
            values[field_name] = value
        for key, value in named.items():
            field_name = self.aliases.get(key, key)
            if field_name not in self.Attrs.model_fields:
                from dslnet.core.diagnostics import did_you_mean

                ours = TORCH_SPELLINGS.get(key)
                if ours in self.Attrs.model_fields:  # the PyTorch name of one of ours
                    hint = f" (dslnet calls it '{ours}')"
                else:
                    hint = did_you_mean(key, [*fields, *self.aliases])
                problems.append(
                    f"{self.name} has no argument '{key}'{hint}; it takes: {self.signature()}"
                )
                continue
            if field_name in values:
                problems.append(f"argument '{field_name}' of {self.name} is given twice")
                continue
            values[field_name] = value
        if problems:
            raise AttrError(problems)
        try:
            return self.Attrs.model_validate({k: _tuplify(v) for k, v in values.items()})
        except ValidationError as err:
            messages = [self._explain(e, values) for e in err.errors()]
            # A union-typed field fails once per member: say each problem once.
            raise AttrError(list(dict.fromkeys(messages))) from None

    def _explain(self, error: Any, values: Mapping[str, Any]) -> str:
        field_name = str(error["loc"][0]) if error["loc"] else "?"
        info = self.Attrs.model_fields.get(field_name)
        expected = type_words(info.annotation) if info is not None else "?"
        if error["type"] == "missing":
            return f"{self.name} needs argument '{field_name}' ({expected})"
        got = values.get(field_name)
        if error["type"].endswith("_type") or error["type"] in (
            "literal_error",
            "union_tag_invalid",
        ):
            return (
                f"argument '{field_name}' of {self.name} expects {expected}, got {value_words(got)}"
            )
        msg = str(error["msg"]).replace("Input should be", "must be").replace("Value error, ", "")
        if field_name not in values and info is not None:  # a default checked against others
            return f"argument '{field_name}' of {self.name} {msg}; its default is {info.default!r}"
        return f"argument '{field_name}' of {self.name} {msg}, got {value_words(got)}"

    def signature(self) -> str:
        """The attributes as Python writes a signature: `features: int, *, bias: bool =
        True`, the ones after `*` keyword-only."""
        parts = []
        for index, (field_name, info) in enumerate(self.Attrs.model_fields.items()):
            if index == len(self.positional):
                parts.append("*")
            text = f"{field_name}: {type_words(info.annotation)}"
            if not info.is_required():
                text += f" = {info.default!r}"
            parts.append(text)
        return ", ".join(parts) or "no arguments"

    def arity_ok(self, count: int) -> bool:
        fixed = len(self.inputs)
        if self.variadic:
            return count >= fixed
        return fixed <= count <= fixed + len(self.optional_inputs)

    def arity_words(self) -> tuple[str, str]:
        """How many inputs the op takes and their names, for an error message."""
        fixed = len(self.inputs)
        if self.variadic:
            return f"at least {fixed}", ", ".join(self.inputs) + ", ..."
        names = ", ".join([*self.inputs, *(f"[{n}]" for n in self.optional_inputs)])
        if self.optional_inputs:
            return f"{fixed} to {fixed + len(self.optional_inputs)}", names
        return str(fixed), names


def _tuplify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


def type_words(annotation: Any) -> str:
    """How an attribute's type reads in an error: `int`, `one of 'a', 'b'`, `tuple of int`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_words(a) for a in args if a is not type(None)) + (
            " or none" if type(None) in args else ""
        )
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple of {type_words(args[0])}"
        return "(" + ", ".join(type_words(a) for a in args) + ")"
    return getattr(annotation, "__name__", str(annotation))


def value_words(value: Any) -> str:
    if isinstance(value, bool):
        return f"bool {str(value).lower()}"
    if isinstance(value, SymExpr):
        return f"symbolic dimension {value}"
    if isinstance(value, (int, float)):
        return f"{type(value).__name__} {value}"
    # Long strings and lists elided: a message names a value, it does not print it.
    if isinstance(value, str):
        if len(value) > 80:
            return f"str {value[:60]!r}... ({len(value)} characters)"
        return f"str {value!r}"
    if isinstance(value, (list, tuple)):
        words = [value_words(v) for v in value[:8]]
        if len(value) > 8:
            words.append(f"... ({len(value)} items)")
        return "tuple (" + ", ".join(words) + ")"
    describe = getattr(value, "describe", None)
    if callable(describe):
        return str(describe())
    return type(value).__name__


def need_static(dim: Dim, what: str, op: str, ttype: TensorType) -> int:
    """A dimension an op must know at compile time (weights depend on it)."""
    if isinstance(dim, int):
        return dim
    raise ShapeError(f"{op} needs a known {what}, but the input is {ttype} ({what} is {dim})")


def normalize_axis(axis: int, rank: int, op: str, ttype: TensorType) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{op}: axis {axis} is out of range for {ttype} (rank {rank})")
    return axis % rank
