"""The two sides of weight import (`dslnet.ir.weight_match`): the network's parameters
and buffers (`Slot`), the checkpoint's tensors (`Offered`), and what can be said of
them without pairing anything: shapes that fit, names that say a role, signatures,
module paths, whether a checkpoint's names tell the order of two modules or put one
right after another, and the block instances whose whole signature a checkpoint
module shares (step 0 of the matching).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dslnet.core.diagnostics import Span
from dslnet.ir.graph import Graph, Node
from dslnet.ir.roles import roles_of

Shape = tuple[int, ...]

# Source leaf names that say "the layer's weight" or "its bias" whatever the op calls them.
_WEIGHT_NAMES = frozenset({"weight", "gamma", "scale", "g", "w", "kernel"})
_BIAS_NAMES = frozenset({"bias", "beta", "b", "shift", "offset"})
_NUMBER = re.compile(r"\d+")
_TRAILING = re.compile(r"\d+$")


def squeezed(shape: Sequence[int]) -> Shape:
    """The shape without its size-1 axes: what a reshape of equal size may change."""
    return tuple(d for d in shape if d != 1)


def kind_of(dtype_kind: str) -> str:
    """'f' float, 'i' integer (signed or not), 'b' bool: the dtypes that convert."""
    return "i" if dtype_kind in "iu" else dtype_kind


@dataclass(frozen=True)
class Slot:
    """A parameter or buffer of the network, to be filled."""

    name: str
    layer: str  # the module of its node: `blocks.0.attn`
    role: str
    shape: Shape
    kind: str
    buffer: bool
    op: str
    weight_role: str | None
    bias_role: str | None
    span: Span | None
    after: str | None = None  # the layer whose output its layer reads, when one does


@dataclass(frozen=True)
class Offered:
    """A tensor of the checkpoint."""

    name: str
    group: str  # its module: the name's prefix ("" at the top)
    leaf: str  # the rest: `weight`, or a dotted role such as `out_proj.weight`
    shape: Shape
    kind: str


def slots_of(graph: Graph) -> list[Slot]:
    """The network's parameters and buffers, in `graph.parameters` order."""
    import numpy as np

    nodes: dict[str, Node] = {}
    for node in graph.nodes:
        nodes.setdefault(node.module, node)
    after = _layers_read(graph, {p.module for p in graph.parameters.values()})
    slots = []
    for name, param in graph.parameters.items():
        owner = nodes.get(param.module)
        roles = roles_of(owner) if owner is not None else None
        slots.append(
            Slot(
                name,
                param.module,
                param.role,
                tuple(param.shape),
                kind_of(np.dtype(param.dtype.value).kind),
                param.buffer,
                owner.op if owner is not None else "?",
                roles.weight if roles else None,
                roles.bias if roles else None,
                owner.span if owner is not None else None,
                after.get(param.module),
            )
        )
    return slots


def _layers_read(graph: Graph, layers: set[str]) -> dict[str, str]:
    """For each layer, the layer whose output it reads through parameter-free ops of
    one input (a conv before its batchnorm, across a relu): what a checkpoint's names
    often pair (`conv1` and `bn1`, `downsample.0` and `downsample.1`)."""
    producer = {out: node for node in graph.nodes for out in node.outputs}
    found: dict[str, str] = {}
    for node in graph.nodes:
        if node.module not in layers or node.module in found or not node.inputs:
            continue
        value = node.inputs[0]
        for _ in range(16):  # a few activations and reshapes, not a whole branch
            source = producer.get(value)
            if source is None:
                break
            if source.module in layers:
                found[node.module] = source.module
                break
            if len(source.inputs) != 1:
                break
            value = source.inputs[0]
    return found


def offered_of(tensors: Iterable[tuple[str, Shape, str]], slots: Sequence[Slot]) -> list[Offered]:
    """The checkpoint's tensors (name, shape, dtype kind), each in its module. A name
    ending in one of the network's dotted roles (`attn.out_proj.weight`) belongs to the
    module before the role, as the layer owning that role does."""
    dotted = sorted({s.role for s in slots if "." in s.role}, key=len, reverse=True)
    found = []
    for name, shape, kind in tensors:
        group, _, leaf = name.rpartition(".")
        for role in dotted:
            if name == role or name.endswith("." + role):
                group, leaf = name[: -len(role) - 1] if name != role else "", role
                break
        found.append(Offered(name, group, leaf, tuple(shape), kind_of(kind)))
    return found


def fits(source: Offered, target: Slot) -> bool:
    return source.kind == target.kind and squeezed(source.shape) == squeezed(target.shape)


def name_fits(source: Offered, target: Slot) -> bool:
    """Whether the source's own name says it is this role."""
    leaf = source.leaf.rpartition(".")[2]
    if source.leaf == target.role or leaf == target.role.rpartition(".")[2]:
        return True
    if leaf in _WEIGHT_NAMES:
        return target.role == target.weight_role
    return leaf in _BIAS_NAMES and target.role == target.bias_role


