"""How pictures of networks look: Graphviz DOT text for dslnet.views.graphview's pictures,
and SVG or PNG made from it by Graphviz's `dot` program."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from collections.abc import Sequence

from dslnet.ir.graph import Graph
from dslnet.ops.embedding import Embedding
from dslnet.ops.linear import Linear
from dslnet.ops.norm import BatchNorm
from dslnet.views.graphfold import ViewOptions
from dslnet.views.graphview import Box, Cluster, Edge, Label, Picture, pictures

# Output suffix -> `dot -T` format; None: the DOT text itself, no Graphviz needed.
FORMATS: dict[str, str | None] = {".dot": None, ".gv": None, ".svg": "svg", ".png": "png"}

INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
    "graphviz), or write the DOT text with -o FILE.dot"
)

# Muted fills with a darker border of the same hue, one pair per op family; related
# families share one (pooling and resampling both change the grid).
FAMILY_COLOURS: dict[str, tuple[str, str]] = {
    "conv": ("#dce8f5", "#5b86b0"),
    "vision": ("#dce8f5", "#5b86b0"),
    Linear.family: ("#e6def2", "#7a68a6"),  # a family named like its op: no op name here
    BatchNorm.family: ("#f8efcf", "#b09342"),  # "norm", also the name of an op
    "activation": ("#f6dede", "#b56b6b"),
    "pool": ("#dcefd8", "#5d9656"),
    "resample": ("#dcefd8", "#5d9656"),
    "attention": ("#fbe4cf", "#c07a3c"),
    "recurrent": ("#d6ecec", "#4d9191"),
    "graph": ("#d6ecec", "#4d9191"),
    "elementwise": ("#e4e4e4", "#5f5f5f"),
    "distance": ("#e4e4e4", "#5f5f5f"),
    "reduce": ("#e4e4e4", "#5f5f5f"),
    "compare": ("#e4e4e4", "#5f5f5f"),
    "selection": ("#e4e4e4", "#5f5f5f"),
    Embedding.family: ("#f2dcea", "#a5638a"),
    "shape": ("#f4f4f4", "#9a9a9a"),
    "arrange": ("#f4f4f4", "#9a9a9a"),
    "regularization": ("#f4f4f4", "#9a9a9a"),
    "vae": ("#efe4d6", "#8f7456"),
    "loss": ("#f3dcd4", "#9c5a48"),
}
# Families of users' ops get one of these, picked by the family's name (stable).
_SPARE_COLOURS = (
    ("#e3f1e0", "#6f8f3a"),
    ("#f3e3f3", "#8e5a8e"),
    ("#e0eef8", "#3f6f9f"),
    ("#f8e8d8", "#9a6a3a"),
)
# (shape and style, fill, border) of the boxes that are not single ops.
_KIND_STYLES: dict[str, tuple[str, str, str]] = {
    "block": ('shape=box3d, style="filled"', "#efeae0", "#6d6353"),
    "input": ('shape=invhouse, style="filled"', "#d5ead2", "#4f7f4a"),
    "output": ('shape=house, style="filled", margin="0.2,0.1"', "#f6d8c8", "#a0603c"),
}
_CLUSTER_FILLS = ("#ffffff", "#f6f8fb", "#edf1f6", "#e4eaf1")
SHARED_COLOUR = "#b5651d"  # a shared layer's or block's border, and its uses' edges
_NOTE_COLOUR = "#555555"


class RenderError(Exception):
    """Graphviz is missing, failed or took too long; the message says which."""


def family_colours(family: str) -> tuple[str, str]:
    """(fill, border) of a layer of this op family."""
    if family in FAMILY_COLOURS:
        return FAMILY_COLOURS[family]
    return _SPARE_COLOURS[zlib.crc32(family.encode()) % len(_SPARE_COLOURS)]


def to_dot(graphs: Sequence[Graph], options: ViewOptions | None = None) -> str:
    """DOT text for one network, or several side by side, each in its own cluster."""
    options = options or ViewOptions()
    drawn = pictures(graphs, options)
    several = len(drawn) > 1
    title = " + ".join(g.name for g in graphs)
    lines = [
        f"digraph {_quote(title)} {{",
        f"  graph [rankdir={options.direction}, fontname=Helvetica, fontsize=11, "
        'nodesep=0.3, ranksep=0.35, newrank=true, labelloc=t, labeljust=l, color="#8795a5"];',
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=11, '
        'margin="0.12,0.05", penwidth=1.2];',
        '  edge [fontname=Helvetica, fontsize=9, fontcolor="#4a4a4a", color="#7a7a7a", '
        "arrowsize=0.6];",
    ]
    families = list(dict.fromkeys(f for picture in drawn for f in picture.families))
    edges: list[str] = []
    if several:
        lines.append(f"  label=<{_table([_left_label(Label(title)), _legend(families)])}>;")
        for picture in drawn:
            label = _table(_network_rows(picture))
            subgraphs = _Subgraphs(picture)
            lines += subgraphs.cluster(picture.root, "  ", label)
            edges += subgraphs.edge_lines()
    else:
        label = _table([*_network_rows(drawn[0]), _legend(families)])
        lines.append(f"  label=<{label}>;")
        subgraphs = _Subgraphs(drawn[0])
        lines += subgraphs.contents(drawn[0].root, "  ")
        edges += subgraphs.edge_lines()
    lines += edges
    lines.append("}")
    return "\n".join(lines) + "\n"


class _Subgraphs:
    """A picture's clusters as DOT subgraphs.

    A block's title is not the cluster's label, which Graphviz lets the edges coming
    in run across, but a plain node on the row of the cluster's first box, to its
    right (below it, left to right): clear of the edges coming in, and of the main line.
    """

    def __init__(self, picture: Picture) -> None:
        self.boxes = picture.boxes
        self.edges = picture.edges
        self.inside: dict[str, set[str]] = {}  # cluster id -> its boxes, at any depth
        self._collect(picture.root)
        self.fed_by: dict[str, set[str]] = {}  # box id -> the boxes feeding it
        for edge in picture.edges:
            self.fed_by.setdefault(edge.dst, set()).add(edge.src)

    def _collect(self, cluster: Cluster) -> set[str]:
        found = set(cluster.boxes)
        for child in cluster.children:
            found |= self._collect(child)
        self.inside[cluster.id] = found
        return found

    def contents(self, cluster: Cluster, indent: str) -> list[str]:
        lines = [_box_line(self.boxes[b], indent) for b in cluster.boxes]
        for child in cluster.children:
            lines += self.cluster(child, indent)
        return lines

    def cluster(self, cluster: Cluster, indent: str, label: str | None = None) -> list[str]:
        """The subgraph of `cluster`, titled by `label` (None: a block's title node)."""
        fill = _CLUSTER_FILLS[min(cluster.level, len(_CLUSTER_FILLS) - 1)]
        shared = cluster.label.uses > 1
        border = f'color="{SHARED_COLOUR}", penwidth=2.5' if shared else "penwidth=1"
        inner = indent + "  "
        title = f"<{label}>" if label is not None else '""'
        lines = [
            f"{indent}subgraph {_quote(cluster.id)} {{",
            f'{inner}graph [label={title}, style="rounded,filled", fillcolor="{fill}", {border}];',
        ]
        lines += self.contents(cluster, inner)
        if label is None:
            node, first = _quote(_title_id(cluster)), _quote(self._first(cluster))
            lines += [
                f'{inner}{node} [label=<{_left_label(cluster.label)}>, shape=plain, style=""];',
                f"{inner}{{rank=same; {first}; {node}}}",
                f"{inner}{first} -> {node} [style=invis];",
            ]
        lines.append(f"{indent}}}")
        return lines

    def edge_lines(self) -> list[str]:
        """The edges; each box's first one out pulls harder, so that the main line
        of the network stays straight and the skips and forks bend around it."""
        lines: list[str] = []
        sources: set[str] = set()
        for edge in self.edges:
            lines.append(_edge_line(edge, 1 if edge.src in sources else 4))
            sources.add(edge.src)
        return lines

    def _first(self, cluster: Cluster) -> str:
        """The first box, or inner cluster's title, that nothing else in `cluster` feeds."""
        inside = self.inside[cluster.id]
        for box in cluster.boxes:
            if not self.fed_by.get(box, set()) & inside:
                return box
        for child in cluster.children:
            theirs = self.inside[child.id]
            if not {src for box in theirs for src in self.fed_by.get(box, ())} & (inside - theirs):
                return _title_id(child)
        return cluster.boxes[0] if cluster.boxes else _title_id(cluster.children[0])


def _title_id(cluster: Cluster) -> str:
    return f"{cluster.id}:title"


def _box_line(box: Box, indent: str) -> str:
    if box.kind == "layer":
        shape = ""
        fill, border = family_colours(box.family)
    else:
        shape, fill, border = _KIND_STYLES[box.kind]
        shape += ", "
    shared = box.label.uses > 1
    style = f'{shape}fillcolor="{fill}", color="{SHARED_COLOUR if shared else border}"'
    if shared:
        style += ", penwidth=2.5"
    return f"{indent}{_quote(box.id)} [label=<{_box_label(box.label)}>, {style}];"


def _edge_line(edge: Edge, weight: int = 1) -> str:
    text = f"{edge.name}: {edge.shape}" if edge.name else edge.shape
    style = f', color="{SHARED_COLOUR}"' if edge.use else ""
    if weight != 1:
        style += f", weight={weight}"
    if edge.use:
        use = f'<BR/><FONT COLOR="{SHARED_COLOUR}"><B>use {edge.use}</B></FONT>'
        label = f"<{_escape(text)}{use}>"
    else:
        label = _quote(text)
    return f"  {_quote(edge.src)} -> {_quote(edge.dst)} [label={label}{style}];"


# --- labels (Graphviz's HTML-like text) ------------------------------------------------------


def _box_label(label: Label) -> str:
    head = f"<B>{_escape(label.title)}</B>"
    if label.detail:
        detail = _escape(label.detail)
        head += f'<BR/><FONT POINT-SIZE="9">{detail}</FONT>' if label.below else f"  {detail}"
    notes = _notes(label)
    return f'{head}<BR/><FONT POINT-SIZE="9">{notes}</FONT>' if notes else head


def _left_label(label: Label) -> str:
    """A cluster's label: its lines flush left, like the cluster's corner."""
    head = f"<B>{_escape(label.title)}</B>"
    if label.detail:
        head += f"  {_escape(label.detail)}"
    notes = _notes(label)
    tail = f'<FONT POINT-SIZE="9">{notes}</FONT><BR ALIGN="LEFT"/>' if notes else ""
    return f'{head}<BR ALIGN="LEFT"/>{tail}'


def _notes(label: Label) -> str:
    """Parameter counts in grey, then the number of uses of a shared one in the shared colour."""
    parts = [f'<FONT COLOR="{_NOTE_COLOUR}">{_escape(n)}</FONT>' for n in label.notes]
    if label.uses > 1:
        parts.append(f'<FONT COLOR="{SHARED_COLOUR}"><B>shared \u00d7{label.uses}</B></FONT>')
    return " \u00b7 ".join(parts)


def _network_rows(picture: Picture) -> list[str]:
    """The network's name, arguments and parameters, and what is folded."""
    rows = [_left_label(picture.root.label)]
    if picture.folded:
        folded = ", ".join(f"{block} \u00d7{n}" for block, n in picture.folded.items())
        rows.append(
            f'<FONT POINT-SIZE="9" COLOR="{_NOTE_COLOUR}">folded into boxes: {_escape(folded)}'
            ' (open with --expand BLOCK or --depth K)</FONT><BR ALIGN="LEFT"/>'
        )
    return rows


def _legend(families: Sequence[str]) -> str:
    """The colours' key: one cell per op family drawn ('' for none)."""
    if not families:
        return ""
    cells = "".join(
        f'<TD BGCOLOR="{fill}" COLOR="{border}" BORDER="1">'
        f'<FONT POINT-SIZE="9">{_escape(family)}</FONT></TD>'
        for family in families
        for fill, border in [family_colours(family)]
    )
    return f'<TABLE BORDER="0" CELLSPACING="3" CELLPADDING="2"><TR>{cells}</TR></TABLE>'


def _table(rows: Sequence[str]) -> str:
    """Rows flush left, one above the other."""
    body = "".join(f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{row}</TD></TR>' for row in rows if row)
    return f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="1">{body}</TABLE>'


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- running Graphviz ----------------------------------------------------------------------


def find_dot(fmt: str) -> str:
    """The path of `dot`; RenderError naming what is missing when it is not on PATH."""
    found = shutil.which("dot")
    if found is None:
        raise RenderError(
            f"writing .{fmt} needs Graphviz's `dot` program, which is not on PATH; " + INSTALL_HINT
        )
    return found


def render(dot_text: str, fmt: str, timeout: float = 120.0) -> bytes:
    """`dot_text` laid out and drawn as `fmt` ("svg", "png")."""
    exe = find_dot(fmt)
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(
            f"Graphviz's dot took longer than {timeout:g} s; fold more of the network "
            "(--depth 1) or write the DOT text with -o FILE.dot"
        ) from None
    except OSError as err:
        raise RenderError(f"cannot run {exe}: {err.strerror}") from None
    if done.returncode != 0 or not done.stdout:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {said[-1]}" if said else ""
        raise RenderError(f"Graphviz's dot failed (exit {done.returncode}){detail}")
    return done.stdout
