"""--import-root directories are searched: beside the importing file first, then each
root in order, the first found read (as PYTHONPATH); not found lists every place."""

from __future__ import annotations

from pathlib import Path

import pytest

import dslnet
from dslnet.cli import main

BLOCK = "block Twice() {{\n    in x: [N, D]\n    out y = x -> {act} -> {act}\n}}\n"
MAIN = 'import "lib.net"\nnetwork Net() {\n    in x: float32[N, 4]\n    out y = x -> Twice\n}\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """app/main.net imports "lib.net"; roots one/ and two/ each hold a lib.net."""
    for name in ("app", "one", "two"):
        (tmp_path / name).mkdir()
    (tmp_path / "app" / "main.net").write_text(MAIN)
    (tmp_path / "one" / "lib.net").write_text(BLOCK.format(act="relu"))
    (tmp_path / "two" / "lib.net").write_text(BLOCK.format(act="tanh"))
    return tmp_path


def _ops(prog: dslnet.Program) -> list[str]:
    return [node.op for node in prog.ir("Net").nodes]


def _roots(tree: Path, *names: str) -> dslnet.Limits:
    return dslnet.Limits(import_roots=tuple(str(tree / n) for n in names))


def test_an_import_is_found_in_an_import_root(tree: Path) -> None:
    assert _ops(dslnet.load(tree / "app" / "main.net", _roots(tree, "two"))) == ["tanh", "tanh"]


def test_the_first_root_that_has_it_wins(tree: Path) -> None:
    main_file = tree / "app" / "main.net"
    assert _ops(dslnet.load(main_file, _roots(tree, "one", "two"))) == ["relu", "relu"]
    assert _ops(dslnet.load(main_file, _roots(tree, "two", "one"))) == ["tanh", "tanh"]


def test_a_file_beside_the_importing_file_comes_first(tree: Path) -> None:
    (tree / "app" / "lib.net").write_text(BLOCK.format(act="sigmoid"))
    prog = dslnet.load(tree / "app" / "main.net", _roots(tree, "one"))
    assert _ops(prog) == ["sigmoid", "sigmoid"]


def test_imports_inside_a_root_file_are_searched_too(tree: Path) -> None:
    """one/lib.net imports "act.net", which only two/ has."""
    (tree / "one" / "lib.net").write_text('import "acts.net"\n')
    (tree / "two" / "acts.net").write_text(BLOCK.format(act="relu"))
    prog = dslnet.load(tree / "app" / "main.net", _roots(tree, "one", "two"))
    assert _ops(prog) == ["relu", "relu"]


def test_not_found_lists_every_place_looked_at(tree: Path) -> None:
    (tree / "app" / "main.net").write_text(MAIN.replace("lib.net", "nowhere.net"))
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.load(tree / "app" / "main.net", _roots(tree, "one", "two"))
    err = info.value.diagnostics[0]
    assert (err.span.line, err.span.col) == (1, 1)
    for where in ("app", "one", "two"):
        assert str(Path(where) / "nowhere.net") in err.message, err.message
    assert err.message.startswith("import 'nowhere.net' not found (looked for ")


def test_without_roots_nothing_is_searched(tree: Path) -> None:
    with pytest.raises(dslnet.CompileError, match=r"not found \(looked for [^,]*\)"):
        dslnet.load(tree / "app" / "main.net")


def test_the_cli_searches_its_import_roots(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(tree / "app" / "main.net")
    assert main(["check", spec]) == 1
    assert "not found" in capsys.readouterr().out
    assert main(["check", spec, "--import-root", str(tree / "one")]) == 0
    assert (
        main(["compile", spec, "-n", "Net", "--emit", "ir", "--import-root", str(tree / "two")])
        == 0
    )
    assert "tanh" in capsys.readouterr().out


def test_the_spec_library_is_importable_by_name(tmp_path: Path) -> None:
    specs = Path(__file__).resolve().parents[1] / "specs"
    (tmp_path / "my.net").write_text(
        'import "transformer.net"\nnetwork Tiny() {\n    in x: float32[N, T, 8]\n'
        "    out y = GPTBlock(x, heads=2)\n}\n"
    )
    prog = dslnet.load(tmp_path / "my.net", dslnet.Limits(import_roots=(str(specs),)))
    assert prog.ir("Tiny").nodes
