"""Canonicalize for inference: fold batchnorm into the layer before it, drop ops that
are identities in eval mode (dropout, identity), and remove dead values.

Folding uses the ops' channel facets: a node whose `channels` says
foldable_affine (y = x * scale + shift per channel in eval mode) folds into the
node that made x, when that node makes new units on the same axis, x has no
other reader, and neither layer is shared. The maker's op must declare its weight
and bias (`param_roles`, with the attribute that switches the bias on): the weight's
units are scaled and the bias becomes bias * scale + shift (a bias is added when it
had none).

Compile-time arithmetic is already folded by the front end (`2 * width` is a
number in the IR), so constant folding has nothing left to do here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dslnet.ir.graph import Graph, Node
from dslnet.ir.oplookup import input_types, resolve_op
from dslnet.ops.roles import ParamRoles
from dslnet.passes.base import Array, Model, PassResult, reinfer, replace_uses


@dataclass
class Canonicalize:
    fold: bool = True
    name: str = "canonicalize"

    def run(self, model: Model) -> PassResult:
        graph, weights = model.graph, dict(model.weights)
        notes: list[str] = []
        folded = 0
        if self.fold:
            graph, folded = _fold_affines(graph, weights)
        graph, dropped = _drop_identities(graph)
        graph, dead = _drop_dead(graph)
        graph = reinfer(graph)
        weights = {k: v for k, v in weights.items() if k in graph.parameters}
        if folded:
            notes.append(f"folded {folded} batchnorm(s)")
        if dropped:
            notes.append(f"removed {dropped} eval-mode identities")
        if dead:
            notes.append(f"removed {dead} dead node(s)")
        return PassResult(Model(graph, weights), bool(folded or dropped or dead), notes)


def _readers(graph: Graph) -> Counter[str]:
    """How often each value is read, by nodes and as a network output."""
    counts: Counter[str] = Counter({v: len(nodes) for v, nodes in graph.users().items()})
    counts.update(v for _, v in graph.outputs)
    return counts


def _fold_affines(graph: Graph, weights: dict[str, Array]) -> tuple[Graph, int]:
    modules = Counter(n.module for n in graph.nodes)
    producer = graph.producers()
    readers = _readers(graph)
    replaced: dict[str, Node] = {}
    removed: list[Node] = []
    for node in graph.nodes:
        op, attrs = resolve_op(node)
        rule = op.channels(attrs, input_types(graph, node))
        if rule is None or not rule.foldable_affine or modules[node.module] > 1:
            continue
        maker = producer.get(node.inputs[0])
        if maker is None or modules[maker.module] > 1 or readers[node.inputs[0]] != 1:
            continue
        maker = replaced.get(maker.name, maker)
        m_op, m_attrs = resolve_op(maker)
        m_rule = m_op.channels(m_attrs, input_types(graph, maker))
        roles = m_op.param_roles
        rank = graph.type_of(node.inputs[0]).rank
        if (
            m_rule is None
            or m_rule.kind != "make"
            or rule.axis is None
            or (m_rule.out_axis if m_rule.out_axis is not None else m_rule.axis) != rule.axis % rank
            or roles.weight is None
            or roles.weight not in m_rule.out_params
            or roles.bias_attr is None  # the bias that folding needs cannot be switched on
            or roles.bias_attr not in maker.attrs
        ):
            continue
        params = {role: weights[node.param_name(role)] for role in rule.params}
        scale, shift = op.affine(attrs, params)
        _fold_into(maker, roles, m_rule.out_params, scale, shift, weights)
        with_bias = {**maker.attrs, roles.bias_attr: True}
        replaced[maker.name] = maker.model_copy(update={"attrs": with_bias})
        removed.append(node)
    return _bypass(graph, removed, replaced), len(removed)


def _fold_into(
    maker: Node,
    roles: ParamRoles,
    out_params: Mapping[str, int],
    scale: Array,
    shift: Array,
    weights: dict[str, Array],
) -> None:
    """maker's output * scale + shift, per unit, as new weight and bias (the parameters
    its op declares in those roles; the weight's units on the axis its channels say)."""
    assert roles.weight is not None and roles.bias is not None
    name = maker.param_name(roles.weight)
    w = weights[name]
    axis = out_params[roles.weight]
    shape = [1] * w.ndim
    shape[axis] = -1
    weights[name] = (w * scale.reshape(shape)).astype(w.dtype)
    bias_name = maker.param_name(roles.bias)
    bias = weights.get(bias_name, np.zeros(scale.shape, dtype=np.float32))
    weights[bias_name] = (bias * scale + shift).astype(np.float32)


def _drop_identities(graph: Graph) -> tuple[Graph, int]:
    removed = []
    for node in graph.nodes:
        op, attrs = resolve_op(node)
        if op.identity_in_eval(attrs) and len(node.inputs) == 1 and len(node.outputs) == 1:
            removed.append(node)
    return _bypass(graph, removed, {}), len(removed)


def _bypass(graph: Graph, removed: list[Node], replaced: Mapping[str, Node]) -> Graph:
    """Without the `removed` one-in one-out nodes (their readers read their input
    instead) and with `replaced` nodes swapped in by name."""
    if not removed:
        return graph
    gone = {n.name for n in removed}
    nodes = [replaced.get(n.name, n) for n in graph.nodes if n.name not in gone]
    graph = graph.model_copy(update={"nodes": nodes})
    return replace_uses(graph, {n.outputs[0]: n.inputs[0] for n in removed})


def _drop_dead(graph: Graph) -> tuple[Graph, int]:
    """Nodes none of whose outputs reach a network output."""
    live = {v for _, v in graph.outputs}
    kept: list[Node] = []
    for node in reversed(graph.nodes):
        if any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    dead = len(graph.nodes) - len(kept)
    return (graph.model_copy(update={"nodes": kept[::-1]}), dead) if dead else (graph, 0)
