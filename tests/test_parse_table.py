"""The LALR tables shipped beside the grammar (grammar/lalr_table.json): current, read
back exactly as lark wrote them, and parsing as a parser built from the grammar does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dslnet.frontend import parse_table
from dslnet.frontend.lark_parser import PostLexer

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.net")) + sorted((ROOT / "tests" / "errors").glob("*.net"))


@pytest.fixture(scope="module")
def grammar() -> str:
    return parse_table.grammar_text()


def test_the_shipped_tables_are_those_of_the_grammar(grammar: str) -> None:
    shipped = parse_table._shipped()
    assert shipped is not None, "grammar/lalr_table.json is missing: run `make parse-table`"
    assert shipped["stamp"] == parse_table.stamp(grammar), (
        "grammar/lalr_table.json is stale (the grammar, lark or the options changed): "
        "run `make parse-table`"
    )


def test_the_tables_read_back_as_lark_wrote_them(grammar: str) -> None:
    """Tuples and int-keyed dicts, which JSON has not, survive the file."""
    tables = parse_table.tables(grammar)
    text = parse_table.table_text(grammar)
    assert json.loads(text, object_hook=parse_table._decoded)["stamp"] == tables["stamp"]
    again = json.loads(json.dumps(parse_table._encoded(tables)), object_hook=parse_table._decoded)
    assert again == tables


def test_the_encoding_keeps_tuples_and_int_keys() -> None:
    value = {"a": (1, [2, (3,)]), 4: {5: "x"}, "__tuple__": ()}
    text = json.dumps(parse_table._encoded(value))
    back = json.loads(text, object_hook=parse_table._decoded)
    assert back == value and isinstance(back["a"], tuple) and isinstance(back["a"][1][1], tuple)


def test_loaded_and_built_parsers_give_the_same_trees(grammar: str) -> None:
    loaded = parse_table.load(grammar, PostLexer())
    built = parse_table.build(grammar, PostLexer())
    assert loaded.parser is not built.parser
    compared = 0
    for spec in SPECS:
        text = spec.read_text("utf-8")
        try:
            want = built.parse(text)
        except Exception as err:  # a syntax error of the corpus: the same one
            with pytest.raises(type(err)):
                loaded.parse(text)
            continue
        assert loaded.parse(text) == want, spec.name
        compared += 1
    assert compared >= 20
    assert [t.name for t in loaded.terminals] == [t.name for t in built.terminals]


def test_a_grammar_other_than_the_tables_is_built_from(
    grammar: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    build = parse_table.build

    def recorded(grammar: str, postlex: object) -> object:
        built.append(grammar)
        return build(grammar, postlex)

    monkeypatch.setattr(parse_table, "build", recorded)
    parse_table.load(grammar, PostLexer())
    assert built == []  # the shipped tables
    edited = grammar + "\n// a comment changes the stamp\n"
    parser = parse_table.load(edited, PostLexer())
    assert built == [edited]
    assert parser.parse("network N() {\n    in x: float32[B, 2]\n    out y = x\n}\n")
