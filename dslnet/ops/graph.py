"""Graph neural network layers over a dense adjacency matrix: GCN and GAT.

Both take node features x [V, F] and an adjacency [V, V] as inputs, so the node count
V stays symbolic and one compiled model serves any graph. A GCN expects the adjacency
already normalised (D^-1/2 (A + I) D^-1/2, computed with the data); a GAT reads only
which entries are nonzero (edges j -> i in row i; add self-loops to the data, as GAT
does). A GAT node with no edge at all gets zero attention instead of NaN.
The adjacency is dense: memory grows with V^2 (heads * V^2 scores for a GAT), which
suits graphs of up to some ten thousand nodes, not web-scale ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, add, dims_equal, mul
from dslnet.core.types import TensorType
from dslnet.ops.channels import Channels, Placed, units
from dslnet.ops.lowering import OnnxNodeContext, reduce_node
from dslnet.ops.positional import InferredSize
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, need_static, register
from dslnet.ops.roles import ParamRoles


def _graph_inputs(op: str, inputs: Sequence[TensorType]) -> tuple[TensorType, int]:
    """Checked x [V, F] and adjacency [V, V]; returns x and F."""
    x, adj = inputs
    if x.rank != 2 or not x.dtype.is_float:
        raise ShapeError(f"{op} needs float node features x [V, F], got {x}")
    nodes = x.shape[0]
    if adj.rank != 2 or adj.dtype != x.dtype or not all(dims_equal(d, nodes) for d in adj.shape):
        raise ShapeError(
            f"{op}: the adjacency must be {x.dtype}[{nodes}, {nodes}] for x {x}, got {adj}"
        )
    return x, need_static(x.shape[1], "feature size F", op, x)


class _GraphLayer(OpDef):
    """What both layers share: inputs (x, adj), Glorot weights and zero biases."""

    family = "graph"
    inputs = ("x", "adj")
    positional = ("features",)
    inferred = InferredSize("input feature count", axis=-1)
    # The projection is a bias-free nn.Linear inside the layer; the bias its own.
    param_roles = ParamRoles(
        weight="linear.weight", out_axis=0, in_axis=1, bias="bias", bias_attr="bias"
    )

    def init_param(
        self, attrs: Any, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        shape = self.params(attrs, inputs)[role]
        if role == "bias":
            return np.zeros(shape, dtype=np.float32)
        bound = np.sqrt(6.0 / (shape[0] + shape[1]))  # Glorot: fan_out + fan_in
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _transposed_matmul(ctx: OnnxNodeContext, x: str, weight: str) -> str:
    """x W^T for a [out, in] weight (nn.Linear's layout)."""
    (w_t,) = ctx.add_node("Transpose", [weight], perm=(1, 0))
    return ctx.add_node("MatMul", [x, w_t])[0]


# --- GCN ------------------------------------------------------------------------------

_GCN_HELPER = '''
class GraphConv(nn.Module):
    """Kipf & Welling's layer: adj @ (x W) + b, adj normalised by the caller."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        nn.init.xavier_uniform_(self.linear.weight)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        y = adj @ self.linear(x)
        return y if self.bias is None else y + self.bias
'''


class GCNAttrs(OpAttrs):
    features: int = Field(gt=0, description="output features per node")
    bias: bool = Field(True, description="learn an additive bias")


@register
class GCNConv(_GraphLayer):
    name = "gcn_conv"
    doc = "Graph convolution (Kipf & Welling, 2017): adj @ (x W) + b for x [V, F], adj [V, V]."
    Attrs = GCNAttrs
    short_name = "gcn"
    torch_helpers = _GCN_HELPER
    examples = (
        "in x: float32[V, 5]\nin adj: float32[V, V]\nout y = gcn_conv(x, adj, 3)",
        "in x: float32[V, 4]\nin adj: float32[V, V]\nout y = gcn_conv(x, adj, 2, bias=false)",
    )

    def channels(self, attrs: GCNAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        rank = inputs[0].rank
        return units(rank - 1, "features", self.param_roles)

    def infer(self, attrs: GCNAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, _ = _graph_inputs(self.name, inputs)
        return (x.with_shape((x.shape[0], attrs.features)),)

    def params(self, attrs: GCNAttrs, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        _, features = _graph_inputs(self.name, inputs)
        shapes: dict[str, tuple[int, ...]] = {"linear.weight": (attrs.features, features)}
        if attrs.bias:
            shapes["bias"] = (attrs.features,)
        return shapes

    def flops(
        self, attrs: GCNAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        x, features = _graph_inputs(self.name, inputs)
        nodes = x.shape[0]
        transform = mul(nodes, features * attrs.features)
        return add(transform, mul(mul(nodes, nodes), attrs.features))

    def torch_module(self, attrs: GCNAttrs, inputs: Sequence[TensorType]) -> str:
        bias = "" if attrs.bias else ", bias=False"
        return f"GraphConv({inputs[0].shape[1]}, {attrs.features}{bias})"

    def onnx(self, attrs: GCNAttrs, ctx: OnnxNodeContext) -> None:
        x, adj = ctx.inputs
        support = _transposed_matmul(ctx, x, ctx.param("linear.weight"))
        if not attrs.bias:
            ctx.add_node("MatMul", [adj, support], ctx.outputs)
            return
        (y,) = ctx.add_node("MatMul", [adj, support])
        ctx.add_node("Add", [y, ctx.param("bias")], ctx.outputs)


# --- GAT ------------------------------------------------------------------------------

_GAT_HELPER = '''
class GraphAttention(nn.Module):
    """Veličković et al.'s layer: each node attends over its neighbours, per head."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        heads: int,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.heads, self.out_features = heads, out_features
        self.concat, self.negative_slope = concat, negative_slope
        self.linear = nn.Linear(in_features, heads * out_features, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, out_features))
        self.att_dst = nn.Parameter(torch.empty(heads, out_features))
        self.dropout = nn.Dropout(dropout)
        width = heads * out_features if concat else out_features
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        for weight in (self.linear.weight, self.att_src, self.att_dst):
            nn.init.xavier_uniform_(weight)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = self.linear(x).unflatten(-1, (self.heads, self.out_features))  # [V, heads, F]
        source = (h * self.att_src).sum(-1).t()  # [heads, V]
        target = (h * self.att_dst).sum(-1).t()
        scores = F.leaky_relu(target.unsqueeze(2) + source.unsqueeze(1), self.negative_slope)
        scores = scores.masked_fill(adj == 0, float("-inf"))  # [heads, V, V]
        weights = self.dropout(torch.softmax(scores, dim=-1).nan_to_num(0.0))
        out = weights @ h.transpose(0, 1)  # [heads, V, F]
        out = out.transpose(0, 1).flatten(1) if self.concat else out.mean(0)
        return out if self.bias is None else out + self.bias
'''


class GATAttrs(OpAttrs):
    features: int = Field(gt=0, description="output features per head")
    heads: int = Field(1, gt=0, description="attention heads")
    concat: bool = Field(True, description="concatenate the heads; false: average them")
    negative_slope: float = Field(0.2, ge=0.0, description="leaky_relu slope of the scores")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on attention weights")
    bias: bool = Field(True, description="learn an additive bias")


@register
class GATConv(_GraphLayer):
    name = "gat_conv"
    doc = (
        "Graph attention (Velickovic et al., 2018) over the edges of adj [V, V] (nonzero "
        "= edge): [V, heads*features] with concat, else the heads' mean [V, features]."
    )
    Attrs = GATAttrs
    short_name = "gat"
    torch_helpers = _GAT_HELPER
    examples = (
        "in x: float32[V, 5]\nin adj: float32[V, V]\nout y = gat_conv(x, adj, 3, heads=2)",
        "in x: float32[V, 4]\nin adj: float32[V, V]\n"
        "out y = gat_conv(x, adj, 2, heads=3, concat=false, negative_slope=0.1)",
    )

    def channels(self, attrs: GATAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        # The features of every head are pruned together: feature f of head h is row
        # h*features + f of the projection.
        heads = attrs.heads if attrs.concat else 1
        placed = [Placed("linear.weight", 0, attrs.heads), Placed("att_src", 1)]
        placed.append(Placed("att_dst", 1))
        if attrs.bias:
            placed.append(Placed("bias", 0, heads, scored=False))
        return Channels(
            "make",
            axis=inputs[0].rank - 1,
            out_attr="features",
            in_params={"linear.weight": 1},
            unit_params=tuple(placed),
            out_copies=(heads,),
        )

    def width(self, attrs: GATAttrs) -> int:
        return attrs.heads * attrs.features if attrs.concat else attrs.features

    def infer(self, attrs: GATAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, _ = _graph_inputs(self.name, inputs)
        return (x.with_shape((x.shape[0], self.width(attrs))),)

    def params(self, attrs: GATAttrs, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        _, features = _graph_inputs(self.name, inputs)
        shapes: dict[str, tuple[int, ...]] = {
            "linear.weight": (attrs.heads * attrs.features, features),
            "att_src": (attrs.heads, attrs.features),
            "att_dst": (attrs.heads, attrs.features),
        }
        if attrs.bias:
            shapes["bias"] = (self.width(attrs),)
        return shapes

    def flops(
        self, attrs: GATAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        x, features = _graph_inputs(self.name, inputs)
        nodes, width = x.shape[0], attrs.heads * attrs.features
        transform = mul(nodes, features * width + 2 * width)  # projection and scores
        return add(transform, mul(mul(nodes, nodes), width))  # weighted sums

    def differs_in_training(self, attrs: GATAttrs) -> bool:
        return attrs.dropout > 0.0  # on the attention weights, while training

    def torch_module(self, attrs: GATAttrs, inputs: Sequence[TensorType]) -> str:
        defaults = GATAttrs(features=attrs.features)
        options = "".join(
            f", {name}={getattr(attrs, name)!r}"
            for name in ("concat", "negative_slope", "dropout", "bias")
            if getattr(attrs, name) != getattr(defaults, name)
        )
        return (
            f"GraphAttention({inputs[0].shape[1]}, {attrs.features}, heads={attrs.heads}{options})"
        )

    def onnx(self, attrs: GATAttrs, ctx: OnnxNodeContext) -> None:
        x, adj = ctx.inputs

        def ints(hint: str, *values: int) -> str:
            return ctx.add_initializer(hint, np.array(values, dtype=np.int64))

        projected = _transposed_matmul(ctx, x, ctx.param("linear.weight"))
        (h,) = ctx.add_node("Reshape", [projected, ints("by_head", 0, attrs.heads, attrs.features)])

        def score(role: str, axis: int) -> str:  # [V, heads] -> [heads, V] unsqueezed at axis
            (weighted,) = ctx.add_node("Mul", [h, ctx.param(role)])
            (summed,) = ctx.add_node("ReduceSum", [weighted, ints("last", -1)], keepdims=0)
            (by_head,) = ctx.add_node("Transpose", [summed], perm=(1, 0))
            return ctx.add_node("Unsqueeze", [by_head, ints(f"axis{axis}", axis)])[0]

        (raw,) = ctx.add_node("Add", [score("att_dst", 2), score("att_src", 1)])
        (scores,) = ctx.add_node("LeakyRelu", [raw], alpha=attrs.negative_slope)
        zero = ctx.add_initializer("zero", np.array(0.0, dtype=np.float32))
        (no_edge,) = ctx.add_node("Equal", [adj, zero])
        minus_inf = ctx.add_initializer("minus_inf", np.array(-np.inf, dtype=np.float32))
        (masked,) = ctx.add_node("Where", [no_edge, minus_inf, scores])
        (soft,) = ctx.add_node("Softmax", [masked], axis=-1)
        (isolated,) = ctx.add_node("IsNaN", [soft])
        (weights,) = ctx.add_node("Where", [isolated, zero, soft])
        (h_by_head,) = ctx.add_node("Transpose", [h], perm=(1, 0, 2))
        (out,) = ctx.add_node("MatMul", [weights, h_by_head])  # [heads, V, F]
        if attrs.concat:
            (per_node,) = ctx.add_node("Transpose", [out], perm=(1, 0, 2))
            (merged,) = ctx.add_node("Reshape", [per_node, ints("flat", 0, -1)])
        else:
            merged = reduce_node(ctx, "ReduceMean", out, [0], keep=False, hint="heads_axis")
        if attrs.bias:
            ctx.add_node("Add", [merged, ctx.param("bias")], ctx.outputs)
        else:
            ctx.add_node("Identity", [merged], ctx.outputs)
