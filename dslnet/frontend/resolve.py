"""Static checks on the syntax tree, before any expansion.

Names are resolved here for every block, used or not, so a library of blocks
is checked on its own: unknown names and ops, duplicates, misplaced `in`,
missing `out`, recursive blocks; and unused values and inputs are warned of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from dslnet.core.diagnostics import Diagnostics, Note, Span, did_you_mean
from dslnet.frontend import ast

PARAM_TYPES = ("int", "float", "bool", "str", "list")


def walk_exprs(expr: ast.Expr) -> Iterator[ast.Expr]:
    """Every sub-expression, depth first, in source order."""
    yield expr
    if isinstance(expr, (ast.ListExpr, ast.TupleExpr)):
        for e in expr.items:
            yield from walk_exprs(e)
    elif isinstance(expr, ast.Unary):
        yield from walk_exprs(expr.operand)
    elif isinstance(expr, ast.Binary):
        yield from walk_exprs(expr.left)
        yield from walk_exprs(expr.right)
    elif isinstance(expr, ast.Call):
        yield from walk_exprs(expr.func)
        for e in expr.args:
            yield from walk_exprs(e)
        for k in expr.kwargs:
            yield from walk_exprs(k.value)
    elif isinstance(expr, ast.Pipe):
        yield from walk_exprs(expr.value)
        yield from walk_exprs(expr.stage)
    elif isinstance(expr, (ast.Index, ast.Attribute)):
        yield from walk_exprs(expr.value)
        if isinstance(expr, ast.Index):
            yield from walk_exprs(expr.index)
    elif isinstance(expr, ast.IfExpr):
        for cond, value in expr.branches:
            yield from walk_exprs(cond)
            yield from walk_exprs(value)
        yield from walk_exprs(expr.orelse)


def walk_stmts(body: Sequence[ast.Stmt], depth: int = 0) -> Iterator[tuple[ast.Stmt, int]]:
    """Every statement with its nesting depth (0 = top level of the body)."""
    for stmt in body:
        yield stmt, depth
        if isinstance(stmt, (ast.ForStmt, ast.RepeatStmt)):
            yield from walk_stmts(stmt.body, depth + 1)
        elif isinstance(stmt, ast.IfStmt):
            for _, branch in stmt.branches:
                yield from walk_stmts(branch, depth + 1)
            yield from walk_stmts(stmt.orelse, depth + 1)


def stmt_exprs(stmt: ast.Stmt) -> list[ast.Expr]:
    if isinstance(stmt, (ast.AssignStmt, ast.OutStmt, ast.LayerStmt, ast.ConstDecl)):
        return [stmt.value]
    if isinstance(stmt, ast.ForStmt):
        return [stmt.iterable]
    if isinstance(stmt, ast.RepeatStmt):
        return [stmt.count]
    if isinstance(stmt, ast.IfStmt):
        return [cond for cond, _ in stmt.branches]
    return []


def callee_exprs(expr: ast.Expr) -> Iterator[ast.Expr]:
    """Expressions in call position: `f` in `f(x)` and in `x -> f`."""
    for e in walk_exprs(expr):
        if isinstance(e, ast.Call):
            yield e.func
        elif isinstance(e, ast.Pipe):
            yield e.stage.func if isinstance(e.stage, ast.Call) else e.stage


def check_block(
    decl: ast.BlockDecl,
    diags: Diagnostics,
    global_names: set[str],
    callables: Callable[[], list[str]],
    broken: set[str],
    *,
    damaged: bool = False,
    unresolved: set[Span] | None = None,
    warn_unused: bool = True,
    quiet_unknown: bool = False,
) -> None:
    """Resolve the names of one block or network and check its statements.

    `damaged`: a syntax error blanked part of the body, so a missing `out` or an
    unused value may be its doing; those are not reported. The spans of names
    reported unknown here go to `unresolved` (expansion stays silent on them).
    `quiet_unknown`: an import of the file failed, so unknown names are not reported
    (they may be ones it supplies) but still go to `unresolved`.
    """
    what = f"{decl.kind} '{decl.name}'"
    seen_params: set[str] = set()
    for p in decl.params:
        if p.name in seen_params:
            diags.error(f"duplicate parameter '{p.name}' of {what}", p.span)
        seen_params.add(p.name)
        if p.type_name is not None and p.type_name not in PARAM_TYPES:
            hint = did_you_mean(p.type_name, PARAM_TYPES)
            diags.error(
                f"unknown parameter type '{p.type_name}'{hint}; expected one of "
                f"{', '.join(PARAM_TYPES)}",
                p.span,
            )

    defined: set[str] = set(seen_params) | broken
    unique: dict[str, ast.Stmt] = {}  # in and layer names: one definition each
    outs: dict[str, ast.OutStmt] = {}
    has_out = False
    for stmt, depth in walk_stmts(decl.body):
        if isinstance(stmt, ast.InStmt) and stmt.annotations and decl.kind != "train":
            diags.error(
                f"@{stmt.annotations[0].name} on an input is for train declarations "
                f"(`@noise in z: ...`); a {decl.kind}'s inputs are given by its caller",
                stmt.annotations[0].span,
            )
        if isinstance(stmt, ast.InStmt):
            if depth:
                diags.error(
                    "'in' declares an input and belongs at the top level of the body", stmt.span
                )
            for d in stmt.type.dims:  # size names bind here
                defined |= {e.id for e in walk_exprs(d) if isinstance(e, ast.Name)}
        if isinstance(stmt, (ast.InStmt, ast.LayerStmt)):
            first = unique.get(stmt.name)
            if first is not None or stmt.name in seen_params:
                where = [Note("first defined here", first.span)] if first is not None else []
                diags.error(f"duplicate name '{stmt.name}' in {what}", stmt.span, where)
            unique[stmt.name] = stmt
            defined.add(stmt.name)
        elif isinstance(stmt, ast.AssignStmt):
            defined |= set(stmt.targets)
        elif isinstance(stmt, ast.ConstDecl):
            defined.add(stmt.name)
        elif isinstance(stmt, ast.ForStmt):
            defined |= set(stmt.targets)
        elif isinstance(stmt, ast.RepeatStmt) and stmt.var:
            defined.add(stmt.var)
        elif isinstance(stmt, ast.OutStmt):
            has_out = True
            if stmt.name is not None:
                if stmt.name in outs:
                    diags.error(
                        f"duplicate output '{stmt.name}' of {what}",
                        stmt.span,
                        [Note("first defined here", outs[stmt.name].span)],
                    )
                outs[stmt.name] = stmt
    if not has_out and not damaged:
        diags.error(f"{what} has no 'out': say what it computes, e.g. out y = ...", decl.name_span)

    used: set[str] = set()
    used_past_inputs: set[str] = set()  # names the statements other than `in` use
    for stmt, _ in walk_stmts(decl.body):
        for expr in stmt_exprs(stmt):
            calls = {id(c) for c in callee_exprs(expr)}
            for e in walk_exprs(expr):
                if not isinstance(e, ast.Name):
                    continue
                used.add(e.id)
                if not isinstance(stmt, ast.InStmt):
                    used_past_inputs.add(e.id)
                # Two lookups, not a union: copying the file's names for every block
                # would make the checks quadratic in the number of blocks.
                if e.id in defined or e.id in global_names:
                    continue
                if unresolved is not None:
                    unresolved.add(e.span)
                if quiet_unknown:
                    continue
                if id(e) in calls:
                    hint = did_you_mean(e.id, [*callables(), *defined])
                    diags.error(f"unknown op or block '{e.id}'{hint}", e.span)
                else:
                    hint = did_you_mean(e.id, [*defined, *global_names])
                    diags.error(f"unknown name '{e.id}'{hint}", e.span)
    for p in decl.params:
        if p.default is not None:
            for e in walk_exprs(p.default):
                if isinstance(e, ast.Name) and not (e.id in global_names or e.id in seen_params):
                    if unresolved is not None:
                        unresolved.add(e.span)
                    if not quiet_unknown:
                        hint = did_you_mean(e.id, global_names)
                        diags.error(f"unknown name '{e.id}'{hint}", e.span)

    inputs = [st for st, _ in walk_stmts(decl.body) if isinstance(st, ast.InStmt)]
    for stmt, _ in walk_stmts(() if damaged or not warn_unused else decl.body):
        if (
            isinstance(stmt, ast.InStmt)
            and stmt.name not in used
            and not stmt.name.startswith("_")
            and not _gives_sizes(stmt, inputs, used, used_past_inputs)
        ):
            diags.warning(f"unused input '{stmt.name}' of {what}", stmt.span)
        elif isinstance(stmt, ast.LayerStmt) and stmt.name not in used:
            diags.warning(f"unused layer '{stmt.name}' in {what}", stmt.span)
        elif isinstance(stmt, ast.AssignStmt):
            for t in stmt.targets:
                if t not in used and not t.startswith("_"):
                    diags.warning(f"unused value '{t}' in {what}", stmt.span)


def check_train(
    decl: ast.TrainDecl,
    diags: Diagnostics,
    global_names: set[str],
    callables: Callable[[], list[str]],
    broken: set[str],
    *,
    damaged: bool = False,
    unresolved: set[Span] | None = None,
    quiet_unknown: bool = False,
) -> None:
    """Resolve a train declaration: each step is checked as the shared statements
    followed by its own (a name reported twice is reported once), and unused names
    over all steps together."""

    def as_block(body: tuple[ast.Stmt, ...]) -> ast.BlockDecl:
        return ast.BlockDecl("train", decl.name, decl.params, body, decl.span, decl.name_span)

    bodies = [(*decl.body, *step.body) for step in decl.steps] or [decl.body]
    for body in bodies:
        check_block(
            as_block(body),
            diags,
            global_names,
            callables,
            broken,
            damaged=damaged,
            unresolved=unresolved,
            warn_unused=False,
            quiet_unknown=quiet_unknown,
        )
    if damaged:
        return
    union = as_block((*decl.body, *(s for step in decl.steps for s in step.body)))
    scratch = Diagnostics()
    check_block(union, scratch, global_names, callables, broken)
    for d in scratch.sorted():
        if not d.is_error:
            diags.add(d)


def check_recursion(blocks: dict[str, ast.BlockDecl], diags: Diagnostics) -> None:
    """A block may not call itself, directly or through others.

    One depth-first walk over all blocks (each explored once, so the check stays
    linear in the size of the file): a call of a block still on the walk's path
    closes a cycle, reported once, named by its block that comes first in the file."""
    calls: dict[str, dict[str, ast.Expr]] = {}  # block -> callee -> first call site
    for name, decl in blocks.items():
        sites: dict[str, ast.Expr] = {}
        layers = _layer_blocks(decl, blocks)
        for stmt, _ in walk_stmts(decl.body):
            for expr in stmt_exprs(stmt):
                for c in callee_exprs(expr):
                    if isinstance(c, ast.Name) and c.id in blocks:
                        sites.setdefault(c.id, c)
                    elif isinstance(c, ast.Name) and c.id in layers:
                        sites.setdefault(layers[c.id], c)
        calls[name] = sites

    order = {name: i for i, name in enumerate(blocks)}
    explored: set[str] = set()
    reported: set[frozenset[str]] = set()
    for root in blocks:
        if root in explored:
            continue
        explored.add(root)
        path = [root]
        on_path = {root: 0}  # block -> its index in `path`
        pending = [iter(calls[root])]
        while pending:
            target = next(pending[-1], None)
            if target is None:
                pending.pop()
                del on_path[path.pop()]
            elif target in on_path:
                cycle = path[on_path[target] :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    first = min(range(len(cycle)), key=lambda k: order[cycle[k]])
                    cycle = cycle[first:] + cycle[:first]
                    chain = " -> ".join([*cycle, cycle[0]])
                    site = calls[cycle[-1]][cycle[0]]
                    diags.error(f"recursive block '{cycle[0]}': {chain}", site.span)
            elif target not in explored:
                explored.add(target)
                on_path[target] = len(path)
                path.append(target)
                pending.append(iter(calls[target]))


def _layer_blocks(decl: ast.BlockDecl, blocks: dict[str, ast.BlockDecl]) -> dict[str, str]:
    """The blocks that `layer NAME = Block(...)` statements of `decl` instantiate, by NAME."""
    found: dict[str, str] = {}
    for stmt, _ in walk_stmts(decl.body):
        if isinstance(stmt, ast.LayerStmt):
            value = stmt.value.func if isinstance(stmt.value, ast.Call) else stmt.value
            if isinstance(value, ast.Name) and value.id in blocks:
                found[stmt.name] = value.id
    return found


def _size_names(stmt: ast.InStmt) -> set[str]:
    return {e.id for d in stmt.type.dims for e in walk_exprs(d) if isinstance(e, ast.Name)}


def _gives_sizes(
    stmt: ast.InStmt, inputs: list[ast.InStmt], used: set[str], used_past_inputs: set[str]
) -> bool:
    """Whether an input whose value is unused is still read for a size the body uses
    (`ones([T, T])`) and that no used input has."""
    others = set().union(*(_size_names(i) for i in inputs if i is not stmt and i.name in used))
    return any(n in used_past_inputs and n not in others for n in _size_names(stmt))
