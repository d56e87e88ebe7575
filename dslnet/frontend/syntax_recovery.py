"""Statement-level recovery after a syntax error: what to blank out before parsing again.

`recovery_region` finds the text of the broken statement (braces it opens closed,
never a '}' of an enclosing body), `blank` replaces it with spaces keeping the line
numbers, and `declared_names` tells which names the lost statement declared, so
later phases do not report their uses as unknown.
"""

from __future__ import annotations

import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dslnet.frontend.lark_parser import LexState
from dslnet.frontend.syntax_hints import KeywordTypo, misspelt_keyword


def keyword_typo(err: UnexpectedInput, text: str, state: LexState) -> KeywordTypo | None:
    """The misspelt keyword `describe_error` reported for `err`, if it did."""
    if not isinstance(err, (UnexpectedToken, UnexpectedEOF)):
        return None
    in_body = any(b.type == "LBRACE" for b in state.brackets)
    return misspelt_keyword(err.token, text, state.stmt_start, in_body)


def blank(text: str) -> str:
    """`text` with every character but newlines a space (line numbers stay); a run at
    a time, not a character: a megabyte line must not cost a match object a byte."""
    return _LINE_RUN.sub(lambda run: " " * len(run.group()), text)


_LINE_RUN = re.compile(r"[^\n]+")


def recovery_region(text: str, err: UnexpectedInput, state: LexState) -> tuple[int, int] | None:
    """The text span of the broken statement, to blank out before parsing again."""
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        if text[pos : pos + 1] == '"':
            # An unterminated string: the rest of its statement is lost with it.
            start = min(max(state.stmt_start, state.sep_end), pos)
            line_end = text.find("\n", pos)
            end = _statement_end(text, start, len(text) if line_end < 0 else line_end)
            return start, max(end, pos + 1)
        # A stray character: blank only it, the statement may well be fine.
        return pos, pos + 1
    token: Token = getattr(err, "token")  # noqa: B009 (UnexpectedToken and UnexpectedEOF)
    if token.type == "$END":
        return None
    err_pos = token.start_pos if token.start_pos is not None else len(text)
    start = min(state.stmt_start, err_pos)
    line_end = text.find("\n", err_pos)
    if line_end < 0:
        line_end = len(text)
    if state.brackets and state.brackets[-1].type != "LBRACE":
        # An unclosed ( or [: if the statement ran on into a later line, that line
        # is the next statement; keep it.
        opener_line_start = text.rfind("\n", 0, state.brackets[-1].start_pos or 0) + 1
        err_line_start = text.rfind("\n", 0, err_pos) + 1
        if err_line_start > opener_line_start:
            return (start, err_line_start) if err_line_start > start else None
    # A statement cut short by its newline ends at that newline.
    min_end = err_pos if token.type == "_NL" else max(line_end, err_pos + 1)
    end = _statement_end(text, start, min_end)
    return (start, end) if end > start else None


def _statement_end(text: str, start: int, min_end: int) -> int:
    """Extend [start, min_end) so that braces it opens are closed and it never
    swallows a '}' that closes an enclosing body."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if ch == '"':
            close = text.find('"', i + 1)
            nl = text.find("\n", i + 1)
            if nl < 0:
                nl = n
            i = close + 1 if 0 <= close < nl else nl  # an unterminated one ends at its line
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        elif ch == "\n" and i >= min_end and depth == 0:
            return i
        i += 1
    return n


_DECLARED = re.compile(
    # `block B(`, `layer fc =`, `in x:`, and the same after a misspelt keyword
    r"^\s*(?:[A-Za-z_]\w*\s+(\w+)\s*[({=:]|in\s+(\w+)\b"
    r"|for\s+\(?\s*(\w+(?:\s*,\s*\w+)*)|(\w+(?:\s*,\s*\w+)*)\s*=[^=])"
)


def declared_names(snippet: str) -> set[str]:
    m = _DECLARED.match(snippet)
    if m is None:
        return set()
    found = next(g for g in m.groups() if g is not None)
    return {n.strip() for n in found.split(",")}
