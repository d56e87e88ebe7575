"""The state one expansion carries, and what every part of it uses.

Frame is one running block; ExpanderState holds the graph being built, the running
blocks, the counts kept against the limits (steps, iterations, nodes, parameters)
and the marks of the annotations around; its methods report errors at statement
level and charge compile-time work. The parts of the Expander (statements, binding,
expressions, op calls, block calls) are mixins over this class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dslnet.core.diagnostics import Diagnostics, Span
from dslnet.core.types import TensorType
from dslnet.frontend import ast
from dslnet.frontend.annotations import resolve as resolve_annotation
from dslnet.frontend.bound import ExpansionBound
from dslnet.frontend.limits import Work
from dslnet.frontend.resolve import walk_stmts
from dslnet.frontend.values import POISON, EvalError, LayerVal, TensorVal
from dslnet.ir.builder import GraphBuilder
from dslnet.ir.graph import CallFrame
from dslnet.ir.located import call_chain_notes
from dslnet.ir.names import attribute_variant, is_attribute_name
from dslnet.ops import registry

if TYPE_CHECKING:
    from dslnet.frontend.limits import Limits
    from dslnet.frontend.loader import Spec


@dataclass
class Frame:
    """One running block (or the network itself)."""

    decl: ast.BlockDecl
    env: dict[str, Any]
    value_prefix: str
    module_prefix: str
    chain: tuple[CallFrame, ...]
    inputs: list[TensorVal | Any] = field(default_factory=list)
    next_input: int = 0
    outputs: list[tuple[str | None, Any, Span]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    init: str | None = None  # `init=` given to this block call, inherited by its layers
    layers: frozenset[str] = frozenset()  # the block's layer names: taken module names
    segments: dict[str, str] = field(default_factory=dict)  # layer name -> module segment

    def local_name(self, base: str) -> str:
        """`linear3`: the next automatic name for `base`, never a layer's name."""
        base = base.lstrip("_") or "v"  # a leading `__` would be mangled in a class body
        k = self.counters.get(base, 0)
        while True:
            k += 1
            if f"{base}{k}" not in self.layers:
                break
        self.counters[base] = k
        return f"{base}{k}"

    def layer_segment(self, name: str) -> str:
        """The module path segment of layer `name`: the name itself when the generated
        PyTorch module can have it as an attribute, else a variant (`class_`)."""
        segment = self.segments.get(name)
        if segment is None:
            segment = name
            if not is_attribute_name(name):
                segment = attribute_variant(name, self.layers | set(self.segments.values()))
            self.segments[name] = segment
        return segment