def signature(items: Iterable[Slot | Offered]) -> tuple[object, ...]:
    """The float tensors' shapes (size-1 axes dropped), sorted. Integer and bool
    tensors are left out: never learned, they come and go between implementations (a
    batchnorm's counter older checkpoints lack, an attention mask kept as a buffer)."""
    return tuple(sorted(squeezed(t.shape) for t in items if t.kind == "f"))


def blocks_of(layers: Iterable[str]) -> dict[str, list[str]]:
    """For each layer, the module paths enclosing it, innermost first (`a.b` and `a`
    for layer `a.b.conv1`); which of them are block instances does not matter."""
    return {
        layer: [".".join(parts(layer)[:k]) for k in range(len(parts(layer)) - 1, 0, -1)]
        for layer in layers
    }


def parts(name: str) -> list[str]:
    return name.split(".") if name else []


def under(name: str, prefix: str) -> bool:
    return parts(name)[: len(parts(prefix))] == parts(prefix)


def strictly_under(name: str, prefix: str) -> bool:
    return name != prefix and under(name, prefix)


def common_prefix(names: Sequence[str]) -> str:
    split = [parts(n) for n in names]
    common = split[0]
    for path in split[1:]:
        k = 0
        while k < min(len(common), len(path)) and common[k] == path[k]:
            k += 1
        common = common[:k]
    return ".".join(common)


def order_known(a: str, b: str) -> bool:
    """Whether the sorted names of two modules of a checkpoint that keeps no order (a
    `.safetensors` file) still tell which was first: they part at components numbering
    one kind of thing (`layers.2` and `layers.10`, `conv1` and `conv2`), not at two
    different names (`stem` and `stages`: sorting them says nothing)."""
    for x, y in zip(parts(a), parts(b)):
        if x != y:
            return _NUMBER.sub("#", x) == _NUMBER.sub("#", y)
    return False  # one holds the other: a module's own tensors and its sub-modules'


def all_ordered(names: Sequence[str]) -> bool:
    return all(order_known(a, b) for i, a in enumerate(names) for b in names[i + 1 :])


def next_to(first: str, then: str) -> int:
    """How surely the checkpoint's names put module `then` right after `first` (a norm
    after its conv): 2 for neighbours in a sequence (`downsample.0`, `downsample.1`)
    or siblings named without numbers (`dense`, `LayerNorm`: telling only when no
    other candidate is a sibling, which the caller checks); 1 for siblings sharing a
    number (`conv1`, `bn1`: numbering per kind of layer can match by chance); else 0."""
    a, b = parts(first), parts(then)
    if len(a) != len(b) or not a or a[:-1] != b[:-1] or a == b:
        return 0
    x, y = a[-1], b[-1]
    if x.isdigit() and y.isdigit():
        return 2 if int(y) == int(x) + 1 else 0
    ending_x, ending_y = _TRAILING.search(x), _TRAILING.search(y)
    if ending_x is None or ending_y is None:
        return 2 if ending_x is None and ending_y is None else 0
    same = ending_x.group() == ending_y.group() and x[: ending_x.start()] != y[: ending_y.start()]
    return 1 if same else 0


def block_prefixes(
    slots: Sequence[Slot], offered: Sequence[Offered], blocks: dict[str, list[str]], ordered: bool
) -> dict[str, str]:
    """Block instances paired whole with checkpoint modules: a block of two layers or
    more and a module whose tensors have the same signature, in order where a signature
    has as many of each (for a .safetensors file, only among numbered modules). Of
    several paths holding the same tensors, the deepest stands for them."""
    inside: dict[str, list[Slot]] = defaultdict(list)
    for slot in slots:
        for block in blocks[slot.layer]:
            inside[block].append(slot)
    holding: dict[str, list[Offered]] = defaultdict(list)
    for tensor in offered:
        path = parts(tensor.group)
        for k in range(1, len(path) + 1):
            holding[".".join(path[:k])].append(tensor)
    classes: dict[tuple[object, ...], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for block in deepest_paths(inside, lambda s: s.name):
        if len({s.layer for s in inside[block]}) > 1:
            classes[signature(inside[block])][0].append(block)
    for prefix in deepest_paths(holding, lambda t: t.name):
        classes[signature(holding[prefix])][1].append(prefix)
    found: dict[str, str] = {}
    for these_blocks, prefixes in classes.values():
        known = ordered or len(prefixes) < 2 or all_ordered(prefixes)
        if these_blocks and len(these_blocks) == len(prefixes) and known:
            found.update(zip(these_blocks, prefixes))
    return found


def deepest_paths(paths: dict[str, list[Any]], name: Any) -> list[str]:
    """The paths in order of their first member, keeping of several paths with the
    same members the deepest."""
    deepest: dict[frozenset[str], str] = {}
    for path, members in paths.items():
        key = frozenset(name(m) for m in members)
        if key not in deepest or len(parts(path)) > len(parts(deepest[key])):
            deepest[key] = path
    kept = set(deepest.values())
    return [p for p in paths if p in kept]
