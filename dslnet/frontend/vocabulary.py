"""The words of the spec language that are not ops: the grammar's keywords and the
builtins. A user's op cannot take one of them (a spec could never call it); this
module declares that to the op registry through `dslnet.core.reserved`.

Light on purpose (no parser, no ops): `import dslnet` runs `reserve_spec_words`, so
the check stands before any op registers.
"""

from __future__ import annotations

import functools
import re

from dslnet.core import reserved

# Compile-time functions (dslnet.frontend.builtins, expand_calls). Four are also ops on
# tensors (sqrt, exp, log, abs): a call on numbers is the builtin's, on a tensor the op's.
BUILTINS = (
    "range", "len", "size", "min", "max", "abs", "round", "floor", "ceil", "int", "float",
    "sqrt", "exp", "log",
)  # fmt: skip


@functools.cache
def keywords() -> frozenset[str]:
    """The grammar's keywords (its quoted lowercase words)."""
    from importlib import resources  # not at `import dslnet`: only a user's op needs it

    grammar = resources.files("dslnet.grammar").joinpath("dslnet.lark").read_text("utf-8")
    return frozenset(re.findall(r'"([a-z]+)"', grammar))


def _op_name_problem(name: str) -> str | None:
    if name in keywords() or name in BUILTINS:
        return f"its name '{name}' is a keyword or builtin of the spec language: choose another"
    return None


def reserve_spec_words() -> None:
    """Have the op registry refuse users' ops named like a keyword or a builtin."""
    reserved.reserve("spec language", _op_name_problem)
