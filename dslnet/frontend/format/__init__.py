"""`dslnet fmt`: the canonical text of a spec.

source.py finds what the parse tree drops (tokens, comments, line breaks),
printer.py turns the tree into a layout document (expressions.py the tokens,
comments and expressions in it), doc.py lays it out in `WIDTH` columns.
"""

from __future__ import annotations

from lark.exceptions import UnexpectedInput

from dslnet.core.diagnostics import CompileError, Diagnostics, SourceMap
from dslnet.frontend.format.doc import render
from dslnet.frontend.format.printer import module_doc
from dslnet.frontend.format.source import SourceText, SourceToken
from dslnet.frontend.lark_parser import Tree
from dslnet.frontend.nesting import NestingError
from dslnet.frontend.parser import concrete_syntax, parse

__all__ = ["format_source"]


def format_source(text: str, filename: str) -> str:
    """The canonical text of the spec `text`; `filename` names it in errors.

    Raises CompileError with located diagnostics when `text` does not parse (only
    the syntax matters: a spec whose names or shapes are wrong still formats).
    """
    try:
        tree, source = _concrete(text)
    except (UnexpectedInput, NestingError):
        raise _syntax_errors(text, filename) from None
    formatted = render(module_doc(tree, source))
    # The layout must never change what a spec says. Lark trees compare without their
    # positions, and their tokens by text: the same tree is the same spec.
    try:
        same = _concrete(formatted)
    except UnexpectedInput:
        same = None
    if same is None or same[0] != tree or _comments(same[1]) != _comments(source):
        raise AssertionError(f"dslnet fmt would change what {filename} says (a formatter bug)")
    return formatted


def _syntax_errors(text: str, filename: str) -> CompileError:
    """Every syntax error of `text`, located, as `dslnet check` reports them."""
    diags = Diagnostics()
    parse(text, filename, diags)
    sources = SourceMap()
    sources.add(filename, text)
    return CompileError(diags.errors(), sources)


def _concrete(text: str) -> tuple[Tree, SourceText]:
    tree, tokens = concrete_syntax(text)
    spans = (SourceToken(str(t), t.start_pos or 0, t.end_pos or 0) for t in tokens)
    return tree, SourceText(text, spans)


def _comments(source: SourceText) -> list[str]:
    return [c.text for c in source.comments]
