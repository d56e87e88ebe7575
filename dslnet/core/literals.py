"""Attribute and argument values written as a spec writes them."""

from __future__ import annotations

from typing import Any

from dslnet.core.symbolic import SymExpr, dim_str
from dslnet.core.types import DType


def format_value(value: Any) -> str:
    """An attribute or argument as it would be written in a spec."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, DType):
        return value.value
    if isinstance(value, SymExpr):
        return dim_str(value)
    if isinstance(value, str):
        # Escaped as a spec writes them: a raw newline would split the printed line.
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if value is None:
        return "none"
    return str(value)
