"""Ops are defined once: no code outside dslnet/ops/ decides anything from an op's name.

What a pass, a backend or a data generator needs to know of an op it asks the op
(declared capabilities: input_domains, torch_inline, operator, param roles...). A
registered op name written as a string literal elsewhere is such a decision, or a
name of another namespace that collides with one (a grammar rule, a family, a
checkpoint key) and reads like one: both are refused here, with file:line.

Not counted: docstrings (prose), the entries of `__all__` (Python names of the
module's own functions, such as dslnet.core.symbolic's `add`), and the compile-time
builtins where the language declares and computes them (LANGUAGE_WORDS): `sqrt`, `exp`,
`log` and `abs` are words of the language on numbers that four ops share on purpose
(`sqrt(16)` is the builtin's 4.0, `x -> sqrt` the op's). Two other vocabularies share
a word with an op where users know the word from elsewhere (OTHER_VOCABULARIES): the
init scheme `zeros` (torch's nn.init.zeros_) and the weight-map directives `transpose`
and `concat`; only those words, only in the modules that define them.
"""

from __future__ import annotations

import ast
from pathlib import Path

from dslnet.frontend.vocabulary import BUILTINS
from dslnet.ops import registry

PACKAGE = Path(__file__).resolve().parent.parent / "dslnet"
LANGUAGE_WORDS = {PACKAGE / "frontend" / "vocabulary.py", PACKAGE / "frontend" / "builtins.py"}
OTHER_VOCABULARIES = {
    PACKAGE / "ir" / "init.py": {"zeros"},
    PACKAGE / "backends" / "torch_init.py": {"zeros"},
    PACKAGE / "ir" / "weight_map.py": {"transpose", "concat"},
    PACKAGE / "ir" / "weight_changes.py": {"transpose", "concat"},
}


def _checked_names(path: Path, names: set[str]) -> set[str]:
    """The op names that `path` may not write as literals."""
    if path in LANGUAGE_WORDS:
        names = names - set(BUILTINS)
    return names - OTHER_VOCABULARIES.get(path, set())


def op_name_literals(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, literal) of each string constant in `source` equal to one of `names`,
    docstrings and `__all__` entries aside."""
    tree = ast.parse(source)
    exempt: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                exempt.add(id(first.value))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            exempt.update(id(part) for part in ast.walk(node.value))
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in names
        and id(node) not in exempt
    )


def test_no_op_name_is_a_literal_outside_the_ops() -> None:
    names = set(registry.builtin_ops())
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {literal!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not path.is_relative_to(PACKAGE / "ops")
        for line, literal in op_name_literals(path.read_text("utf-8"), _checked_names(path, names))
    ]
    assert not found, "op names written outside dslnet/ops/ (ask the op instead):\n" + "\n".join(
        found
    )


def test_the_check_finds_a_literal_and_skips_prose() -> None:
    source = (
        '"""A module about relu."""\n'
        '__all__ = ["relu"]\n'
        "def rewrite(node):\n"
        '    """Replaces relu."""\n'
        '    return node.op == "relu"\n'
        'COLOURS = {"linear": 1, "other": 2}\n'
        'x = f"{1}relu"\n'
    )
    assert op_name_literals(source, {"relu", "linear"}) == [(5, "relu"), (6, "linear"), (7, "relu")]


def test_the_ops_names_are_the_ones_checked() -> None:
    # The check is only as good as the names it looks for: every built-in op, by name.
    names = set(registry.builtin_ops())
    assert {"relu", "linear", "constant", "batchnorm", "embedding", "add"} <= names
