"""Users' ops: what `register` checks in an op class, and plugins from installed packages.

Every op, built-in or not, is checked when it registers: a name specs can call, a
family, an OpAttrs schema, a shape rule, a torch and an ONNX lowering, an init for its
parameters, input domains that name its own inputs and attributes. A problem is an
OpDefinitionError listing them all, at import time, rather than an error deep in a
backend at the first compile.

A package adds ops for everyone who installs it with an entry point,

    [project.entry-points."dslnet.ops"]
    myops = "mypkg.ops"

which the registry loads once, on its first lookup, after the built-ins. A plugin that
fails to load (an import error, a name clash, an incomplete op) fails every compile,
not a warning: a spec using its ops would otherwise fail later on an unknown op, and
which of two clashing ops won would depend on install order. The error names the entry
point and its distribution; DSLNET_NO_PLUGINS=1 skips every plugin.
"""

from __future__ import annotations

import inspect
import os
import re
import types
from importlib.metadata import EntryPoint, entry_points

from dslnet.core.reserved import name_problems
from dslnet.ops import registry
from dslnet.ops.domains import declaration_problems as domain_problems
from dslnet.ops.opdef import OPERATORS, OpAttrs, OpDef
from dslnet.ops.positional import declaration_problems
from dslnet.ops.registry import OpDefinitionError
from dslnet.ops.roles import capability_problems

PLUGIN_GROUP = "dslnet.ops"
NO_PLUGINS_ENV = "DSLNET_NO_PLUGINS"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- the definition ----------------------------------------------------------------------


def definition_problems(cls: type[OpDef]) -> list[str]:
    """What keeps `cls` from being a complete op (empty when nothing does)."""
    problems = _naming_problems(cls)
    attrs = getattr(cls, "Attrs", None)
    if not (isinstance(attrs, type) and issubclass(attrs, OpAttrs)):
        problems.append(
            f"its Attrs must be a subclass of dslnet.ops.OpAttrs (the pydantic model of its "
            f"attributes), got {attrs!r}"
        )
    for field_name in ("inputs", "optional_inputs", "number_inputs", "outputs", "examples"):
        value = getattr(cls, field_name)
        if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            fix = f": write ({value!r},)" if isinstance(value, str) else ""
            problems.append(f"its {field_name} must be a tuple of str, got {value!r}{fix}")
    if cls.outputs == ():
        problems.append("it has no outputs: name them, e.g. outputs = ('y',)")
    if isinstance(cls.number_inputs, tuple) and isinstance(cls.inputs, tuple):
        strays = [n for n in cls.number_inputs if n not in cls.inputs]
        if strays:
            problems.append(f"its number_inputs {strays} are not among its inputs {cls.inputs}")
    if cls.infer is OpDef.infer:
        problems.append("it has no shape rule: define infer(self, attrs, inputs)")
    if cls.torch_module is OpDef.torch_module and cls.torch_expr is OpDef.torch_expr:
        problems.append(
            "it has no torch lowering: define torch_expr (a functional op) or torch_module "
            "(an op that owns a submodule, e.g. one with parameters)"
        )
    if cls.onnx is OpDef.onnx:
        problems.append("it has no ONNX lowering: define onnx(self, attrs, ctx)")
    operator = getattr(cls, "operator", None)
    binary = isinstance(cls.inputs, tuple) and len(cls.inputs) == 2 and not cls.variadic
    if operator is not None and (operator not in OPERATORS or not binary or cls.optional_inputs):
        problems.append(
            f"its operator {operator!r} must be one of {' '.join(OPERATORS)} (or None), on an "
            f"op of exactly two inputs"
        )
    if cls.torch_inline is not False and (
        cls.torch_inline is not True
        or cls.inputs
        or cls.variadic
        or cls.torch_expr is OpDef.torch_expr
        or cls.torch_module is not OpDef.torch_module
    ):
        problems.append(
            "its torch_inline must be True only for an op without inputs whose torch_expr "
            "is a literal written at each use (or False, the default)"
        )
    stateful = cls.params is not OpDef.params or cls.buffers is not OpDef.buffers
    if stateful and cls.init_param is OpDef.init_param:
        problems.append(
            "it declares parameters or buffers but no init_param to draw their first values"
        )
    return (
        problems
        + declaration_problems(cls)
        + domain_problems(cls)
        + capability_problems(cls)
        + _signature_problems(cls)
    )


