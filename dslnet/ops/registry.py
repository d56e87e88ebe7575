"""The op registry: every op is defined once, here and in its family module.

An op definition carries its attribute schema (a pydantic model), its inputs,
its symbolic shape/dtype rule and its parameter shapes. Passes and backends
look ops up by name and ask; they never test op names themselves.
"""

from __future__ import annotations

import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from dslnet.ir.symbolic import Dim, SymExpr
from dslnet.ir.types import DType, TensorType
from dslnet.ops.channels import Channels
from dslnet.ops.factoring import Factoring
from dslnet.ops.lowering import OnnxNodeContext


class ShapeError(Exception):
    """An op's rule rejected its inputs; the message names what failed."""


class AttrError(Exception):
    """Attributes that do not fit an op's schema; one message per problem."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("; ".join(messages))


class OpAttrs(BaseModel):
    """Base of every op's attribute schema. Field order is positional order."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoAttrs(OpAttrs):
    pass


A = TypeVar("A", bound=OpAttrs)


class OpDef:
    """One op. Subclasses set the class attributes and override `infer`/`params`."""

    name: ClassVar[str]
    family: ClassVar[str]
    doc: ClassVar[str] = ""
    # What unnamed instances are called (`attn1` rather than `multihead_attention1`).
    short_name: ClassVar[str | None] = None
    Attrs: ClassVar[type[OpAttrs]] = NoAttrs
    aliases: ClassVar[Mapping[str, str]] = {}  # short attribute names: {"k": "kernel_size"}
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    variadic: ClassVar[bool] = False  # the last input may repeat (at least once)
    # Trailing inputs a call may leave out (an RNN's initial state, an attention mask);
    # `infer` and the lowerings see only the inputs given.
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ("y",)
    # Spec bodies using the op (inputs named, `out y = ...`); they document the op in
    # `dslnet ops` and are what the conformance test runs through every backend.
    examples: ClassVar[tuple[str, ...]] = ()
    # Source of small nn.Module classes the generated code needs for this op (e.g. one
    # that behaves differently in training), written once at the top of the file.
    torch_helpers: ClassVar[str] = ""

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

    def identity_in_eval(self, attrs: Any) -> bool:
        """True when the op returns its input unchanged at inference (dropout)."""
        return False

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

    def bind_attrs(self, positional: Sequence[Any], named: Mapping[str, Any]) -> OpAttrs:
        """Validate call arguments against the schema; AttrError lists every problem."""
        fields = list(self.Attrs.model_fields)
        problems: list[str] = []
        values: dict[str, Any] = {}
        if len(positional) > len(fields):
            problems.append(
                f"{self.name} takes at most {len(fields)} attribute argument(s)"
                f" ({', '.join(fields) or 'none'}), got {len(positional)}"
            )
        for field_name, value in zip(fields, positional):
            values[field_name] = value
        for key, value in named.items():
            field_name = self.aliases.get(key, key)
            if field_name not in self.Attrs.model_fields:
                from dslnet.diagnostics import did_you_mean

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
        return f"argument '{field_name}' of {self.name} {msg}, got {value_words(got)}"

    def signature(self) -> str:
        parts = []
        for field_name, info in self.Attrs.model_fields.items():
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
    if isinstance(value, str):
        return f"str {value!r}"
    if isinstance(value, (list, tuple)):
        return "tuple (" + ", ".join(value_words(v) for v in value) + ")"
    describe = getattr(value, "describe", None)
    if callable(describe):
        return str(describe())
    return type(value).__name__


# --- the registry ------------------------------------------------------------------------
#
# Built-in ops register when their family module is imported; users' ops register with the
# same decorator, from their own code or from an installed package's `dslnet.ops` entry
# point (loaded once, on the first lookup, after the built-ins).

_REGISTRY: dict[str, OpDef] = {}
_ORIGINS: dict[str, Origin] = {}

OpClass = TypeVar("OpClass", bound=type[OpDef])

_BUILTIN_PREFIX = "dslnet.ops."


class OpDefinitionError(ValueError):
    """An op class that cannot be registered; the message lists what to fix."""


@dataclass(frozen=True)
class Origin:
    """Where a registered op comes from: its class and, for a plugin, its entry point."""

    module: str  # the class's module, e.g. `mypkg.ops`
    qualname: str  # and its name there, e.g. `ChannelScale`
    entry_point: str | None = None  # the `dslnet.ops` entry point that loaded it
    distribution: str | None = None  # that entry point's distribution: "name version"

    @property
    def cls(self) -> str:
        return f"{self.module}.{self.qualname}"

    @property
    def builtin(self) -> bool:
        return self.module.startswith(_BUILTIN_PREFIX)

    @property
    def source(self) -> str:
        """What a user recognises: a plugin's distribution, else the class's module."""
        return self.distribution or self.module

    def __str__(self) -> str:
        if self.builtin:
            return f"dslnet (built-in, {self.cls})"
        if self.entry_point is None:
            return self.cls
        return f"{self.cls} (entry point '{self.entry_point}' of {self.distribution})"


