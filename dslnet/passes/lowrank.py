"""Low-rank factorisation: a dense or convolution layer becomes two thinner ones.

A layer's weight as a matrix W [m outputs, n inputs] (a convolution's is
[out, in * k * k]) is replaced by its best rank-r approximation U_r S_r V_r^T
(Eckart-Young), split over two layers: `<module>_down` maps the n inputs to r
features (weight sqrt(S_r) V_r^T, no bias; for a convolution the same k x k
window, stride, padding and dilation with r output channels) and `<module>_up`
maps r to m (weight U_r sqrt(S_r), the original bias; a 1 x 1 convolution).
sqrt(S) goes to both halves so their scales match, which fine-tuning likes.

The rank is chosen per layer: `rank` (an int, or a float in (0, 1]: that
fraction of min(m, n)) or `energy` (the smallest r whose S_i^2 reach that share
of the total). A layer is factorised only when r (m + n) < m n, so it always
saves parameters; at full rank nothing changes.

Which layers: `include` / `exclude` globs on module names, and `keep_heads`
(on by default) leaves the layers that make a network output through one-input
ops only (a classifier, a decoder's last convolution): their rank bounds what
the outputs can express, and they are seldom big. A shared layer (one module,
several nodes) is factorised once and every use reads the two new modules.
"""

from __future__ import annotations

import fnmatch
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dslnet.core.console import progress
from dslnet.ir.graph import Graph, Node
from dslnet.ir.oplookup import resolve_op
from dslnet.ir.roles import bias_of, weight_of
from dslnet.ops import registry
from dslnet.ops.factoring import Factoring
from dslnet.ops.roles import ParamRoles
from dslnet.passes.base import Array, Model, PassError, PassResult, with_nodes