class ExpanderState:
    """The state of an expansion; the Expander's parts are its subclasses."""

    def __init__(
        self, program: Spec, diags: Diagnostics, limits: Limits, work: Work | None = None
    ) -> None:
        self.program = program
        self.diags = diags
        self.limits = limits
        self.builder: GraphBuilder | None = None
        self.frame: Frame | None = None
        self.active: list[str] = []
        self.iterations = 0
        self.work = work or Work()  # max_steps: shared by the networks of one check
        self.bound = ExpansionBound(program, limits)  # asked before block calls and loops
        self.parameters = 0  # elements of parameters and buffers so far, for max_parameters
        self.parameters_seen = 0  # entries of graph.parameters already counted
        self.node_limit_reported = False
        self.marks: dict[str, Any] = {}  # what the annotations around us ask of new nodes
        self._layer_names: dict[int, frozenset[str]] = {}  # per block declaration
        self._bound_names: dict[int, list[str]] = {}  # per if, for and repeat statement

    def layer_names(self, decl: ast.BlockDecl) -> frozenset[str]:
        """The names of every `layer` statement of `decl` (nested ones too)."""
        found = self._layer_names.get(id(decl))
        if found is None:
            stmts = walk_stmts(decl.body)
            found = frozenset(s.name for s, _ in stmts if isinstance(s, ast.LayerStmt))
            self._layer_names[id(decl)] = found
        return found

    def charge(self, steps: int, span: Span) -> None:
        """Count `steps` of compile-time work against max_steps, before doing it: a loop
        under max_iterations can still run a long body, or square a symbolic size."""
        self.work.steps += steps
        if self.work.steps > self.limits.max_steps:
            raise EvalError(self.out_of_steps(), span)

    def out_of_steps(self) -> str:
        """The error for passing max_steps, the first time; after that "" (one error
        for the network, not one per statement skipped)."""
        if self.work.reported:
            return ""
        self.work.reported = True
        return (
            f"expansion passes the limit of {self.limits.max_steps} steps of compile-time "
            f"work here (statements, expressions, list items, nodes; one budget for all "
            f"that a check expands): raise it with --max-steps"
        )

    # --- reporting -----------------------------------------------------------------

    def error(self, message: str, span: Span) -> None:
        chain = self.frame.chain if self.frame else ()
        self.diags.error(message, span, call_chain_notes(chain))

    @contextmanager
    def statement(self, targets: Sequence[str] = ()) -> Iterator[None]:
        """Report an EvalError at statement level and poison what it would have bound."""
        try:
            yield
        except EvalError as err:
            if err.message:  # an empty message: the cause was reported already
                self.error(err.message, err.span)
            assert self.frame is not None
            self.work.steps += len(targets)  # charged: a loop may fail here at each turn
            for t in targets:
                self.frame.env[t] = POISON

    @contextmanager
    def marked(self, marks: dict[str, Any]) -> Iterator[None]:
        """Nodes made inside carry these marks (over the outer ones)."""
        saved, self.marks = self.marks, {**self.marks, **marks}
        try:
            yield
        finally:
            self.marks = saved

    @contextmanager
    def annotated(self, notes: Sequence[ast.Annotation]) -> Iterator[None]:
        """Nodes made inside carry these annotations' marks; a wrong one is reported
        and left out."""
        marks: dict[str, Any] = {}
        for note in notes:
            try:
                key, value = resolve_annotation(note, self.eval)
                marks[key] = value
            except EvalError as err:
                if err.message:
                    self.error(err.message, err.span)
        with self.marked(marks):
            yield

    if TYPE_CHECKING:
        # What the parts call of each other, for the type checker (mypy checks each
        # definition against its declaration here).

        def eval(self, expr: ast.Expr, hint: str | None = None) -> Any: ...
        def constant(self, expr: ast.Expr, env: dict[str, Any]) -> Any: ...
        def condition(self, expr: ast.Expr) -> bool: ...
        def run_body(self, frame: Frame) -> None: ...
        def check_growth(self, nodes: int, what: str, span: Span) -> None: ...
        def check_outputs(self, frame: Frame) -> None: ...
        def bind_params(
            self,
            decl: ast.BlockDecl,
            positional: Sequence[Any],
            named: dict[str, Any],
            span: Span,
            is_network: bool = False,
        ) -> dict[str, Any] | None: ...
        def bind_input(self, stmt: ast.InStmt) -> Any: ...
        def as_tensor(self, value: Any, like: TensorVal, span: Span) -> TensorVal: ...
        def call(
            self, func: Any, args: list[Any], kwargs: dict[str, Any], span: Span, hint: str | None
        ) -> Any: ...
        def apply_op(
            self,
            op_name: str,
            tensors: Sequence[TensorVal],
            rest: Sequence[Any],
            kwargs: dict[str, Any],
            span: Span,
            hint: str | None,
            module: str | None = None,
        ) -> Any: ...
        def bind_op_attrs(
            self,
            opdef: registry.OpDef,
            rest: Sequence[Any],
            kwargs: dict[str, Any],
            span: Span,
            inputs: Sequence[TensorType] = (),
        ) -> tuple[Any, str | None]: ...
        def take_init(self, kwargs: dict[str, Any], span: Span) -> str | None: ...
        def over_node_limit(self, span: Span) -> None: ...
        def make_layer(self, stmt: ast.LayerStmt) -> LayerVal: ...
        def apply_layer(
            self,
            layer: LayerVal,
            args: list[Any],
            kwargs: dict[str, Any],
            span: Span,
            hint: str | None,
        ) -> Any: ...
        def call_block(
            self,
            name: str,
            tensors: Sequence[TensorVal],
            rest: Sequence[Any],
            kwargs: dict[str, Any],
            span: Span,
            layer: LayerVal | None,
            hint: str | None = None,
        ) -> Any: ...
