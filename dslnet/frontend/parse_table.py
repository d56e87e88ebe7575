"""The LALR parser of the grammar, built once and shipped with the package.

Building lark's LALR tables from dslnet.lark takes longer than checking a small spec.
`make parse-table` (`python -m dslnet.frontend.parse_table`) writes them as JSON beside
the grammar (grammar/lalr_table.json, package data of dslnet.grammar), stamped with a
digest of the grammar, the options and the lark version; the parser loads them when
the stamp matches and builds the tables itself otherwise (a grammar being edited,
another lark). JSON, not a pickle or a Python module: it is data that cannot run code,
and reads fast without a bytecode cache. Nothing is read from a cache directory a
user could write to. tests/test_parse_table.py fails when the shipped tables are stale.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import lark
from lark.grammar import Rule
from lark.lexer import TerminalDef

from dslnet.frontend.nesting import DepthTree

TABLE_FILE = "lalr_table.json"
# How the grammar is parsed; the post-lexer and tree class are given at load time.
OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "lexer": "basic",  # the post-lexer looks one token ahead: no parser state to lex in
    "propagate_positions": True,
    "maybe_placeholders": True,
}
_LIVE_OPTIONS = ("postlex", "tree_class")  # objects, not data: never written


def grammar_text() -> str:
    return resources.files("dslnet.grammar").joinpath("dslnet.lark").read_text("utf-8")


def stamp(grammar: str) -> str:
    """What the tables were built from: the grammar, lark's version and the options."""
    key = f"{lark.__version__}\n{sorted(OPTIONS.items())}\n{grammar}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def build(grammar: str, postlex: Any) -> lark.Lark:
    """The parser, its tables built from `grammar` now."""
    # tree_class stops a parse at the first node nested too deep.
    return lark.Lark(grammar, postlex=postlex, tree_class=DepthTree, **OPTIONS)


def load(grammar: str, postlex: Any) -> lark.Lark:
    """The parser from the shipped tables when they were built from `grammar` by this
    lark with these options; else built now."""
    table = _shipped()
    if table is None or table.get("stamp") != stamp(grammar):
        return build(grammar, postlex)
    # What lark's own standalone parsers load their tables with (untyped in lark).
    parser: lark.Lark = lark.Lark._load_from_dict(  # type: ignore[no-untyped-call]
        table["data"],
        table["memo"],
        postlex=postlex,
        tree_class=DepthTree,
        propagate_positions=OPTIONS["propagate_positions"],
    )
    return parser


def _shipped() -> dict[str, Any] | None:
    try:
        text = resources.files("dslnet.grammar").joinpath(TABLE_FILE).read_text("utf-8")
    except OSError:  # not shipped (a source tree before `make parse-table`)
        return None
    table: dict[str, Any] = json.loads(text, object_hook=_decoded)
    return table


# lark's tables hold tuples and int-keyed dicts, which JSON has not: they are written
# tagged, and read back as they were (tests/test_parse_table.py checks the round trip).
_TUPLE, _ITEMS = "__tuple__", "__items__"


def _encoded(value: Any) -> Any:
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not {_TUPLE, _ITEMS} & set(value):
            return {k: _encoded(v) for k, v in value.items()}
        return {_ITEMS: [[_encoded(k), _encoded(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {_TUPLE: [_encoded(v) for v in value]}
    if isinstance(value, list):
        return [_encoded(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"lark's tables hold a {type(value).__name__}, which JSON cannot carry")


def _decoded(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if _TUPLE in obj:
            return tuple(obj[_TUPLE])
        if _ITEMS in obj:
            return {k: v for k, v in obj[_ITEMS]}
    return obj


def tables(grammar: str) -> dict[str, Any]:
    """The stamped tables of `grammar`, as lark serializes them."""
    parser = build(grammar, None)
    data, memo = parser.memo_serialize([TerminalDef, Rule])
    data = {**data, "options": {k: v for k, v in data["options"].items() if k not in _LIVE_OPTIONS}}
    return {"stamp": stamp(grammar), "data": data, "memo": memo}


def table_text(grammar: str) -> str:
    """The text of the table file for `grammar`."""
    return json.dumps(_encoded(tables(grammar)), separators=(",", ":")) + "\n"


def main() -> None:
    """Write the table file beside the grammar."""
    target = Path(str(resources.files("dslnet.grammar").joinpath(TABLE_FILE)))
    target.write_text(table_text(grammar_text()), encoding="utf-8")
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
