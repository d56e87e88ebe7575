"""The generic message of a syntax error: what was found, and what was expected.

`describe_error` turns lark's UnexpectedInput into a located message: a specific
hint from syntax_hints when one applies, else "unexpected X: expected Y" with the
expected tokens in words (an expression, an operator, a bracket left open at
line:col) rather than terminal names.
"""

from __future__ import annotations

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dslnet.core.diagnostics import Span
from dslnet.frontend.lark_parser import CLOSE_WORD, CLOSERS, LarkParser
from dslnet.frontend.syntax_hints import keyword_or_placement

_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "_NL": "a newline",
    "$END": "the end of the file",
    "COMP_OP": "a comparison",
}
_EXPRESSION_STARTS = {"NAME", "INT", "LPAR", "LSQB"}
_ARITHMETIC = {"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "_FLOORDIV", "_POW"}
_OPERATORS = {*_ARITHMETIC, "_ARROW", "COMP_OP"}
_PIPE = "_ARROW"


def _token_words(kind: str, parser: LarkParser) -> str:
    if kind in _WORDS:
        return _WORDS[kind]
    term = parser.terminals.get(kind)
    if term is not None and term.pattern.type == "str":
        return f"'{term.pattern.value}'"
    return kind.lower()


def _found(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "end of statement" if str(token).lstrip().startswith(";") else "end of line"
    if token.type == "NAME":
        return f"name '{token}'"
    if token.type in ("INT", "FLOAT"):
        return f"number {token}"
    if token.type == "STRING":
        return f"string {token}"
    return f"'{token}'"


def _expected(expected: set[str], parser: LarkParser) -> list[str]:
    names = set(expected)
    words: list[str] = []
    if names >= _EXPRESSION_STARTS:
        words.append("an expression")
        names -= _EXPRESSION_STARTS | {
            "FLOAT",
            "STRING",
            "MINUS",
            "PLUS",
            "IF",
            "TRUE",
            "FALSE",
            "NOT",
        }
    if len(names & _OPERATORS) >= 3:
        words.append("an operator")
        names -= _OPERATORS
        names -= {"_ARROW", "DOT", "OR", "AND", "LSQB", "LPAR", "SLASH", "STAR", "PERCENT"}
    words += sorted(_token_words(n, parser) for n in names)
    return words


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def describe_error(
    err: UnexpectedInput, text: str, file: str, parser: LarkParser
) -> tuple[str, Span]:
    state = parser.postlex.state
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else "?"
        span = Span(file, err.line, err.column, err.line, err.column + 1)
        if ch == '"':
            return "unterminated string: a string must end with '\"' on the same line", span
        what = "a tab" if ch == "\t" else repr(ch)
        return f"unexpected character {what}", span
    assert isinstance(err, (UnexpectedToken, UnexpectedEOF))
    token: Token = err.token
    expected = set(err.expected)
    interactive = getattr(err, "interactive_parser", None)
    if interactive is not None:
        # LALR merges states: `err.expected` may list tokens that would fail one
        # reduction later. Ask the parser which tokens it really accepts here.
        expected = set(interactive.accepts())
    span = _token_span(token, text, file)
    in_body = any(b.type == "LBRACE" for b in state.brackets)
    hint = keyword_or_placement(token, text, file, state.stmt_start, in_body)
    if hint is not None:
        return hint
    message = f"unexpected {_found(token)}"
    if state.brackets:
        # A statement that ran on past a bracket it never closed: say which one.
        # A '{' body spans lines by design: only the end of the file leaves it open.
        opener = state.brackets[-1]
        closer_kind = next(k for k, v in CLOSERS.items() if v == opener.type)
        if opener.type == "LBRACE":
            ran_on = token.type == "$END"
        else:
            ran_on = token.type in ("$END", "_NL", "RBRACE") or (token.line or 0) > (
                opener.line or 0
            )
        if closer_kind in expected and ran_on:
            closer = _token_words(closer_kind, parser)
            where = f"{opener.line}:{opener.column}"
            opened = f"{CLOSE_WORD[opener.type]} opened at {where}"
            return f"{message}: expected {closer} to close {opened}", span
    if state.brackets and state.brackets[-1].type != "LBRACE":
        expected.discard("_NL")  # newlines inside brackets are dropped, never expected
    if token.type in _ARITHMETIC and token.type not in expected and _PIPE in expected:
        return (
            f"{message} after a pipeline stage: '->' binds looser than arithmetic, "
            f"so write (x -> f) {token} y"
        ), span
    if "_NL" in expected and token.type not in ("_NL", "$END"):
        ops = "an operator or " if expected & _OPERATORS else ""
        return f"{message}: expected {ops}the end of the statement (a newline or ';')", span
    words = _expected(expected, parser)
    if words:
        message += f": expected {_join(words[:6])}"
    return message, span


def _token_span(token: Token, text: str, file: str) -> Span:
    if token.type == "$END" or token.line is None:
        # Just after the last character, on a line that has text (so it can be shown).
        end = len(text.rstrip())
        line = text.count("\n", 0, end) + 1
        col = end - (text.rfind("\n", 0, end) + 1) + 1
        return Span(file, line, col, line, col + 1)
    line, col = token.line or 1, token.column or 1
    if token.type == "_NL":
        # Point at the end of the line the statement broke on.
        return Span(file, line, col, line, col + 1)
    return Span(file, line, col, token.end_line or line, token.end_column or col + 1)
