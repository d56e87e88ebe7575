"""Calls: what a call is (builtin, op, block or layer), its arguments checked, and an
op applied as a node of the graph, with the node, tensor and parameter limits.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from dslnet.core.diagnostics import Span, did_you_mean
from dslnet.core.types import TensorType, shape_str
from dslnet.frontend import ast
from dslnet.frontend.expand_state import ExpanderState
from dslnet.frontend.limits import elements, parameters_problem, tensor_problem
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
from dslnet.ir import init as init_schemes
from dslnet.ops import registry
from dslnet.ops.registry import AttrError, ShapeError

NODE_STEPS = 20  # what making a node, with its type checks, costs in max_steps


class OpCalls(ExpanderState):
    """Calls of builtins and ops; blocks and layers are BlockCalls'."""

    def call(
        self, func: Any, args: list[Any], kwargs: dict[str, Any], span: Span, hint: str | None
    ) -> Any:
        """The value of a call; a failed one is reported and gives POISON, so the rest of
        the statement (a pipeline's later stages) and what uses it are still checked."""
        if is_poison(func) or is_poison(tuple(kwargs.values())):
            return POISON
        try:
            if any(is_poison(a) for a in args):
                self.check_arguments(func, args, kwargs, span)
                return POISON
            return self.call_checked(func, args, kwargs, span, hint)
        except EvalError as err:
            if err.message:
                self.error(err.message, err.span)
            return POISON

    def check_arguments(
        self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], span: Span
    ) -> None:
        """A call whose input tensors failed earlier: what its other arguments do not fit
        is an independent mistake and is reported; nothing that needs the inputs is.
        Silent when a failed value may be one of those other arguments."""
        if not isinstance(func, Callee) or func.kind == "builtin":
            return  # a layer's arguments were checked where it was declared
        leading = next(
            (i for i, a in enumerate(args) if not (isinstance(a, TensorVal) or is_poison(a))),
            len(args),
        )
        rest = args[leading:]
        if is_poison(tuple(rest)):
            return
        kwargs = {k: v for k, v in kwargs.items() if not isinstance(v, TensorVal)}
        opdef = registry.get(func.name) if func.kind == "op" else None
        if opdef is not None:
            most = len(opdef.inputs) + len(opdef.optional_inputs)
            if opdef.variadic or leading <= most:
                known = [a.type for a in args[:1] if isinstance(a, TensorVal)]
                self.bind_op_attrs(opdef, rest, kwargs, span, known)
            return
        decl = self.program.block(func.name)
        inputs = [s for s in decl.body if isinstance(s, ast.InStmt)] if decl else []
        if decl is not None and leading <= len(inputs) and func.name not in self.active:
            self.take_init(kwargs, span)
            self.bind_params(decl, rest, kwargs, span)

    def call_checked(
        self, func: Any, args: list[Any], kwargs: dict[str, Any], span: Span, hint: str | None
    ) -> Any:
        if isinstance(func, LayerVal):
            return self.apply_layer(func, args, kwargs, span, hint)
        if not isinstance(func, Callee):
            raise EvalError(f"{kind_of(func)} is not callable", span)
        if func.kind == "builtin":
            return self.builtin(func.name, args, kwargs, span)
        tensors, rest = split_inputs(args, span)
        if not tensors and func.kind == "block":
            raise EvalError(
                f"block '{func.name}' is called without an input tensor: write "
                f"x -> {func.name}(...) (or declare it with 'layer' and apply it)",
                span,
            )
        if func.kind == "op":
            opdef = registry.get(func.name)
            assert opdef is not None
            if not tensors and opdef.inputs:
                raise EvalError(
                    f"{func.name} is called without an input tensor: write "
                    f"x -> {func.name}(...) or {func.name}(x, ...)",
                    span,
                )
            return self.apply_op(func.name, tensors, rest, kwargs, span, hint)
        return self.call_block(func.name, tensors, rest, kwargs, span, None, hint)

    def builtin(self, name: str, args: list[Any], kwargs: dict[str, Any], span: Span) -> Any:
        if kwargs:
            raise EvalError(f"{name}() takes no named arguments", span)
        if name == "range":
            if not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
                raise EvalError("range() takes 1 to 3 ints", span)
            if len(args) == 3 and args[2] == 0:
                raise EvalError("range() step must not be zero", span)
            r = range(*args)
            # len() of a range over 2**63 items overflows: count it as Python ints.
            size = max(0, (r.stop - r.start + r.step - (1 if r.step > 0 else -1)) // r.step)
            if size > self.limits.max_iterations:
                raise EvalError(
                    f"range of {size} is over the limit of "
                    f"{self.limits.max_iterations} (raise it with --max-iterations)",
                    span,
                )
            self.charge(size, span)
            return tuple(r)
        if name == "len":
            if len(args) != 1 or not isinstance(args[0], (tuple, str)):
                raise EvalError("len() takes one list or string", span)
            return len(args[0])
        if not args or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in args
        ):
            raise EvalError(f"{name}() takes numbers", span)
        return min(args) if name == "min" else max(args)

    def apply_op(
        self,
        op_name: str,
        tensors: Sequence[TensorVal],
        rest: Sequence[Any],
        kwargs: dict[str, Any],
        span: Span,
        hint: str | None,
        module: str | None = None,
    ) -> Any:
        frame, builder = self.frame, self.builder
        assert frame is not None and builder is not None
        opdef = registry.get(op_name)
        assert opdef is not None
        if not opdef.arity_ok(len(tensors)):
            count, names = opdef.arity_words()
            raise EvalError(
                f"{op_name} takes {count} input tensor(s) ({names}), got {len(tensors)}", span
            )
        attrs, init = self.bind_op_attrs(opdef, rest, kwargs, span, [t.type for t in tensors])
        has_weights = type(opdef).params is not registry.OpDef.params
        local = frame.local_name(opdef.short_name or op_name)
        path = module if module is not None else frame.module_prefix + local
        n_out = len(opdef.outputs)
        targets = hint.split(",") if hint else []
        if n_out > 1 and len(targets) == n_out:
            # Discarded outputs (`_c`) keep the op's own names.
            own = [local] + [f"{local}.{o}" for o in opdef.outputs[1:]]
            hints = [
                frame.value_prefix + (mine if t.startswith("_") else t)
                for t, mine in zip(targets, own)
            ]
        else:
            single = hint if hint and "," not in hint and n_out == 1 else None
            hints = [frame.value_prefix + (single or local)]
            hints += [f"{hints[0]}.{o}" for o in opdef.outputs[1:]]
        self.count_node(span)
        self.charge(NODE_STEPS, span)
        try:
            outs = builder.add_node(
                opdef,
                attrs,
                [t.name for t in tensors],
                module=path,
                out_hints=hints,
                span=span,
                chain=frame.chain,
                init=(init or frame.init) if has_weights else None,
                marks=self.marks,
            )
        except ShapeError as err:
            raise EvalError(str(err), span) from None
        self.check_sizes(op_name, outs, span)
        vals = [TensorVal(o, builder.graph.values[o].type) for o in outs]
        if len(vals) == 1:
            return vals[0]
        return Record(tuple(zip(opdef.outputs, vals)))

    def bind_op_attrs(
        self,
        opdef: registry.OpDef,
        rest: Sequence[Any],
        kwargs: dict[str, Any],
        span: Span,
        inputs: Sequence[TensorType] = (),
    ) -> tuple[Any, str | None]:
        """An op call's attributes and `init=` scheme, checked against its schema
        (`inputs`, its input types where known, for the messages)."""
        kwargs = dict(kwargs)
        init = self.take_init(kwargs, span)
        if init is not None and type(opdef).params is registry.OpDef.params:
            raise EvalError(f"{opdef.name} has no weights to initialise (init=)", span)
        if init is not None and not opdef.takes_init():
            raise EvalError(
                f"{opdef.name} does not say which of its parameters are weights "
                "(OpDef.param_roles), so init= cannot apply to it",
                span,
            )
        try:
            return opdef.bind_attrs(rest, kwargs, inputs), init
        except AttrError as err:
            for message in err.messages[:-1]:
                self.error(message, span)
            raise EvalError(err.messages[-1], span) from None

    def take_init(self, kwargs: dict[str, Any], span: Span) -> str | None:
        """Remove and check an `init=` argument (any op with weights, any block)."""
        if "init" not in kwargs:
            return None
        value = kwargs.pop("init")
        scheme = init_schemes.canonical(value) if isinstance(value, str) else None
        if scheme is None:
            hint = did_you_mean(value, init_schemes.names()) if isinstance(value, str) else ""
            raise EvalError(
                f"init expects one of {', '.join(init_schemes.names())}, got "
                f"{registry.value_words(value) if isinstance(value, str) else kind_of(value)}"
                f"{hint}",
                span,
            )
        return scheme

    def check_sizes(self, op_name: str, outputs: Sequence[str], span: Span) -> None:
        """The tensors a node made and the network's count of parameters and buffers
        (both take memory in the module) against the limits: types and shapes only,
        before any weight exists."""
        assert self.builder is not None
        graph, limits = self.builder.graph, self.limits
        new = len(graph.parameters) - self.parameters_seen
        self.parameters_seen = len(graph.parameters)
        before = self.parameters
        added = list(itertools.islice(reversed(graph.parameters.values()), new))
        for param in reversed(added):  # in the op's order: weight, then bias
            if elements(param.shape) > limits.max_tensor_elements:
                what = f"{op_name}'s {param.role} {shape_str(param.shape)}"
                raise EvalError(tensor_problem(what, param.shape, limits) or "", span)
            self.parameters += param.numel
        # Reported where the count crosses the limit, not again at every later layer.
        if before <= limits.max_parameters < self.parameters:
            raise EvalError(parameters_problem(self.parameters, limits) or "", span)
        for name in outputs:
            ttype = graph.values[name].type
            if elements(ttype.shape) > limits.max_tensor_elements:
                what = f"{op_name}'s output {ttype}"
                raise EvalError(tensor_problem(what, ttype.shape, limits) or "", span)

    def over_node_limit(self, span: Span) -> None:
        """Say the node limit is passed once: after that, every statement that would add
        nodes fails silently (one error for the network, not one per loop run)."""
        if self.node_limit_reported:
            raise EvalError("", span)
        self.node_limit_reported = True

    def count_node(self, span: Span) -> None:
        assert self.builder is not None
        if len(self.builder.graph.nodes) >= self.limits.max_nodes:
            self.over_node_limit(span)
            raise EvalError(
                f"the network has more than {self.limits.max_nodes} nodes "
                f"(raise the limit with --max-nodes)",
                span,
            )


def split_inputs(args: Sequence[Any], span: Span) -> tuple[list[TensorVal], list[Any]]:
    """Leading tensor arguments are inputs; the rest are attributes."""
    tensors: list[TensorVal] = []
    rest: list[Any] = []
    for a in args:
        if isinstance(a, Record):
            raise EvalError(f"cannot pass {a.describe()} as one input; pick one with .name", span)
        if isinstance(a, TensorVal):
            if rest:
                raise EvalError("input tensors come before the other arguments", span)
            tensors.append(a)
        else:
            rest.append(a)
    return tensors, rest