def register(cls: OpClass) -> OpClass:
    """Class decorator: add an op to the registry, a built-in or a user's own.

    The class is checked first; OpDefinitionError lists every problem (a name specs can
    call and no other op has, a family, an OpAttrs schema, a shape rule, a torch and an
    ONNX lowering, an init for its parameters). Registering the same class again does
    nothing; a new class of the same module and name replaces the old one (a reloaded
    module, a notebook cell run again).
    """
    from dslnet.ops.userops import definition_problems, describe

    if not (isinstance(cls, type) and issubclass(cls, OpDef)):
        raise OpDefinitionError(f"register takes a subclass of dslnet.ops.OpDef, got {cls!r}")
    origin = Origin(cls.__module__, cls.__qualname__, *_loading_plugin)
    if not origin.builtin:
        _load_builtin_ops()  # a clash with a built-in shows now, not at the first lookup
    name = getattr(cls, "name", None)
    seen = _REGISTRY.get(name) if isinstance(name, str) else None
    if seen is not None and type(seen) is cls:
        return cls
    problems = definition_problems(cls)
    if seen is not None and _ORIGINS[seen.name].cls != origin.cls:
        problems.insert(0, f"the name '{name}' is already registered by {_ORIGINS[seen.name]}")
    if problems:
        raise OpDefinitionError(
            f"{describe(cls)} cannot be registered:\n  - " + "\n  - ".join(problems)
        )
    _REGISTRY[cls.name] = cls()
    _ORIGINS[cls.name] = origin
    return cls


def unregister(name: str) -> None:
    """Remove the user op `name` (built-ins stay). For tests; `scoped()` is simpler."""
    _ensure_loaded()
    origin = _ORIGINS.get(name)
    if origin is None:
        raise ValueError(f"no op '{name}' is registered")
    if origin.builtin:
        raise ValueError(f"op '{name}' is built in; only users' ops can be unregistered")
    del _REGISTRY[name], _ORIGINS[name]


@contextmanager
def scoped() -> Iterator[None]:
    """Undo on exit every registration made inside, so that a user op defined in one
    test does not leak into the next (for tests)."""
    from dslnet.ops import userops

    _ensure_loaded()
    saved, loaded = snapshot(), userops.loaded_plugins()
    try:
        yield
    finally:
        restore(saved)
        userops.set_loaded_plugins(loaded)


def get(name: str) -> OpDef | None:
    _ensure_loaded()
    return _REGISTRY.get(name)


def all_ops() -> dict[str, OpDef]:
    """Every registered op by name: the built-ins and users' ops."""
    _ensure_loaded()
    return dict(sorted(_REGISTRY.items()))


def builtin_ops() -> dict[str, OpDef]:
    """The ops dslnet defines (what docs/ops.md documents), by name."""
    return {name: op for name, op in all_ops().items() if _ORIGINS[name].builtin}


def origin(name: str) -> Origin | None:
    """Where op `name` was defined; None when there is no such op."""
    _ensure_loaded()
    return _ORIGINS.get(name)


_builtins_loaded = False


def _load_builtin_ops() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        # Every module of this package except the machinery is an op family.
        import importlib
        import pkgutil

        import dslnet.ops as package

        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.name not in ("registry", "userops", "lowering", "channels"):
                importlib.import_module(f"dslnet.ops.{info.name}")


def _ensure_loaded() -> None:
    """The built-ins, then the plugins (dslnet.ops.userops). A plugin that failed fails
    every lookup again: an op missing because of it must not read as a typo in a spec.
    Threads that look ops up first at the same time wait for the one that loads them."""
    global _ready, _complete
    if _complete:
        return
    with _loading_lock:
        if _ready:  # loaded while this thread waited, or a plugin's own lookups
            return
        _load_builtin_ops()
        from dslnet.ops.userops import load_plugins

        _ready = True  # a plugin's own lookups while it loads do not recurse
        try:
            load_plugins()
        except BaseException:
            _ready = False
            raise
        _complete = True


_ready = False  # built-ins and plugins loaded, or being loaded by the thread holding the lock
_complete = False  # built-ins and plugins loaded
_loading_lock = threading.RLock()
_loading_plugin: tuple[str | None, str | None] = (None, None)  # (entry point, distribution)


@contextmanager
def attributed_to(entry_point: str, distribution: str) -> Iterator[None]:
    """Ops registered inside are recorded as coming from this plugin."""
    global _loading_plugin
    _loading_plugin = (entry_point, distribution)
    try:
        yield
    finally:
        _loading_plugin = (None, None)


Registrations = tuple[dict[str, OpDef], dict[str, Origin]]


def snapshot() -> Registrations:
    """The registry as it is now, for `restore`."""
    return dict(_REGISTRY), dict(_ORIGINS)


def restore(saved: Registrations) -> None:
    ops, origins = saved
    _REGISTRY.clear()
    _REGISTRY.update(ops)
    _ORIGINS.clear()
    _ORIGINS.update(origins)


def need_static(dim: Dim, what: str, op: str, ttype: TensorType) -> int:
    """A dimension an op must know at compile time (weights depend on it)."""
    if isinstance(dim, int):
        return dim
    raise ShapeError(f"{op} needs a known {what}, but the input is {ttype} ({what} is {dim})")


def normalize_axis(axis: int, rank: int, op: str, ttype: TensorType) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{op}: axis {axis} is out of range for {ttype} (rank {rank})")
    return axis % rank


Rule = Callable[[Any, Sequence[TensorType]], tuple[TensorType, ...]]
