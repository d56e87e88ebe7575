"""Layers and block calls: a `layer` declared and applied, and a block expanded in a
frame of its own, its module and call recorded in the graph.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dslnet.core.diagnostics import Span
from dslnet.frontend import ast
from dslnet.frontend.expand_state import ExpanderState, Frame
from dslnet.frontend.values import (
    POISON,
    Callee,
    EvalError,
    LayerVal,
    Record,
    TensorVal,
    is_poison,
    kind_of,
)
from dslnet.ir.graph import CallFrame, CallInfo
from dslnet.ops import registry

# What a block call costs in max_steps besides its statements: binding its
# parameters and inputs takes about as long as twenty statements.
BLOCK_CALL_STEPS = 20


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class BlockCalls(ExpanderState):
    """Layers and calls of blocks."""

    def make_layer(self, stmt: ast.LayerStmt) -> LayerVal:
        frame = self.frame
        assert frame is not None
        expr = stmt.value
        if isinstance(expr, ast.Call):
            func = self.eval(expr.func)
            args = tuple(self.eval(a) for a in expr.args)
            kwargs = {k.name: self.eval(k.value) for k in expr.kwargs}
        else:
            func, args, kwargs = self.eval(expr), (), {}
        if is_poison(func) or is_poison(args) or is_poison(tuple(kwargs.values())):
            raise EvalError("", expr.span)
        if not isinstance(func, Callee) or func.kind == "builtin":
            raise EvalError(
                f"a layer is an op or block, e.g. layer fc = linear(10); got {kind_of(func)}",
                expr.span,
            )
        if any(isinstance(a, (TensorVal, Record)) for a in (*args, *kwargs.values())):
            raise EvalError(
                f"a layer is declared without inputs (layer {stmt.name} = "
                f"{func.name}(...)); apply it afterwards: {stmt.name}(x)",
                expr.span,
            )
        self.check_layer_arguments(func, args, kwargs, expr.span)
        module = frame.module_prefix + frame.layer_segment(stmt.name)
        return LayerVal(func, args, kwargs, module, stmt.span, marks=dict(self.marks))

    def check_layer_arguments(
        self, func: Callee, args: Sequence[Any], kwargs: dict[str, Any], span: Span
    ) -> None:
        """A layer's arguments, checked where it is declared: a mistake there is one
        error, not one per use."""
        opdef = registry.get(func.name) if func.kind == "op" else None
        if opdef is not None:
            self.bind_op_attrs(opdef, args, kwargs, span)
            return
        decl = self.program.block(func.name)
        if decl is not None:
            params = dict(kwargs)
            self.take_init(params, span)
            if self.bind_params(decl, args, params, span) is None:
                raise EvalError("", span)  # reported by bind_params

    def apply_layer(
        self, layer: LayerVal, args: list[Any], kwargs: dict[str, Any], span: Span, hint: str | None
    ) -> Any:
        if kwargs or not all(isinstance(a, TensorVal) for a in args):
            raise EvalError(
                f"layer '{layer.module}' already has its arguments; call it with input "
                f"tensors only",
                span,
            )
        tensors = [a for a in args if isinstance(a, TensorVal)]
        layer.uses += 1
        with self.marked(layer.marks):
            if layer.callee.kind == "op":
                # Every use names the same module, hence the same parameters.
                return self.apply_op(
                    layer.callee.name,
                    tensors,
                    layer.args,
                    dict(layer.kwargs),
                    span,
                    hint,
                    module=layer.module,
                )
            return self.call_block(
                layer.callee.name, tensors, list(layer.args), dict(layer.kwargs), span, layer, hint
            )

    def call_block(
        self,
        name: str,
        tensors: Sequence[TensorVal],
        rest: Sequence[Any],
        kwargs: dict[str, Any],
        span: Span,
        layer: LayerVal | None,
        hint: str | None = None,
    ) -> Any:
        frame, builder = self.frame, self.builder
        assert frame is not None and builder is not None
        decl = self.program.block(name)
        assert decl is not None
        if name in self.active:
            return POISON  # recursion is reported once, statically
        self.charge(BLOCK_CALL_STEPS, span)
        if len(self.active) >= self.limits.max_depth:
            raise EvalError(
                f"blocks nest deeper than {self.limits.max_depth} levels "
                f"(raise the limit with --max-depth)",
                span,
            )
        inputs = [s for s in decl.body if isinstance(s, ast.InStmt)]
        tensor_kwargs = {k: v for k, v in kwargs.items() if isinstance(v, TensorVal)}
        param_kwargs = {k: v for k, v in kwargs.items() if k not in tensor_kwargs}
        init = self.take_init(param_kwargs, span) or frame.init
        given: list[Any] = list(tensors)
        for stmt in inputs[len(tensors) :]:
            if stmt.name in tensor_kwargs:
                given.append(tensor_kwargs.pop(stmt.name))
        if tensor_kwargs:
            raise EvalError(f"block '{name}' has no input '{next(iter(tensor_kwargs))}'", span)
        if len(given) != len(inputs):
            names = ", ".join(s.name for s in inputs)
            raise EvalError(
                f"block '{name}' takes {len(inputs)} input tensor(s) ({names}), got {len(given)}",
                span,
            )
        env = self.bind_params(decl, rest, param_kwargs, span)
        if env is None:
            raise EvalError("", span)
        self.check_growth(self.bound.block_call(decl, env), f"block '{name}'", span)
        if layer is not None:
            module = layer.module
            value_path = module if layer.uses == 1 else f"{module}@{layer.uses}"
        else:
            module = value_path = frame.module_prefix + frame.local_name(snake(name))
            if frame.value_prefix != frame.module_prefix:
                value_path = frame.value_prefix + module[len(frame.module_prefix) :]
        builder.add_module(module, name, {k: env[k] for k in (p.name for p in decl.params)}, span)
        call_id = builder.new_call_id()
        chain = (*frame.chain, CallFrame(block=name, instance=module, span=span, call_id=call_id))
        callee = Frame(
            decl,
            env,
            value_path + ".",
            module + ".",
            chain,
            inputs=given,
            init=init,
            layers=self.layer_names(decl),
        )
        self.active.append(name)
        try:
            self.run_body(callee)
        finally:
            self.active.pop()
        saved, self.frame = self.frame, callee
        try:
            self.check_outputs(callee)
        finally:
            self.frame = saved
        outs = callee.outputs
        if not outs:
            return POISON
        if not any(is_poison(v) for _, v, _ in outs):
            builder.add_call(
                CallInfo(
                    id=call_id,
                    parent=frame.chain[-1].call_id if frame.chain else 0,
                    block=name,
                    instance=module,
                    prefix=value_path + ".",
                    inputs=[t.name for t in given],
                    input_names=[s.name for s in inputs],
                    result_name=hint if hint and "," not in hint and len(outs) == 1 else None,
                    outputs=[
                        (n or "output", v.name) for n, v, _ in outs if isinstance(v, TensorVal)
                    ],
                    span=span,
                )
            )
        if len(outs) == 1:
            return outs[0][1]
        if any(is_poison(v) for _, v, _ in outs):
            return POISON
        return Record(tuple((n or f"out{i}", v) for i, (n, v, _) in enumerate(outs)))