@dataclass
class LowRank:
    """Factorise dense and convolution layers into two thinner ones.

    Args:
        rank: an int (the same rank for every layer, capped at its full rank) or a
            float in (0, 1] (that fraction of each layer's full rank, rounded up).
        energy: in (0, 1]: per layer, the smallest rank keeping this share of the
            sum of squared singular values. Give exactly one of rank and energy.
        include: module patterns (globs) that may be factorised.
        exclude: module patterns that are never factorised (wins over include).
        keep_heads: leave the layers that make network outputs (see the module doc).
    """

    rank: int | float | None = None
    energy: float | None = None
    include: Sequence[str] = ("*",)
    exclude: Sequence[str] = ()
    keep_heads: bool = True
    name: str = "lowrank"

    def __post_init__(self) -> None:
        if (self.rank is None) == (self.energy is None):
            raise PassError(f"give exactly one of rank and energy, got {self.rank}, {self.energy}")
        for what, value in (("rank", self.rank), ("energy", self.energy)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real | None):
                raise PassError(f"{what} must be a number, got {value!r}")  # rank=True too
        if self.energy is not None and not 0.0 < self.energy <= 1.0:
            raise PassError(f"energy must be in (0, 1], got {self.energy}")
        if isinstance(self.rank, numbers.Integral):  # numpy ints too: a count, not a fraction
            if self.rank < 1:
                raise PassError(f"an integer rank must be at least 1, got {self.rank}")
            self.rank = int(self.rank)
        elif self.rank is not None:
            if not 0.0 < self.rank <= 1.0:
                raise PassError(f"a fractional rank must be in (0, 1], got {self.rank}")
            self.rank = float(self.rank)

    def run(self, model: Model) -> PassResult:
        graph, weights = model.graph, dict(model.weights)
        uses: dict[str, list[Node]] = {}
        for node in graph.nodes:
            uses.setdefault(node.module, []).append(node)
        heads = _heads(graph) if self.keep_heads else set()
        # Module paths a new module must not take: layers, blocks, block calls.
        taken = {n.module for n in graph.nodes} | set(graph.modules)
        taken |= {c.instance for c in graph.calls.values()}
        node_names, value_names = {n.name for n in graph.nodes}, set(graph.values)
        replaced: dict[str, list[Node]] = {}
        done: list[str] = []
        left: dict[str, list[str]] = {}
        for module, nodes in progress(uses.items(), "low-rank factoring"):
            node = nodes[0]
            if not _weighted(node):
                continue
            probe = _factoring(node, 1)  # the layout of its weight
            reason = self._skipped(node, heads, probe)
            if reason:
                left.setdefault(reason, []).append(module)
                continue
            assert probe is not None
            weight = weight_of(node)
            assert weight is not None  # `register` refuses a factoring op without one
            if weight not in weights:
                raise PassError(f"lowrank: no weight for {weight}", node)
            w = _as_matrix(weights[weight], probe.out_axis)
            (m, n), full = w.shape, min(w.shape)
            r, spectrum = self._rank(w)
            if r * (m + n) >= m * n:  # always so at full rank: nothing changes
                left.setdefault("no parameter saving", []).append(f"{module} (r={r}/{full})")
                continue  # with a rank given, known before the costly decomposition
            factors = _factors(w, *(spectrum or _spectrum(w)), r)
            down, up = _fresh(f"{module}_down", taken), _fresh(f"{module}_up", taken)
            split = _factoring(node, r)
            assert split is not None
            replaced.update(
                (use.name, _split_node(use, split, down, up, node_names, value_names))
                for use in nodes
            )
            _move_weights(weights, node, factors, (down, up), split, probe.out_axis)
            done.append(f"{module} (r={r}/{full})")
        notes = [f"factorised {len(done)} layer(s): " + ", ".join(done)] if done else []
        notes += [f"left {', '.join(names)}: {reason}" for reason, names in left.items()]
        if not done:
            return PassResult(model, False, notes or ["no dense or convolution layer"])
        nodes = [new for n in graph.nodes for new in replaced.get(n.name, [n])]
        return PassResult(Model(with_nodes(graph, nodes), weights), True, notes)

    def _skipped(self, node: Node, heads: set[str], factoring: Factoring | None) -> str | None:
        """Why this layer is left alone (None: it is a candidate)."""
        if not _matches(node.module, self.include) or _matches(node.module, self.exclude):
            return "excluded"
        if node.module in heads:
            return "network head (keep_heads)"
        if factoring is None:
            return "cannot be factorised (a grouped convolution)"
        return None

    def _rank(self, w: Array) -> tuple[int, tuple[Array, Array, bool] | None]:
        """The rank for `w`, and its spectrum when choosing it took one."""
        full = min(w.shape)
        if isinstance(self.rank, int):
            return min(self.rank, full), None
        if self.rank is not None:  # a fraction, rounded up: 1.0 is full rank, never 0
            return max(1, math.ceil(self.rank * full - 1e-9)), None
        assert self.energy is not None
        spectrum = _spectrum(w)
        cumulative = np.cumsum(spectrum[0])
        # Tolerance: energy=1.0 keeps every direction above float rounding, not the noise.
        target = (self.energy - 1e-10) * cumulative[-1]
        return min(full, int(np.searchsorted(cumulative, target)) + 1), spectrum


def _matches(module: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(module, p) for p in patterns)


def _heads(graph: Graph) -> set[str]:
    """Modules of the layers that reach a network output through one-input nodes only."""
    producer = graph.producers()
    found: set[str] = set()
    stack, seen = [v for _, v in graph.outputs], set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if _weighted(node):
            found.add(node.module)
        elif len(node.inputs) == 1:  # an activation, reshape, normalisation...
            stack.append(node.inputs[0])
    return found


def _fresh(wanted: str, taken: set[str]) -> str:
    name, k = wanted, 1
    while name in taken:
        k += 1
        name = f"{wanted}{k}"
    taken.add(name)
    return name


def _factoring(node: Node, rank: int) -> Factoring | None:
    op, attrs = resolve_op(node)
    return op.factoring(attrs, rank)


def _weighted(node: Node) -> bool:
    """Whether the op is a layer that factorisation knows (grouped or not)."""
    op, _ = resolve_op(node)
    return type(op).factoring is not registry.OpDef.factoring


def _as_matrix(weight: Array, out_axis: int) -> Array:
    """The weight as [outputs, inputs]: a convolution's [out, in * prod(kernel)]."""
    weight = np.moveaxis(weight, out_axis, 0)  # a transposed conv: [in, out, *k]
    return weight.reshape(weight.shape[0], -1)


