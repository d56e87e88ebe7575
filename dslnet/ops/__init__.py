"""The ops specs call: the registry, and what defining one takes.

A user's own op is a class like the built-in ones (one module per family here), added
with `@register`; an installed package can add ops with a `dslnet.ops` entry point.
docs/embedding.md walks through one; `dslnet.testing.check_op` checks it.
"""

from dslnet.core.types import DType, TensorType
from dslnet.ops.lowering import OnnxNodeContext, torch_bound_uniform
from dslnet.ops.opdef import (
    AttrError,
    NoAttrs,
    OpAttrs,
    OpDef,
    ShapeError,
    need_static,
    normalize_axis,
)
from dslnet.ops.positional import InferredSize
from dslnet.ops.registry import (
    OpDefinitionError,
    Origin,
    all_ops,
    builtin_ops,
    get,
    origin,
    register,
    scoped,
    unregister,
)
from dslnet.ops.roles import ParamRoles
from dslnet.ops.userops import NO_PLUGINS_ENV, PLUGIN_GROUP, PluginError, load_plugins

__all__ = [
    "NO_PLUGINS_ENV",
    "PLUGIN_GROUP",
    "AttrError",
    "DType",
    "InferredSize",
    "NoAttrs",
    "OnnxNodeContext",
    "OpAttrs",
    "OpDef",
    "OpDefinitionError",
    "Origin",
    "ParamRoles",
    "PluginError",
    "ShapeError",
    "TensorType",
    "all_ops",
    "builtin_ops",
    "get",
    "load_plugins",
    "need_static",
    "normalize_axis",
    "origin",
    "register",
    "scoped",
    "torch_bound_uniform",
    "unregister",
]
