"""A spec's parse tree as a layout document (doc.py): canonical spacing, the
user's comments, single blank lines and pipeline breaks kept, the rest decided
by the width.

This half prints declarations and statements; expressions.py prints the tokens,
comments and expressions inside them. The language allows a line break only in
some gaps (inside ( and [, before `->`, between statements); a comment ends its
line, so it was in such a gap, and it stays in one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import lark

from dslnet.frontend.format.doc import Choice, Comment, Doc, HardLine, Indent, concat
from dslnet.frontend.format.expressions import SPACE, ExpressionPrinter
from dslnet.frontend.format.source import SourceText
from dslnet.frontend.lark_parser import Tree

# The statements that may stay on the line of a `{` when they are all its body holds.
_ONE_LINERS = {
    "in_stmt",
    "out_named",
    "out_anon",
    "assign_stmt",
    "layer_stmt",
    "const_decl",
    "setting_stmt",
}
_DECLARATION_KEYWORDS = {"block_decl": "block", "network_decl": "network", "train_decl": "train"}


def module_doc(tree: Tree, source: SourceText) -> Doc:
    """The document of a whole file: `tree` is the Lark tree of `source.text`."""
    printer = _TreePrinter(source)
    doc = printer.module(tree)
    printer.finish()
    return doc


class _TreePrinter(ExpressionPrinter):
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
        parts = [*[self.annotation(n) for n in notes], self.take(_DECLARATION_KEYWORDS[kind])]
        parts += [SPACE, self.take()]
        if self.peek() == "(":  # `network Net {` without them stays so
            parts.append(self.parameters(params))
        return concat(*parts, SPACE, self.body(body))

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
            notes, (_name, tensor_type) = _split_annotations(tree)
            marks = [self.annotation(n) for n in notes]
            name = concat(self.take("in"), SPACE, self.take(), self.take(":"), SPACE)
            return concat(*marks, name, self.tensor_type(tensor_type))
        if kind == "setting_stmt":  # `optimizer: adam(lr=1e-3)`, in train and step bodies
            return concat(self.take(), self.take(":"), SPACE, self.expr(ch[1]))
        if kind == "step_decl":  # `step NAME { ... }`: `step` is a NAME to the grammar
            return concat(self.take(), SPACE, self.take(), SPACE, self.body(ch[2]))
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


def _split_annotations(tree: Tree) -> tuple[list[Tree], list[Any]]:
    """The annotations in front of a declaration or statement, and its other children."""
    notes, rest = [], []
    for child in tree.children:
        if isinstance(child, lark.Tree) and child.data == "annotation":
            notes.append(child)
        else:
            rest.append(child)
    return notes, rest
