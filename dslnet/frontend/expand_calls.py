"""Calls: what a call is (builtin, op, block or layer), its arguments checked, and an
op applied as a node of the graph, with the node, tensor and parameter limits.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from dslnet.core.diagnostics import Span, did_you_mean
from dslnet.core.symbolic import SymExpr
from dslnet.core.types import TensorType, shape_str
from dslnet.frontend import ast
from dslnet.frontend.builtins import number_builtin
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
from dslnet.frontend.vocabulary import BUILTINS
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
        numbers = registry.get(func.name) if func.kind == "op" else None
        if numbers is not None and numbers.number_inputs:  # a number there is an input
            places = {numbers.inputs.index(name) for name in numbers.number_inputs}
            args = [
                POISON if i in places and not isinstance(a, TensorVal) else a
                for i, a in enumerate(args)
            ]
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
        if func.kind == "builtin" or (func.kind == "op" and on_numbers(func.name, args)):
            return self.builtin(func.name, args, kwargs, span)
        if func.kind == "op":
            args = self.numbers_as_inputs(func.name, args, span)
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
            if not tensors and opdef.variadic and rest and type(rest[0]) is tuple:
                # A list of tensors is the inputs: `concat(feats, axis=1)`.
                tensors, rest = list_inputs(func.name, rest[0], span), rest[1:]
            if not tensors and opdef.inputs:
                raise EvalError(
                    f"{func.name} is called without an input tensor: write "
                    f"x -> {func.name}(...) or {func.name}(x, ...)",
                    span,
                )
            return self.apply_op(func.name, tensors, rest, kwargs, span, hint)
        return self.call_block(func.name, tensors, rest, kwargs, span, None, hint)

    def numbers_as_inputs(self, op_name: str, args: list[Any], span: Span) -> list[Any]:
        """`args` with the numbers and sizes given for an op's `number_inputs` made scalar
        tensors like the first of those inputs given as a tensor (`where(c, x, 0.0)`)."""
        opdef = registry.get(op_name)
        assert opdef is not None
        if not opdef.number_inputs:
            return args
        places = [opdef.inputs.index(name) for name in opdef.number_inputs]
        given = [args[i] for i in places if i < len(args)]
        like = next((a for a in given if isinstance(a, TensorVal)), None)
        if len(args) < len(opdef.inputs):
            return args
        if like is None and any(isinstance(a, (int, float, SymExpr)) for a in given):
            names = ", ".join(opdef.number_inputs)
            raise EvalError(
                f"{op_name}: one of {names} must be a tensor, whose dtype the numbers take",
                span,
            )
        if like is None:
            return args
        return [
            self.as_tensor(a, like, span)
            if i in places and isinstance(a, (int, float, SymExpr)) and not isinstance(a, bool)
            else a
            for i, a in enumerate(args)
        ]

    def builtin(self, name: str, args: list[Any], kwargs: dict[str, Any], span: Span) -> Any:
        tensor_arg = next((a for a in args if isinstance(a, TensorVal)), None)
        if tensor_arg is not None:  # max(x, axis=1): say which op it is on tensors
            from dslnet.ops.reduce import builtin_on_tensor_hint

            hint = builtin_on_tensor_hint(name)
            if hint is not None:
                raise EvalError(
                    f"{name}() is a compile-time builtin on numbers, got "
                    f"{kind_of(tensor_arg)}: {hint}",
                    span,
                )
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
        if name == "size":
            return self.size_of(args, span)
        if tensor_arg is not None:  # sqrt, exp, log, abs on a tensor are ops: not here
            raise EvalError(
                f"{name}() is a compile-time builtin on numbers, got {kind_of(tensor_arg)}", span
            )
        return number_builtin(name, args, span)

    def size_of(self, args: list[Any], span: Span) -> Any:
        """`size(x, axis)`: the size of `x` along `axis`, an int, or a symbolic size (N)
        that becomes a run-time value where it meets a tensor (`loss / size(x, 0)`)."""
        if len(args) != 2 or not isinstance(args[0], TensorVal) or type(args[1]) is not int:
            got = ", ".join(kind_of(a) for a in args) or "nothing"
            raise EvalError(f"size() takes a tensor and an int axis, got {got}", span)
        tensor, axis = args
        rank = tensor.type.rank
        if not -rank <= axis < rank:
            raise EvalError(
                f"size(): axis {axis} is out of range for {kind_of(tensor)} (rank {rank})", span
            )
        return tensor.type.shape[axis]

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
        if tensors and not opdef.inputs and not opdef.variadic:
            raise EvalError(f"{op_name} takes no input tensor, got {len(tensors)}", span)
        # An op's size sources (OpDef.run_time_sizes) follow its inputs in the node; a
        # call gives only the inputs.
        declared = len(opdef.inputs) + len(opdef.optional_inputs)
        if not opdef.arity_ok(len(tensors)) or (not opdef.variadic and len(tensors) > declared):
            count, names = opdef.arity_words()
            raise EvalError(
                f"{op_name} takes {count} input tensor(s) ({names}), got {len(tensors)}", span
            )
        attrs, init = self.bind_op_attrs(opdef, rest, kwargs, span, [t.type for t in tensors])
        tensors = [*tensors, *self.size_sources(opdef, attrs, span, tensors)]
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

    def size_sources(
        self, opdef: registry.OpDef, attrs: Any, span: Span, given: Sequence[TensorVal] = ()
    ) -> list[TensorVal]:
        """Tensors in scope that have the symbolic sizes an op needs at run time
        (OpDef.run_time_sizes) and its inputs `given` lack: its node's extra inputs,
        read for their shapes only."""
        from dslnet.ops.run_time_sizes import found_in

        assert self.frame is not None
        try:
            needed = opdef.run_time_sizes(attrs)
        except ShapeError as err:
            raise EvalError(str(err), span) from None
        if not needed:
            return []
        in_scope = [v for v in self.frame.env.values() if isinstance(v, TensorVal)]
        chosen: list[TensorVal] = []
        for dim in needed:
            if any(found_in(dim, t.type) for t in (*given, *chosen)):
                continue
            source = next((t for t in in_scope if found_in(dim, t.type)), None)
            if source is None:
                raise EvalError(
                    f"{opdef.name}: the size {dim} is known only at run time, and no tensor "
                    f"in scope has it (nor sizes whose product it is) to read it from",
                    span,
                )
            chosen.append(source)
        return chosen

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
        start = kwargs.get("init")
        if (
            isinstance(start, (int, float))
            and opdef.takes_init()
            and "value" in opdef.Attrs.model_fields
        ):
            # `init=1e-6` in the habit of a layer-scale constructor: the number is a start
            # value, which this op takes as `value=`; init= only names random schemes.
            raise EvalError(
                f"init= names a scheme ({', '.join(init_schemes.names())}); a number to "
                f"start every element at is {opdef.name}'s value=: write value={start!r}",
                span,
            )
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


def on_numbers(name: str, args: Sequence[Any]) -> bool:
    """Whether a call of an op that is also a builtin (`sqrt`) is the builtin's: its
    arguments are compile-time values, not tensors."""
    return name in BUILTINS and not any(isinstance(a, (TensorVal, Record)) for a in args)


def list_inputs(op: str, items: tuple[Any, ...], span: Span) -> list[TensorVal]:
    """The tensors of a list given as the inputs of an op that takes any number of them."""
    if not items:
        raise EvalError(f"{op} is given an empty list: it needs at least one tensor", span)
    for index, item in enumerate(items):
        if not isinstance(item, TensorVal):
            raise EvalError(
                f"{op} takes a list of tensors, but item {index} of the list is {kind_of(item)}",
                span,
            )
    return list(items)


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
