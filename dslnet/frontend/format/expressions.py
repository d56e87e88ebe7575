"""Printing tokens, comments and expressions: the half of the printer (printer.py)
that knows no statements.

The printer walks the tree in source order and takes the source tokens one by
one as it prints them (checking each), so every comment comes out in the same
gap between two tokens as it was written in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from dslnet.frontend.format.doc import (
    Align,
    Comment,
    Doc,
    Fill,
    HardLine,
    Indent,
    Line,
    Text,
    concat,
    group,
)
from dslnet.frontend.format.source import SourceComment, SourceText
from dslnet.frontend.lark_parser import Tree

SPACE = Text(" ")
_LEAVES = {"name", "int", "float", "string", "true", "false"}
_BINARY = {
    "add_op",
    "sub_op",
    "mul_op",
    "div_op",
    "floordiv_op",
    "mod_op",
    "pow_op",
    "or_op",
    "and_op",
    "compare",
}


def _same(doc: Doc) -> Doc:
    return doc


class ExpressionPrinter:
    """Takes the tokens of `source` in order, printing them with the comments before them."""

    def __init__(self, source: SourceText) -> None:
        self.src = source
        self.next_token = 0
        self.next_comment = 0
        self.last_end = 0  # just after the last token taken

    def finish(self) -> None:
        """Every token and comment must have been printed."""
        left = len(self.src.tokens) - self.next_token
        if left or self.next_comment < len(self.src.comments):
            raise AssertionError(f"formatter left {left} tokens or some comments unprinted")

    # --- tokens and comments ---

    def peek(self) -> str:
        """The next token's text ('' at the end)."""
        tokens = self.src.tokens
        return tokens[self.next_token].text if self.next_token < len(tokens) else ""

    def next_start(self) -> int:
        tokens = self.src.tokens
        return (
            tokens[self.next_token].start if self.next_token < len(tokens) else len(self.src.text)
        )

    def take(self, expected: str | None = None) -> Doc:
        """The next token, after the comments before it that are not printed yet."""
        comments = self.comments()
        return concat(*comments, Text(self.skip(expected)))

    def skip(self, expected: str | None = None) -> str:
        """Consume the next token (`expected`, if given) without printing it."""
        token = self.src.tokens[self.next_token]
        if expected is not None and token.text != expected:
            raise AssertionError(f"formatter expected {expected!r} at offset {token.start}")
        self.next_token += 1
        self.last_end = token.end
        return token.text

    def pending_comments(self) -> list[SourceComment]:
        """The comments before the next token not printed yet (now taken)."""
        limit, comments = self.next_start(), self.src.comments
        start = self.next_comment
        while self.next_comment < len(comments) and comments[self.next_comment].pos < limit:
            self.next_comment += 1
        return comments[start : self.next_comment]

    def comments(self, shift: Callable[[Doc], Doc] = _same) -> list[Doc]:
        """The comments before the next token, each where the user had it: after the
        code of a line, or on a line of its own (indented by `shift`: like what follows)."""
        return [
            shift(Comment(c.text, own_line=True)) if c.own_line else Comment(c.text, False)
            for c in self.pending_comments()
        ]

    # --- expressions ---

    def expr(self, tree: Tree) -> Doc:
        """An expression, in the parentheses the user put around it and after any unary
        `+` (the tree drops both: they lie between its container's start and its own)."""
        prefix: list[Doc] = []
        opened = 0
        while self.peek() in ("(", "+") and self.next_start() < tree.meta.start_pos:
            opened += self.peek() == "("
            prefix.append(self.take())
        inner = self.bare_expr(tree)
        if not prefix:
            return inner
        closes = [self.take(")") for _ in range(opened)]
        return group(concat(*prefix, Align(inner), *closes))

    def bare_expr(self, tree: Tree) -> Doc:
        kind, ch = tree.data, tree.children
        if kind in _LEAVES:
            return self.take()
        if kind in _BINARY:
            left = self.expr(ch[0])
            return concat(left, SPACE, self.take(), SPACE, self.expr(ch[-1]))
        if kind == "pipe":
            return self.pipe(tree)
        if kind == "call":
            return concat(self.expr(ch[0]), self.arguments(ch[1]))
        if kind == "attr":
            value = self.expr(ch[0])
            # `1 .x`: written `1.x`, it would lex as the number `1.` and a name.
            last = self.src.tokens[self.next_token - 1].text
            gap = [SPACE] if last.replace("_", "").isdigit() else []
            return concat(value, *gap, self.take("."), self.take())
        if kind == "index":
            value = self.expr(ch[0])
            return concat(value, self.take("["), self.expr(ch[1]), self.take("]"))
        if kind == "negate":
            return concat(self.take("-"), self.expr(ch[0]))
        if kind == "not_op":
            return concat(self.take("not"), SPACE, self.expr(ch[0]))
        if kind == "list":
            return self.bracketed("[", [partial(self.expr, c) for c in ch if c is not None], "]")
        if kind == "tuple":
            items = [partial(self.expr, c) for c in ch if c is not None]
            return self.bracketed("(", items, ")", keep_comma=len(items) == 1)
        if kind == "if_expr":
            return self.if_expr(ch)
        raise AssertionError(f"formatter: unhandled expression {kind}")

    def pipe(self, tree: Tree) -> Doc:
        """`a -> f -> g`: the user's line breaks before `->` kept, more where the
        line is full; continuation lines one indent in."""
        stages = [tree.children[1]]
        node = tree.children[0]  # the parentheses around `tree` are printed already
        while node.data == "pipe" and not _parenthesized(node):
            stages.insert(0, node.children[1])
            node = node.children[0]
        segments: list[list[Doc]] = [[self.expr(node)]]
        for stage in stages:
            before = self.comments(shift=Indent)
            if before:
                segments[-1][-1] = concat(segments[-1][-1], *before)
            user_break = self.src.breaks_between(self.last_end, self.next_start())
            item = concat(self.take("->"), SPACE, *self.comments(shift=Indent), self.expr(stage))
            if user_break:
                segments.append([item])
            else:
                segments[-1].append(item)
        parts: list[Doc] = []
        for segment in segments:
            parts += [Indent(HardLine())] if parts else []
            parts.append(Fill(tuple(segment), Indent(Line())))
        return concat(*parts)

    def if_expr(self, ch: list[Tree]) -> Doc:
        """`if c { a } else { b }` on one line if it fits, else each value on a line
        of its own (all together)."""
        parts = [self.take("if"), SPACE, self.expr(ch[0]), SPACE, *self.branch(ch[1])]
        for k in range(2, len(ch) - 1, 2):
            parts += [SPACE, self.take("elif"), SPACE, self.expr(ch[k]), SPACE]
            parts += self.branch(ch[k + 1])
        parts += [SPACE, self.take("else"), SPACE, *self.branch(ch[-1])]
        return group(concat(*parts))

    def branch(self, value: Tree) -> list[Doc]:
        """`{ value }`, the value on a line of its own when its group breaks."""
        opening = self.take("{")
        head = self.comments()
        inner = concat(*head, Line(), self.expr(value), *self.comments())
        return [opening, Indent(inner), Line(), self.take("}")]

    def arguments(self, args: Tree | None) -> Doc:
        items = [] if args is None else args.children
        return self.bracketed("(", [partial(self.argument, a) for a in items], ")")

    def argument(self, tree: Tree) -> Doc:
        if tree.data == "kwarg":
            return concat(self.take(), self.take("="), self.expr(tree.children[1]))
        return self.expr(tree)

    def bracketed(
        self,
        opener: str,
        items: Sequence[Callable[[], Doc]],
        closer: str,
        keep_comma: bool = False,
    ) -> Doc:
        """`(a, b, c)`: on one line if it fits, else as many items a line as fit,
        aligned after the opener. A trailing comma goes, but for `(a,)` (`keep_comma`)."""
        opening = self.take(opener)
        head = self.comments()
        parts: list[Doc] = []
        for k, item in enumerate(items):
            doc = item()
            if k < len(items) - 1 or keep_comma:
                doc = concat(doc, self.take(","))
            tail = self.comments()
            if self.peek() == "," and k == len(items) - 1 and not keep_comma:
                self.skip(",")
                tail += self.comments()
            parts.append(concat(doc, *tail))
        inner = concat(*head, Fill(tuple(parts))) if parts else concat(*head)
        return group(concat(opening, Align(inner), self.take(closer)))


def _parenthesized(tree: Tree) -> bool:
    """Whether the user wrapped `tree` in parentheses (Lark counts them in its container)."""
    meta = tree.meta
    return bool(getattr(meta, "container_start_pos", meta.start_pos) < meta.start_pos)
