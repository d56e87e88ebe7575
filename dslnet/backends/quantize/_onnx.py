"""Graph plumbing shared by the quantization passes: provenance, types, edges, order.

Every pass works on a copy of the model with model-local functions inlined, so a
plain walk over `graph.node` sees every op. Which IR node an ONNX node lowers (what
`skip` names) is the emitter's provenance metadata (`dslnet.backends.onnx_provenance`),
never the node's name: a model whose nodes another tool renamed quantizes the same.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnx.inliner
from onnx import helper, numpy_helper

from dslnet.backends.onnx_provenance import NODE_KEY, inline, ir_node, record

if TYPE_CHECKING:
    from dslnet.ir.graph import Graph

FLOAT = onnx.TensorProto.FLOAT
FLOAT16 = onnx.TensorProto.FLOAT16
MS_DOMAIN = "com.microsoft"


class QuantizeError(Exception):
    """A quantization request that cannot be carried out on this model."""


def label(node: onnx.NodeProto) -> str:
    """What the names of tensors and nodes made for `node` start with: its IR node, or
    its own name when it has no provenance."""
    return ir_node(node) or node.name


def made_for(made: onnx.NodeProto, source: onnx.NodeProto | None) -> onnx.NodeProto:
    """`made`, a node a pass adds for `source`, with `source`'s provenance."""
    origin = ir_node(source) if source is not None else None
    if origin is not None:
        record(made, NODE_KEY, origin)
    return made


def check_skip(model: onnx.ModelProto, skip: Collection[str]) -> frozenset[str]:
    """`skip` as a set, after checking every name is the IR node (or a block instance
    holding the IR node) of some ONNX node: a typo would otherwise silently quantize
    the layer it meant to protect."""
    names = frozenset(skip)
    origins = {o for o in map(ir_node, model.graph.node) if o is not None}
    unknown = sorted(n for n in names if not any(_under(o, n) for o in origins))
    if unknown:
        raise QuantizeError(f"skip names no node of the model: {', '.join(unknown)}")
    return names


def marked_skip(graph: Graph) -> frozenset[str]:
    """The IR nodes a spec marks `@quantize(skip)`: what `skip` takes."""
    return frozenset(node.name for node in graph.nodes if node.marks.get("quantize") == "skip")


def _under(node_origin: str, name: str) -> bool:
    # A block instance name ("gptblock1") covers every IR node inside it.
    return node_origin == name or node_origin.startswith(name + ".")


def is_skipped(node: onnx.NodeProto, skip: frozenset[str]) -> bool:
    node_origin = ir_node(node) if skip else None
    return node_origin is not None and any(_under(node_origin, name) for name in skip)


def working_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy with local functions inlined (their bodies become plain nodes)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if copy.functions:
        _inline(copy)
    return copy


def _inline(model: onnx.ModelProto) -> None:
    """Expand calls of local functions in place. A body node is renamed
    `<call node>.<body node>` and its provenance made whole (`inline`), so `skip`
    names work on models emitted with functions=True too. Functions with attributes,
    which dslnet does not write, go to onnx.inliner."""
    if any(f.attribute or f.attribute_proto for f in model.functions):
        model.CopyFrom(onnx.inliner.inline_local_functions(model))
        return
    bodies = {(f.domain, f.name): f for f in model.functions}
    graph = model.graph
    fresh = Namer(graph)
    nodes: list[onnx.NodeProto] = []

    def expand(call: onnx.NodeProto) -> None:
        body = bodies.get((call.domain, call.op_type))
        if body is None:
            nodes.append(call)
            return
        names = dict(zip(body.input, call.input)) | dict(zip(body.output, call.output))
        for inner in body.node:
            node = onnx.NodeProto()
            node.CopyFrom(inner)
            node.name = f"{call.name}.{inner.name}"
            for name in [*inner.input, *inner.output]:
                if name and name not in names:
                    names[name] = fresh(f"{call.name}.{name}")
            node.input[:] = [names.get(n, n) for n in inner.input]
            node.output[:] = [names.get(n, n) for n in inner.output]
            inline(node, call)
            expand(node)

    for node in graph.node:
        expand(node)
    del graph.node[:]
    graph.node.extend(nodes)
    domains = {domain for domain, _ in bodies}
    del model.functions[:]
    kept = [o for o in model.opset_import if o.domain not in domains]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """The element type of every tensor ONNX shape inference can type."""
    inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    graph = inferred.graph
    types: dict[str, int] = {t.name: t.data_type for t in graph.initializer}
    for info in [*graph.input, *graph.output, *graph.value_info]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            types[node.output[0]] = node.attribute[0].t.data_type
    return types


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes reading it (a node reading it twice appears once)."""
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):
            if name:
                found.setdefault(name, []).append(node)
    return found


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {name: node for node in graph.node for name in node.output if name}


def initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in graph.initializer}


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class Namer:
    """Fresh tensor and node names that clash with nothing in the graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self._taken: set[str] = {t.name for t in graph.initializer}
        self._taken |= {v.name for v in [*graph.input, *graph.output, *graph.value_info]}
        for node in graph.node:
            self._taken |= {node.name, *node.input, *node.output}

    def __call__(self, base: str) -> str:
        name, k = base, 1
        while name in self._taken:
            name, k = f"{base}_{k}", k + 1
        self._taken.add(name)
        return name


