"""Per-layer summary of a network: output shapes, parameters and FLOPs.

Parameters of a shared layer count once (at its first use); FLOPs count every
use. FLOPs are multiply-accumulates of one forward pass, the convention of
published model tables; with symbolic input sizes they are a formula.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dslnet.ir import symbolic
from dslnet.ir.graph import Graph, Node
from dslnet.ir.printer import format_value
from dslnet.ir.symbolic import Dim, dim_str
from dslnet.ir.types import TensorType, shape_str
from dslnet.ops import registry

if TYPE_CHECKING:
    from rich.table import Table


def _dim_json(d: Dim) -> int | str:
    return d if isinstance(d, int) else dim_str(d)


def _type_json(t: TensorType) -> dict[str, Any]:
    return {"dtype": t.dtype.value, "shape": [_dim_json(d) for d in t.shape]}


def _top_block(graph: Graph, node: Node) -> str | None:
    """The outermost block instance a node was expanded in (None: the network itself)."""
    return node.chain[0].instance if node.chain else None


def summarize(graph: Graph) -> dict[str, Any]:
    """The summary as plain data (what `--json` prints and `prog.summary` returns)."""
    counted: set[str] = set()
    layers: list[dict[str, Any]] = []
    blocks: dict[str, dict[str, Any]] = {}
    total_flops: Dim = 0
    for node in graph.nodes:
        op = registry.get(node.op)
        assert op is not None
        attrs = op.Attrs.model_validate(node.attrs, strict=False)
        in_types = [graph.type_of(v) for v in node.inputs]
        out_types = [graph.type_of(v) for v in node.outputs]
        flops = op.flops(attrs, in_types, out_types)
        params = 0
        for p in graph.parameters.values():
            if p.module == node.module and not p.buffer and p.name not in counted:
                counted.add(p.name)
                params += p.numel
        total_flops = symbolic.add(total_flops, flops)
        top = _top_block(graph, node)
        layers.append(
            {
                "name": node.name,
                "op": node.op,
                "block": top,
                "output_shape": [_dim_json(d) for d in out_types[0].shape] if out_types else [],
                "params": params,
                "flops": _dim_json(flops),
            }
        )
        if top is not None:
            entry = blocks.setdefault(
                top, {"instance": top, "block": node.chain[0].block, "params": 0, "flops": 0}
            )
            entry["params"] += params
            entry["flops"] = symbolic.add(entry["flops"], flops)
    for entry in blocks.values():
        entry["flops"] = _dim_json(entry["flops"])
    trainable = sum(p.numel for p in graph.parameters.values() if not p.buffer)
    return {
        "network": graph.name,
        "args": {
            k: format_value(v) if not isinstance(v, (int, float, bool, str)) else v
            for k, v in graph.args.items()
        },
        "inputs": {name: _type_json(graph.type_of(name)) for name in graph.inputs},
        "outputs": {name: _type_json(graph.type_of(v)) for name, v in graph.outputs},
        "params": graph.num_parameters,
        "trainable_params": trainable,
        "buffers": sum(p.numel for p in graph.parameters.values() if p.buffer),
        "flops": _dim_json(total_flops),
        "layers": layers,
        "blocks": list(blocks.values()),
    }


def _num(value: int | str) -> str:
    return f"{value:,}" if isinstance(value, int) else value


def render(summary: dict[str, Any]) -> str:
    """A table grouped by block, with a total line per block and for the network."""
    rows: list[tuple[str, str, str, str, str]] = []
    block_totals = {b["instance"]: b for b in summary["blocks"]}
    for block, layers in _grouped(summary["layers"]):
        if block is None:
            rows += [
                (lay["name"], lay["op"], shape_text(lay), _num(lay["params"]), _num(lay["flops"]))
                for lay in layers
            ]
            continue
        total = block_totals[block]
        rows.append(
            (
                f"{block} ({total['block']})",
                "",
                shape_text(layers[-1]),
                _num(total["params"]),
                _num(total["flops"]),
            )
        )
        rows += [
            (
                "  " + lay["name"],
                lay["op"],
                shape_text(lay),
                _num(lay["params"]),
                _num(lay["flops"]),
            )
            for lay in layers
        ]
    header = ("layer", "op", "output", "params", "FLOPs")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(
            [
                r[0].ljust(widths[0]),
                r[1].ljust(widths[1]),
                r[2].ljust(widths[2]),
                r[3].rjust(widths[3]),
                r[4].rjust(widths[4]),
            ]
        ).rstrip()

    out = [_title(summary), line(header), line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows]
    out.append(
        f"params: {_num(summary['params'])} (trainable {_num(summary['trainable_params'])}"
        f", buffers {_num(summary['buffers'])})"
    )
    out.append(f"FLOPs (multiply-accumulates) for {_inputs(summary)}: {_num(summary['flops'])}")
    return "\n".join(out) + "\n"


def table(summary: dict[str, Any]) -> Table:
    """The summary as a rich table (for a terminal): a row per block, its layers
    indented under it, numbers with thousands separators, a totals row."""
    from rich.table import Table

    rows: list[tuple[tuple[str, ...], str | None]] = []  # cells, style; None: a rule
    block_totals = {b["instance"]: b for b in summary["blocks"]}
    for block, layers in _grouped(summary["layers"]):
        if block is None:
            rows += [(_layer_row(lay["name"], lay), "") for lay in layers]
            continue
        total = block_totals[block]
        head = (f"{block} ({total['block']})", "", shape_text(layers[-1]), *_cells(total))
        rows.append((head, "bold"))
        for lay in layers:  # named within the block: the row above gives the prefix
            rows.append((_layer_row("  " + lay["name"].removeprefix(f"{block}."), lay), ""))
        rows.append(((), None))
    rows += [((), None), (("total", "", "", *_cells(summary)), "bold")]  # rules merge

    grid = Table(
        title=_title(summary),
        title_justify="left",
        title_style="bold",
        caption=_caption(summary),
        caption_justify="left",
    )
    # On a narrow terminal the names give way (cut with …); shapes and numbers do not.
    for i, header in enumerate(("layer", "op", "output shape", "params", "FLOPs")):
        fixed = i >= 2
        widest = max((len(cells[i]) for cells, _ in rows if cells), default=0)
        grid.add_column(
            header,
            justify="right" if i >= 3 else "left",
            no_wrap=fixed,
            overflow="ellipsis",
            min_width=widest if fixed else None,
        )
    for cells, style in rows:
        if style is None:
            grid.add_section()
        else:
            grid.add_row(*cells, style=style)
    return grid


def _title(summary: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v}" for k, v in summary["args"].items())
    return f"{summary['network']}({args})"


def _layer_row(name: str, layer: dict[str, Any]) -> tuple[str, ...]:
    return (name, layer["op"], shape_text(layer), *_cells(layer))


def _cells(entry: dict[str, Any]) -> tuple[str, str]:
    return _digits_grouped(entry["params"]), _digits_grouped(entry["flops"])


def _digits_grouped(value: int | str) -> str:
    """Thousands separators, also inside a formula: `1,024*N`."""
    return re.sub(r"\d{4,}", lambda m: f"{int(m.group()):,}", str(value))


def _caption(summary: dict[str, Any]) -> str:
    return (
        f"trainable params {_num(summary['trainable_params'])}, buffers "
        f"{_num(summary['buffers'])}; FLOPs are multiply-accumulates for {_inputs(summary)}"
    )


def _inputs(summary: dict[str, Any]) -> str:
    return ", ".join(
        f"{n}: {t['dtype']}{shape_str(tuple(t['shape']))}" for n, t in summary["inputs"].items()
    )


def shape_text(layer: dict[str, Any]) -> str:
    return "[" + ", ".join(str(d) for d in layer["output_shape"]) + "]"


def _grouped(layers: list[dict[str, Any]]) -> Iterator[tuple[str | None, list[dict[str, Any]]]]:
    """Consecutive layers of the same top-level block, together."""
    current: list[dict[str, Any]] = []
    key: str | None = None
    for layer in layers:
        if current and (layer["block"] != key or key is None):
            yield key, current
            current = []
        key = layer["block"]
        current.append(layer)
    if current:
        yield key, current
