"""dslnet: compile `.net` network specs to PyTorch modules and ONNX graphs.

import dslnet
prog = dslnet.load("specs/mlp.net")
graph = prog.ir("MLP", hidden=256)
"""

from dslnet.backends.weights import WeightsError
from dslnet.core.diagnostics import CompileError, Diagnostic, Severity, Span
from dslnet.frontend.loader import Limits, Program, load, loads
from dslnet.ir.graph import Graph
from dslnet.passes.base import PassError

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
]
__version__ = "0.1.0"
