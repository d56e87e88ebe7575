"""Checks that a graph is well formed: what the passes and both backends rely on.

The pass manager runs it after every pass; tests run it on every graph the front end
makes. A failure is a bug in whatever made the graph, reported at the node concerned
(its span and call chain, dslnet.ir.located) as an internal error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from dslnet.core.diagnostics import Note
from dslnet.ir.graph import CallFrame, CallInfo, Graph, Node
from dslnet.ir.located import InternalError
from dslnet.ops import registry


class VerifyError(InternalError):
    """A broken invariant; `message` says which, `node` (when one is to blame) where."""


def verify(graph: Graph) -> None:
    """Raise VerifyError on the first broken invariant.

    Every value is defined once before it is used; every op is registered and its
    rule, re-run, gives the recorded types, parameter and buffer shapes; every
    parameter belongs to a node; every node's call frames name recorded block calls,
    whose nodes are contiguous in node order and whose inputs and outputs exist.
    """
    defined: set[str] = set()
    for name in graph.inputs:
        if name not in graph.values:
            raise VerifyError(f"input {name} has no type", span=graph.span)
        defined.add(name)
    _check_call_runs(graph)
    claimed: set[str] = set()
    for node, ending, starting in _runs(graph):
        # A call's outputs exist when its run ends, its inputs when its run starts.
        for frame, around in ending:
            _defined_at(graph.calls[frame.call_id], around, "outputs", defined, "ends")
        for frame, around in starting:
            _defined_at(graph.calls[frame.call_id], around, "inputs", defined, "starts")
        if node is not None:
            claimed |= _check_node(graph, node, defined)
    _check_calls(graph)
    for name, param in graph.parameters.items():
        if name not in claimed:  # at a node of its module, else at the block instance
            owner = next((n for n in graph.nodes if n.module == param.module), None)
            module = graph.modules.get(param.module)
            where = module.span if module else graph.span
            raise VerifyError(
                f"parameter {name} belongs to no node", owner, span=None if owner else where
            )
    for out_name, value in graph.outputs:
        if value not in defined:
            raise VerifyError(f"output {out_name} = {value} is not defined", span=graph.span)


def _check_node(graph: Graph, node: Node, defined: set[str]) -> set[str]:
    """Check one node (adding its outputs to `defined`); the parameters it owns."""
    op = registry.get(node.op)
    if op is None:
        raise VerifyError(f"node {node.name}: unknown op '{node.op}'", node)
    for value in node.inputs:
        if value not in defined:
            raise VerifyError(f"node {node.name} uses {value} before it is defined", node)
    attrs = op.Attrs.model_validate(node.attrs, strict=False)
    in_types = [graph.values[v].type for v in node.inputs]
    out_types = op.infer(attrs, in_types)
    if len(out_types) != len(node.outputs):
        raise VerifyError(
            f"node {node.name}: {len(node.outputs)} outputs, op gives {len(out_types)}", node
        )
    for value, ttype in zip(node.outputs, out_types):
        if value in defined:
            raise VerifyError(f"value {value} is defined twice", node)
        recorded = graph.values.get(value)
        if recorded is None or not recorded.type.same_as(ttype):
            raise VerifyError(
                f"node {node.name}: {value} recorded as "
                f"{recorded.type if recorded else None}, rule gives {ttype}",
                node,
            )
        defined.add(value)
    owned: dict[str, str] = {}  # parameter name -> role
    for role, shape in op.params(attrs, in_types).items():
        name = node.param_name(role)
        param = graph.parameters.get(name)
        if param is None or param.shape != shape:
            raise VerifyError(f"node {node.name}: parameter {name} should be {list(shape)}", node)
        if param.buffer:
            raise VerifyError(f"node {node.name}: parameter {name} is recorded as a buffer", node)
        owned[name] = role
    for role, (shape, dtype) in op.buffers(attrs, in_types).items():
        name = node.param_name(role)
        param = graph.parameters.get(name)
        if param is None or param.shape != shape or param.dtype != dtype:
            raise VerifyError(
                f"node {node.name}: buffer {name} should be {dtype.value}{list(shape)}", node
            )
        if not param.buffer:
            raise VerifyError(
                f"node {node.name}: buffer {name} is recorded as a learned parameter", node
            )
        owned[name] = role
    for name, role in owned.items():
        param = graph.parameters[name]
        if (param.name, param.module, param.role) != (name, node.module, role):
            raise VerifyError(
                f"node {node.name}: parameter {name} is recorded as {param.name} "
                f"(module {param.module}, role {param.role})",
                node,
            )
    return set(owned)


_Around = tuple[CallFrame, tuple[CallFrame, ...]]  # a call's frame, and the frames around it


def _runs(graph: Graph) -> Iterator[tuple[Node | None, list[_Around], list[_Around]]]:
    """Each node (then None, at the end) with the calls whose run of nodes ends before
    it (innermost first) and those whose run starts at it (outermost first)."""
    before: tuple[CallFrame, ...] = ()
    for node in [*graph.nodes, None]:
        chain = node.chain if node is not None else ()
        ids = {frame.call_id for frame in chain}
        open_ids = {frame.call_id for frame in before}
        ending = [
            (before[depth], before[:depth])
            for depth in reversed(range(len(before)))
            if before[depth].call_id not in ids
        ]
        starting = [
            (frame, chain[:depth])
            for depth, frame in enumerate(chain)
            if frame.call_id not in open_ids
        ]
        yield node, ending, starting
        before = chain


def _check_call_runs(graph: Graph) -> None:
    """Each node's frames name recorded calls, nested as recorded, and the nodes of a
    call form one run (codegen emits each call as one statement)."""
    ended: set[int] = set()
    for node, ending, starting in _runs(graph):
        if node is None:
            return
        for depth, frame in enumerate(node.chain):
            call = graph.calls.get(frame.call_id)
            if call is None:
                raise VerifyError(
                    f"node {node.name}: block call {frame.call_id} ('{frame.block}') "
                    "is not recorded",
                    node,
                )
            _check_frame(node, frame, call, node.chain[depth - 1].call_id if depth else 0)
        ended |= {frame.call_id for frame, _ in ending}
        for frame, _ in starting:
            if frame.call_id in ended:
                raise VerifyError(
                    f"node {node.name}: the nodes of block call {frame.call_id} "
                    f"('{frame.block}') are not contiguous: other nodes come between them",
                    node,
                )


def _check_frame(node: Node, frame: CallFrame, call: CallInfo, parent: int) -> None:
    recorded = (call.block, call.instance, call.span, call.parent)
    if (frame.block, frame.instance, frame.span, parent) != recorded:
        raise VerifyError(
            f"node {node.name}: its frame for block call {call.id} says block "
            f"'{frame.block}' at {frame.instance} in call {parent}; the call records "
            f"'{call.block}' at {call.instance} in call {call.parent}",
            node,
            notes=[Note("the call is recorded here", call.span)],
        )


def _defined_at(
    call: CallInfo, chain: Sequence[CallFrame], which: str, defined: set[str], when: str
) -> None:
    """The call's inputs or outputs are defined values (`chain`: the calls around it)."""
    values = call.inputs if which == "inputs" else [v for _, v in call.outputs]
    missing = [v for v in values if v not in defined]
    if missing:
        raise VerifyError(
            f"block call {call.id} ('{call.block}'): its {which} {', '.join(missing)} "
            f"are not defined when its nodes' run {when}",
            span=call.span,
            chain=chain,
        )


def _check_calls(graph: Graph) -> None:
    for key, call in graph.calls.items():
        if key != call.id:
            raise VerifyError(f"block call {call.id} is recorded as call {key}", span=call.span)
        if call.parent != 0 and call.parent not in graph.calls:
            raise VerifyError(
                f"block call {call.id} ('{call.block}'): its parent call {call.parent} "
                "is not recorded",
                span=call.span,
            )
        if len(call.input_names) != len(call.inputs):
            raise VerifyError(
                f"block call {call.id} ('{call.block}'): {len(call.inputs)} inputs for "
                f"{len(call.input_names)} names",
                span=call.span,
            )
