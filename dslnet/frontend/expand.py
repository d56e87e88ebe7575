"""Expansion: runs a network's compile-time structure and builds its IR graph.

Loops, conditions and block calls run here and only here; what comes out is
a flat graph of op nodes with types inferred as each node is added. Errors
are reported per statement (with the chain of block calls that led there)
and the failed names are poisoned, so one mistake gives one error.
"""

from __future__ import annotations

from typing import Any

from dslnet.core.diagnostics import Span
from dslnet.frontend import ast
from dslnet.frontend.expand_binding import Binding
from dslnet.frontend.expand_blocks import BlockCalls
from dslnet.frontend.expand_calls import OpCalls
from dslnet.frontend.expand_expressions import Expressions
from dslnet.frontend.expand_state import Frame
from dslnet.frontend.expand_statements import StatementRunner
from dslnet.frontend.values import TensorVal, is_poison, kind_of
from dslnet.ir.builder import GraphBuilder
from dslnet.ir.graph import Graph


class Expander(StatementRunner, Binding, Expressions, OpCalls, BlockCalls):
    """Expands networks (and the blocks they call) into IR graphs."""

    # --- entry points --------------------------------------------------------------

    def network(self, decl: ast.BlockDecl, overrides: dict[str, Any], span: Span) -> Graph | None:
        env = self.bind_params(decl, (), overrides, span, is_network=True)
        if env is None:
            return None
        args = {p.name: env[p.name] for p in decl.params}
        self.builder = GraphBuilder(decl.name, args, decl.span)
        frame = Frame(decl, env, "", "", (), layers=self.layer_names(decl))
        self.active.append(decl.name)
        self.run_body(frame)
        self.active.pop()
        self.check_outputs(frame)
        for name, value, out_span in frame.outputs:
            if isinstance(value, TensorVal) and self.output_named_as_input(name, value, out_span):
                continue
            if isinstance(value, TensorVal):
                self.builder.add_output(name or "output", value.name)
            elif not is_poison(value):
                what = f"output '{name}'" if name else "the output"
                self.error(f"{what} must be a tensor, got {kind_of(value)}", out_span)
        return self.builder.graph

    def output_named_as_input(self, name: str | None, value: TensorVal, span: Span) -> bool:
        """Report a network output that takes an input's name for another value: the
        model's interface could not tell them apart (ONNX refuses it)."""
        assert self.builder is not None
        shown = name or "output"
        if shown not in self.builder.graph.inputs or value.name == shown:
            return False
        what = f"output '{name}'" if name else "the output, named 'output' by default,"
        self.error(
            f"{what} has the name of an input; a network's inputs and outputs need distinct names",
            span,
        )
        return True


__all__ = ["Expander"]
