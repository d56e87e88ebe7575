"""Float32 -> float16 conversion of a whole ONNX graph.

`fp16_plan` decides which nodes run in float16 and which of their tensors change
type; this module applies that: Cast/ConstantOfShape attributes retyped, weights
converted (stored twice when float32 nodes read them too), and Casts at the borders
of float32 regions: one per tensor and direction, shared by every consumer, never
reading another Cast. Graph inputs and outputs keep float32 unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dslnet.backends.quantize._onnx import (
    FLOAT,
    FLOAT16,
    Namer,
    attr,
    check_skip,
    drop_dead_nodes,
    elem_types,
    producers,
    rename_inputs,
    toposort,
    working_copy,
)
from dslnet.backends.quantize.fp16_plan import Slots, plan

__all__ = ["to_fp16"]

_ADAPTIVE = frozenset({"Shape", "Size", "Cast"})  # read either precision as it comes
_FP16_MAX = float(np.finfo(np.float16).max)


def to_fp16(
    model: onnx.ModelProto, *, skip: Collection[str] = (), keep_io_types: bool = True
) -> onnx.ModelProto:
    """`model` computing in float16, except `fp16_plan.KEEP_FP32` ops and the IR nodes in
    `skip`. With `keep_io_types` the graph's float inputs and outputs stay float32
    (Casts at the edges); otherwise they become float16 too."""
    work = working_copy(model)
    skipped = check_skip(work, skip)
    graph = work.graph
    toposort(graph)  # the plan reads producers before consumers
    _constants_to_initializers(graph)
    types = elem_types(work)
    opset = next((o.version for o in work.opset_import if o.domain in ("", "ai.onnx")), 18)
    slots = plan(graph, types, skipped, opset)
    _Rewriter(work, types, slots, keep_io_types).run()
    drop_dead_nodes(graph)
    toposort(graph)
    return work


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Float Constant nodes become initializers, which convert on demand."""
    kept = []
    for node in graph.node:
        value = attr(node, "value") if node.op_type == "Constant" else None
        if isinstance(value, onnx.TensorProto) and value.data_type == FLOAT:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


