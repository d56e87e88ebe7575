"""dslnet: compile `.net` network specs to PyTorch modules and ONNX graphs.

import dslnet
prog = dslnet.load("specs/mlp.net")
graph = prog.ir("MLP", hidden=256)

The names below are imported when first used (PEP 562), so that `import dslnet`
costs nothing and `dslnet check` never loads numpy, onnx or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dslnet.core.version import __version__ as __version__
from dslnet.frontend.vocabulary import reserve_spec_words

reserve_spec_words()  # before any op registers: users' ops cannot take the language's words

if TYPE_CHECKING:
    from dslnet.api import Program, load, loads
    from dslnet.backends.onnx_external import save_onnx
    from dslnet.core.diagnostics import CompileError, Diagnostic, Severity, Span
    from dslnet.frontend.limits import Limits
    from dslnet.ir.graph import Graph
    from dslnet.ir.weights import WeightsError
    from dslnet.passes.base import PassError

# Public name -> the module that defines it.
_HOMES = {
    "CompileError": "dslnet.core.diagnostics",
    "Diagnostic": "dslnet.core.diagnostics",
    "Graph": "dslnet.ir.graph",
    "Limits": "dslnet.frontend.limits",
    "PassError": "dslnet.passes.base",
    "Program": "dslnet.api",
    "Severity": "dslnet.core.diagnostics",
    "Span": "dslnet.core.diagnostics",
    "WeightsError": "dslnet.ir.weights",
    "load": "dslnet.api",
    "loads": "dslnet.api",
    "save_onnx": "dslnet.backends.onnx_external",
}

__all__ = [
    "CompileError",
    "Diagnostic",
    "Graph",
    "Limits",
    "PassError",
    "Program",
    "Severity",
    "Span",
    "WeightsError",
    "load",
    "loads",
    "save_onnx",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dslnet' has no attribute '{name}'")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # asked once: later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
