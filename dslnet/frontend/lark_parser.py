"""The Lark parser of the grammar (one per thread) and its post-lexer.

The post-lexer shapes the token stream the LALR tables expect (newlines inside
brackets and before a continued `->` pipeline dropped, misspelt keywords read as
the keyword meant) and records what it has seen (open brackets, where the current
statement started, the last separators): the error messages and the recovery read
that state when a parse fails. `Tree` is the type of the trees Lark builds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lark import Token
from lark import Tree as _LarkTree

from dslnet.frontend import parse_table
from dslnet.frontend.nesting import NestingCounter
from dslnet.frontend.syntax_hints import Separator

Tree = _LarkTree[Any]
_OPENERS = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
CLOSERS = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}
CLOSE_WORD = {"LPAR": "'('", "LSQB": "'['", "LBRACE": "'{'"}


@dataclass
class LexState:
    """What the post-lexer has seen; read when an error is reported."""

    brackets: list[Token] = field(default_factory=list)
    stmt_start: int = 0
    sep_end: int = 0  # just after the last statement separator
    # The last separators and the token after each (where a missing '}' goes).
    separators: deque[Separator] = field(default_factory=lambda: deque(maxlen=64))


class PostLexer:
    """Drops newlines inside (...) and [...] and before a line that starts with `->`
    (a pipeline continued on the next line), and tracks open brackets. Reads each
    misspelt keyword in `keywords` (start -> keyword token type) as the keyword meant."""

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.state = LexState()
        self.keywords: dict[int, str] = {}

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        if self.keywords:  # only after a misspelt keyword: no cost on a good file
            stream = _retyped(stream, self.keywords)
        self.state = state = LexState()
        nesting = NestingCounter()
        after_newline = True
        pending: Token | None = None  # a statement break, held until we see what follows
        for tok in stream:
            kind = tok.type
            if kind == "_NL":
                if state.brackets and state.brackets[-1].type != "LBRACE":
                    continue
                pending = pending or tok
                continue
            if pending is not None:
                if kind != "_ARROW":
                    after_newline = True
                    state.sep_end = pending.end_pos or 0
                    state.separators.append(Separator(pending.start_pos or 0, tok))
                    yield pending
                pending = None
            if after_newline:
                state.stmt_start = tok.start_pos or 0
                after_newline = False
            if kind in _OPENERS:
                state.brackets.append(tok)
            elif kind in CLOSERS and state.brackets and state.brackets[-1].type == CLOSERS[kind]:
                state.brackets.pop()
            nesting.see(tok, len(state.brackets))
            yield tok
        if pending is not None:
            state.sep_end = pending.end_pos or 0
            yield pending


def _retyped(stream: Iterator[Token], keywords: dict[int, str]) -> Iterator[Token]:
    for tok in stream:
        if tok.type == "NAME" and tok.start_pos in keywords:
            # Its own text and position stay: every line:col reported later is the file's.
            tok = Token.new_borrow_pos(keywords[tok.start_pos], str(tok), tok)
        yield tok


class LarkParser:
    def __init__(self) -> None:
        self.postlex = PostLexer()
        self.lark = parse_table.load(parse_table.grammar_text(), self.postlex)
        self.terminals = {t.name: t for t in self.lark.terminals}
        self.keyword_types = {
            t.pattern.value: t.name for t in self.lark.terminals if t.pattern.type == "str"
        }


_local = threading.local()


def lark_parser() -> LarkParser:
    parser: LarkParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = LarkParser()
    return parser
