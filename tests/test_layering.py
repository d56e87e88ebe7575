"""The package's layering, checked on every import of every module in dslnet/.

Imports inside functions and methods count as much as top-level ones (a lazy import
is still a dependency); only those under `if TYPE_CHECKING:` are exempt, since they
never run. A lower layer never imports a higher one:

    core (core/, fileio/) < ops < ir < passes < backends
    views     (views/: summary, pictures) may import core, ops, ir
    frontend  may import core, ops, ir
    driver    (api.py) may import all of the above
    top       (cli, training runtime, tools, the package root) may import anything

docs/architecture.md describes the layers; LAYERS below places every module in one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "dslnet"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

# Every module of dslnet/ is in one layer, found by its longest prefix here. A module
# no entry covers fails the test: a new package must be placed.
LAYERS: dict[str, str] = {
    "dslnet.core": "core",
    "dslnet.fileio": "core",
    "dslnet.ops": "ops",
    "dslnet.ir": "ir",
    "dslnet.passes": "passes",
    "dslnet.backends": "backends",
    "dslnet.frontend": "frontend",
    "dslnet.api": "driver",
    "dslnet.cli": "top",
    "dslnet.training": "top",
    "dslnet.fuzz": "top",
    # The summary and the pictures read the IR as the backends do; the driver offers
    # them as Program.summary and Program.dot.
    "dslnet.views": "views",
    "dslnet.benchmark": "top",
    "dslnet.testing": "top",
    "dslnet.editor": "top",
    "dslnet.opdocs": "top",
    "dslnet.__main__": "top",
    "dslnet": "top",  # the package root (dslnet/__init__.py) and `from dslnet import x`
}

_BELOW_BACKENDS = ("core", "ops", "ir", "passes", "backends")
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "ops": frozenset({"core", "ops"}),
    "ir": frozenset({"core", "ops", "ir"}),
    "passes": frozenset({"core", "ops", "ir", "passes"}),
    "backends": frozenset(_BELOW_BACKENDS),
    "views": frozenset({"core", "ops", "ir", "views"}),
    "frontend": frozenset({"core", "ops", "ir", "frontend"}),
    "driver": frozenset({*_BELOW_BACKENDS, "views", "frontend", "driver"}),
    "top": frozenset({*_BELOW_BACKENDS, "views", "frontend", "driver", "top"}),
}


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    module: str  # absolute, e.g. "dslnet.ops.registry"


def module_name(path: Path, root: Path, package: str) -> str:
    """`dslnet.ops.registry` for root/ops/registry.py, `dslnet.ops` for its __init__."""
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _static_prefix(arg: ast.expr) -> str | None:
    """The module a dynamic import names, as far as the source says: all of a string
    constant, the leading dotted part of an f-string; None when it says nothing."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values:
        head = arg.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value.rsplit(".", 1)[0] if "." in head.value else None
    return None


class _Collector(ast.NodeVisitor):
    """Every import statement of one module, wherever it is, but under TYPE_CHECKING."""

    def __init__(self, module: str, is_package: bool, modules: frozenset[str]) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.found: list[tuple[int, str]] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for stmt in node.orelse:  # the `else:` branch does run
                self.visit(stmt)
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        """`importlib.import_module("m")` and `import_module(f"m.{name}")` import m."""
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("import_module", "__import__") and node.args:
            target = _static_prefix(node.args[0])
            if target:
                self.found.append((node.lineno, target))
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(node.lineno, alias.name) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            # `from dslnet.ops import registry` imports the module dslnet.ops.registry;
            # `from dslnet.ops import OpDef` imports the package dslnet.ops.
            target = (node.lineno, sub if sub in self.modules else base)
            if target not in self.found:  # `from m import a, b`: one edge
                self.found.append(target)


def collect_imports(root: Path, package: str) -> list[Import]:
    """Every import of a module of `package` (rooted at `root`) by one of its modules."""
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    modules = frozenset(module_name(p, root, package) for p in files)
    found = []
    for path in files:
        module = module_name(path, root, package)
        collector = _Collector(module, path.name == "__init__.py", modules)
        collector.visit(ast.parse(path.read_text("utf-8"), str(path)))
        found += [
            Import(path, line, target)
            for line, target in collector.found
            if target == package or target.startswith(package + ".")
        ]
    return found


