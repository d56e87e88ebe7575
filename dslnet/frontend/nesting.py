"""How deep a spec may nest, refused while it is read rather than after.

Later phases walk the syntax tree recursively, so a tree deeper than MAX_NESTING
levels is refused (parser._unbuildable measures the parsed tree exactly). Lark would
first build the whole tree, though: 4 MiB of `[[[[...` takes minutes and gigabytes.
The checks here stop the parse at the first token or node past the limit:

- the post-lexer counts open brackets and runs of prefix operators (`not`, unary
  `-`/`+`): Lark builds those only once the whole run has been read;
- DepthTree knows its height as Lark builds it, and stops a left-nested chain
  (`a + b + ...`, `x.y.y`, `f()()`, `x -> f -> g`) at the node past the limit.

Each check allows at most what the tree check allows: a bracket, a prefix operator
and a tree node each add a level.
"""

from __future__ import annotations

import re
from typing import Any

from lark import Token, Tree

MAX_NESTING = 100  # levels of syntax tree: deeper would exhaust Python's stack later
NESTING_MESSAGE = (
    f"nested more than {MAX_NESTING} levels deep (brackets, calls, operators, "
    f"pipeline stages and bodies count); split it into several statements"
)
# Tokens after which `-` and `+` are binary: the ends of an operand.
_OPERAND_ENDS = frozenset(
    {"NAME", "INT", "FLOAT", "STRING", "TRUE", "FALSE", "RPAR", "RSQB", "RBRACE"}
)


class NestingError(Exception):
    """The text nests deeper than MAX_NESTING levels; `pos`, `line`, `column`: where
    that shows (the token past the limit, or the start of the node)."""

    def __init__(self, pos: int, line: int, column: int, width: int = 1) -> None:
        super().__init__(NESTING_MESSAGE)
        self.pos, self.line, self.column, self.width = pos, line, column, width

    @staticmethod
    def at(token: Token) -> NestingError:
        width = len(token) if token.end_line == token.line else 1
        return NestingError(token.start_pos or 0, token.line or 1, token.column or 1, width)


class NestingCounter:
    """Fed every token the parser gets (newlines inside brackets left out); raises
    NestingError at the first bracket or prefix operator past the limit."""

    def __init__(self) -> None:
        self.prefix_run = 0
        self.previous = ""

    def see(self, token: Token, open_brackets: int) -> None:
        kind = token.type
        prefix = kind == "NOT" or (kind in ("MINUS", "PLUS") and self.previous not in _OPERAND_ENDS)
        self.prefix_run = self.prefix_run + 1 if prefix else 0
        self.previous = kind
        if open_brackets > MAX_NESTING or self.prefix_run > MAX_NESTING:
            raise NestingError.at(token)


class DepthTree(Tree[Any]):
    """A Lark tree node that knows its height (1 for a node of tokens only) and
    refuses to be built higher than MAX_NESTING."""

    def __init__(self, data: str, children: list[Any], meta: Any = None) -> None:
        super().__init__(data, children, meta)
        self.height = 0
        if data.startswith("_"):
            # A repetition Lark builds one item at a time and then splices into its
            # parent (the items of a list): measured there, once, not at every item.
            return
        height = 1
        for child in children:
            if isinstance(child, DepthTree) and child.height >= height:
                height = child.height + 1
        self.height = height
        if height > MAX_NESTING:
            raise _where(self)


def _where(tree: DepthTree) -> NestingError:
    """The error for `tree`, just built too high: at the node MAX_NESTING levels down
    its tallest branch, where the nesting passes the limit (the node itself has no
    position yet: Lark sets it after building it; its children have theirs)."""
    node = tree
    for _ in range(MAX_NESTING):
        taller = [c for c in node.children if isinstance(c, DepthTree) and c.height > 0]
        if not taller:
            break
        node = max(taller, key=lambda c: c.height)
    for item in [node] if node is not tree else tree.children:
        if isinstance(item, Token):
            return NestingError.at(item)
        if isinstance(item, Tree) and not getattr(item.meta, "empty", True):
            return NestingError(item.meta.start_pos, item.meta.line, item.meta.column)
    return NestingError(0, 1, 1)  # a node of no text: never built by the grammar


def statement_around(text: str, pos: int) -> tuple[int, int]:
    """The statement that holds offset `pos` (one directly in a declaration's body),
    or the declaration when `pos` is in its header or in a top-level `const`: what
    to blank out so the rest of the file can be parsed again. Strings and comments
    are skipped as the lexer does; newlines inside ( and [ do not end statements."""
    start, depth, body = 0, 0, False  # body: the outermost open bracket is a '{'
    level = -1  # the bracket depth of the statement, once `pos` is passed
    i = 0
    while (found := _SCAN.search(text, i)) is not None:
        i, run = found.start(), found.group()
        if level < 0 and i >= pos:
            level = 1 if body and depth >= 1 else 0
        ch = run[0]
        if ch == '"':
            i = _string_end(text, i)
            continue
        if ch in "([{":
            if depth == 0:
                body = ch == "{"
                if body and level < 0:
                    start = i + 1  # the body's first statement
            depth += len(run)
            if level < 0 and i < pos < found.end():  # `pos` is inside this run
                level = 1 if body else 0
        elif ch in ")]}":
            if level >= 0 and depth - level < len(run):
                return start, i + max(depth - level, 0)  # the '}' closing the body
            depth -= len(run)
        elif ch in "\n;" and (depth == 0 or (body and depth == 1)):
            if depth == level:
                return start, i
            if level < 0:
                start = i + 1
        i = found.end()
    return start, len(text)


# A comment, a string's start, a run of openers or of closers, a statement separator.
_SCAN = re.compile(r'#[^\n]*|"|[(\[{]+|[)\]}]+|[\n;]')


def _string_end(text: str, i: int) -> int:
    """Just after the string starting at `i` (its line's end if it is never closed)."""
    j, n = i + 1, len(text)
    while j < n and text[j] not in '"\n':
        j += 2 if text[j] == "\\" else 1
    return j + 1 if j < n and text[j] == '"' else min(j, n)
