"""Lark front end: text -> syntax tree, with statement-level error recovery.

Recovery re-parses: on a syntax error we record a located diagnostic, blank
out the broken statement (keeping line numbers) and parse again, so one run
reports every independent syntax error of a file.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lark import Token
from lark import Tree as _LarkTree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dslnet.core.diagnostics import Diagnostics, Span
from dslnet.frontend import ast, parse_table
from dslnet.frontend.keyword_fixes import KeywordFixes
from dslnet.frontend.nesting import (
    MAX_NESTING,
    NESTING_MESSAGE,
    NestingCounter,
    NestingError,
    statement_around,
)
from dslnet.frontend.syntax_hints import (
    KeywordTypo,
    Separator,
    keyword_or_placement,
    misspelt_keyword,
    unclosed_declaration,
)

Tree = _LarkTree[Any]
MAX_SYNTAX_ERRORS = 50
RECOVERY_BUDGET = 100_000  # characters parsed again after errors, at least
_OPENERS = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
_CLOSERS = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}
_CLOSE_WORD = {"LPAR": "'('", "LSQB": "'['", "LBRACE": "'{'"}


@dataclass
class _LexState:
    """What the post-lexer has seen; read when an error is reported."""

    brackets: list[Token] = field(default_factory=list)
    stmt_start: int = 0
    sep_end: int = 0  # just after the last statement separator
    # The last separators and the token after each (where a missing '}' goes).
    separators: deque[Separator] = field(default_factory=lambda: deque(maxlen=64))


class _PostLexer:
    """Drops newlines inside (...) and [...] and before a line that starts with `->`
    (a pipeline continued on the next line), and tracks open brackets. Reads each
    misspelt keyword in `keywords` (start -> keyword token type) as the keyword meant."""

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.state = _LexState()
        self.keywords: dict[int, str] = {}

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        if self.keywords:  # only after a misspelt keyword: no cost on a good file
            stream = _retyped(stream, self.keywords)
        self.state = state = _LexState()
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
            elif kind in _CLOSERS and state.brackets and state.brackets[-1].type == _CLOSERS[kind]:
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


class _Parser:
    def __init__(self) -> None:
        self.postlex = _PostLexer()
        self.lark = parse_table.load(parse_table.grammar_text(), self.postlex)
        self.terminals = {t.name: t for t in self.lark.terminals}
        self.keyword_types = {
            t.pattern.value: t.name for t in self.lark.terminals if t.pattern.type == "str"
        }


_local = threading.local()


def _parser() -> _Parser:
    parser: _Parser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _Parser()
    return parser


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
    parser = _parser()
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
    parser: _Parser,
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
                diags.error(*_describe(err, work, file, parser))
                region = _recovery_region(work, err, state)
                typo = _keyword_typo(err, work, state)
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
                return _ToAst(file).module(tree), broken_names
            message, where, statement = problem
            diags.error(message, _ToAst(file).span(where))
            region = (statement.meta.start_pos, statement.meta.end_pos)
        if region is None:
            break
        start, end = region
        broken_names |= _declared_names(work[start:end])
        work = work[:start] + _blank(work[start:end]) + work[end:]
    return ast.Module(file, ()), broken_names


def _keyword_typo(err: UnexpectedInput, text: str, state: _LexState) -> KeywordTypo | None:
    """The misspelt keyword `_describe` reported for `err`, if it did."""
    if not isinstance(err, (UnexpectedToken, UnexpectedEOF)):
        return None
    in_body = any(b.type == "LBRACE" for b in state.brackets)
    return misspelt_keyword(err.token, text, state.stmt_start, in_body)


def _blank(text: str) -> str:
    """`text` with every character but newlines a space (line numbers stay); a run at
    a time, not a character: a megabyte line must not cost a match object a byte."""
    return _LINE_RUN.sub(lambda run: " " * len(run.group()), text)


_LINE_RUN = re.compile(r"[^\n]+")


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
    parser = _parser()
    tree = parser.lark.parse(text)  # first: it stops early on text nested too deep
    return tree, [t for t in parser.lark.lex(text) if t.type != "_NL"]


# --- error messages --------------------------------------------------------------

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
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "_ARROW", "_FLOORDIV", "COMP_OP"}
_ARITHMETIC = {"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "_FLOORDIV"}
_PIPE = "_ARROW"


def _token_words(kind: str, parser: _Parser) -> str:
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


def _expected(expected: set[str], parser: _Parser) -> list[str]:
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


def _describe(err: UnexpectedInput, text: str, file: str, parser: _Parser) -> tuple[str, Span]:
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
        closer_kind = next(k for k, v in _CLOSERS.items() if v == opener.type)
        if opener.type == "LBRACE":
            ran_on = token.type == "$END"
        else:
            ran_on = token.type in ("$END", "_NL", "RBRACE") or (token.line or 0) > (
                opener.line or 0
            )
        if closer_kind in expected and ran_on:
            closer = _token_words(closer_kind, parser)
            where = f"{opener.line}:{opener.column}"
            opened = f"{_CLOSE_WORD[opener.type]} opened at {where}"
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


# --- recovery -----------------------------------------------------------------------


def _recovery_region(text: str, err: UnexpectedInput, state: _LexState) -> tuple[int, int] | None:
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


def _declared_names(snippet: str) -> set[str]:
    m = _DECLARED.match(snippet)
    if m is None:
        return set()
    found = next(g for g in m.groups() if g is not None)
    return {n.strip() for n in found.split(",")}


# --- tree -> syntax tree ----------------------------------------------------------------

_BINARY = {  # the grammar's names for binary expressions, by operator
    "add_op": "+",
    "sub_op": "-",
    "mul_op": "*",
    "div_op": "/",
    "floordiv_op": "//",
    "mod_op": "%",
    "or_op": "or",
    "and_op": "and",
}


class _ToAst:
    def __init__(self, file: str) -> None:
        self.file = file

    def span(self, item: Tree | Token) -> Span:
        if isinstance(item, Token):
            return Span(
                self.file,
                item.line or 0,
                item.column or 0,
                item.end_line or 0,
                item.end_column or 0,
            )
        meta = item.meta
        if getattr(meta, "empty", True):
            return Span.unknown(self.file)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def module(self, tree: Tree) -> ast.Module:
        return ast.Module(self.file, tuple(self.decl(child) for child in tree.children))

    def decl(self, tree: Tree) -> ast.Decl:
        kind = tree.data
        if kind == "import_decl":
            return ast.ImportDecl(_unquote(str(tree.children[0])), self.span(tree))
        if kind == "const_decl":
            return self.stmt(tree)  # type: ignore[return-value]
        annotations, (name, params, body) = self.annotations(tree)
        if kind == "train_decl":
            stmts, settings, steps = self.train_body(body)
            return ast.TrainDecl(
                str(name),
                self.params(params),
                stmts,
                settings,
                steps,
                self.span(tree),
                self.span(name),
                annotations,
            )
        return ast.BlockDecl(
            kind="block" if kind == "block_decl" else "network",
            name=str(name),
            params=self.params(params),
            body=self.body(body),
            span=self.span(tree),
            name_span=self.span(name),
            annotations=annotations,
        )

    def call_args(self, args: Tree | None) -> tuple[tuple[ast.Expr, ...], tuple[ast.Keyword, ...]]:
        pos: list[ast.Expr] = []
        kws: list[ast.Keyword] = []
        for a in [] if args is None else args.children:
            if isinstance(a, _LarkTree) and a.data == "kwarg":
                kws.append(ast.Keyword(str(a.children[0]), self.expr(a.children[1]), self.span(a)))
            else:
                pos.append(self.expr(a))
        return tuple(pos), tuple(kws)

    def annotations(self, tree: Tree) -> tuple[tuple[ast.Annotation, ...], list[Any]]:
        """The annotations in front of a statement, and the statement's own children."""
        found, rest = [], []
        for child in tree.children:
            if isinstance(child, _LarkTree) and child.data == "annotation":
                name, args = child.children
                found.append(ast.Annotation(str(name), *self.call_args(args), self.span(child)))
            else:
                rest.append(child)
        return tuple(found), rest

    def params(self, tree: Tree | None) -> tuple[ast.Param, ...]:
        if tree is None:
            return ()
        out = []
        for p in tree.children:
            name, type_name, default = p.children
            out.append(
                ast.Param(
                    str(name),
                    None if type_name is None else str(type_name),
                    None if default is None else self.expr(default),
                    self.span(p),
                )
            )
        return tuple(out)

    def body(self, tree: Tree) -> tuple[ast.Stmt, ...]:
        return tuple(self.stmt(child) for child in tree.children)

    def train_body(
        self, tree: Tree
    ) -> tuple[tuple[ast.Stmt, ...], tuple[ast.SettingStmt, ...], tuple[ast.StepDecl, ...]]:
        """The statements, settings and steps of a train declaration (or, without
        steps, of one step)."""
        stmts: list[ast.Stmt] = []
        settings: list[ast.SettingStmt] = []
        steps: list[ast.StepDecl] = []
        for child in tree.children:
            if child.data == "setting_stmt":
                name, value = child.children
                span = self.span(child)
                setting = ast.SettingStmt(str(name), self.expr(value), span, self.span(name))
                settings.append(setting)
            elif child.data == "step_decl":
                _, name, body = child.children
                inner, inner_settings, _ = self.train_body(body)
                steps.append(
                    ast.StepDecl(
                        str(name), inner, inner_settings, self.span(child), self.span(name)
                    )
                )
            else:
                stmts.append(self.stmt(child))
        return tuple(stmts), tuple(settings), tuple(steps)

    def stmt(self, tree: Tree) -> ast.Stmt:
        kind, ch, span = tree.data, tree.children, self.span(tree)
        if kind == "in_stmt":
            notes, ch = self.annotations(tree)
            tt = ch[1]
            dtype, *dims = tt.children
            dims = [d for d in dims if d is not None]
            ttype = ast.TensorTypeExpr(
                None if dtype is None else str(dtype),
                tuple(self.expr(d) for d in dims),
                self.span(tt),
            )
            return ast.InStmt(str(ch[0]), ttype, span, notes)
        if kind in ("out_named", "out_anon", "assign_stmt", "layer_stmt"):
            notes, ch = self.annotations(tree)
            if kind == "out_named":
                return ast.OutStmt(str(ch[0]), self.expr(ch[1]), span, notes)
            if kind == "out_anon":
                return ast.OutStmt(None, self.expr(ch[0]), span, notes)
            if kind == "assign_stmt":
                targets = tuple(str(t) for t in ch[:-1])
                return ast.AssignStmt(targets, self.expr(ch[-1]), span, notes)
            return ast.LayerStmt(str(ch[0]), self.expr(ch[1]), span, notes)
        if kind == "const_decl":
            return ast.ConstDecl(str(ch[0]), self.expr(ch[1]), span)
        if kind == "for_stmt":
            targets = tuple(str(t) for t in ch[:-2])
            return ast.ForStmt(targets, self.expr(ch[-2]), self.body(ch[-1]), span)
        if kind == "repeat_stmt":
            count, var, body = ch
            return ast.RepeatStmt(
                self.expr(count), None if var is None else str(var), self.body(body), span
            )
        if kind == "if_stmt":
            cond, body, *rest = ch
            branches = [(self.expr(cond), self.body(body))]
            orelse: tuple[ast.Stmt, ...] = ()
            for item in rest:
                if isinstance(item, _LarkTree) and item.data == "elif_clause":
                    branches.append((self.expr(item.children[0]), self.body(item.children[1])))
                elif item is not None:
                    orelse = self.body(item)
            return ast.IfStmt(tuple(branches), orelse, span)
        raise AssertionError(f"unhandled statement {kind}")

    def expr(self, item: Tree | Token) -> ast.Expr:
        span = self.span(item)
        if isinstance(item, Token):  # only via inlined rules
            return ast.Name(str(item), span)
        kind, ch = item.data, item.children
        if kind == "name":
            return ast.Name(str(ch[0]), span)
        if kind == "int":
            return ast.Literal(int(str(ch[0]).replace("_", "")), span)
        if kind == "float":
            return ast.Literal(float(str(ch[0]).replace("_", "")), span)
        if kind == "string":
            return ast.Literal(_unquote(str(ch[0])), span)
        if kind in ("true", "false"):
            return ast.Literal(kind == "true", span)
        if kind == "list":
            return ast.ListExpr(tuple(self.expr(c) for c in ch if c is not None), span)
        if kind == "tuple":
            return ast.TupleExpr(tuple(self.expr(c) for c in ch if c is not None), span)
        if kind == "neg":
            return ast.Unary("-", self.expr(ch[0]), span)
        if kind == "factor":  # unary plus
            return ast.Unary("+", self.expr(ch[0]), span)
        if kind == "not_op":
            return ast.Unary("not", self.expr(ch[0]), span)
        if kind in _BINARY:
            return ast.Binary(_BINARY[kind], self.expr(ch[0]), self.expr(ch[1]), span)
        if kind == "compare":
            return ast.Binary(str(ch[1]), self.expr(ch[0]), self.expr(ch[2]), span)
        if kind == "pipe":
            return ast.Pipe(self.expr(ch[0]), self.expr(ch[1]), span)
        if kind == "call":
            func, args = ch
            return ast.Call(self.expr(func), *self.call_args(args), span)
        if kind == "index":
            return ast.Index(self.expr(ch[0]), self.expr(ch[1]), span)
        if kind == "attr":
            return ast.Attribute(self.expr(ch[0]), str(ch[1]), span)
        if kind == "if_expr":
            parts = [self.expr(c) for c in ch]
            pairs = tuple((parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2))
            return ast.IfExpr(pairs, parts[-1], span)
        raise AssertionError(f"unhandled expression {kind}")


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)
