"""Tokens and values of the printed IR text (what dslnet.ir.printer writes).

One `LineReader` reads one line: names, numbers, strings, punctuation and the
trailing `# ...` comment, with 1-based columns for located errors. The values it
reads are the printer's `format_value` read back: `true`/`false`/`none`, ints,
floats, strings, lists (as tuples), dtype names and symbolic dimensions
(`2*H + 1`, `floor(W/2)`), rebuilt through dslnet.core.symbolic so that they print
the same again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn

from dslnet.core import symbolic
from dslnet.core.diagnostics import CompileError, Diagnostic, Severity, SourceMap, Span
from dslnet.core.symbolic import Dim, SymExpr
from dslnet.core.types import DType, TensorType

_TOKEN = re.compile(
    r"""(?P<space>[ \t]+)
    | (?P<float>\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)
    | (?P<int>\d+)
    | (?P<name>[A-Za-z_]\w*(?:[.@]\w+)*)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<comment>\#.*)
    | (?P<punct>\*\*|[()\[\],:=@*+\-/])""",
    re.X,
)
_DTYPES = {d.value: d for d in DType}
_ESCAPES = {"n": "\n", "t": "\t"}  # as in a spec's strings; others stand for themselves
_FLOAT_WORDS = {"inf": float("inf"), "nan": float("nan")}  # repr() of such floats


class IRParseError(CompileError):
    """IR text that cannot be read back: one located diagnostic, with its line shown."""

    def __init__(self, message: str, span: Span, text: str):
        sources = SourceMap()
        sources.add(span.file, text)
        self.message, self.span = message, span
        super().__init__([Diagnostic(Severity.ERROR, message, span)], sources)


@dataclass(frozen=True)
class Token:
    kind: str  # name, int, float, string, comment, punct or end
    text: str
    col: int  # 1-based


class LineReader:
    """The tokens of one line of IR text and a cursor over them."""

    def __init__(self, line: str, number: int, file: str, text: str) -> None:
        self.number, self.file, self.text = number, file, text
        self.tokens: list[Token] = []
        pos = 0
        while pos < len(line):
            match = _TOKEN.match(line, pos)
            if match is None:
                self.fail(f"unexpected character {line[pos]!r}", pos + 1)
            kind = match.lastgroup or ""
            if kind != "space":
                self.tokens.append(Token(kind, match.group(), pos + 1))
            pos = match.end()
        self.tokens.append(Token("end", "", len(line) + 1))
        self.pos = 0

    def span(self, col: int, width: int = 1) -> Span:
        return Span(self.file, self.number, col, self.number, col + max(width, 1))

    def fail(self, message: str, col: int, width: int = 1) -> NoReturn:
        raise IRParseError(message, self.span(col, width), self.text)

    def fail_at(self, token: Token, message: str) -> NoReturn:
        self.fail(message, token.col, len(token.text))

    @property
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def accept(self, text: str) -> bool:
        if self.peek.kind in ("punct", "name") and self.peek.text == text:
            self.next()
            return True
        return False

    def expect(self, text: str) -> Token:
        if self.peek.kind not in ("punct", "name") or self.peek.text != text:
            self.fail(f"expected '{text}', found {_shown(self.peek)}", self.peek.col)
        return self.next()

    def name(self, what: str = "a name") -> Token:
        if self.peek.kind != "name":
            self.fail(f"expected {what}, found {_shown(self.peek)}", self.peek.col)
        return self.next()

    def int(self) -> int:
        negative = self.accept("-")
        if self.peek.kind != "int":
            self.fail(f"expected an integer, found {_shown(self.peek)}", self.peek.col)
        value = int(self.next().text)
        return -value if negative else value

    def location(self) -> Span | None:
        """The `# file:line:col` that ends node and module lines, if there is one."""
        if self.peek.kind != "comment":
            return None
        token = self.next()
        file, _, place = token.text[1:].strip().rpartition(":")
        file, _, line = file.rpartition(":")
        if not (file and line.isdigit() and place.isdigit()):
            self.fail_at(token, "expected a location 'file:line:col' after '#'")
        return Span(file, int(line), int(place), int(line), int(place))

    def end(self) -> None:
        if self.peek.kind != "end":
            self.fail(f"unexpected {_shown(self.peek)}", self.peek.col)

    # Values, types and dimensions.

    def ttype(self) -> TensorType:
        """`float32[N, 3, H, W]`"""
        dtype = self.dtype()
        return TensorType(dtype=dtype, shape=tuple(self.bracketed(self.dim)))

    def dtype(self) -> DType:
        token = self.name("a dtype")
        if token.text not in _DTYPES:
            self.fail_at(token, f"unknown dtype '{token.text}'")
        return _DTYPES[token.text]

    def bracketed(self, item: Any) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        while not self.accept("]"):
            if items:
                self.expect(",")
            items.append(item())
        return items

    def value(self) -> Any:
        """An attribute or argument, as `format_value` writes it."""
        token = self.peek
        if token.text == "[":
            return tuple(self.bracketed(self.value))
        if token.kind == "string":
            self.next()
            return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), token.text[1:-1])
        if token.kind == "name" and token.text in ("true", "false", "none"):
            self.next()
            return {"true": True, "false": False, "none": None}[token.text]
        if token.kind == "name" and token.text in _DTYPES:
            return self.dtype()
        negative = token.text == "-" and self.tokens[self.pos + 1].kind in ("float", "name")
        after = self.tokens[self.pos + 1] if negative else token
        if after.kind == "float" or (after.kind == "name" and after.text in _FLOAT_WORDS):
            self.pos += 2 if negative else 1
            number = _FLOAT_WORDS.get(after.text) or float(after.text)
            return -number if negative else number
        return self.dim()

    def dim(self) -> Dim:
        """`N`, `2*H + 1`, `floor((W - 1)/2) + 1`: a sum of products of powers."""
        total: Dim = 0
        sign = -1 if self.accept("-") else 1
        while True:
            total = symbolic.add(total, symbolic.mul(sign, self._product()))
            if self.accept("+"):
                sign = 1
            elif self.accept("-"):
                sign = -1
            else:
                return total

    def _product(self) -> Dim:
        result = self._power()
        while self.accept("*"):
            result = symbolic.mul(result, self._power())
        return result

    def _power(self) -> Dim:
        base = self._atom()
        if not self.accept("**"):
            return base
        result: Dim = 1
        for _ in range(self.int()):
            result = symbolic.mul(result, base)
        return result

    def _atom(self) -> Dim:
        token = self.next()
        if token.kind == "int":
            return int(token.text)
        if token.text == "(":
            inner = self.dim()
            self.expect(")")
            return inner
        if token.kind == "name" and token.text == "floor" and self.accept("("):
            num = self.dim()
            self.expect("/")
            den = self.dim()
            self.expect(")")
            return symbolic.floordiv(num, den)
        if token.kind == "name":
            return SymExpr.symbol(token.text)
        self.fail_at(token, f"expected a size, found {_shown(token)}")


def _shown(token: Token) -> str:
    return "the end of the line" if token.kind == "end" else f"'{token.text}'"
