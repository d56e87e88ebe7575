"""The summary (`dslnet.views.summary.summarize`) as text: aligned plain text for a pipe,
a rich table for a terminal. Both show the same rows and totals.

Rows: every layer, under a row per block instance with its totals; `depth` folds
blocks nested deeper than it into their totals row (0: the network's own blocks
are one row each), as `dslnet graph --depth` does. Numbers have thousands
separators (also inside formulas: `1,024*N`); the totals add unit prefixes
(`1.81 G`). The layer column is never cut: on a narrow terminal the op and shape
columns wrap first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dslnet.core.types import shape_str

if TYPE_CHECKING:
    from rich.table import Table

PREFIXES = ("", "k", "M", "G", "T", "P", "E")
MIN_WRAPPED = 8  # columns of the op and shape cells on a narrow terminal


@dataclass(frozen=True)
class Row:
    level: int  # blocks around it that are open
    name: str  # the full name, as in the IR and in `--prune-exclude`
    short: str  # the name within the block row above it
    op: str
    shape: str
    params: int
    macs: str
    flops: str
    block: bool  # a block instance's totals row
    top: str | None  # the network's own block it is in, for rules between them


def rows(summary: dict[str, Any], depth: int | None = None) -> Iterator[Row]:
    """The table's rows in order; blocks nested deeper than `depth` folded."""
    blocks = {b["instance"]: b for b in summary["blocks"]}
    last_layer = {}
    for layer in summary["layers"]:
        for instance in _chain(blocks, layer["scope"]):
            last_layer[instance] = layer
    opened: list[str] = []
    folded_last: str | None = None
    for layer in summary["layers"]:
        chain = _chain(blocks, layer["scope"])
        visible = chain if depth is None else chain[:depth]
        common = 0
        while common < min(len(opened), len(visible)) and opened[common] == visible[common]:
            common += 1
        opened = visible
        for level in range(common, len(visible)):
            yield _block_row(blocks[visible[level]], level, last_layer, chain[0])
        if len(chain) > len(visible):
            folded = chain[len(visible)]
            if folded != folded_last:
                yield _block_row(blocks[folded], len(visible), last_layer, chain[0])
            folded_last = folded
            continue
        folded_last = None
        yield Row(
            level=len(visible),
            name=layer["name"],
            short=_within(layer["name"], visible[-1] if visible else None),
            op=layer["op"],
            shape=shape_text(layer),
            params=layer["params"],
            macs=layer["macs"],
            flops=layer["flops"],
            block=False,
            top=chain[0] if chain else None,
        )


def _chain(blocks: dict[str, dict[str, Any]], scope: str | None) -> list[str]:
    """The block instances from the network's own down to `scope`."""
    chain: list[str] = []
    while scope is not None:
        chain.append(scope)
        scope = blocks[scope]["parent"]
    return chain[::-1]


def _block_row(entry: dict[str, Any], level: int, last_layer: dict[str, Any], top: str) -> Row:
    instance = entry["instance"]
    return Row(
        level=level,
        name=f"{instance} ({entry['block']})",
        short=f"{_within(instance, entry['parent'])} ({entry['block']})",
        op="",
        shape=shape_text(last_layer[instance]),
        params=entry["params"],
        macs=entry["macs"],
        flops=entry["flops"],
        block=True,
        top=top,
    )


def _within(name: str, block: str | None) -> str:
    return name.removeprefix(f"{block}.") if block else name


def shape_text(layer: dict[str, Any]) -> str:
    return "[" + ", ".join(str(d) for d in layer["output_shape"]) + "]"


def grouped(value: int | str) -> str:
    """Thousands separators, also inside a formula: `1,024*N`."""
    return re.sub(r"\d{4,}", lambda m: f"{int(m.group()):,}", str(value))


def prefixed(value: int | float, unit: str = "") -> str:
    """Three significant digits and an SI prefix: `1.81 G`, `46.8 MB`, `512 B`."""
    scaled, step = float(value), 0
    while abs(scaled) >= 999.5 and step < len(PREFIXES) - 1:
        scaled, step = scaled / 1000, step + 1
    digits = f"{scaled:.3g}" if step else f"{int(value):d}"
    return f"{digits} {PREFIXES[step]}{unit}".rstrip()


def _prefix_note(count: str, per_sample: bool) -> str:
    """` (1.81 G per sample)` beside a count of 1000 or more that is a number."""
    if not count.isdigit() or int(count) < 1000:
        return ""
    return f" ({prefixed(int(count))}{' per sample' if per_sample else ''})"