def layer_of(module: str, layers: dict[str, str]) -> str | None:
    """The layer of the longest prefix of `module` in `layers`, None if none covers it."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = layers.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def layering_problems(root: Path, package: str, layers: dict[str, str]) -> list[str]:
    """`file:line: layer -> layer (module)` for every import against the layering, and
    a line for every module no entry of `layers` places."""
    problems = []
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    for path in files:
        if layer_of(module_name(path, root, package), layers) is None:
            problems.append(f"{path}: module {module_name(path, root, package)} is in no layer")
    for imp in collect_imports(root, package):
        source = layer_of(module_name(imp.file, root, package), layers)
        target = layer_of(imp.module, layers)
        if source is None:
            continue  # reported above
        if target is None:
            problems.append(f"{imp.file}:{imp.line}: imports {imp.module}, which is in no layer")
        elif target not in ALLOWED[source]:
            problems.append(f"{imp.file}:{imp.line}: {source} -> {target} ({imp.module})")
    return problems


def test_every_import_follows_the_layering() -> None:
    problems = layering_problems(PACKAGE_DIR, PACKAGE, LAYERS)
    rel = [p.replace(str(PACKAGE_DIR.parent) + "/", "") for p in problems]
    if rel:
        pytest.fail(f"{len(rel)} imports against the layering:\n" + "\n".join(rel), pytrace=False)


# --- the walker itself -------------------------------------------------------------------


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A package `toy` with a low layer importing a high one in every way that counts,
    and in the ways that do not."""
    root = tmp_path / "toy"
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    (root / "__init__.py").write_text("")
    (root / "high" / "__init__.py").write_text("")
    (root / "high" / "thing.py").write_text("X = 1\n")
    (root / "low" / "__init__.py").write_text("from .base import Y\n")
    (root / "low" / "base.py").write_text(
        "from __future__ import annotations\n"
        "import typing\n"
        "from typing import TYPE_CHECKING\n"
        "from toy.low import base\n"  # same layer: fine
        "if TYPE_CHECKING:\n"
        "    from toy.high.thing import X\n"  # exempt
        "if typing.TYPE_CHECKING:\n"
        "    import toy.high\n"  # exempt
        "else:\n"
        "    import toy.high.thing\n"  # line 10: runs
        "Y = 2\n"
        "class C:\n"
        "    def m(self) -> None:\n"
        "        from ..high import thing\n"  # line 14: relative, in a method
        "def f() -> None:\n"
        "    from toy import high\n"  # line 16: in a function
        "import importlib\n"
        "importlib.import_module(f'toy.high.{Y}')\n"  # line 18: dynamic, named in source
        "importlib.import_module(str(Y))\n"  # names nothing: not counted
    )
    return root


TOY_LAYERS = {"toy.low": "ops", "toy.high": "backends", "toy": "top"}


def test_walker_finds_function_local_and_relative_imports(toy: Path) -> None:
    problems = layering_problems(toy, "toy", TOY_LAYERS)
    base = toy / "low" / "base.py"
    assert problems == [
        f"{base}:10: ops -> backends (toy.high.thing)",
        f"{base}:14: ops -> backends (toy.high.thing)",
        f"{base}:16: ops -> backends (toy.high)",
        f"{base}:18: ops -> backends (toy.high)",
    ]


def test_a_module_in_no_layer_fails(toy: Path) -> None:
    (toy / "stray.py").write_text("import toy.low\n")
    problems = layering_problems(toy, "toy", {"toy.low": "ops", "toy.high": "backends"})
    assert f"{toy / 'stray.py'}: module toy.stray is in no layer" in problems
    assert f"{toy / '__init__.py'}: module toy is in no layer" in problems


def test_the_table_names_only_existing_modules() -> None:
    """A stale entry would hide nothing, but says the table was not kept up."""
    files = [p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {module_name(p, PACKAGE_DIR, PACKAGE) for p in files}
    stale = [m for m in LAYERS if m not in modules]
    if stale:
        pytest.fail(f"LAYERS names modules that do not exist: {stale}", pytrace=False)