def _signature_problems(cls: type[OpDef]) -> list[str]:
    """Overrides of OpDef's methods that cannot take the arguments dslnet passes them.

    A helper that happens to share a name with an OpDef method (`channels`, `params`)
    would otherwise fail later, as a TypeError inside a pass that calls it.
    """
    problems = []
    for method_name, base in vars(OpDef).items():
        if method_name.startswith("_") or not inspect.isfunction(base):
            continue
        override = inspect.getattr_static(cls, method_name)
        if override is base:
            continue
        expected = list(inspect.signature(base).parameters)  # self first
        if isinstance(override, staticmethod):
            function, arguments = override.__func__, expected[1:]
        elif isinstance(override, classmethod):
            function, arguments = override.__func__, expected
        elif inspect.isfunction(override):
            function, arguments = override, expected
        else:
            continue  # a callable object: nothing to inspect reliably
        try:
            inspect.signature(function).bind(*arguments)
        except TypeError:
            problems.append(
                f"its {method_name}{inspect.signature(function)} overrides "
                f"OpDef.{method_name}, which dslnet calls as {method_name}("
                f"{', '.join(expected)}): take those arguments, or rename the method if it "
                f"is a helper of your own"
            )
    return problems


def _naming_problems(cls: type[OpDef]) -> list[str]:
    problems = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        problems.append('it has no name: set name = "my_op", the name specs call it by')
    elif not _IDENTIFIER.fullmatch(name):
        problems.append(
            f"its name {name!r} is not an identifier (letters, digits and _, not starting "
            f"with a digit)"
        )
    elif not cls.__module__.startswith("dslnet.ops."):
        problems += name_problems(name)  # the front end's keywords and builtins
    family = getattr(cls, "family", None)
    if not isinstance(family, str) or not family:
        problems.append('it has no family: set family = "...", the group `dslnet ops` lists it in')
    return problems


def describe(cls: type[OpDef]) -> str:
    """`op 'name' (module.Class)`, for messages about a definition."""
    path = f"{cls.__module__}.{cls.__qualname__}"
    name = getattr(cls, "name", None)
    return f"op '{name}' ({path})" if isinstance(name, str) else path


# --- plugins -------------------------------------------------------------------------------


class PluginError(Exception):
    """A `dslnet.ops` entry point that failed to load; the message names it and its
    distribution, and says how to run without it."""


_loaded: set[str] = set()  # `name = value` of each entry point loaded


def plugins_disabled() -> bool:
    """True when DSLNET_NO_PLUGINS is set to anything but empty, 0, false or no."""
    return os.environ.get(NO_PLUGINS_ENV, "").strip().lower() not in ("", "0", "false", "no")


def load_plugins() -> list[str]:
    """Load the `dslnet.ops` entry points not loaded yet; returns their names.

    An entry point names a module (imported: its `@register` classes register), a
    callable (called without arguments: it registers) or an OpDef class (registered).
    They load in name order, each all or nothing: a failure raises PluginError and
    leaves none of that entry point's ops behind. The registry's first lookup calls
    this; call it again after installing a package into a running process.
    """
    if plugins_disabled():
        return []
    names = []
    for point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda p: (p.name, p.value)):
        key = f"{point.name} = {point.value}"
        if key not in _loaded:
            _load(point)
            _loaded.add(key)
            names.append(point.name)
    return names


def _load(point: EntryPoint) -> None:
    dist = point.dist
    distribution = f"{dist.name} {dist.version}" if dist is not None else "an unknown package"
    saved = registry.snapshot()
    try:
        with registry.attributed_to(point.name, distribution):
            target = point.load()
            if isinstance(target, type) and issubclass(target, OpDef):
                registry.register(target)
            elif callable(target):
                target()
            elif not isinstance(target, types.ModuleType):
                raise TypeError(
                    f"it names a {type(target).__name__}, not a module, a callable or an "
                    f"OpDef class"
                )
    except Exception as err:
        registry.restore(saved)
        cause = str(err) if isinstance(err, OpDefinitionError) else f"{type(err).__name__}: {err}"
        fix = f"fix or uninstall {dist.name}, or " if dist is not None else ""
        raise PluginError(
            f"the dslnet.ops entry point '{point.name}' ({point.value}) of {distribution} "
            f"failed to load: {cause}\n({fix}set {NO_PLUGINS_ENV}=1 to run without plugins)"
        ) from err


def loaded_plugins() -> frozenset[str]:
    """The entry points loaded so far (`name = value`)."""
    return frozenset(_loaded)


def set_loaded_plugins(points: frozenset[str]) -> None:
    """Forget the entry points loaded since `loaded_plugins()` gave `points`."""
    _loaded.clear()
    _loaded.update(points)