def headers(flops: bool) -> tuple[str, ...]:
    return ("layer", "op", "output shape", "params", "MACs") + (("FLOPs",) if flops else ())


def _cells(row: Row, flops: bool, short: bool) -> tuple[str, ...]:
    name = "  " * row.level + (row.short if short else row.name)
    numbers = (grouped(row.params), grouped(row.macs)) + ((grouped(row.flops),) if flops else ())
    return (name, row.op, row.shape, *numbers)


def footer(summary: dict[str, Any], flops: bool) -> list[str]:
    """The totals: parameters, MACs (and FLOPs), memory; unit prefixes beside them."""
    batch = summary["batch_dim"]
    sample = (
        f"per sample (every op's output with {batch} = 1, as a training step keeps them)"
        if batch
        else "for these input sizes (every op's output, as a training step keeps them)"
    )
    per_sample = summary["macs_per_sample"]
    lines = [
        f"params: {grouped(summary['params'])}{_prefix_note(str(summary['params']), False)}"
        f"; trainable {grouped(summary['trainable_params'])}, buffers "
        f"{grouped(summary['buffers'])}",
        f"MACs (multiply-accumulates) for {_inputs(summary)}: {grouped(summary['macs'])}"
        f"{_prefix_note(per_sample, batch is not None)}",
    ]
    if flops:
        per_sample_flops = str(2 * int(per_sample)) if per_sample.isdigit() else ""
        lines.append(
            f"FLOPs (2 x MACs): {grouped(summary['flops'])}"
            f"{_prefix_note(per_sample_flops, batch is not None)}"
        )
    activations = summary["activation_bytes"]
    shown = (
        prefixed(int(activations), "B")
        if activations.isdigit()
        else f"{grouped(activations)} bytes"
    )
    lines.append(
        f"memory: parameters and buffers {prefixed(summary['param_bytes'], 'B')}; activations "
        f"{shown} {sample}"
    )
    return lines


def _inputs(summary: dict[str, Any]) -> str:
    return ", ".join(
        f"{n}: {t['dtype']}{shape_str(tuple(t['shape']))}" for n, t in summary["inputs"].items()
    )


def title(summary: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v}" for k, v in summary["args"].items())
    return f"{summary['network']}({args})"


def render(summary: dict[str, Any], depth: int | None = None, flops: bool = False) -> str:
    """Aligned plain text: full layer names, indented under their blocks."""
    header = headers(flops)
    lines = [_cells(row, flops, short=False) for row in rows(summary, depth)]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [title(summary), line(header), line(tuple("-" * w for w in widths))]
    out += [line(cells) for cells in lines]
    out += footer(summary, flops)
    return "\n".join(out) + "\n"


def table(summary: dict[str, Any], depth: int | None = None, flops: bool = False) -> Table:
    """A rich table for a terminal: names within their block, a rule between the
    network's own blocks, a totals row; the totals lines as its caption."""
    from rich.table import Table

    all_rows = list(rows(summary, depth))
    cells = [_cells(row, flops, short=True) for row in all_rows]
    totals: tuple[str, ...] = ("total", "", "", grouped(summary["params"]))
    totals += (grouped(summary["macs"]),) + ((grouped(summary["flops"]),) if flops else ())
    grid = Table(
        title=title(summary),
        title_justify="left",
        title_style="bold",
        caption="\n".join(footer(summary, flops)),
        caption_justify="left",
    )
    for i, header in enumerate(headers(flops)):
        widest = max(len(c[i]) for c in [*cells, totals, (header,) * len(totals)])
        # The layer column and the numbers keep their width; op and shape wrap first,
        # down to a few characters (then the table is wider than the terminal).
        keep = i == 0 or i >= 3
        grid.add_column(
            header,
            justify="right" if i >= 3 else "left",
            no_wrap=keep,
            overflow="fold",
            min_width=widest if keep else min(widest, MIN_WRAPPED),
        )
    for i, (row, line) in enumerate(zip(all_rows, cells)):
        before = all_rows[i - 1].top if i else row.top
        if row.top != before:  # a rule around each of the network's own blocks
            grid.add_section()
        grid.add_row(*line, style="bold" if row.block else "")
    grid.add_section()
    grid.add_row(*totals, style="bold")
    return grid