def _spectrum(w: Array) -> tuple[Array, Array, bool]:
    """Squared singular values (descending) and the singular vectors of the smaller side.

    From the eigendecomposition of the smaller Gram matrix, which is several times
    faster than an SVD of a wide layer and loses nothing that matters here: the
    factors below multiply to an orthogonal projection of W, so full rank gives W
    back to rounding error, however small its last singular values are.
    """
    w64 = w.astype(np.float64)
    left = w.shape[0] <= w.shape[1]
    s2, vecs = np.linalg.eigh(w64 @ w64.T if left else w64.T @ w64)
    return np.clip(s2[::-1], 0.0, None), vecs[:, ::-1], left


def _factors(w: Array, s2: Array, vecs: Array, left: bool, r: int) -> tuple[Array, Array]:
    """(sqrt(S_r) V_r^T, U_r sqrt(S_r)), computed from whichever side `vecs` holds."""
    w64, vecs = w.astype(np.float64), vecs[:, :r]
    # Directions with S ~ 0 get a floor, not a division by zero; the product is unchanged.
    root = np.maximum(s2[:r] ** 0.25, 1e-6 * max(float(s2[0]) ** 0.25, 1e-30))
    if left:  # vecs = U_r
        down, up = (vecs.T @ w64) / root[:, None], vecs * root
    else:  # vecs = V_r
        down, up = vecs.T * root[:, None], (w64 @ vecs) / root
    return down.astype(w.dtype), up.astype(w.dtype)


def _split_node(
    node: Node,
    factoring: Factoring,
    down: str,
    up: str,
    node_names: set[str],
    value_names: set[str],
) -> list[Node]:
    """The two nodes that replace one use of a factorised layer.

    The second keeps the output value, so no reader changes; names follow the
    original's (`enc.fc1@2` -> `enc.fc1_down@2`, value `h` -> `h_down`) so the
    generated code reads `h_down = self.fc1_down(x)`.
    """
    suffix = node.name[len(node.module) :] if node.name.startswith(node.module) else ""
    hidden = _fresh(node.outputs[0] + "_down", value_names)

    def half(module: str, layer: tuple[str, dict[str, Any]], **wires: tuple[str, ...]) -> Node:
        op, attrs = layer
        opdef = registry.get(op)
        assert opdef is not None
        full = opdef.Attrs.model_validate(attrs).model_dump()  # every attribute, as printed
        # init=None: the factors come from the SVD, not from the layer's init scheme.
        name = _fresh(module + suffix, node_names)
        update = {"name": name, "op": op, "attrs": full, "module": module, "init": None}
        return node.model_copy(update={**update, **wires})

    return [
        half(down, factoring.first, outputs=(hidden,)),
        half(up, factoring.second, inputs=(hidden,)),
    ]


def _move_weights(
    weights: dict[str, Array],
    node: Node,
    factors: tuple[Array, Array],
    modules: tuple[str, str],
    split: Factoring,
    out_axis: int,
) -> None:
    """Replace the layer's weight by the two factors, shaped for the new layers, and
    move its bias to the second: each under the role the new layer's op declares."""
    old_weight, old_bias = weight_of(node), bias_of(node)
    assert old_weight is not None
    old = weights.pop(old_weight)
    first, second = factors
    kernel = old.shape[2:]  # () for a dense layer
    first = first.reshape(first.shape[0], old.shape[1 - out_axis], *kernel)
    if out_axis:  # back to a transposed convolution's [in, out, *kernel]
        first = np.ascontiguousarray(np.swapaxes(first, 0, 1))
    down, up = modules
    down_roles, up_roles = _roles(split.first[0]), _roles(split.second[0])
    assert down_roles.weight is not None and up_roles.weight is not None
    weights[f"{down}.{down_roles.weight}"] = first
    weights[f"{up}.{up_roles.weight}"] = second.reshape(*second.shape, *(1,) * len(kernel))
    if old_bias is not None and old_bias in weights:
        if up_roles.bias is None:
            raise PassError(f"lowrank: {split.second[0]} declares no bias to take {old_bias}")
        weights[f"{up}.{up_roles.bias}"] = weights.pop(old_bias)


def _roles(op: str) -> ParamRoles:
    """The roles of a factor's op, which must hold a weight (and the bias)."""
    found = registry.get(op)
    if found is None or found.param_roles.weight is None:
        raise PassError(f"lowrank: a factor's op '{op}' does not declare a weight (param_roles)")
    return found.param_roles
