"""Pictures of networks: what `dslnet graph` draws, decided from the typed IR.

Block instances are clusters, nested as the blocks nest, or folded into one box
(which ones: dslnet.views.graphfold). A
layer used twice (`layer enc = Encoder(...)`) is one box, or one cluster, with the
edges of every use: the weight sharing is what the reader sees. Edges carry the
inferred shapes. This module decides what is drawn and with which words;
dslnet.views.graphrender writes it as Graphviz DOT text and renders that. Everything
depends only on the graphs and the options: the same spec gives the same picture.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from dslnet.core.literals import format_value
from dslnet.core.symbolic import SymExpr, dim_str
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ir.graph import AttrValue, CallFrame, Graph, Node
from dslnet.ops import registry
from dslnet.views.graphfold import (
    BlockCalls,
    ViewOptions,
    check_expand,
    expandable,
    open_instances,
    representative,
)

LABEL_ATTRS_WIDTH = 30  # characters of attributes on a box before "…"


# --- the picture ------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """The words on a box or a cluster.

    title: in bold (a given name, an instance path, the op of an unnamed layer);
    detail: beside it (attributes, a block call), or under it when `below`;
    notes: small, under both (parameter counts); uses: more than 1 for a shared one.
    """

    title: str
    detail: str = ""
    notes: tuple[str, ...] = ()
    uses: int = 1
    below: bool = False


@dataclass
class Box:
    id: str
    kind: Literal["input", "output", "layer", "block"]
    label: Label
    family: str = ""  # a layer's op family, for its colour


@dataclass
class Cluster:
    id: str
    label: Label
    level: int  # nesting depth, 0 for a network's own cluster
    boxes: list[str] = field(default_factory=list)
    children: list[Cluster] = field(default_factory=list)


@dataclass(frozen=True)
class Edge:
    """A value flowing from one box to another. `use` says which use of a shared box
    the edge enters or leaves: "2", or "1→2" from one use to another ("": neither)."""

    src: str
    dst: str
    shape: str
    name: str = ""  # which output, for boxes with several
    use: str = ""


@dataclass
class Picture:
    """One network's boxes, clusters and edges; ids start with the picture's prefix."""

    name: str
    root: Cluster
    boxes: dict[str, Box]
    edges: list[Edge]
    folded: dict[str, int]  # block name -> instances drawn as one box
    families: list[str]  # the op families of its layers, in order of first use


def pictures(graphs: Sequence[Graph], options: ViewOptions) -> list[Picture]:
    """What to draw for each network; with several, ids are prefixed `Name/`, and an
    output of one that another takes (same name and type: a generator's `image` and
    its discriminator's) says so on both ends."""
    check_expand(graphs, options.expand)
    partners = _partners(graphs)
    drawn = []
    for g in graphs:
        mine = options
        if options.expand:  # another network's names: this one folds whole
            names = tuple(n for n in options.expand if n in expandable(g))
            mine = ViewOptions(None if names else 0, names, options.direction)
        prefix = f"{g.name}/" if len(graphs) > 1 else ""
        drawn.append(_Drawing(g, open_instances(g, mine), prefix, partners[g.name]).picture())
    return drawn


def _partners(graphs: Sequence[Graph]) -> dict[str, dict[str, str]]:
    """Per network, notes for its input and output boxes that another network joins:
    {"out:image": "→ Discriminator.image"}. (An arrow between two networks drawn side
    by side would run from the foot of one to the head of the other, across both.)"""
    notes: dict[str, dict[str, list[str]]] = {g.name: {} for g in graphs}
    for maker in graphs:
        for out_name, value in maker.outputs:
            for user in graphs:
                if user is maker or out_name not in user.inputs:
                    continue
                if maker.type_of(value).same_as(user.type_of(out_name)):
                    to, frm = f"{user.name}.{out_name}", f"{maker.name}.{out_name}"
                    notes[maker.name].setdefault(f"out:{out_name}", []).append(f"\u2192 {to}")
                    notes[user.name].setdefault(f"in:{out_name}", []).append(f"\u2190 {frm}")
    return {g: {box: ", ".join(n) for box, n in boxes.items()} for g, boxes in notes.items()}


class _Drawing:
    def __init__(
        self, graph: Graph, opened: frozenset[str], prefix: str, partners: dict[str, str]
    ) -> None:
        self.graph = graph
        self.opened = opened
        self.prefix = prefix
        self.partners = partners
        self.params = _params_by_module(graph)
        self.calls = BlockCalls.of(graph)
        self.module_runs = Counter(node.module for node in graph.nodes)
        self.call_use = _call_uses(graph)
        self.node_use = _node_uses(graph)
        self.root = Cluster(f"cluster_{prefix}{graph.name}", _network_label(graph, self.params), 0)
        self.clusters: dict[str, Cluster] = {"": self.root}
        self.boxes: dict[str, Box] = {}
        self.box_of: dict[str, str] = {}  # node name -> box id
        # node name -> {shared instance or layer holding its box: the use it is in}
        self.scopes: dict[str, dict[str, int]] = {}
        self.edges: list[Edge] = []

    def picture(self) -> Picture:
        graph, root = self.graph, self.root
        for name in graph.inputs:
            label = _io_label(graph, name, name, self.partners.get(f"in:{name}"))
            self._add(root, Box(f"{self.prefix}in:{name}", "input", label))
        for node in graph.nodes:
            self._place(node)
        for out_name, value in graph.outputs:
            label = _io_label(graph, value, out_name, self.partners.get(f"out:{out_name}"))
            self._add(root, Box(f"{self.prefix}out:{out_name}", "output", label))
        self._connect()
        folded = Counter(
            self.calls.block_of[box.id.removeprefix(f"{self.prefix}block:")]
            for box in self.boxes.values()
            if box.kind == "block"
        )
        families = list(dict.fromkeys(b.family for b in self.boxes.values() if b.family))
        return Picture(graph.name, root, self.boxes, self.edges, dict(folded), families)

    def _add(self, cluster: Cluster, box: Box) -> None:
        self.boxes[box.id] = box
        cluster.boxes.append(box.id)

    def _cluster(self, frames: Sequence[CallFrame]) -> Cluster:
        """The (nested) cluster of the innermost of `frames`, made on first use."""
        parent = self.root
        for level, frame in enumerate(frames, start=1):
            found = self.clusters.get(frame.instance)
            if found is None:
                outer = frames[level - 2].instance if level >= 2 else ""
                label = self._block_label(frame, outer)
                found = Cluster(f"cluster_{self.prefix}{frame.instance}", label, level)
                self.clusters[frame.instance] = found
                parent.children.append(found)
            parent = found
        return parent

    def _place(self, node: Node) -> None:
        key, folded = representative(node, self.opened)
        box_id = self.prefix + key
        self.box_of[node.name] = box_id
        drawn = node.chain[: node.chain.index(folded) + 1] if folded else node.chain
        self.scopes[node.name] = self._scopes(node, drawn, folded is None)
        if box_id in self.boxes:  # a later use of a shared layer, or more of a folded block
            return
        outer = drawn[:-1] if folded else drawn
        outer_path = outer[-1].instance if outer else ""
        if folded is not None:
            label = self._block_label(folded, outer_path)
            self._add(self._cluster(outer), Box(box_id, "block", label))
            return
        op = registry.get(node.op)
        uses = self.module_runs[node.module] // self.calls.runs(outer_path)
        label = _layer_label(node, _relative(node.module, outer_path), self.params, uses)
        family = op.family if op is not None else ""
        self._add(self._cluster(outer), Box(box_id, "layer", label, family))

    def _shared_calls(self, instance: str, outer: str) -> int:
        """Uses of `instance` per run of the instance holding it: more than one is
        sharing (the blocks inside a shared block are not shared again)."""
        return self.calls.runs(instance) // self.calls.runs(outer)

    def _scopes(self, node: Node, drawn: Sequence[CallFrame], is_layer: bool) -> dict[str, int]:
        """The shared instances (and shared layer) holding `node`'s box, each with the
        use `node` is in."""
        found: dict[str, int] = {}
        outer = ""
        for frame in drawn:
            if self._shared_calls(frame.instance, outer) > 1:
                found[frame.instance] = self.call_use[frame.call_id]
            outer = frame.instance
        if is_layer and self.module_runs[node.module] // self.calls.runs(outer) > 1:
            found["layer:" + node.module] = self.node_use[node.name]
        return found

    def _block_label(self, frame: CallFrame, outer_path: str) -> Label:
        info = self.graph.modules.get(frame.instance)
        args = [f"{k}={_short_value(v)}" for k, v in (info.args if info else {}).items()]
        call = f"{frame.block}({_fit(args, LABEL_ATTRS_WIDTH + 10)})"
        params = _params_under(self.params, frame.instance)
        uses = self._shared_calls(frame.instance, outer_path)
        return Label(_relative(frame.instance, outer_path), call, _params_note(params), uses)

    def _connect(self) -> None:
        graph = self.graph
        producer = {
            value: (node, i) for node in graph.nodes for i, value in enumerate(node.outputs)
        }
        seen: set[tuple[str, int, Edge]] = set()

        def link(value: str, dst: str, slot: int, dst_scopes: dict[str, int]) -> None:
            made = producer.get(value)
            src = self.box_of[made[0].name] if made else f"{self.prefix}in:{value}"
            if src == dst and self.boxes[dst].kind == "block":  # inside one folded block
                return
            use = _use_text(self.scopes[made[0].name] if made else {}, dst_scopes)
            edge = Edge(src, dst, shape_text(graph.type_of(value)), self._output_name(made), use)
            # The uses of a shared box repeat the edges inside it: draw each once.
            what = f"{made[0].module}#{made[1]}" if made else value
            if (what, slot, edge) not in seen:
                seen.add((what, slot, edge))
                self.edges.append(edge)

        for node in graph.nodes:
            dst = self.box_of[node.name]
            into_layer = self.boxes[dst].kind == "layer"
            for slot, value in enumerate(node.inputs):
                link(value, dst, slot if into_layer else -1, self.scopes[node.name])
        for out_name, value in graph.outputs:
            link(value, f"{self.prefix}out:{out_name}", -1, {})

    def _output_name(self, made: tuple[Node, int] | None) -> str:
        """Which output of its box a value is, when the box has several."""
        if made is None:
            return ""
        node, index = made
        _, frame = representative(node, self.opened)
        if frame is None:
            op = registry.get(node.op)
            names = op.outputs if op is not None else ()
            if len(node.outputs) < 2:
                return ""
            return names[index] if index < len(names) else str(index)
        info = self.graph.calls.get(frame.call_id)
        if info is None or len(info.outputs) < 2:
            return ""
        return next((name for name, v in info.outputs if v == node.outputs[index]), "")


def _call_uses(graph: Graph) -> dict[int, int]:
    """Call id -> which use of its instance it is (1, 2, ...) within one run of the
    call holding it."""
    seen: Counter[tuple[str, int]] = Counter()
    found: dict[int, int] = {}
    for call_id in sorted(graph.calls):
        info = graph.calls[call_id]
        seen[info.instance, info.parent] += 1
        found[call_id] = seen[info.instance, info.parent]
    return found


def _node_uses(graph: Graph) -> dict[str, int]:
    """Node name -> which use of its layer it is within one run of its block call."""
    seen: Counter[tuple[str, int]] = Counter()
    found: dict[str, int] = {}
    for node in graph.nodes:
        key = (node.module, node.chain[-1].call_id if node.chain else 0)
        seen[key] += 1
        found[node.name] = seen[key]
    return found


def _use_text(src: dict[str, int], dst: dict[str, int]) -> str:
    """The use an edge belongs to when it enters or leaves a shared box ("": neither,
    or it goes from one use of a shared box to the same use of another)."""
    entering = [use for key, use in dst.items() if src.get(key) != use]
    leaving = [use for key, use in src.items() if dst.get(key) != use]
    if entering and leaving:
        return "" if entering[0] == leaving[0] else f"{leaving[0]}\u2192{entering[0]}"
    either = entering or leaving
    return str(either[0]) if either else ""


def _relative(path: str, outer: str) -> str:
    """`path` as seen inside the instance `outer` (`basic_block1` in `basic_stage1`)."""
    return path[len(outer) + 1 :] if outer and path.startswith(outer + ".") else path


def _params_by_module(graph: Graph) -> dict[str, int]:
    """Learned values per module; a shared layer's are one entry, so they count once."""
    found: Counter[str] = Counter()
    for p in graph.parameters.values():
        if not p.buffer:
            found[p.module] += p.numel
    return dict(found)


def _params_under(params: dict[str, int], instance: str) -> int:
    return sum(n for m, n in params.items() if m == instance or m.startswith(instance + "."))


# --- words --------------------------------------------------------------------------------


def shape_text(t: TensorType) -> str:
    """`[N, 64, 56, 56]`, as the language writes shapes (symbolic dims by name); the
    dtype in front only when it is not float32."""
    return shape_str(t.shape) if t.dtype == DType.float32 else str(t)


def params_text(count: int) -> str:
    """3 significant digits: 9,408 -> `9.41k`, 11,689,512 -> `11.7M`."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if count >= size:
            value = count / size
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f}{suffix}"
    return str(count)


def _params_note(count: int) -> tuple[str, ...]:
    return (f"{params_text(count)} params",) if count else ()


def _layer_label(node: Node, name: str, params: dict[str, int], uses: int) -> Label:
    """The op and its attributes; the layer's name too when the spec gave it one (an
    unnamed layer's `conv2d3` says nothing the op does not)."""
    op = registry.get(node.op)
    op_name = op.name if op is not None else node.op
    automatic = {op_name, op.short_name if op is not None else None}
    attrs = _attrs_text(node)
    notes = _params_note(params.get(node.module, 0))
    if re.sub(r"\d+$", "", name) in automatic:
        return Label(op_name, attrs, notes, uses)
    return Label(name, f"{op_name} {attrs}".strip(), notes, uses)


def _attrs_text(node: Node) -> str:
    """`64, k=7, s=2`: the first attribute bare, the others that differ from their
    defaults under their short names, cut to a readable width."""
    op = registry.get(node.op)
    if op is None:
        return ""
    short: dict[str, str] = {}
    for alias, name in sorted(op.aliases.items(), key=lambda a: (len(a[0]), a[0])):
        short.setdefault(name, alias)
    parts: list[str] = []
    for index, (name, info) in enumerate(op.Attrs.model_fields.items()):
        if name not in node.attrs:
            continue
        value = node.attrs[name]
        if not info.is_required() and _same(value, info.default):
            continue
        text = _short_value(value)
        parts.append(text if index == 0 else f"{short.get(name, name)}={text}")
    return _fit(parts, LABEL_ATTRS_WIDTH)


def _same(value: AttrValue, default: AttrValue) -> bool:
    return type(value) is type(default) and bool(value == default)


def _short_value(value: AttrValue) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, SymExpr):
        return dim_str(value)
    return format_value(value)


def _fit(parts: Sequence[str], width: int) -> str:
    """`parts` joined by ", " while whole parts fit in `width` (the first always),
    then "…" for the rest."""
    text = parts[0] if parts else ""
    for part in parts[1:]:
        if len(text) + 2 + len(part) > width:
            return text + ", …"
        text += ", " + part
    return text


def _io_label(graph: Graph, value: str, name: str, partner: str | None) -> Label:
    return Label(name, str(graph.type_of(value)), (partner,) if partner else (), below=True)


def _network_label(graph: Graph, params: dict[str, int]) -> Label:
    args = ", ".join(f"{k}={_short_value(v)}" for k, v in graph.args.items())
    return Label(graph.name, f"({args})" if args else "", _params_note(sum(params.values())))
