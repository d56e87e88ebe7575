"""Dynamic int8 quantization: int8 weights, activations quantized at run time.

Every MatMul or Gemm with a constant 2-D weight becomes one ONNX Runtime
`com.microsoft.DynamicQuantizeMatMul`: the weight stored as int8, symmetric per output
column (MatMul's B layout, so a Gemm's transB weight is transposed once here), and the
float bias of a following Add or of the Gemm's C folded into the op's bias input. The
op quantizes its float input to uint8 per call and runs ORT's u8s8 integer GEMM. It is
what ORT's own quantize_dynamic model becomes after ORT fuses it at load time, so both
run the same kernel; ours skips the fusion and carries per-column weight scales.
Convolutions are left in float (ORT's ConvInteger is slower than its float Conv).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dslnet.backends.quantize._onnx import (
    MS_DOMAIN,
    Namer,
    attr,
    check_skip,
    consumers,
    drop_unused_initializers,
    fold_constant_weights,
    initializers,
    is_skipped,
    label,
    made_for,
    toposort,
    use_opset,
    working_copy,
)

__all__ = ["quantize_dynamic_int8", "quantize_weight"]

Array = np.ndarray[Any, Any]


# Weights keep to 7 bits, [-63, 63] (ORT's "reduce range"). ONNX Runtime multiplies uint8
# activations by int8 weights; on x86 CPUs without VNNI its kernel adds each pair of
# products in saturating int16, and 2 x 255 x 127 overflows it: a transformer's output
# was off by 0.38 on such a CPU (0.015 with 7 bits). No pair can overflow at |q| <= 63,
# so the model is right on every CPU and its bytes do not depend on the machine.
WEIGHT_QMAX = 63


def quantize_weight(weight: Array, axis: int) -> tuple[Array, Array]:
    """`weight` as int8, symmetric per slice along `axis` (range [-WEIGHT_QMAX,
    WEIGHT_QMAX]), and the float32 scales. An all-zero slice gets scale 1 (any positive
    scale is exact)."""
    moved = np.moveaxis(weight.astype(np.float32), axis, 0)
    peak = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scale = np.where(peak > 0, peak / WEIGHT_QMAX, 1.0).astype(np.float32)
    shape = [1] * weight.ndim
    shape[axis] = -1
    q = np.clip(np.round(weight / scale.reshape(shape)), -WEIGHT_QMAX, WEIGHT_QMAX)
    return q.astype(np.int8), scale


def quantize_dynamic_int8(
    model: onnx.ModelProto, *, skip: Collection[str] = (), per_channel: bool = False
) -> onnx.ModelProto:
    """`model` with its constant-weight MatMul/Gemm layers as DynamicQuantizeMatMul
    (ORT-only), except those whose IR node is in `skip`.

    per_channel: one weight scale per output column instead of one per layer. Off by
        default, as in ORT's quantize_dynamic: ORT 1.32 runs per-column scales ~2%
        slower, and the activations' per-call range dominates the error anyway.
    """
    work = working_copy(model)
    skipped = check_skip(work, skip)
    fold_constant_weights(work)
    graph = work.graph
    weights = initializers(graph)
    readers = consumers(graph)
    outputs = {o.name for o in graph.output}
    fresh = Namer(graph)
    dropped: set[int] = set()
    made: list[onnx.NodeProto] = []
    for node in graph.node:
        if is_skipped(node, skipped) or id(node) in dropped:
            continue
        found = _weight_and_bias(node, weights)
        if found is None:
            continue
        weight, bias = found
        out = node.output[0]
        adds = readers.get(out, [])
        if bias is None and out not in outputs and len(adds) == 1:
            bias = _bias_of_add(adds[0], out, weights, weight.shape[1], skipped)
            if bias is not None:
                dropped.add(id(adds[0]))
                out = adds[0].output[0]
        if per_channel:
            q, scale = quantize_weight(weight, axis=1)
        else:  # one slice holding the whole weight
            q, scale = quantize_weight(weight.reshape(1, -1), axis=0)
            q, scale = q.reshape(weight.shape), scale.reshape(())
        base = label(node)
        # An explicit zero point per layer, though 0 is the default: without one, or with
        # one shared by all layers, ORT 1.32 ran the 6 x 1024 MLP benchmark 2-3% slower.
        zero = fresh(f"{base}/weight_zero_point")
        graph.initializer.append(numpy_helper.from_array(np.zeros((), np.int8), zero))
        args = [node.input[0], fresh(f"{base}/weight_int8"), fresh(f"{base}/weight_scale"), zero]
        graph.initializer.append(numpy_helper.from_array(q, args[1]))
        graph.initializer.append(numpy_helper.from_array(scale, args[2]))
        if bias is not None:
            args.append(fresh(f"{base}/bias"))
            graph.initializer.append(numpy_helper.from_array(bias.astype(np.float32), args[4]))
        name = fresh(f"{base}/DynamicQuantizeMatMul")
        matmul = helper.make_node("DynamicQuantizeMatMul", args, [out], name, domain=MS_DOMAIN)
        made.append(made_for(matmul, node))
        dropped.add(id(node))
    kept = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(kept + made)
    drop_unused_initializers(graph)
    toposort(graph)
    if made:
        use_opset(work, MS_DOMAIN, 1)
    return work


def _weight_and_bias(
    node: onnx.NodeProto, weights: dict[str, onnx.TensorProto]
) -> tuple[Array, Array | None] | None:
    """The [K, N] float weight of a MatMul/Gemm with a constant one (alpha folded in),
    and a Gemm's [N] bias (beta folded in); None when the node does not qualify."""
    if node.op_type == "MatMul":
        tensor = weights.get(node.input[1])
        if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT or len(tensor.dims) != 2:
            return None
        return numpy_helper.to_array(tensor), None
    if node.op_type != "Gemm" or attr(node, "transA", 0):
        return None
    tensor = weights.get(node.input[1])
    if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT:
        return None
    weight = numpy_helper.to_array(tensor) * np.float32(attr(node, "alpha", 1.0))
    if attr(node, "transB", 0):
        weight = weight.T
    if len(node.input) < 3 or not node.input[2]:
        return weight, None
    c = weights.get(node.input[2])
    if c is None:
        return None
    bias = numpy_helper.to_array(c) * np.float32(attr(node, "beta", 1.0))
    if bias.size not in (1, weight.shape[1]) or (bias.ndim > 1 and bias.shape[0] != 1):
        return None  # a C varying along rows is not a bias the op can take
    return weight, np.broadcast_to(bias.reshape(-1), (weight.shape[1],)).copy()


def _bias_of_add(
    add: onnx.NodeProto,
    source: str,
    weights: dict[str, onnx.TensorProto],
    columns: int,
    skipped: frozenset[str],
) -> Array | None:
    """The [N] constant a MatMul's only reader, an Add, adds to it; None otherwise."""
    if add.op_type != "Add" or is_skipped(add, skipped) or len(add.input) != 2:
        return None
    other = add.input[1] if add.input[0] == source else add.input[0]
    tensor = weights.get(other)
    if other == source or tensor is None or tensor.data_type != onnx.TensorProto.FLOAT:
        return None
    bias = numpy_helper.to_array(tensor)
    if bias.shape[-1:] != (columns,) or bias.size != columns:
        return None  # broadcasting over rows too: not a per-column bias
    return bias.reshape(columns)
