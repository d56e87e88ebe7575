"""Lark tree -> syntax tree: the `dslnet.frontend.ast` nodes of a parsed file.

`TreeToAst` reads the trees the grammar's rules build (with their positions) and
makes the declarations, statements and expressions of `ast`, each with its span in
the file; string literals are unquoted and integer literals lose their `_`s here.
"""

from __future__ import annotations

import re
from typing import Any

from lark import Token
from lark import Tree as _LarkTree

from dslnet.core.diagnostics import Span
from dslnet.frontend import ast
from dslnet.frontend.lark_parser import Tree

_BINARY = {  # the grammar's names for binary expressions, by operator
    "add_op": "+",
    "sub_op": "-",
    "mul_op": "*",
    "div_op": "/",
    "floordiv_op": "//",
    "mod_op": "%",
    "pow_op": "**",
    "or_op": "or",
    "and_op": "and",
}


class TreeToAst:
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
        if kind == "negate":
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
