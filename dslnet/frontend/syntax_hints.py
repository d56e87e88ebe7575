"""Syntax errors said in the user's terms, for the mistakes Lark's "unexpected X,
expected Y" explains badly: a misspelt keyword, a statement written outside any
declaration, and a declaration whose `}` is missing (found where the next one starts).

The error messages (syntax_messages.py) ask here first and fall back on their generic one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lark import Token

from dslnet.core.diagnostics import Span, closest

DECLARATION_KEYWORDS = ("import", "const", "block", "network", "train")
STATEMENT_KEYWORDS = ("in", "out", "layer", "const", "for", "repeat", "if", "else", "elif")
ALL_KEYWORDS = frozenset((*DECLARATION_KEYWORDS, *STATEMENT_KEYWORDS, "and", "or", "not", "as"))
# Tokens that start a declaration and never a statement: one of them in a body, at the
# start of a line, means the body before it was not closed.
_DECLARATION_STARTS = {"BLOCK", "NETWORK", "TRAIN", "IMPORT"}
_STATEMENT_WORDS = {"IN": "in", "OUT": "out", "LAYER": "layer", "FOR": "for"}
_STATEMENT_WORDS |= {"REPEAT": "repeat", "IF": "if"}
# What follows a keyword but never a name that starts a statement (`repaet 3 {`).
_AFTER_KEYWORD = ("NAME", "STRING", "INT", "FLOAT")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER = re.compile(r"\b(block|network|train)\s+([A-Za-z_][A-Za-z0-9_]*)")
_INSIDE = "belongs inside a network, block or train declaration"


@dataclass(frozen=True)
class Separator:
    """A statement separator the post-lexer passed on, and the token after it."""

    start: int
    after: Token


@dataclass(frozen=True)
class Unclosed:
    """A declaration not closed before the next one: the error, and where to put the
    missing braces so that the rest of the file parses."""

    message: str
    span: Span
    insert_at: int
    braces: int


def unclosed_declaration(
    token: Token,
    text: str,
    file: str,
    brackets: Sequence[Token],
    separators: Sequence[Separator],
) -> Unclosed | None:
    """`network Net` in column 1 while a body is still open: the body lacks its `}`."""
    if token.type not in _DECLARATION_STARTS or token.column != 1 or not brackets:
        return None
    if any(b.type != "LBRACE" for b in brackets):
        return None  # an open ( or [ is the likelier mistake: the generic message says so
    insert_at = _declaration_gap(token, separators)
    if insert_at is None:
        return None
    opener = brackets[0]
    opened = _header_before(text, opener.start_pos or 0)
    next_name = _WORD.match(text, _skip_spaces(text, token.end_pos or 0))
    new = f"{token} {next_name.group()}" if next_name else str(token)
    missing = "a '}' is missing"
    if len(brackets) > 1:
        inner = brackets[-1]
        missing = f"{len(brackets)} '}}' are missing, the innermost for the '{{' at "
        missing += f"{inner.line}:{inner.column}"
    message = (
        f"{opened} opened at {opener.line}:{opener.column} is not closed before "
        f"{new} at {token.line}:{token.column} ({missing})"
    )
    span = Span(file, token.line or 1, 1, token.end_line or 1, token.end_column or 2)
    return Unclosed(message, span, insert_at, len(brackets))


def _header_before(text: str, brace: int) -> str:
    """`block Mlp`: the header of the declaration whose body opens at `brace` (the last
    one before it outside a comment)."""
    found = "a declaration"
    for m in _HEADER.finditer(text, 0, brace):
        line_start = text.rfind("\n", 0, m.start()) + 1
        if "#" not in text[line_start : m.start()]:
            found = f"{m.group(1)} {m.group(2)}"
    return found


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _declaration_gap(token: Token, separators: Sequence[Separator]) -> int | None:
    """Where the separator before the new declaration (and before its annotations in
    column 1) starts: a brace put there ends the open body on the line of its last
    statement, so no later line or column moves."""
    before = [i for i, sep in enumerate(separators) if _start(sep.after) <= _start(token)]
    if not before:
        return None
    index = before[-1]
    while index > 0 and _annotation_line(separators[index - 1].after):
        index -= 1
    return separators[index].start


def _start(token: Token) -> int:
    return token.start_pos or 0


def _annotation_line(token: Token) -> bool:
    return token.type == "AT" and token.column == 1


@dataclass(frozen=True)
class KeywordTypo:
    """A word where a keyword belongs, close to one: `netwrok` at text[start:end]."""

    start: int
    end: int
    meant: str


def misspelt_keyword(token: Token, text: str, stmt_start: int, in_body: bool) -> KeywordTypo | None:
    """The misspelt keyword that starts the statement at `stmt_start`, if the parse
    broke on it (`token`) or right after it."""
    word = _WORD.match(text, stmt_start)
    if word is None or not _on_first_word(token, text, word):
        return None
    first = word.group()
    at_word = token.start_pos == stmt_start
    if first in ALL_KEYWORDS or not (at_word or token.type in _AFTER_KEYWORD):
        return None
    candidates = STATEMENT_KEYWORDS if in_body else DECLARATION_KEYWORDS
    close = closest(first, candidates) or _transposed(first, candidates)
    if close is None or close == first:
        return None
    return KeywordTypo(word.start(), word.end(), close)


def _on_first_word(token: Token, text: str, word: re.Match[str]) -> bool:
    """Whether the parse broke at the statement's first word or at the next token."""
    if (token.start_pos or 0) < word.start():
        return False
    right_after = text[word.end() : token.start_pos or 0].strip(" \t") == ""
    return token.start_pos == word.start() or right_after


def keyword_or_placement(
    token: Token, text: str, file: str, stmt_start: int, in_body: bool
) -> tuple[str, Span] | None:
    """A misspelt keyword (`netwrok Net() {`), or a statement at the top level of a
    file (`in x: ...`, `x = 3`), said so."""
    typo = misspelt_keyword(token, text, stmt_start, in_body)
    if typo is not None:
        written = text[typo.start : typo.end]
        span = _word_span(text, file, typo.start, typo.end)
        return f"unknown keyword '{written}' (did you mean '{typo.meant}'?)", span
    word = _WORD.match(text, stmt_start)
    if word is None or not _on_first_word(token, text, word):
        return None
    first = word.group()
    at_word = token.start_pos == stmt_start
    span = _word_span(text, file, word.start(), word.end())
    if in_body or not at_word:
        return None
    if token.type in _STATEMENT_WORDS:
        what = _STATEMENT_WORDS[token.type]
        return f"'{what}' {_INSIDE}, not at the top level of a file", span
    if token.type == "NAME" and re.match(r"\s*(,\s*[A-Za-z_]\w*\s*)*=(?!=)", text[word.end() :]):
        return (
            f"an assignment {_INSIDE}; a value for the whole file is a constant: "
            f"const {first} = ...",
            span,
        )
    return None


def _transposed(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate `word` is with two neighbouring letters swapped (`ni` for `in`)."""
    for i in range(len(word) - 1):
        swapped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if swapped in candidates:
            return swapped
    return None


def _word_span(text: str, file: str, start: int, end: int) -> Span:
    line = text.count("\n", 0, start) + 1
    col = start - text.rfind("\n", 0, start)
    return Span(file, line, col, line, col + end - start)
