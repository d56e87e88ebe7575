"""Where float16 goes: per node, whether it runs in float16 and which of its inputs
and outputs change type.

An input typed `T` in the op's ONNX schema changes when `T` admits float16 (so
LayerNormalization's Mean output, typed `U`, stays float32); only ops whose output
type is an attribute (Cast, ConstantOfShape) need naming. Numerically fragile ops stay
float32, and cheap ops fed only by float32 results join them, which keeps the
float32 regions whole and the casts at their borders.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from dslnet.backends.quantize._onnx import FLOAT, attr, is_skipped

__all__ = ["KEEP_FP32", "Slots", "plan"]

KEEP_FP32 = frozenset(
    {
        # exp of logits, and sums of many small terms, overflow or lose the small terms
        "Softmax", "LogSoftmax", "Exp", "Log", "Pow", "Softplus", "CumSum", "Range",
        "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "ReduceProd",
        # norms that take statistics in the input type (LayerNormalization stashes in fp32)
        "InstanceNormalization", "GroupNormalization", "LpNormalization",
        "MeanVarianceNormalization",
        # recurrences accumulate rounding over time steps; ORT CPU has no fp16 kernels
        "LSTM", "GRU", "RNN",
    }
)  # fmt: skip
# Cheap elementwise and data-movement ops stay float32 when every computed input is
# float32 already, so `var + eps -> sqrt` after a float32 ReduceMean, or the reshapes
# between two float32 LSTMs, do not bounce through float16 (with that bounce, ORT
# 1.32's NchwcTransformer crashed the process on specs/seq2seq.net's LSTMSeq2Seq).
_FOLLOW = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "Sqrt", "Reciprocal", "Neg", "Abs", "Clip", "Max", "Min",
        "Identity", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat",
        "Split", "Slice", "Gather", "Expand", "Tile", "Pad",
    }
)  # fmt: skip
_F16 = "tensor(float16)"

Slots = tuple[list[bool], list[bool]]
"""(inputs, outputs) of a float16 node: True where the tensor is float16."""


def _fixed_fp32(node: onnx.NodeProto, skipped: frozenset[str]) -> bool:
    if node.op_type in KEEP_FP32 or is_skipped(node, skipped):
        return True
    if node.op_type == "LayerNormalization":  # stats in fp32 only with stash_type=1
        return bool(attr(node, "stash_type", 1) != 1)
    if node.op_type == "BatchNormalization":  # training mode takes batch statistics
        return bool(attr(node, "training_mode", 0))
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute)  # fmt: skip


def plan(
    graph: onnx.GraphProto,
    types: dict[str, int],
    skipped: frozenset[str],
    opset: int,
) -> dict[int, Slots]:
    """For each node (by position) running in float16: which inputs and outputs are
    float16. Nodes absent from the map keep all their types."""
    plan: dict[int, Slots] = {}
    weights = {t.name for t in graph.initializer}
    fp32_made: set[str] = set()  # float tensors computed by float32 nodes
    for index, node in enumerate(graph.node):
        found = None if _fixed_fp32(node, skipped) else _slots(node, types, opset)
        floats = [n for n in node.input if n and types.get(n) == FLOAT and n not in weights]
        # Graph inputs alone never pull a node into float32: only float32 results do.
        follow = node.op_type in _FOLLOW and floats and all(n in fp32_made for n in floats)
        if found is None or follow or not (any(found[0]) or any(found[1])):
            fp32_made.update(n for n in node.output if types.get(n) == FLOAT)
            continue
        plan[index] = found
    return plan


def _slots(node: onnx.NodeProto, types: dict[str, int], opset: int) -> Slots | None:
    """Which float inputs/outputs turn float16 if `node` runs in float16; None when
    the op cannot (no schema, or a float output whose type we cannot retarget)."""
    if node.domain not in ("", "ai.onnx"):
        return None
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    ins: list[bool] = []
    tied: set[str] = set()
    for i, name in enumerate(node.input):
        formal = _formal(schema.inputs, i)
        ok = bool(name) and formal is not None and types.get(name) == FLOAT
        ok = ok and formal is not None and _F16 in allowed.get(formal.type_str, {formal.type_str})
        ins.append(ok)
        if ok and formal is not None:
            tied.add(formal.type_str)
    outs: list[bool] = []
    for i, name in enumerate(node.output):
        formal = _formal(schema.outputs, i)
        if not name or formal is None or types.get(name) != FLOAT:
            outs.append(False)
        elif formal.type_str in tied or node.op_type in ("Cast", "ConstantOfShape"):
            outs.append(True)
        elif _F16 not in allowed.get(formal.type_str, {formal.type_str}):
            outs.append(False)  # a float-only output, e.g. LayerNormalization's Mean
        else:
            return None
    return ins, outs


def _formal(
    params: Sequence[onnx.defs.OpSchema.FormalParameter], i: int
) -> onnx.defs.OpSchema.FormalParameter | None:
    if i < len(params):
        return params[i]
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    return params[-1] if params and params[-1].option == variadic else None