class _Rewriter:
    """Applies a plan: retypes attributes, converts weights, inserts boundary Casts."""

    def __init__(
        self,
        model: onnx.ModelProto,
        types: dict[str, int],
        plan: dict[int, Slots],
        keep_io_types: bool,
    ) -> None:
        self.graph = model.graph
        self.types = types
        self.plan = plan
        self.keep_io = keep_io_types
        self.fresh = Namer(self.graph)
        self.made = producers(self.graph)
        self.casts: dict[tuple[str, int], str] = {}  # (tensor, to) -> its one Cast's output
        self.new_nodes: list[onnx.NodeProto] = []
        self.actual: dict[str, int] = dict(types)  # element type after the rewrite

    def run(self) -> None:
        graph = self.graph
        for index, (_, outs) in self.plan.items():
            node = graph.node[index]
            self._retype_attributes(node)
            for name, half in zip(node.output, outs):
                if half:
                    self.actual[name] = FLOAT16
        for value in graph.input:
            if not self.keep_io and self.types.get(value.name) == FLOAT:
                value.type.tensor_type.elem_type = FLOAT16
                self.actual[value.name] = FLOAT16
        weights = {t.name: t for t in graph.initializer if t.data_type == FLOAT}
        demand: dict[str, set[int]] = {}
        for index, node in enumerate(graph.node):
            ins = self.plan.get(index, ([False] * len(node.input), []))[0]
            for i, name in enumerate(node.input):
                want = FLOAT16 if ins[i] else self.types.get(name)
                if node.op_type in _ADAPTIVE or want not in (FLOAT, FLOAT16):
                    continue
                if name in weights:
                    demand.setdefault(name, set()).add(want)
                elif self.actual.get(name) != want:
                    node.input[i] = self._cast(name, want)
        self._convert_weights(weights, demand)
        self._fix_outputs()
        self._drop_noop_casts()
        graph.node.extend(self.new_nodes)
        for info in graph.value_info:
            if info.name in self.actual and info.type.HasField("tensor_type"):
                info.type.tensor_type.elem_type = self.actual[info.name]

    def _retype_attributes(self, node: onnx.NodeProto) -> None:
        if node.op_type == "Cast" and attr(node, "to") == FLOAT:
            node.attribute.remove(next(a for a in node.attribute if a.name == "to"))
            node.attribute.append(helper.make_attribute("to", FLOAT16))
        elif node.op_type == "ConstantOfShape":
            old = attr(node, "value")
            value = numpy_helper.to_array(old) if old is not None else np.zeros(1, np.float32)
            for a in list(node.attribute):
                if a.name == "value":
                    node.attribute.remove(a)
            half = numpy_helper.from_array(value.astype(np.float16))
            node.attribute.append(helper.make_attribute("value", half))

    def _cast(self, name: str, to: int) -> str:
        """The tensor `name` as type `to`: one shared Cast per (tensor, type). A Cast
        never reads a Cast: it reads the first one's source instead."""
        source = self.made.get(name)
        while source is not None and source.op_type == "Cast" and source.input[0]:
            name = source.input[0]
            source = self.made.get(name)
        if self.actual.get(name) == to:
            return name
        key = (name, to)
        if key not in self.casts:
            out = self.fresh(f"{name}/to_fp16" if to == FLOAT16 else f"{name}/to_fp32")
            node_name = self.fresh(f"{name.rsplit('/', 1)[0]}/Cast")
            cast = helper.make_node("Cast", [name], [out], node_name, to=to)
            self.new_nodes.append(cast)
            self.made[out] = cast
            self.actual[out] = to
            self.casts[key] = out
        return self.casts[key]

    def _convert_weights(
        self, weights: dict[str, onnx.TensorProto], demand: dict[str, set[int]]
    ) -> None:
        """A weight wanted in float16 is converted; one wanted in both is stored twice
        (a Cast of a constant would run at every inference)."""
        for name, wants in demand.items():
            if FLOAT16 not in wants:
                continue
            array = numpy_helper.to_array(weights[name])
            half = np.clip(array, -_FP16_MAX, _FP16_MAX).astype(np.float16)
            if wants == {FLOAT16}:
                weights[name].CopyFrom(numpy_helper.from_array(half, name))
                self.actual[name] = FLOAT16
                continue
            copy = self.fresh(f"{name}/fp16")
            self.graph.initializer.append(numpy_helper.from_array(half, copy))
            self.actual[copy] = FLOAT16
            for index, node in enumerate(self.graph.node):
                ins = self.plan.get(index, ([False] * len(node.input), []))[0]
                for i, used in enumerate(node.input):
                    if used == name and ins[i]:
                        node.input[i] = copy

    def _fix_outputs(self) -> None:
        """Graph outputs keep their declared float32 (or become float16 without
        keep_io_types): the producer writes a renamed tensor, a Cast the output."""
        for value in self.graph.output:
            name = value.name
            if self.types.get(name) != FLOAT:
                continue
            want = FLOAT if self.keep_io else FLOAT16
            value.type.tensor_type.elem_type = want
            if self.actual.get(name) == want:
                continue
            inner = self.fresh(f"{name}/{'fp16' if want == FLOAT else 'fp32'}")
            producer = self.made.get(name)
            if producer is not None:
                producer.output[:] = [inner if o == name else o for o in producer.output]
                self.made[inner] = producer
            readers = [*self.graph.node, *self.new_nodes]
            rename_inputs(readers, name, inner)
            self.casts = {(inner if k == name else k, t): v for (k, t), v in self.casts.items()}
            self.actual[inner] = self.actual[name]
            node_name = self.fresh(f"{name}/Cast")
            cast = helper.make_node("Cast", [inner], [name], node_name, to=want)
            self.new_nodes.append(cast)
            self.actual[name] = want
            self.casts[(inner, want)] = name

    def _drop_noop_casts(self) -> None:
        """An original Cast to float whose source already has the type it now casts
        to (fp16 -> fp16) is bypassed."""
        outputs = {o.name for o in self.graph.output}
        kept = []
        for node in self.graph.node:
            source = node.input[0] if node.op_type == "Cast" and node.input else ""
            if source and node.output[0] not in outputs:
                target = attr(node, "to")
                if self.actual.get(source) == target:
                    rename_inputs([*self.graph.node, *self.new_nodes], node.output[0], source)
                    continue
            kept.append(node)
        del self.graph.node[:]
        self.graph.node.extend(kept)
