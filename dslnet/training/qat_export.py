"""The static int8 pass with fixed activation ranges: where QAT puts its fake-quant
points and how it exports them.

`quantize_static_int8` chooses its QDQ placement (`qdq_placement`) from the graph
alone and its ranges from calibration. QAT needs the same placement before training,
to know which torch tensors to fake-quantize, and at export the ranges its observers
learned instead of calibrated ones (`quantize_static_int8_with_params`). Both are the
static pass's own code, so the exported model is exactly what the static pass would
write for those ranges.
`PointMapper` finds the torch module hook that sees each planned tensor: ONNX nodes
carry their IR node (the emitter's provenance metadata), IR nodes their module path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from torch import nn

from dslnet.backends.onnx_emit import emit_onnx
from dslnet.backends.onnx_provenance import ir_node
from dslnet.backends.quantize._onnx import consumers, label, marked_skip
from dslnet.backends.quantize.static import (
    MOVE,
    QdqPlacement,
    qdq_placement,
    quantize_static_int8_with_params,
)
from dslnet.ir.graph import Graph, Node
from dslnet.ir.oplookup import resolve_op
from dslnet.passes.base import Model
from dslnet.passes.canonicalize import Canonicalize

__all__ = [
    "ExportGraph",
    "Point",
    "PointMapper",
    "QdqPlan",
    "export_graph",
    "plan_qdq",
    "quantize_static_with_params",
]

Array = np.ndarray[Any, Any]
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class ExportGraph:
    """The IR that gets exported: the network's, with batchnorms folded when asked.

    folds: IR node that absorbed a batchnorm -> that batchnorm's IR node (in the
    network's own graph, whose torch module still runs it).
    """

    graph: Graph
    weights: dict[str, Array]
    folds: dict[str, str] = field(default_factory=dict)


def export_graph(graph: Graph, weights: Mapping[str, Array], *, fold: bool) -> ExportGraph:
    """`graph` as the pipeline's `fold` option leaves it (batchnorm folded into the
    layer before it, eval-mode identities dropped), or unchanged."""
    if not fold:
        return ExportGraph(graph, dict(weights))
    folded = Canonicalize().run(Model(graph, weights)).model
    kept = {n.name for n in folded.graph.nodes}
    makers = graph.producers()
    folds: dict[str, str] = {}
    for node in graph.nodes:
        if node.name in kept or not node.inputs:
            continue
        op, attrs = resolve_op(node)
        rule = op.channels(attrs, [graph.type_of(v) for v in node.inputs])
        maker = makers.get(node.inputs[0])
        if rule is not None and rule.foldable_affine and maker is not None and maker.name in kept:
            folds[maker.name] = node.name
    return ExportGraph(folded.graph, dict(folded.weights), folds)


@dataclass(frozen=True)
class QdqPlan:
    """The static pass's plan for one float ONNX model.

    model: the working copy the plan refers to (functions inlined, constant weights
    folded); plan.root maps each tensor that gets a QDQ pair to the tensor whose range
    it shares; plan.nodes are the nodes that run quantized.
    """

    model: onnx.ModelProto
    plan: QdqPlacement
    skip: frozenset[str]


def skip_names(graph: Graph, extra: Collection[str] = ()) -> frozenset[str]:
    """The nodes to leave float: those marked `@quantize(skip)` plus `extra`."""
    return marked_skip(graph) | frozenset(extra)


def plan_qdq(model: onnx.ModelProto, skip: Collection[str] = ()) -> QdqPlan:
    """Where `quantize_static_int8(model, ..., skip=skip)` puts its QDQ pairs."""
    work, placement = qdq_placement(model, skip)
    return QdqPlan(work, placement, frozenset(skip))


def emit_for_plan(exported: ExportGraph, opset: int) -> onnx.ModelProto:
    return emit_onnx(exported.graph, exported.weights, opset=opset)


# The static pass's own entry point, under the name QAT's callers know.
quantize_static_with_params = quantize_static_int8_with_params


# --- from plan tensors to torch hooks ----------------------------------------------


@dataclass
class Point:
    """One fake-quantized activation: `root` names the range it uses; only the root's
    own point updates the observer."""

    tensor: str
    root: str
    where: str  # "input" (network input), "output" (after a module), "reads" (before)
    modules: tuple[str, ...] = ()
    # "output" after a fused activation: the (low, high) it clamps the module's output
    # to before fake-quantizing (dslnet.ops.roles: fusable_clamp).
    clamp: tuple[float, float] | None = None
    index: int = 0


class PointMapper:
    """Finds, for each tensor of the static plan, the torch module hook that sees it."""

    def __init__(self, module: nn.Module, graph: Graph, exported: ExportGraph, found: QdqPlan):
        self.module = module
        self.graph = graph
        self.exported = exported
        self.plan = found.plan
        self.ir = {n.name: n for n in exported.graph.nodes}
        self.own = {n.name: n for n in graph.nodes}
        self.uses = Counter(n.module for n in graph.nodes)
        users = exported.graph.users()
        self.ir_readers = Counter({v: len(nodes) for v, nodes in users.items()})
        self.ir_readers.update(v for _, v in exported.graph.outputs)
        self.readers = consumers(found.model.graph)
        self.graph_nodes = list(found.model.graph.node)

    def points(self) -> tuple[list[Point], set[str]]:
        """The hooks to install, and the ranges no hook reaches (left float)."""
        made_at = {name: i for i, n in enumerate(self.graph_nodes) for name in n.output}
        points: dict[str, Point | None] = {}
        # Producers first: a MaxPool/Flatten output is covered when its input is.
        for tensor in sorted(self.plan.root, key=lambda t: made_at.get(t, -1)):
            points[tensor] = self._locate(tensor, self.plan.root[tensor], points)
        lost = {self.plan.root[t] for t, p in points.items() if p is None}
        kept = [p for p in points.values() if p is not None and p.root not in lost]
        return [p for p in kept if p.where != "covered"], lost

    def _locate(self, tensor: str, root: str, done: dict[str, Point | None]) -> Point | None:
        if tensor in self.exported.graph.inputs:
            return Point(tensor, root, "input", index=self.exported.graph.inputs.index(tensor))
        producer = self.plan.made.get(tensor)
        node = self._ir_node(producer) if producer is not None else None
        if producer is not None and node is not None and node.outputs == (tensor,):
            layer = self._layer(node)
            if layer is not None:
                return Point(tensor, root, "output", (layer,))
            source = node.inputs[0] if node.inputs else ""
            maker = self._maker(source)
            clamp = resolve_op(node)[0].fusable_clamp
            if clamp is not None and maker is not None and self.ir_readers[source] == 1:
                layer = self._layer(maker)
                if layer is not None:
                    return Point(tensor, root, "output", (layer,), clamp=clamp)
        if producer is not None and producer.op_type in MOVE:
            source = producer.input[0]
            if self.plan.root.get(source) == root and done.get(source) is not None:
                return Point(tensor, root, "covered")
        return self._readers_point(tensor, root)

    def _readers_point(self, tensor: str, root: str) -> Point | None:
        """Fake-quantize before each reader, when every reader is a layer taking it
        as its first input."""
        readers = self.readers.get(tensor, [])
        layers: list[str] = []
        for reader in readers:
            node = self._ir_node(reader)
            layer = self._layer(node, follow_fold=False) if node is not None else None
            if layer is None or not node or node.inputs[:1] != (tensor,) or node.name in layers:
                return None
            layers.append(layer)
        return Point(tensor, root, "reads", tuple(layers)) if layers else None

    def _ir_node(self, onnx_node: onnx.NodeProto) -> Node | None:
        """The exported IR node `onnx_node` lowers (its provenance)."""
        origin = ir_node(onnx_node)
        return self.ir.get(origin) if origin is not None else None

    def _maker(self, value: str) -> Node | None:
        return next((n for n in self.ir.values() if value in n.outputs), None)

    def _layer(self, node: Node, follow_fold: bool = True) -> str | None:
        """The module whose output is `node`'s output in torch: the node's own, or the
        batchnorm's folded into it; None for a functional op or a shared module."""
        name = self.exported.folds.get(node.name) if follow_fold else None
        own = self.own.get(name or node.name)
        if own is None or self.uses[own.module] != 1:
            return None
        try:
            target = self.module.get_submodule(own.module)
        except AttributeError:
            return None
        return own.module if target is not self.module else None

    def weights(self) -> tuple[dict[str, nn.Module | None], list[str]]:
        """The layers whose weights the plan quantizes (module path -> the batchnorm
        folded into it, if any), and the IR nodes whose quantized weights are in no
        plain nn.Linear/ConvNd (they are rounded at export only)."""
        found: dict[str, nn.Module | None] = {}
        unreached: list[str] = []
        for onnx_node in self.plan.nodes:
            if onnx_node.op_type not in ("Conv", "Gemm", "MatMul") or not self.plan.has_weight(
                onnx_node
            ):
                continue
            node = self._ir_node(onnx_node)
            path = self._layer(node, follow_fold=False) if node is not None else None
            layer = self.module.get_submodule(path) if path is not None else None
            if node is None or path is None or not isinstance(layer, WEIGHTED):
                unreached.append(label(onnx_node))
                continue
            bn_name = self.exported.folds.get(node.name)
            batchnorm = None
            if bn_name is not None:
                batchnorm = self.module.get_submodule(self.own[bn_name].module)
                if not isinstance(batchnorm, BATCHNORMS):
                    unreached.append(node.name)
                    continue
            found[path] = batchnorm
        return found, unreached
