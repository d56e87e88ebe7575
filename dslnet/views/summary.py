"""Per-layer summary of a network: output shapes, parameters, MACs and memory.

Parameters of a shared layer count once (at its first use); MACs count every use
(both counted by `dslnet.ir.cost`).
MACs are the multiply-accumulates of one forward pass, the convention of published
model tables; FLOPs are 2 x MACs. With symbolic input sizes they are formulas.

Every count that can depend on the input sizes (`macs`, `flops`,
`activation_bytes`) is a string in the data, whether or not it does: the digits of
an integer (`"1117056"`), else a formula (`"1814073344*N"`); `symbolic` says which.
Parameter counts and bytes never depend on them and are ints.

Memory: `param_bytes` is the parameters and buffers at their dtypes' sizes;
`activation_bytes` is the sum of the sizes of every op's outputs for one sample
(the batch dim set to 1): what a training forward pass keeps for the backward pass
when nothing is freed or recomputed, not the peak of an inference run, which frees
outputs as it goes.
"""

from __future__ import annotations

from typing import Any

from dslnet.core import symbolic
from dslnet.core.literals import format_value
from dslnet.core.symbolic import Dim, dim_str
from dslnet.core.types import DType, TensorType
from dslnet.ir.cost import node_costs
from dslnet.ir.graph import Graph, Node
from dslnet.views.summary_view import render, table

__all__ = ["render", "summarize", "table"]

DTYPE_BYTES = {
    DType.float32: 4,
    DType.float16: 2,
    DType.bfloat16: 2,
    DType.float64: 8,
    DType.int8: 1,
    DType.uint8: 1,
    DType.int16: 2,
    DType.int32: 4,
    DType.int64: 8,
    DType.bool: 1,
}


def _dim_json(d: Dim) -> int | str:
    return d if isinstance(d, int) else dim_str(d)


def count_text(d: Dim) -> str:
    """A count as the summary data holds it: always a string (digits or a formula)."""
    return str(d) if isinstance(d, int) else dim_str(d)


def _type_json(t: TensorType) -> dict[str, Any]:
    return {"dtype": t.dtype.value, "shape": [_dim_json(d) for d in t.shape]}


def batch_dim(graph: Graph) -> str | None:
    """The batch symbol: the first dim of the first input, when it is a plain symbol."""
    for name in graph.inputs:
        shape = graph.type_of(name).shape
        if shape and not isinstance(shape[0], int):
            text = dim_str(shape[0])
            return text if text.isidentifier() else None
        return None
    return None


def _bytes(t: TensorType, per_sample: dict[str, Dim]) -> Dim:
    size: Dim = DTYPE_BYTES[t.dtype]
    for d in t.shape:
        size = symbolic.mul(size, _per_sample(d, per_sample))
    return size


class _Totals:
    """What a block instance (or the network) adds up."""

    def __init__(self) -> None:
        self.params = 0
        self.macs: Dim = 0
        self.activations: Dim = 0

    def add(self, params: int, macs: Dim, activations: Dim) -> None:
        self.params += params
        self.macs = symbolic.add(self.macs, macs)
        self.activations = symbolic.add(self.activations, activations)

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": count_text(self.macs),
            "flops": count_text(symbolic.mul(2, self.macs)),
            "activation_bytes": count_text(self.activations),
        }


def summarize(graph: Graph) -> dict[str, Any]:
    """The summary as plain data (what `--json` prints and `prog.summary` returns)."""
    batch = batch_dim(graph)
    per_sample: dict[str, Dim] = {batch: 1} if batch else {}
    layers: list[dict[str, Any]] = []
    blocks: dict[str, dict[str, Any]] = {}
    block_totals: dict[str, _Totals] = {}
    total = _Totals()
    for cost in node_costs(graph):
        node, out_types, params, macs = cost.node, cost.output_types, cost.params, cost.macs
        activations: Dim = 0
        for t in out_types:
            activations = symbolic.add(activations, _bytes(t, per_sample))
        total.add(params, macs, activations)
        for depth, frame in enumerate(node.chain, start=1):
            if frame.instance not in blocks:
                parent = node.chain[depth - 2].instance if depth > 1 else None
                blocks[frame.instance] = {
                    "instance": frame.instance,
                    "block": frame.block,
                    "parent": parent,
                    "depth": depth,
                }
                block_totals[frame.instance] = _Totals()
            block_totals[frame.instance].add(params, macs, activations)
        layers.append(
            {
                "name": node.name,
                "op": node.op,
                "block": _top_block(node),
                "scope": node.chain[-1].instance if node.chain else None,
                "output_shape": [_dim_json(d) for d in out_types[0].shape] if out_types else [],
                "params": params,
                "macs": count_text(macs),
                "flops": count_text(symbolic.mul(2, macs)),
                "activation_bytes": count_text(activations),
            }
        )
    for instance, entry in blocks.items():
        entry.update(block_totals[instance].as_dict())
    trainable = sum(p.numel for p in graph.parameters.values() if not p.buffer)
    param_bytes = sum(p.numel * DTYPE_BYTES[p.dtype] for p in graph.parameters.values())
    return {
        "network": graph.name,
        "args": {
            k: format_value(v) if not isinstance(v, (int, float, bool, str)) else v
            for k, v in graph.args.items()
        },
        "inputs": {name: _type_json(graph.type_of(name)) for name in graph.inputs},
        "outputs": {name: _type_json(graph.type_of(v)) for name, v in graph.outputs},
        "batch_dim": batch,
        "symbolic": _symbolic(total),
        "params": graph.num_parameters,
        "trainable_params": trainable,
        "buffers": sum(p.numel for p in graph.parameters.values() if p.buffer),
        "param_bytes": param_bytes,
        **{k: v for k, v in total.as_dict().items() if k != "params"},
        "macs_per_sample": count_text(_per_sample(total.macs, per_sample)),
        "layers": layers,
        "blocks": list(blocks.values()),
    }


def _per_sample(d: Dim, env: dict[str, Dim]) -> Dim:
    return d if isinstance(d, int) else d.substitute(env)


def _top_block(node: Node) -> str | None:
    """The outermost block instance a node was expanded in (None: the network itself)."""
    return node.chain[0].instance if node.chain else None


def _symbolic(total: _Totals) -> bool:
    return symbolic.is_symbolic(total.macs) or symbolic.is_symbolic(total.activations)
