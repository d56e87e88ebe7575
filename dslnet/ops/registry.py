"""The op registry: every op is registered once, by name, and looked up here.

Built-in ops register when their family module is imported: a lookup by name imports
only the family that defines it (dslnet.ops.op_index), a listing of the ops imports them
all. Users' ops register with the same decorator, from their own code or from an
installed package's `dslnet.ops` entry point (loaded once, on the first lookup); every
built-in is registered before the first of them, so that no user op takes a built-in's
name or operator. What an op is (OpDef,
its attributes, the errors its rules raise) lives in dslnet.ops.opdef and is re-exported
here, where op modules and passes have always imported it from.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from dslnet.ops import op_index_table
from dslnet.ops.opdef import (
    OPERATORS,
    AttrError,
    NoAttrs,
    OpAttrs,
    OpDef,
    ShapeError,
    need_static,
    normalize_axis,
    type_words,
    value_words,
)

__all__ = [
    "AttrError",
    "NoAttrs",
    "OpAttrs",
    "OpDef",
    "OpDefinitionError",
    "Origin",
    "Registrations",
    "ShapeError",
    "all_ops",
    "attributed_to",
    "builtin_ops",
    "get",
    "names",
    "need_static",
    "normalize_axis",
    "operators",
    "origin",
    "register",
    "restore",
    "scoped",
    "snapshot",
    "type_words",
    "unregister",
    "value_words",
]

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
    ONNX lowering, an init for its parameters, well-formed capabilities: parameter roles,
    running statistics, a fusable clamp, see dslnet.ops.roles). Registering the same
    class again does nothing; a new class of the same module and name replaces the old
    one (a reloaded module, a notebook cell run again).
    """
    from dslnet.ops.userops import definition_problems, describe

    if not (isinstance(cls, type) and issubclass(cls, OpDef)):
        raise OpDefinitionError(f"register takes a subclass of dslnet.ops.OpDef, got {cls!r}")
    origin = Origin(cls.__module__, cls.__qualname__)
    if not origin.builtin:
        # A plugin's, when one is loading; a built-in family imported meanwhile is not.
        origin = Origin(cls.__module__, cls.__qualname__, *_loading_plugin)
        _load_builtin_ops()  # a clash with a built-in shows now, not at the first lookup
    name = getattr(cls, "name", None)
    seen = _REGISTRY.get(name) if isinstance(name, str) else None
    if seen is not None and type(seen) is cls:
        return cls
    # The built-ins are checked by the test suite (tests/test_user_ops.py), not at every
    # start: the checks cost more than loading them, and `dslnet check` pays it.
    problems = [] if origin.builtin else definition_problems(cls)
    if seen is not None and _ORIGINS[seen.name].cls != origin.cls:
        problems.insert(0, f"the name '{name}' is already registered by {_ORIGINS[seen.name]}")
    symbol = getattr(cls, "operator", None)
    taken = _operators().get(symbol) if isinstance(symbol, str) else None
    if taken is not None and taken.name != name:
        problems.append(
            f"its operator '{symbol}' is already the one of op '{taken.name}' "
            f"({_ORIGINS[taken.name]})"
        )
    if problems:
        raise OpDefinitionError(
            f"{describe(cls)} cannot be registered:\n  - " + "\n  - ".join(problems)
        )
    _REGISTRY[cls.name] = cls()
    _ORIGINS[cls.name] = origin
    _forget_operators()
    return cls


def unregister(name: str) -> None:
    """Remove the user op `name` (built-ins stay). For tests; `scoped()` is simpler."""
    origin = _origin(name)
    if origin is None:
        raise ValueError(f"no op '{name}' is registered")
    if origin.builtin:
        raise ValueError(f"op '{name}' is built in; only users' ops can be unregistered")
    del _REGISTRY[name], _ORIGINS[name]
    _forget_operators()


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
    op = _REGISTRY.get(name)
    if op is None and name in op_index_table.MODULES:
        _load_builtin_family(op_index_table.MODULES[name])
        op = _REGISTRY.get(name)
    return op


