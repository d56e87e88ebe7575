"""Attention: scaled dot-product attention and multi-head attention.

`multihead_attention` has torch's parameter layout (nn.MultiheadAttention with
batch_first=True: a packed `in_proj_weight` [3E, E], `out_proj`), so trained
weights move across unchanged. Its ONNX form is the plain pattern (projections,
per-head MatMul, Softmax) with the three input projections fused into one MatMul
for self-attention; dynamic batch and lengths stay symbolic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, add, dims_equal, mul
from dslnet.core.types import DType, TensorType
from dslnet.ops.channels import Channels, Placed
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.positional import InferredSize
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, need_static, register

_CAUSAL_HELPER = '''
def causal_mask(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """True where a position may not look: every key after the query's position."""
    size = (query.size(-2), key.size(-2))
    return torch.ones(size, dtype=torch.bool, device=query.device).triu(1)
'''


def _elements(shape: Sequence[Dim]) -> Dim:
    total: Dim = 1
    for d in shape:
        total = mul(total, d)
    return total


_HEADS_ATTENTION = '''
class HeadsAttention(nn.Module):
    """nn.MultiheadAttention (batch first) whose heads are narrower than the model:
    what is left after pruning heads. Same parameters, same call."""

    def __init__(
        self, embed_dim: int, heads: int, head_dim: int, dropout: float = 0.0, bias: bool = True
    ) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        inner = heads * head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner)) if bias else None
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, None]:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = (None,) * 3 if self.in_proj_bias is None else self.in_proj_bias.chunk(3)

        def by_head(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            y = F.linear(x, w, b)  # [N, L, heads * head_dim] -> [N, heads, L, head_dim]
            return y.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

        q, k, v = by_head(query, w_q, b_q), by_head(key, w_k, b_k), by_head(value, w_v, b_v)
        allowed = None  # true where a query may look
        if attn_mask is not None:
            allowed = ~attn_mask
        if key_padding_mask is not None:
            keep = ~key_padding_mask[:, None, None, :]
            allowed = keep if allowed is None else allowed & keep
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).flatten(2)), None
'''


def _attention_macs(queries: Sequence[Dim], keys: Dim, width: Dim, value_width: Dim) -> Dim:
    """Scores (q k^T) and their weighted sum of values, for every query position."""
    scores = mul(_elements(queries), keys)
    return add(mul(scores, width), mul(scores, value_width))


def _ints(ctx: OnnxNodeContext, hint: str, *values: int) -> str:
    return ctx.add_initializer(hint, np.array(values, dtype=np.int64))


def _scalar(ctx: OnnxNodeContext, hint: str, value: float) -> str:
    return ctx.add_initializer(hint, np.array(value, dtype=np.float32))


def _causal_mask(ctx: OnnxNodeContext, query: str, key: str, rank: int) -> str:
    """Additive float [L, S]: -inf where key position j > query position i (top-left
    aligned, as torch), 0 elsewhere. A -inf matrix with Trilu keeping its strict upper
    triangle costs two cheap nodes, where comparing two Ranges costs several."""
    lengths = [
        ctx.add_node("Shape", [value], start=rank - 2, end=rank - 1)[0] for value in (query, key)
    ]
    (shape,) = ctx.add_node("Concat", lengths, axis=0)
    minus_inf = np.array([float("-inf")], dtype=np.float32)
    (filled,) = ctx.add_node("ConstantOfShape", [shape], value=minus_inf)
    above = ctx.add_initializer("one", np.array(1, dtype=np.int64))  # diagonal offset k
    return ctx.add_node("Trilu", [filled, above], upper=1)[0]


def _masked(ctx: OnnxNodeContext, scores: str, keep: str) -> str:
    """Scores where `keep`, -inf elsewhere (what torch's masks do). The mask becomes
    additive at its own small shape ([L, S] or [N, 1, 1, S]) and is then broadcast by
    Add, which ORT runs faster than a Where over every score."""
    zero = _scalar(ctx, "zero_f", 0.0)
    minus_inf = _scalar(ctx, "minus_inf", float("-inf"))
    (additive,) = ctx.add_node("Where", [keep, zero, minus_inf])
    return ctx.add_node("Add", [scores, additive])[0]


# --- scaled dot-product attention ---------------------------------------------------------


class SDPAAttrs(OpAttrs):
    causal: bool = Field(False, description="each query position sees keys up to its own")
    scale: float | None = Field(None, gt=0.0, description="score scale; none: 1/sqrt(E)")


@register
class ScaledDotProductAttention(OpDef):
    name = "scaled_dot_product_attention"
    family = "attention"
    short_name = "attention"
    doc = (
        "softmax(q k^T * scale + mask) v for q [..., L, E], k [..., S, E], v [..., S, Ev]; "
        "optional mask [..., L, S]: bool (true = attend) or float (added)."
    )
    Attrs = SDPAAttrs
    inputs = ("q", "k", "v")
    optional_inputs = ("mask",)
    examples = (
        "in q: float32[N, 2, T, 4]\nin k: float32[N, 2, 5, 4]\nin v: float32[N, 2, 5, 3]\n"
        "out y = scaled_dot_product_attention(q, k, v)",
        "in x: float32[N, T, 6]\nout y = scaled_dot_product_attention(x, x, x, causal=true)",
        "in q: float32[N, T, 4]\nin kv: float32[N, 3, 4]\nin m: float32[N, T, 3]\n"
        "out y = scaled_dot_product_attention(q, kv, kv, m, scale=0.25)",
    )

    def infer(self, attrs: SDPAAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        q, k, v, *mask = inputs
        if q.rank < 2 or not q.dtype.is_float:
            raise ShapeError(f"{self.name} needs float q [..., L, E], got {q}")
        batch = q.shape[:-2]
        for name, t in (("k", k), ("v", v)):
            if t.rank != q.rank or t.dtype != q.dtype:
                raise ShapeError(f"{self.name}: {name} must be {q.dtype} of rank {q.rank}, got {t}")
            if not all(dims_equal(a, b) for a, b in zip(t.shape[:-2], batch)):
                raise ShapeError(f"{self.name}: leading dims differ: q {q}, {name} {t}")
        if not dims_equal(q.shape[-1], k.shape[-1]):
            raise ShapeError(f"{self.name}: q and k need the same width E, got q {q}, k {k}")
        if not dims_equal(k.shape[-2], v.shape[-2]):
            raise ShapeError(f"{self.name}: k and v need the same length S, got k {k}, v {v}")
        if attrs.scale is None and not isinstance(q.shape[-1], int):
            # The ONNX lowering writes the default scale 1/sqrt(E) as a constant.
            raise ShapeError(
                f"{self.name} needs a known width E for its default scale 1/sqrt(E), but q is "
                f"{q}; give q a fixed last axis, or scale="
            )
        if mask:
            (m,) = mask
            expected = (q.shape[-2], k.shape[-2])
            if m.rank < 2 or not all(dims_equal(a, b) for a, b in zip(m.shape[-2:], expected)):
                raise ShapeError(f"{self.name}: mask must end in [L, S] = [{expected[0]}, "
                                 f"{expected[1]}], got {m}")  # fmt: skip
            if attrs.causal:
                raise ShapeError(f"{self.name}: give causal=true or a mask, not both")
        return (q.with_shape((*batch, q.shape[-2], v.shape[-1])),)

    def flops(
        self, attrs: SDPAAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        q, k, v = inputs[:3]
        return _attention_macs(q.shape[:-1], k.shape[-2], q.shape[-1], v.shape[-1])

    def torch_expr(
        self, attrs: SDPAAttrs, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        options = [*args[:3]]
        if len(args) == 4:
            options.append(f"attn_mask={args[3]}")
        if attrs.causal:
            options.append("is_causal=True")
        if attrs.scale is not None:
            options.append(f"scale={attrs.scale!r}")
        return f"F.scaled_dot_product_attention({', '.join(options)})"

    def onnx(self, attrs: SDPAAttrs, ctx: OnnxNodeContext) -> None:
        q, k, v, *mask = ctx.inputs
        q_type = ctx.input_types[0]
        scale = attrs.scale
        if scale is None:
            scale = 1.0 / np.sqrt(need_static(q_type.shape[-1], "width E", self.name, q_type))
        rank = q_type.rank
        perm = (*range(rank - 2), rank - 1, rank - 2)
        (k_t,) = ctx.add_node("Transpose", [k], perm=perm)
        (scaled_q,) = ctx.add_node("Mul", [q, _scalar(ctx, "scale", scale)])
        (scores,) = ctx.add_node("MatMul", [scaled_q, k_t])
        if attrs.causal:
            (scores,) = ctx.add_node("Add", [scores, _causal_mask(ctx, q, k, rank)])
        if mask:
            if ctx.input_types[3].dtype == DType.bool:
                scores = _masked(ctx, scores, mask[0])
            else:
                (scores,) = ctx.add_node("Add", [scores, mask[0]])
        (weights,) = ctx.add_node("Softmax", [scores], axis=-1)
        ctx.add_node("MatMul", [weights, v], ctx.outputs)


# --- multi-head attention ----------------------------------------------------------------


class MHAAttrs(OpAttrs):
    heads: int = Field(gt=0, description="attention heads; must divide the width E")
    head_dim: int | None = Field(
        None, gt=0, description="width of each head; none: E / heads (pruned heads set it)"
    )
    bias: bool = Field(True, description="learn biases of the input and output projections")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on attention weights")
    causal: bool = Field(False, description="each query position sees keys up to its own")


@register
class MultiheadAttention(OpDef):
    name = "multihead_attention"
    positional = ("heads",)
    inferred = InferredSize("embedding width", axis=-1)
    family = "attention"
    short_name = "attn"
    doc = (
        "Multi-head attention (nn.MultiheadAttention, batch first) of query [N, L, E] over "
        "key_value [N, S, E] (self-attention when omitted; pass the query twice to add a "
        "mask), with an optional key_padding_mask bool [N, S] (true = padding)."
    )
    Attrs = MHAAttrs
    inputs = ("query",)
    optional_inputs = ("key_value", "key_padding_mask")
    torch_helpers = _CAUSAL_HELPER
    examples = (
        "in x: float32[N, T, 8]\nout y = multihead_attention(x, heads=2)",
        "in x: float32[N, T, 6]\nout y = x -> multihead_attention(3, causal=true, bias=false)",
        "in q: float32[N, T, 8]\nin m: float32[N, 5, 8]\nin pad: bool[N, 5]\n"
        "out y = multihead_attention(q, m, pad, heads=4)",
        "in x: float32[N, T, 4]\nin pad: bool[N, T]\n"
        "out y = multihead_attention(x, x, pad, heads=2, causal=true)",
        "in q: float32[N, T, 6]\nin m: float32[N, 5, 6]\nin pad: bool[N, 5]\n"
        "out y = multihead_attention(q, m, pad, heads=2, head_dim=2)",
    )

    def width(self, attrs: MHAAttrs, query: TensorType) -> int:
        width = need_static(query.shape[-1], "width E (last axis)", self.name, query)
        if attrs.head_dim is None and width % attrs.heads:
            raise ShapeError(
                f"{self.name}: {attrs.heads} heads do not divide the width {width} of the "
                f"query {query} ({width} % {attrs.heads} = {width % attrs.heads})"
            )
        return width

    def head_width(self, attrs: MHAAttrs, query: TensorType) -> int:
        return attrs.head_dim or self.width(attrs, query) // attrs.heads

    def inner(self, attrs: MHAAttrs, query: TensorType) -> int:
        """The width of the heads together: E, unless heads were pruned."""
        return attrs.heads * self.head_width(attrs, query)

    def channels(self, attrs: MHAAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        # A head is removed whole: its rows in each of q, k, v, its columns of out_proj.
        head = self.head_width(attrs, inputs[0])
        placed = [Placed("in_proj_weight", 0, 3, head), Placed("out_proj.weight", 1, 1, head)]
        if attrs.bias:
            placed.append(Placed("in_proj_bias", 0, 3, head))
        return Channels(
            "inner", out_attr="heads", unit_params=tuple(placed), set_attrs={"head_dim": head}
        )

    def infer(self, attrs: MHAAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        query, *rest = inputs
        if query.rank != 3 or not query.dtype.is_float:
            raise ShapeError(f"{self.name} needs a float query [N, L, E], got {query}")
        self.width(attrs, query)
        memory = rest[0] if rest else query
        same_batch = dims_equal(memory.shape[0], query.shape[0]) if memory.rank == 3 else False
        if (
            memory.dtype != query.dtype
            or not same_batch
            or not dims_equal(memory.shape[-1], query.shape[-1])
        ):
            raise ShapeError(
                f"{self.name}: key_value must be [N, S, E] like the query {query}, got {memory}"
            )
        if len(rest) == 2:
            pad = rest[1]
            expected = (query.shape[0], memory.shape[1])
            if (
                pad.dtype != DType.bool
                or pad.rank != 2
                or not all(dims_equal(a, b) for a, b in zip(pad.shape, expected))
            ):
                raise ShapeError(
                    f"{self.name}: key_padding_mask must be bool[{expected[0]}, {expected[1]}] "
                    f"(true = padding), got {pad}"
                )
        return (query,)

    def is_weight(self, role: str) -> bool:
        return role in ("in_proj_weight", "out_proj.weight")  # the projections, not biases

    def params(self, attrs: MHAAttrs, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        e, inner = self.width(attrs, inputs[0]), self.inner(attrs, inputs[0])
        shapes: dict[str, tuple[int, ...]] = {"in_proj_weight": (3 * inner, e)}
        if attrs.bias:
            shapes["in_proj_bias"] = (3 * inner,)
        shapes["out_proj.weight"] = (e, inner)
        if attrs.bias:
            shapes["out_proj.bias"] = (e,)
        return shapes

    def init_param(
        self, attrs: MHAAttrs, role: str, inputs: Sequence[TensorType], rng: np.random.Generator
    ) -> np.ndarray[Any, Any]:
        e, inner = self.width(attrs, inputs[0]), self.inner(attrs, inputs[0])
        shape = self.params(attrs, inputs)[role]
        if role == "in_proj_weight":  # torch: xavier_uniform over the packed [3E, E]
            bound = np.sqrt(6.0 / (3 * inner + e))
        elif role == "out_proj.weight":  # torch: nn.Linear's default
            bound = 1.0 / np.sqrt(inner)
        else:
            return np.zeros(shape, dtype=np.float32)  # torch zeroes both biases
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    def flops(
        self, attrs: MHAAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        query = inputs[0]
        memory = inputs[1] if len(inputs) > 1 else query
        e, inner = self.width(attrs, query), self.inner(attrs, query)
        queries, keys = _elements(query.shape[:-1]), _elements(memory.shape[:-1])
        projections = mul(add(mul(queries, 2), mul(keys, 2)), e * inner)  # q, out; k, v
        return add(projections, _attention_macs(query.shape[:-1], memory.shape[1], inner, inner))

    def differs_in_training(self, attrs: MHAAttrs) -> bool:
        return attrs.dropout > 0.0  # on the attention weights, while training

    def torch_module(self, attrs: MHAAttrs, inputs: Sequence[TensorType]) -> str:
        e, head = self.width(attrs, inputs[0]), self.head_width(attrs, inputs[0])
        options = "" if attrs.dropout == 0.0 else f", dropout={attrs.dropout!r}"
        options += "" if attrs.bias else ", bias=False"
        if attrs.heads * head != e:  # pruned heads: narrower than torch's module allows
            return f"HeadsAttention({e}, {attrs.heads}, {head}{options})"
        return f"nn.MultiheadAttention({e}, {attrs.heads}{options}, batch_first=True)"

    def torch_helpers_for(self, attrs: MHAAttrs, inputs: Sequence[TensorType]) -> tuple[str, ...]:
        narrow = self.inner(attrs, inputs[0]) != self.width(attrs, inputs[0])
        return (self.torch_helpers, _HEADS_ATTENTION) if narrow else (self.torch_helpers,)

    def torch_call(
        self, attrs: MHAAttrs, module: str, args: Sequence[str], inputs: Sequence[TensorType]
    ) -> str:
        query, *rest = args
        memory = rest[0] if rest else query
        options = [query, memory, memory]
        if len(rest) == 2:
            options.append(f"key_padding_mask={rest[1]}")
        if attrs.causal:
            options += [f"attn_mask=causal_mask({query}, {memory})", "is_causal=True"]
        options.append("need_weights=False")
        return f"{module}({', '.join(options)})[0]"

    def onnx(self, attrs: MHAAttrs, ctx: OnnxNodeContext) -> None:
        query, *rest = ctx.inputs
        memory = rest[0] if rest else query
        e = self.inner(attrs, ctx.input_types[0])  # the heads' width, from here on
        head = self.head_width(attrs, ctx.input_types[0])

        (w_t,) = ctx.add_node("Transpose", [ctx.param("in_proj_weight")], perm=(1, 0))
        bias = ctx.param("in_proj_bias") if attrs.bias else None
        narrow = e != self.width(attrs, ctx.input_types[0])
        if ctx.ort_fused and memory == query and not narrow:
            self.ort_self_attention(attrs, ctx, w_t, bias, rest[1:])
            return

        def project(x: str, w: str, b: str | None) -> str:
            (y,) = ctx.add_node("MatMul", [x, w])
            return ctx.add_node("Add", [y, b])[0] if b else y

        if memory == query:  # self-attention: one [E, 3E] projection, then split
            packed = project(query, w_t, bias)
            q, k, v = ctx.add_node("Split", [packed, _ints(ctx, "qkv", e, e, e)], 3, axis=-1)
        else:
            w_q, w_kv = ctx.add_node("Split", [w_t, _ints(ctx, "q_kv", e, 2 * e)], 2, axis=1)
            b_q = b_kv = None
            if bias:
                b_q, b_kv = ctx.add_node("Split", [bias, _ints(ctx, "q_kv", e, 2 * e)], 2)
            q = project(query, w_q, b_q)
            k, v = ctx.add_node(
                "Split", [project(memory, w_kv, b_kv), _ints(ctx, "kv", e, e)], 2, axis=-1
            )

        def heads(x: str) -> str:  # [N, L, E] -> [N, heads, L, head]
            shape = _ints(ctx, "by_head", 0, 0, attrs.heads, head)
            (split,) = ctx.add_node("Reshape", [x, shape])
            return ctx.add_node("Transpose", [split], perm=(0, 2, 1, 3))[0]

        (q_scaled,) = ctx.add_node("Mul", [q, _scalar(ctx, "scale", 1.0 / np.sqrt(head))])
        (k_t,) = ctx.add_node(
            "Transpose",
            [ctx.add_node("Reshape", [k, _ints(ctx, "by_head", 0, 0, attrs.heads, head)])[0]],
            perm=(0, 2, 3, 1),
        )
        (scores,) = ctx.add_node("MatMul", [heads(q_scaled), k_t])  # [N, heads, L, S]
        if attrs.causal:
            (scores,) = ctx.add_node("Add", [scores, _causal_mask(ctx, query, memory, 3)])
        if len(rest) == 2:  # padding [N, S] -> keep [N, 1, 1, S]
            (keep,) = ctx.add_node("Not", [rest[1]])
            (keep4,) = ctx.add_node("Unsqueeze", [keep, _ints(ctx, "axes12", 1, 2)])
            scores = _masked(ctx, scores, keep4)
        (weights,) = ctx.add_node("Softmax", [scores], axis=-1)
        (context,) = ctx.add_node("MatMul", [weights, heads(v)])
        (merged,) = ctx.add_node("Transpose", [context], perm=(0, 2, 1, 3))
        (flat,) = ctx.add_node("Reshape", [merged, _ints(ctx, "merge_heads", 0, 0, e)])
        self.out_projection(attrs, ctx, flat)

    def out_projection(self, attrs: MHAAttrs, ctx: OnnxNodeContext, merged: str) -> None:
        (o_t,) = ctx.add_node("Transpose", [ctx.param("out_proj.weight")], perm=(1, 0))
        if attrs.bias:
            (out,) = ctx.add_node("MatMul", [merged, o_t])
            ctx.add_node("Add", [out, ctx.param("out_proj.bias")], ctx.outputs)
        else:
            ctx.add_node("MatMul", [merged, o_t], ctx.outputs)

    def ort_self_attention(
        self, attrs: MHAAttrs, ctx: OnnxNodeContext, w_t: str, bias: str | None, pad: list[str]
    ) -> None:
        """ONNX Runtime's fused Attention (com.microsoft): projections, causal mask and
        softmax in one kernel; then the output projection."""
        e = self.width(attrs, ctx.input_types[0])
        if bias is None:
            bias = ctx.add_initializer("zero_bias", np.zeros(3 * e, dtype=np.float32))
        args = [ctx.inputs[0], w_t, bias]
        if pad:  # the raw 2-D mask_index: 1 = attend, 0 = padding
            (keep,) = ctx.add_node("Not", pad)
            args.append(ctx.add_node("Cast", [keep], to=6)[0])  # int32
        (merged,) = ctx.add_node(
            "Attention",
            args,
            domain="com.microsoft",
            num_heads=attrs.heads,
            unidirectional=int(attrs.causal),
        )
        self.out_projection(attrs, ctx, merged)
