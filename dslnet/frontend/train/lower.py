"""Lowering a `train` declaration from its syntax tree into a TrainPlan: its settings
read and checked, its noise inputs, its layers, and one IR graph per step (each step's
statements after the declaration's shared ones, expanded like a network)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dslnet.core.diagnostics import CompileError, Diagnostics, Span, did_you_mean
from dslnet.core.types import DType
from dslnet.frontend import ast
from dslnet.frontend.expand import Expander
from dslnet.frontend.limits import Work
from dslnet.frontend.resolve import walk_stmts
from dslnet.frontend.train import settings as fn
from dslnet.frontend.train.noise import Noise, read_noise
from dslnet.frontend.train.plan import LayerRef, Step, TrainPlan
from dslnet.frontend.train.setting_values import STEP_SETTINGS, TRAIN_SETTINGS, SettingReader
from dslnet.frontend.values import EvalError
from dslnet.ir.graph import Graph
from dslnet.ir.names import attribute_variant, is_attribute_name

if TYPE_CHECKING:
    from dslnet.frontend.loader import Spec


def lower(program: Spec, decl: ast.TrainDecl, overrides: dict[str, Any]) -> TrainPlan:
    """The plan of `decl` with `overrides` for its parameters; CompileError on errors."""
    diags = Diagnostics()
    plan = lower_into(program, decl, overrides, diags)
    if plan is None or diags.has_errors:
        raise CompileError(diags.errors(), program.sources)
    return plan


def lower_into(
    program: Spec,
    decl: ast.TrainDecl,
    overrides: dict[str, Any],
    diags: Diagnostics,
    work: Work | None = None,
) -> TrainPlan | None:
    """The plan of `decl`, its problems reported to `diags` (None when there are some);
    `work`: a max_steps budget shared with other expansions (a check's)."""
    return _Lowering(program, decl, diags, work).run(overrides)


class _Lowering:
    def __init__(
        self, program: Spec, decl: ast.TrainDecl, diags: Diagnostics, work: Work | None
    ) -> None:
        self.program = program
        self.decl = decl
        self.diags = diags
        self.work = work or Work()  # max_steps, for all the steps (and a check's networks)
        self.expander = Expander(program, diags, program.limits, self.work)
        self.env: dict[str, Any] = {}
        self.reader = SettingReader(
            lambda expr: self.expander.constant(expr, dict(self.env)), self.error
        )

    def as_block(self, body: tuple[ast.Stmt, ...], name: str) -> ast.BlockDecl:
        d = self.decl
        stripped = tuple(_without_annotations(s) for s in body)
        return ast.BlockDecl("train", name, d.params, stripped, d.span, d.name_span, d.annotations)

    def run(self, overrides: dict[str, Any]) -> TrainPlan | None:
        d = self.decl
        env = self.expander.bind_params(self.as_block(d.body, d.name), (), overrides, d.name_span)
        if env is None:
            return None
        self.env = env
        noise = self.noise_inputs()
        layers = self.layers()
        top = self.reader.settings(d.settings, {**STEP_SETTINGS, **TRAIN_SETTINGS}, layers)
        if d.steps:
            for name in ("update", "times"):
                if name in top:
                    self.error(f"'{name}' belongs inside a step", top[name][1])
        else:
            if "times" in top:
                self.error("'times' is for a step of an adversarial pair", top["times"][1])
        steps: list[Step] = []
        bodies: list[tuple[str | None, tuple[ast.Stmt, ...], tuple[ast.SettingStmt, ...], Span]]
        bodies = [(s.name, s.body, s.settings, s.name_span) for s in d.steps] or [
            (None, (), (), d.name_span)
        ]
        seen: dict[str, Span] = {}
        for step_name, body, step_settings, span in bodies:
            if step_name is not None and step_name in seen:
                self.error(f"duplicate step '{step_name}' in train '{d.name}'", span)
                continue
            if step_name is not None:
                seen[step_name] = span
            own = self.reader.settings(step_settings, STEP_SETTINGS, layers)
            step = self.step(step_name, (*d.body, *body), {**top, **own}, layers, span)
            if step is not None:
                steps.append(step)
        if self.diags.has_errors or not steps:
            return None
        graph = steps[0].graph
        data_inputs = {n: graph.type_of(n) for s in steps for n in s.graph.inputs if n not in noise}
        values = {k: v for k, (v, _) in top.items()}
        file = d.span.file
        return TrainPlan(
            name=d.name,
            spec_dir=Path(file).resolve().parent if Path(file).exists() else None,
            layers=layers,
            data_inputs=data_inputs,
            noise_inputs=noise,
            steps=tuple(steps),
            batch_size=values.get("batch_size", 32),
            epochs=values.get("epochs", 1),
            seed=values.get("seed", 0),
            data=values.get("data"),
            validation=values.get("validation"),
            early_stopping=values.get("early_stopping"),
            load_weights=tuple(values.get("load_weights", ())),
            quantize=values.get("quantize"),
            qat=values.get("qat", False),
            prune=values.get("prune"),
            span=d.span,
        )

    def error(self, message: str, span: Span) -> None:
        self.diags.error(message, span)

    # --- inputs and layers ---------------------------------------------------------------

    def noise_inputs(self) -> dict[str, Noise]:
        found: dict[str, Noise] = {}
        for stmt in self.decl.body:
            if not isinstance(stmt, ast.InStmt):
                continue
            for note in stmt.annotations:
                if note.name != "noise":
                    hint = did_you_mean(note.name, ["noise"])
                    self.error(
                        f"an input takes only @noise (normal, uniform or randint){hint}", note.span
                    )
                    continue
                found[stmt.name] = read_noise(
                    note, stmt, lambda e: self.expander.constant(e, dict(self.env)), self.error
                )
        return found

    def layers(self) -> dict[str, LayerRef]:
        found: dict[str, LayerRef] = {}
        for stmt in self.decl.body:
            if not isinstance(stmt, ast.LayerStmt):
                continue
            expr = stmt.value
            func = expr.func if isinstance(expr, ast.Call) else expr
            if not isinstance(func, ast.Name):
                continue  # reported when the step expands
            callee = self.program.callee(func.id)
            if callee is None or callee.kind == "builtin":
                continue
            kind = callee.kind
            block = self.program.block(func.id)
            params: dict[str, Any] = {}
            graph = None
            if block is not None:
                kind = block.kind
                params = self.layer_params(block, expr)
                if kind == "network":
                    graph = self.network_graph(func.id, params)
            segment = stmt.name
            if not is_attribute_name(segment):  # as the expander names its module
                segment = attribute_variant(
                    segment, set(found) | {r.module for r in found.values()}
                )
            found[stmt.name] = LayerRef(stmt.name, segment, func.id, kind, params, stmt.span, graph)
        for stmt, _ in _nested(self.decl):
            if isinstance(stmt, ast.LayerStmt) and stmt.name not in found:
                self.error(
                    "a train declaration's layers are declared at its top level, outside "
                    "steps and loops: every step trains the same weights",
                    stmt.span,
                )
        return found

    def network_graph(self, name: str, params: dict[str, Any]) -> Graph | None:
        """The network on its own, as it is exported; its errors are the step's."""
        try:
            return self.program.ir(name, **params)
        except CompileError:
            return None

    def layer_params(self, block: ast.BlockDecl, expr: ast.Expr) -> dict[str, Any]:
        if not isinstance(expr, ast.Call):
            return {}
        values: dict[str, Any] = {}
        try:
            for p, arg in zip(block.params, expr.args):
                values[p.name] = self.expander.constant(arg, dict(self.env))
            for k in expr.kwargs:
                values[k.name] = self.expander.constant(k.value, dict(self.env))
        except EvalError:
            return {}  # reported when the step expands
        return values

    # --- steps ---------------------------------------------------------------------------

    def step(
        self,
        name: str | None,
        body: tuple[ast.Stmt, ...],
        given: dict[str, tuple[Any, Span]],
        layers: dict[str, LayerRef],
        span: Span,
    ) -> Step | None:
        decl = self.as_block(body, self.decl.name)
        before = self.diags.has_errors
        graph = Expander(self.program, self.diags, self.program.limits, self.work).network(
            decl, dict(self.env), self.decl.name_span
        )
        if graph is None or (self.diags.has_errors and not before):
            return None
        graph.name = f"{self.decl.name}_{name}" if name else self.decl.name
        what = f"step '{name}'" if name else f"train '{self.decl.name}'"
        outputs = dict(graph.outputs)
        if "loss" not in outputs:
            # Else it failed and said why, or a syntax error there dropped it.
            if self.out_span(body, "loss") is None and not self.damaged():
                self.error(f"{what} needs an output named loss: out loss = ...", span)
            return None
        for out_name, value in graph.outputs:
            t = graph.type_of(value)
            if t.shape != () or t.dtype not in (DType.float32, DType.float64, DType.float16):
                role = "the loss" if out_name == "loss" else f"metric '{out_name}'"
                self.error(
                    f'{role} must be a float scalar, got {t}; reduce it (e.g. reduction="mean")',
                    self.out_span(body, out_name) or span,
                )
        self.check_weights_in_layers(graph, layers, span)
        optimizer = given.get("optimizer", (fn.Adam(), span))[0]
        update = given.get("update", (tuple(layers), span))[0]
        return Step(
            name=name or "train",
            graph=graph,
            optimizer=optimizer,
            schedule=given.get("schedule", (None, span))[0],
            clip_grad_norm=given.get("clip_grad_norm", (None, span))[0],
            update=tuple(update),
            times=given.get("times", (1, span))[0],
            metrics=tuple(n for n, _ in graph.outputs if n != "loss"),
            span=span,
        )

    def damaged(self) -> bool:
        """Whether the declaration had a syntax error: statements may be missing."""
        return self.decl.name in self.program.damaged_trains

    def out_span(self, body: tuple[ast.Stmt, ...], name: str) -> Span | None:
        for stmt, _ in walk_stmts(body):
            if isinstance(stmt, ast.OutStmt) and stmt.name == name:
                return stmt.span
        return None

    def check_weights_in_layers(
        self, graph: Graph, layers: dict[str, LayerRef], span: Span
    ) -> None:
        modules = {ref.module for ref in layers.values()}
        for p in graph.parameters.values():
            if p.module.split(".")[0] not in modules:
                node = next((n for n in graph.nodes if n.module == p.module), None)
                where = node.span if node is not None else span
                op = node.op if node is not None else p.module
                self.error(
                    f"this {op} has weights but is not one of the declaration's layers, "
                    f"which are what is trained and saved; declare it with "
                    f"layer NAME = {op}(...) and call NAME(...)",
                    where,
                )
                return


def _without_annotations(stmt: ast.Stmt) -> ast.Stmt:
    if isinstance(stmt, ast.InStmt) and stmt.annotations:
        return ast.InStmt(stmt.name, stmt.type, stmt.span)
    return stmt


def _nested(decl: ast.TrainDecl) -> list[tuple[ast.Stmt, int]]:
    """Statements below the top level: in loops, conditions and steps."""
    found = [(s, d) for s, d in walk_stmts(decl.body) if d > 0]
    for step in decl.steps:
        found += list(walk_stmts(step.body, 1))
    return found