def names() -> list[str]:
    """The names of every registered op, sorted, as `all_ops()` has them, without
    importing the built-in families a spec does not call."""
    _ensure_loaded()
    return sorted({*op_index_table.MODULES, *_registered()})


def operators() -> dict[str, OpDef]:
    """The ops that binary operators on tensors call, by operator (`+`: add), in the
    order of OPERATORS. Kept until the next registration: the expander asks at every
    operator it evaluates. Do not modify the returned dict."""
    global _operator_table
    _ensure_loaded()
    table = _operator_table
    if table is None:
        for name in op_index_table.OPERATOR_OPS.values():
            get(name)
        table = _operator_table = _operators()
    return table


def _operators() -> dict[str, OpDef]:
    found = {op.operator: op for op in _registered().values() if op.operator is not None}
    return {symbol: found[symbol] for symbol in OPERATORS if symbol in found}


_operator_table: dict[str, OpDef] | None = None  # operators() since the last registration


def _forget_operators() -> None:
    global _operator_table
    _operator_table = None


def all_ops() -> dict[str, OpDef]:
    """Every registered op by name: the built-ins and users' ops."""
    _ensure_loaded()
    _load_builtin_ops()
    return dict(sorted(_registered().items()))


def _registered() -> dict[str, OpDef]:
    """A copy of the registry, taken while no thread is importing a family into it
    (a lookup in one thread may import a family while another lists the ops)."""
    with _loading_lock:
        return dict(_REGISTRY)


def builtin_ops() -> dict[str, OpDef]:
    """The ops dslnet defines (what docs/ops.md documents), by name."""
    return {name: op for name, op in all_ops().items() if _ORIGINS[name].builtin}


def origin(name: str) -> Origin | None:
    """Where op `name` was defined; None when there is no such op."""
    return _origin(name)


def _origin(name: str) -> Origin | None:
    get(name)  # imports the built-in family that defines it
    return _ORIGINS.get(name)


_builtins_loaded = False  # every family imported, not only those a lookup needed
_builtins_loading = False  # the thread holding _loading_lock is importing them all
_MACHINERY = (
    "registry",
    "opdef",
    "userops",
    "lowering",
    "channels",
    "domains",
    "roles",
    "op_index",
    "op_index_table",
)


def _load_builtin_ops() -> None:
    global _builtins_loaded, _builtins_loading
    if _builtins_loaded:
        return
    with _loading_lock:  # another thread's listing waits until every family is in
        if _builtins_loaded or _builtins_loading:  # or this thread is at it already
            return
        _builtins_loading = True
        try:
            # Every module of this package except the machinery is an op family.
            import pkgutil

            import dslnet.ops as package

            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                if info.name not in _MACHINERY:
                    _load_builtin_family(info.name)
            _builtins_loaded = True
        finally:
            _builtins_loading = False


def _load_builtin_family(module: str) -> None:
    import importlib

    with _loading_lock:  # a thread looking up one of its ops waits for it
        importlib.import_module(f"dslnet.ops.{module}")


def _ensure_loaded() -> None:
    """The plugins (dslnet.ops.userops). A plugin that failed fails every lookup again:
    an op missing because of it must not read as a typo in a spec. Threads that look
    ops up first at the same time wait for the one that loads them."""
    global _ready, _complete
    if _complete:
        return
    with _loading_lock:
        if _ready:  # loaded while this thread waited, or a plugin's own lookups
            return
        # The built-ins are imported as lookups need them; a plugin's registration
        # imports them all first (register).
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
    """The registry as it is now, for `restore`: with every built-in, since a family
    imported after it would not register again once `restore` dropped its ops."""
    _load_builtin_ops()
    return dict(_REGISTRY), dict(_ORIGINS)


def restore(saved: Registrations) -> None:
    ops, origins = saved
    _REGISTRY.clear()
    _REGISTRY.update(ops)
    _ORIGINS.clear()
    _ORIGINS.update(origins)
    _forget_operators()
