"""A spec's parse tree as a layout document (doc.py): canonical spacing, the
user's comments, single blank lines and pipeline breaks kept, the rest decided
by the width.

The printer walks the tree in source order and takes the source tokens one by
one as it prints them (checking each), so every comment comes out in the same
gap between two tokens as it was written in. The language allows a line break
only in some gaps (inside ( and [, before `->`, between statements); a comment
ends its line, so it was in such a gap, and it stays in one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import lark

from dslnet.frontend.format.doc import (
    Align,
    Choice,
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
from dslnet.frontend.parser import Tree

SPACE = Text(" ")
_LEAVES = {"name", "int", "float", "string", "true", "false"}
_BINARY = {"add", "sub", "mul", "div", "floordiv", "mod", "or_op", "and_op", "compare"}
_ONE_LINERS = {"in_stmt", "out_named", "out_anon", "assign_stmt", "layer_stmt", "const_decl"}


def module_doc(tree: Tree, source: SourceText) -> Doc:
    """The document of a whole file: `tree` is the Lark tree of `source.text`."""
    printer = _TreePrinter(source)
    doc = printer.module(tree)
    printer.finish()
    return doc


def _same(doc: Doc) -> Doc:
    return doc


class _TreePrinter:
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

    # --- declarations and statements ---

    def module(self, tree: Tree) -> Doc:
        return concat(*self.lines(tree.children, self.declaration))

    def lines(self, items: Sequence[Tree], make: Callable[[Tree], Doc]) -> list[Doc]:
        """Statements one a line, with the comments between them and single blank
        lines where the user had some (none before the first line of a body or file)."""
        parts: list[Doc] = []
        started = False  # a line of this list was printed: a blank line may follow
        for item in items:
            started = self.comment_lines(parts, started)
            blank = started and self.src.blank_line_before(self.next_start())
            parts += [HardLine(blank=blank), make(item)]
            started = True
        self.comment_lines(parts, started)
        return parts

    def comment_lines(self, parts: list[Doc], started: bool) -> bool:
        """Add the comments before the next statement to `parts`: one after the code of
        the line before, the others on lines of their own. Whether a line was printed."""
        for c in self.pending_comments():
            if c.own_line:
                parts += [HardLine(blank=started and c.blank_before), Comment(c.text, True)]
                started = True
            else:
                parts.append(Comment(c.text, own_line=False))
        return started

    def declaration(self, tree: Tree) -> Doc:
        kind = tree.data
        if kind == "import_decl":
            return concat(self.take("import"), SPACE, self.take())
        if kind == "const_decl":
            return self.statement(tree)
        notes, (_name, params, body) = _split_annotations(tree)
        keyword = "block" if kind == "block_decl" else "network"
        return concat(
            *[self.annotation(n) for n in notes],
            self.take(keyword),
            SPACE,
            self.take(),
            self.parameters(params),
            SPACE,
            self.body(body),
        )

    def parameters(self, params: Tree | None) -> Doc:
        items = [] if params is None else params.children
        return self.bracketed("(", [partial(self.parameter, p) for p in items], ")")

    def parameter(self, tree: Tree) -> Doc:
        _name, type_name, default = tree.children
        parts = [self.take()]
        if type_name is not None:
            parts += [self.take(":"), SPACE, self.take()]
        if default is not None:
            parts += [SPACE, self.take("="), SPACE, self.expr(default)]
        return concat(*parts)

    def annotation(self, tree: Tree) -> Doc:
        """`@name(args)`, then a line break where the user had one, else a space."""
        _name, args = tree.children
        parts = [self.take("@"), self.take()]
        if self.peek() == "(":
            parts.append(self.arguments(args))
        parts += self.comments()
        own_line = self.src.breaks_between(self.last_end, self.next_start())
        parts.append(HardLine() if own_line else SPACE)
        return concat(*parts)

    def body(self, tree: Tree) -> Doc:
        """`{ ... }`: one statement a line; a lone simple statement the user wrote on
        the brace's line stays there while it fits."""
        opening = self.take("{")
        statements = tree.children
        one_line = (
            len(statements) == 1
            and statements[0].data in _ONE_LINERS
            and not self.src.breaks_between(tree.meta.start_pos, tree.meta.end_pos)
        )
        if one_line:
            statement = self.statement(statements[0])
            closing = self.take("}")
            return Choice(
                concat(opening, SPACE, statement, SPACE, closing),
                concat(opening, Indent(concat(HardLine(), statement)), HardLine(), closing),
            )
        inner = self.lines(statements, self.statement)
        if not inner:
            return concat(opening, self.take("}"))
        return concat(opening, Indent(concat(*inner)), HardLine(), self.take("}"))

    def statement(self, tree: Tree) -> Doc:
        kind, ch = tree.data, tree.children
        if kind == "in_stmt":
            name = concat(self.take("in"), SPACE, self.take(), self.take(":"), SPACE)
            return concat(name, self.tensor_type(ch[1]))
        if kind == "const_decl":
            return concat(self.take("const"), SPACE, self.binding(ch[1]))
        if kind in ("out_named", "out_anon", "assign_stmt", "layer_stmt"):
            notes, rest = _split_annotations(tree)
            return concat(*[self.annotation(n) for n in notes], self.value_statement(kind, rest))
        if kind == "for_stmt":
            head = concat(self.take("for"), SPACE, self.for_targets(len(ch) - 2), SPACE)
            loop = concat(self.take("in"), SPACE, self.expr(ch[-2]), SPACE)
            return concat(head, loop, self.body(ch[-1]))
        if kind == "repeat_stmt":
            count, var, body = ch
            parts = [self.take("repeat"), SPACE, self.expr(count), SPACE]
            if var is not None:
                parts += [self.take("as"), SPACE, self.take(), SPACE]
            return concat(*parts, self.body(body))
        if kind == "if_stmt":
            return self.if_statement(ch)
        raise AssertionError(f"formatter: unhandled statement {kind}")

    def value_statement(self, kind: str, ch: list[Any]) -> Doc:
        if kind == "out_named":
            return concat(self.take("out"), SPACE, self.binding(ch[1]))
        if kind == "out_anon":
            return concat(self.take("out"), SPACE, self.expr(ch[0]))
        if kind == "layer_stmt":
            return concat(self.take("layer"), SPACE, self.binding(ch[1]))
        parts: list[Doc] = []
        for k in range(len(ch) - 1):  # the targets of `a, b = ...`
            parts += [self.take(","), SPACE] if k else []
            parts.append(self.take())
        return concat(*parts, SPACE, self.take("="), SPACE, self.expr(ch[-1]))

    def binding(self, value: Tree) -> Doc:
        """`name = value`."""
        return concat(self.take(), SPACE, self.take("="), SPACE, self.expr(value))

    def for_targets(self, count: int) -> Doc:
        """`x`, `a, b` or `(a, b)`, as written."""
        parenthesized = self.peek() == "("
        parts = [self.take("(")] if parenthesized else []
        for k in range(count):
            parts += [self.take(","), SPACE] if k else []
            parts.append(self.take())
        if parenthesized:
            parts.append(self.take(")"))
        return concat(*parts)

    def if_statement(self, ch: list[Tree | None]) -> Doc:
        cond, body, *rest = ch
        assert cond is not None and body is not None
        parts = [self.take("if"), SPACE, self.expr(cond), SPACE, self.body(body)]
        for item in rest:
            if item is None:
                continue
            if item.data == "elif_clause":
                elif_cond, elif_body = item.children
                parts += [SPACE, self.take("elif"), SPACE, self.expr(elif_cond), SPACE]
                parts.append(self.body(elif_body))
            else:
                parts += [SPACE, self.take("else"), SPACE, self.body(item)]
        return concat(*parts)

    def tensor_type(self, tree: Tree) -> Doc:
        dtype, *dims = tree.children
        parts = [] if dtype is None else [self.take()]
        sizes = [partial(self.expr, d) for d in dims if d is not None]
        return concat(*parts, self.bracketed("[", sizes, "]"))

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
        if kind == "neg":
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


def _split_annotations(tree: Tree) -> tuple[list[Tree], list[Any]]:
    """The annotations in front of a declaration or statement, and its other children."""
    notes, rest = [], []
    for child in tree.children:
        if isinstance(child, lark.Tree) and child.data == "annotation":
            notes.append(child)
        else:
            rest.append(child)
    return notes, rest


def _parenthesized(tree: Tree) -> bool:
    """Whether the user wrapped `tree` in parentheses (Lark counts them in its container)."""
    meta = tree.meta
    return bool(getattr(meta, "container_start_pos", meta.start_pos) < meta.start_pos)
