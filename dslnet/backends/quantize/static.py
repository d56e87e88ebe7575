"""Static int8 quantization in QDQ form, laid out for ONNX Runtime's QDQ fusions.

QuantizeLinear/DequantizeLinear pairs go on activations (uint8, per tensor, ranges
from calibration); weights are stored int8, symmetric, per output channel, behind a
DequantizeLinear; biases int32 with scale x_scale * w_scale. ORT then fuses each
`DQ -> op -> Q` into the op's QLinear form. The placement follows those fusions:

* a Conv/Gemm/MatMul/Add whose only reader is a Relu is quantized after the Relu
  (zero point 0 makes the Relu a no-op that ORT removes, leaving op -> Q), and a
  MatMul after its bias Add;
* ops that only move values (MaxPool, Flatten, Reshape, ...) share their input's
  scale, so ORT drops their Q/DQ and runs them on int8 data;
* a tensor that is (or only feeds through Identity into) a graph output stays float:
  the logits are not rounded to 8 bits.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dslnet.backends.quantize._onnx import (
    FLOAT,
    Namer,
    QuantizeError,
    attr,
    check_skip,
    consumers,
    drop_unused_initializers,
    elem_types,
    fold_constant_weights,
    initializers,
    is_skipped,
    label,
    made_for,
    producers,
    toposort,
    working_copy,
)
from dslnet.backends.quantize.dynamic import quantize_weight
from dslnet.backends.quantize.ranges import Method, clip_range, collect, uint8_params
from dslnet.core.console import progress

__all__ = [
    "MOVE",
    "QdqPlacement",
    "qdq_placement",
    "quantize_static_int8",
    "quantize_static_int8_with_params",
]

Array = np.ndarray[Any, Any]
COMPUTE = frozenset({"Conv", "Gemm", "MatMul", "Add", "Mul", "GlobalAveragePool", "AveragePool"})
COMPUTE |= {"Concat"}
MOVE = frozenset({"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze"})
MOVE |= {"Identity"}


def quantize_static_int8(
    model: onnx.ModelProto,
    calibration: Sequence[Mapping[str, np.ndarray[Any, Any]]],
    *,
    method: Method = "minmax",
    percentile: float = 99.99,
    per_channel: bool = True,
    skip: Collection[str] = (),
) -> onnx.ModelProto:
    """`model` with Q/DQ pairs, ranges calibrated on the `calibration` feeds.

    method: how a range is chosen from what calibration saw ("minmax", "percentile" of
        |x| at `percentile`, or "entropy"); per_channel: one weight scale per output
        channel (else one per tensor); skip: IR nodes left in float.
    """
    if method not in ("minmax", "percentile", "entropy"):
        raise QuantizeError(f"unknown calibration method {method!r}")
    if not 0.0 < percentile <= 100.0:
        raise QuantizeError(f"percentile must be in (0, 100], got {percentile}")
    work, plan = qdq_placement(model, skip)
    roots = sorted(set(plan.root.values()))
    stats = collect(work, calibration, roots, histogram=method != "minmax")
    plan.drop({r for r in roots if not stats[r].finite})
    # The entropy search takes a while per tensor; the other methods are instant.
    finite = [r for r in roots if stats[r].finite]
    ranged = progress(finite, "entropy ranges") if method == "entropy" else finite
    params = {r: uint8_params(*clip_range(stats[r], method, percentile)) for r in ranged}
    _Rewriter(work, plan, params, per_channel).run()
    return work


def quantize_static_int8_with_params(
    model: onnx.ModelProto,
    params: Mapping[str, tuple[float, int]],
    *,
    per_channel: bool = True,
    skip: Collection[str] = (),
    unlisted: Literal["error", "float"] = "error",
) -> onnx.ModelProto:
    """`quantize_static_int8` with each range given instead of calibrated (QAT's
    learned ranges): `params` maps the placement's range roots (ONNX tensor names) to
    uint8 (scale, zero point).

    unlisted: what a root without parameters gets: an error, or "float": it stays
    float with the nodes reading it (as calibration NaN does in the static pass).
    """
    work, plan = qdq_placement(model, skip)
    missing = set(plan.root.values()) - set(params)
    if missing and unlisted == "error":
        raise QuantizeError(f"no range given for tensors: {', '.join(sorted(missing))}")
    plan.drop(missing)
    # The same rounding calibration's uint8_params applies (float32 scale, int zero).
    chosen = {
        root: (float(np.float32(params[root][0])), int(params[root][1]))
        for root in set(plan.root.values())
    }
    _Rewriter(work, plan, chosen, per_channel).run()
    return work


def qdq_placement(
    model: onnx.ModelProto, skip: Collection[str] = ()
) -> tuple[onnx.ModelProto, QdqPlacement]:
    """The working copy the static pass rewrites (functions inlined, constant weights
    folded, sorted) and where it puts Q/DQ pairs on it, before any range is known."""
    work = working_copy(model)
    skipped = check_skip(work, skip)
    fold_constant_weights(work)
    toposort(work.graph)  # the plan walks value-moving ops from the last
    opset = next((o.version for o in work.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise QuantizeError(f"per-channel QDQ needs opset 13 or newer; the model has {opset}")
    return work, QdqPlacement(work, skipped)


class QdqPlacement:
    """Which nodes run quantized (`nodes`) and which tensors get a Q/DQ pair, each
    with the tensor whose range it shares (`root`: tensor -> range root)."""

    def __init__(self, model: onnx.ModelProto, skipped: frozenset[str]) -> None:
        graph = model.graph
        self.types = elem_types(model)
        self.weights = initializers(graph)
        self.readers = consumers(graph)
        self.made = producers(graph)
        self.outputs = {o.name for o in graph.output}
        self.nodes = [n for n in graph.node if not is_skipped(n, skipped) and self._takes(n)]
        self.root: dict[str, str] = {}
        for node in self.nodes:
            for name in self.activations(node):
                self.root[name] = name
            out = self._quantized_output(node, skipped)
            if out is not None:
                self.root[out] = out
        # Value-moving ops share their input's range, last first so chains link up.
        for node in reversed(graph.node):
            if node.op_type not in MOVE or is_skipped(node, skipped):
                continue
            source, out = node.input[0], node.output[0]
            if out in self.root and self._is_activation(source):
                for name, root in self.root.items():
                    if root == out:
                        self.root[name] = source
                self.root.setdefault(source, source)

    def drop(self, roots: set[str]) -> None:
        """Leave the tensors of these ranges in float (calibration saw NaN/inf in them,
        or no range was given), and the nodes reading them, which ORT could not fuse
        anyway."""
        if not roots:
            return
        lost = {name for name, root in self.root.items() if root in roots}
        self.root = {name: root for name, root in self.root.items() if name not in lost}
        self.nodes = [n for n in self.nodes if not lost.intersection(self.activations(n))]

    def _is_activation(self, name: str) -> bool:
        return bool(name) and self.types.get(name) == FLOAT and name not in self.weights

    def activations(self, node: onnx.NodeProto) -> list[str]:
        if node.op_type in ("Conv", "Gemm") or (node.op_type == "MatMul" and self.has_weight(node)):
            return [node.input[0]]
        return [n for n in dict.fromkeys(node.input) if n]

    def has_weight(self, node: onnx.NodeProto) -> bool:
        tensor = self.weights.get(node.input[1]) if len(node.input) > 1 else None
        return tensor is not None and tensor.data_type == FLOAT

    def _takes(self, node: onnx.NodeProto) -> bool:
        """Whether `node` is an op we quantize, in a form ORT can fuse."""
        op = node.op_type
        if op not in COMPUTE or not node.output or self.types.get(node.output[0]) != FLOAT:
            return False
        if op == "Conv":
            return self.has_weight(node) and (len(node.input) < 3 or node.input[2] in self.weights)
        if op == "Gemm":
            if (
                attr(node, "transA", 0)
                or attr(node, "alpha", 1.0) != 1.0
                or not self.has_weight(node)
            ):
                return False
            bias = self.weights.get(node.input[2]) if len(node.input) > 2 else None
            if len(node.input) < 3 or not node.input[2]:
                return True
            # The int32 bias stands for C itself: a beta would have to scale it.
            return bias is not None and len(bias.dims) == 1 and attr(node, "beta", 1.0) == 1.0
        if op == "MatMul" and self.has_weight(node):
            return len(self.weights[node.input[1]].dims) == 2
        # Everything else quantizes only computed inputs (a constant operand would be
        # rounded to 8 bits for no gain).
        return all(self._is_activation(n) for n in node.input if n)

    def _quantized_output(self, node: onnx.NodeProto, skipped: frozenset[str]) -> str | None:
        """The tensor after `node` to quantize: past a MatMul's bias Add (ORT then makes
        the pair one Gemm or MatMulIntegerToFloat, the bias added in float) and past
        a Relu (which ORT folds into the Q); None for a model output."""
        out = node.output[0]
        for follower in ("Add", "Relu"):
            readers = self.readers.get(out, [])
            if len(readers) != 1 or out in self.outputs or is_skipped(readers[0], skipped):
                break
            reader = readers[0]
            if reader.op_type != follower:
                continue
            if follower == "Add" and not (node.op_type == "MatMul" and self._adds_weight(reader)):
                continue
            out = reader.output[0]
        return None if self._reaches_output(out) else out

    def _adds_weight(self, add: onnx.NodeProto) -> bool:
        return any(name in self.weights for name in add.input)

    def _reaches_output(self, name: str) -> bool:
        """Whether `name` is a graph output, or feeds one through Identity alone."""
        while name not in self.outputs:
            readers = self.readers.get(name, [])
            if len(readers) != 1 or readers[0].op_type != "Identity":
                return False
            name = readers[0].output[0]
        return True


class _Rewriter:
    def __init__(
        self,
        model: onnx.ModelProto,
        plan: QdqPlacement,
        params: Mapping[str, tuple[float, int]],
        per_channel: bool,
    ) -> None:
        self.graph = model.graph
        self.plan = plan
        self.params = params
        self.per_channel = per_channel
        self.fresh = Namer(self.graph)
        self.new: list[onnx.NodeProto] = []
        self.qparams: dict[str, tuple[str, str]] = {}  # root -> (scale, zero point) names

    def run(self) -> None:
        # Weights first: their bias scales read the activation's name before it changes.
        for node in self.plan.nodes:
            if node.op_type in ("Conv", "Gemm", "MatMul") and self.plan.has_weight(node):
                self._weight(node)
        dequantized = {name: self._qdq(name) for name in self.plan.root}
        for node in self.graph.node:
            node.input[:] = [dequantized.get(n, n) for n in node.input]
        self.graph.node.extend(self.new)
        drop_unused_initializers(self.graph)
        toposort(self.graph)

    def _scale_zero(self, root: str) -> tuple[str, str]:
        if root not in self.qparams:
            scale, zero = self.params[root]
            base = self._base(root)
            names = self.fresh(f"{base}/scale"), self.fresh(f"{base}/zero_point")
            self._const(names[0], np.array(scale, np.float32))
            self._const(names[1], np.array(zero, np.uint8))
            self.qparams[root] = names
        return self.qparams[root]

    def _base(self, tensor: str) -> str:
        producer = self.plan.made.get(tensor)
        return label(producer) if producer is not None else tensor

    def _qdq(self, name: str) -> str:
        scale, zero = self._scale_zero(self.plan.root[name])
        base = self._base(name)
        producer = self.plan.made.get(name)
        q, dq = self.fresh(f"{name}/quantized"), self.fresh(f"{name}/dequantized")
        quantize = helper.make_node(
            "QuantizeLinear", [name, scale, zero], [q], self.fresh(f"{base}/QuantizeLinear")
        )
        dequantize = helper.make_node(
            "DequantizeLinear", [q, scale, zero], [dq], self.fresh(f"{base}/DequantizeLinear")
        )
        self.new += [made_for(quantize, producer), made_for(dequantize, producer)]
        return dq

    def _const(self, name: str, array: Array) -> str:
        self.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def _weight(self, node: onnx.NodeProto) -> None:
        """The node's weight (and bias) as integers behind DequantizeLinear."""
        weight = numpy_helper.to_array(self.plan.weights[node.input[1]])
        trans_b = node.op_type == "Gemm" and attr(node, "transB", 0)
        axis = 0 if node.op_type == "Conv" or trans_b else 1
        if self.per_channel:
            q, w_scale = quantize_weight(weight, axis)
        else:
            q, flat = quantize_weight(weight.reshape(1, -1), 0)
            q, w_scale = q.reshape(weight.shape), flat.reshape(())
        node.input[1] = self._dequantize(node, "weight", q, w_scale, axis)
        if len(node.input) < 3 or not node.input[2]:
            return
        bias = numpy_helper.to_array(self.plan.weights[node.input[2]]).astype(np.float64)
        if w_scale.ndim == 1:  # a Gemm's C may be one value broadcast over the columns
            bias = np.broadcast_to(bias.reshape(-1), w_scale.shape)
        x_root = self.plan.root[self.plan.activations(node)[0]]
        b_scale = (np.float32(self.params[x_root][0]) * w_scale).astype(np.float32)
        safe = np.where(b_scale > 0, b_scale, 1.0)
        limit = np.iinfo(np.int32).max
        b_q = np.clip(np.round(bias / safe), -limit, limit).astype(np.int32)
        node.input[2] = self._dequantize(node, "bias", b_q, b_scale, 0)

    def _dequantize(
        self, source: onnx.NodeProto, part: str, q: Array, scale: Array, axis: int
    ) -> str:
        """`source`'s `part` ("weight", "bias") as `q` stored with its scale, behind a
        DequantizeLinear made for `source`."""
        base = f"{label(source)}/{part}"
        zero = np.zeros(scale.shape, q.dtype)
        names = [self.fresh(f"{base}_quantized"), self.fresh(f"{base}_scale")]
        names.append(self.fresh(f"{base}_zero_point"))
        for name, array in zip(names, (q, scale, zero)):
            self._const(name, array)
        out = self.fresh(f"{base}_dequantized")
        node_name = self.fresh(f"{label(source)}/DequantizeLinear")
        node = helper.make_node("DequantizeLinear", names, [out], node_name)
        if scale.ndim == 1:
            node.attribute.append(helper.make_attribute("axis", axis))
        self.new.append(made_for(node, source))
        return out