def add_initializer(graph: onnx.GraphProto, name: str, array: np.ndarray[Any, Any]) -> str:
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
    return name


def fold_constant_weights(model: onnx.ModelProto) -> None:
    """Replace Transpose and Split of initializers by their results, in place.

    The emitter writes a linear layer's MatMul weight as Transpose(W), and
    cross-attention's query and key/value weights as a Split of that; quantizers need
    the weights themselves, in the layout the MatMul reads.
    """
    graph = model.graph
    inits = initializers(graph)
    kept: list[onnx.NodeProto] = []
    for node in graph.node:
        results = _fold(node, inits)
        if results is None:
            kept.append(node)
            continue
        for name, array in zip(node.output, results):
            folded = numpy_helper.from_array(np.ascontiguousarray(array), name)
            graph.initializer.append(folded)
            inits[name] = folded
    del graph.node[:]
    graph.node.extend(kept)
    drop_unused_initializers(graph)


def _fold(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> list[Any] | None:
    """The outputs of a Transpose or Split whose inputs are all initializers."""
    if node.op_type not in ("Transpose", "Split") or node.domain not in ("", "ai.onnx"):
        return None
    if not all(name in inits for name in node.input if name):
        return None
    array = numpy_helper.to_array(inits[node.input[0]])
    if node.op_type == "Transpose":
        return [array.transpose(attr(node, "perm") or list(reversed(range(array.ndim))))]
    axis = attr(node, "axis", 0)
    # The sizes: before opset 13 an attribute named like the op (`split`), an input since.
    sizes = attr(node, node.op_type.lower())
    if len(node.input) > 1 and node.input[1]:
        sizes = numpy_helper.to_array(inits[node.input[1]]).tolist()
    if sizes is None:
        if array.shape[axis] % len(node.output):
            return None  # uneven default split (opset 18 rules): left to the runtime
        sizes = [array.shape[axis] // len(node.output)] * len(node.output)
    return list(np.split(array, np.cumsum(sizes)[:-1], axis=axis))


def drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    used |= {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def drop_dead_nodes(graph: onnx.GraphProto) -> None:
    """Remove nodes none of whose outputs is read (repeatedly), then unused weights."""
    while True:
        read = {name for node in graph.node for name in node.input}
        read |= {o.name for o in graph.output}
        live = [n for n in graph.node if any(o in read for o in n.output if o)]
        if len(live) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(live)
    drop_unused_initializers(graph)


def toposort(graph: onnx.GraphProto) -> None:
    """Order the nodes so each comes after the producers of its inputs, keeping the
    existing order where it already is one (passes append the nodes they make)."""
    nodes = list(graph.node)
    made = producers(graph)
    index = {id(node): i for i, node in enumerate(nodes)}
    done: set[int] = set()
    ordered: list[onnx.NodeProto] = []

    def visit(start: onnx.NodeProto) -> None:
        # Iterative depth-first walk: deep graphs would overflow recursion.
        stack: list[tuple[onnx.NodeProto, Iterator[str]]] = [(start, iter(start.input))]
        while stack:
            node, pending = stack[-1]
            for name in pending:
                dep = made.get(name)
                if dep is not None and index[id(dep)] not in done and dep is not node:
                    stack.append((dep, iter(dep.input)))
                    break
            else:
                stack.pop()
                if index[id(node)] not in done:
                    done.add(index[id(node)])
                    ordered.append(node)

    for node in nodes:
        visit(node)
    del graph.node[:]
    graph.node.extend(ordered)


def use_opset(model: onnx.ModelProto, domain: str, version: int) -> None:
    if not any(o.domain == domain for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(domain, version))


def rename_inputs(nodes: Iterable[onnx.NodeProto], old: str, new: str) -> None:
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
