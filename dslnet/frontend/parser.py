"""Lark front end: text -> syntax tree, with statement-level error recovery.

Recovery re-parses: on a syntax error we record a located diagnostic, blank
out the broken statement (keeping line numbers) and parse again, so one run
reports every independent syntax error of a file.
"""

from __future__ import annotations

import re

from lark import Token
from lark import Tree as _LarkTree
from lark.exceptions import UnexpectedInput, UnexpectedToken

from dslnet.core.diagnostics import Diagnostics, Span
from dslnet.frontend import ast
from dslnet.frontend.keyword_fixes import KeywordFixes
from dslnet.frontend.lark_parser import LarkParser, Tree, lark_parser
from dslnet.frontend.nesting import (
    MAX_NESTING,
    NESTING_MESSAGE,
    NestingError,
    statement_around,
)
from dslnet.frontend.syntax_hints import unclosed_declaration
from dslnet.frontend.syntax_messages import describe_error
from dslnet.frontend.syntax_recovery import (
    blank,
    declared_names,
    keyword_typo,
    recovery_region,
)
from dslnet.frontend.tree_to_ast import TreeToAst

MAX_SYNTAX_ERRORS = 50
RECOVERY_BUDGET = 100_000  # characters parsed again after errors, at least


def parse(
    text: str, file: str, diags: Diagnostics, intact_lines: set[int] | None = None
) -> tuple[ast.Module, set[str]]:
    """Parse `text`; syntax errors go to `diags`.

    Returns the module built from what parsed, and the names declared by the
    statements that were blanked out (so later phases do not report them as
    unknown: one mistake, one error). `intact_lines` receives the lines of errors
    that lost no statement (a missing '}' supplied where the next declaration starts,
    a misspelt keyword read as the keyword meant).
    """
    parser = lark_parser()
    fixes = KeywordFixes(parser.postlex.keywords)
    intact: set[int] = set()
    try:
        module, broken_names = _parse_recovering(text, file, diags, parser, fixes, intact)
    finally:
        parser.postlex.keywords = {}
    if intact_lines is not None:
        intact_lines |= intact | fixes.fixed_lines
    return module, broken_names


def _parse_recovering(
    text: str,
    file: str,
    diags: Diagnostics,
    parser: LarkParser,
    fixes: KeywordFixes,
    intact: set[int],
) -> tuple[ast.Module, set[str]]:
    work = _without_surrogates(text, file, diags)
    broken_names: set[str] = set()
    # Each error costs a parse of the whole text again: a big file full of errors
    # stops being re-parsed (its first errors are reported) before that takes long.
    budget, parsed = max(RECOVERY_BUDGET, 2 * len(text)), 0
    for _ in range(MAX_SYNTAX_ERRORS):
        if parsed > budget:
            break
        parsed += len(work)
        try:
            tree = parser.lark.parse(work)
        except UnexpectedInput as err:
            state = parser.postlex.state
            failed = fixes.judge(err, work)
            unclosed = None
            if failed is None and isinstance(err, UnexpectedToken):
                unclosed = unclosed_declaration(
                    err.token, work, file, state.brackets, state.separators
                )
            if unclosed is not None:  # close the body and check the rest normally
                diags.error(unclosed.message, unclosed.span)
                intact.add(unclosed.span.line)
                at = unclosed.insert_at
                work = work[:at] + "}" * unclosed.braces + work[at:]
                fixes.shift(at, unclosed.braces)
                continue
            if failed is not None:  # reported already; its statement goes as a broken one
                region = failed.region
            else:
                diags.error(*describe_error(err, work, file, parser))
                region = recovery_region(work, err, state)
                typo = keyword_typo(err, work, state)
                if typo is not None and fixes.trial is None:  # parse on as if it were right
                    fixes.try_keyword(typo, parser.keyword_types[typo.meant], work, region)
                    continue
        except NestingError as err:  # stopped before the whole tree was built
            fixes.judge(None, work)
            span = Span(file, err.line, err.column, err.line, err.column + err.width)
            diags.error(NESTING_MESSAGE, span)
            region = statement_around(work, err.pos)
        else:
            fixes.judge(None, work)
            problem = _unbuildable(tree)
            if problem is None:
                return TreeToAst(file).module(tree), broken_names
            message, where, statement = problem
            diags.error(message, TreeToAst(file).span(where))
            region = (statement.meta.start_pos, statement.meta.end_pos)
        if region is None:
            break
        start, end = region
        broken_names |= declared_names(work[start:end])
        work = work[:start] + blank(work[start:end]) + work[end:]
    return ast.Module(file, ()), broken_names


def _without_surrogates(text: str, file: str, diags: Diagnostics) -> str:
    """`text` with each lone surrogate (what decoding non-UTF-8 bytes with
    surrogateescape leaves) reported and blanked: no output could encode it."""
    for found in _SURROGATE.finditer(text):
        pos = found.start()
        line = text.count("\n", 0, pos) + 1
        col = pos - text.rfind("\n", 0, pos)
        diags.error(
            f"character U+{ord(found.group()):04X} is not text: a lone surrogate "
            f"(bytes that were not UTF-8?)",
            Span(file, line, col, line, col + 1),
        )
    return _SURROGATE.sub(" ", text)


_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_INT = 2**63 - 1  # sizes and counts are int64 in every backend


_BODIES = ("body", "train_body")


def _unbuildable(tree: Tree) -> tuple[str, Tree | Token, Tree] | None:
    """The first part of a parsed file the compiler cannot take, if any: (message,
    where, the statement or declaration to blank). Nesting deeper than MAX_NESTING
    levels, or an integer over MAX_INT. Iterative: the tree may be thousands deep."""
    stack: list[tuple[Tree, int, Tree | None]] = [(tree, 0, None)]
    while stack:
        node, depth, statement = stack.pop()
        if depth > MAX_NESTING and statement is not None:
            return NESTING_MESSAGE, node, statement
        if node.data == "step_decl" and str(node.children[0]) != "step":
            word = node.children[0]
            return f"expected 'step NAME {{...}}' here, not '{word}'", word, node
        for child in reversed(node.children):
            if isinstance(child, _LarkTree):
                # The declaration, or the statement directly in a declaration's body.
                top = statement is None or (node.data in _BODIES and depth <= 2)
                stack.append((child, depth + 1, child if top else statement))
            elif isinstance(child, Token) and child.type == "INT" and statement is not None:
                message = _int_too_large(str(child))
                if message:
                    return message, child, statement
    return None


def _int_too_large(literal: str) -> str:
    digits = literal.replace("_", "")
    if len(digits) <= len(str(MAX_INT)) and int(digits) <= MAX_INT:
        return ""
    shown = digits if len(digits) <= 30 else f"{digits[:12]}... ({len(digits)} digits)"
    return f"integer {shown} is too large: the largest is {MAX_INT}"


def concrete_syntax(text: str) -> tuple[Tree, list[Token]]:
    """The Lark tree of `text` with every position, and its tokens without the
    statement separators: what a tool that prints the source back needs (`dslnet fmt`).
    Raises lark's UnexpectedInput on a syntax error, NestingError on text nested too
    deep (`parse` reports both)."""
    parser = lark_parser()
    tree = parser.lark.parse(text)  # first: it stops early on text nested too deep
    return tree, [t for t in parser.lark.lex(text) if t.type != "_NL"]
