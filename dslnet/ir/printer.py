"""Readable, stable text of an IR graph (`--emit ir`)."""

from __future__ import annotations

import os

from dslnet.core.diagnostics import Span
from dslnet.core.literals import format_value
from dslnet.ir.graph import Graph, Node
from dslnet.ir.roles import role_parameters, roles_of


def _where(span: Span) -> str:
    return f"{os.path.basename(span.file)}:{span.line}:{span.col}"


def format_node(graph: Graph, node: Node) -> str:
    outs = ", ".join(f"{o}: {graph.values[o].type}" for o in node.outputs)
    args = [*node.inputs, *(f"{k}={format_value(v)}" for k, v in node.attrs.items())]
    text = f"{outs} = {node.op}({', '.join(args)})"
    # `@module` on the node owning its layer's weight or bias (as its op declares them),
    # and on every node named otherwise than its module (a shared layer's later uses).
    owns = any(p in graph.parameters for p in role_parameters(roles_of(node), node.module))
    if owns or node.name != node.module:
        text += f"  @{node.module}"
    if node.init:
        text += f"  init={node.init}"
    if node.marks:
        notes = (  # as written in the spec: @freeze, @prune(0.3), @quantize(skip)
            f"@{k}" if v is True else f"@{k}({v})" for k, v in node.marks.items()
        )
        text += f"  [{' '.join(notes)}]"
    return f"{text}  # {_where(node.span)}"


def print_graph(graph: Graph) -> str:
    args = ", ".join(f"{k}={format_value(v)}" for k, v in graph.args.items())
    lines = [f"network {graph.name}({args})"]
    for name in graph.inputs:
        lines.append(f"  in {name}: {graph.values[name].type}")
    total = graph.num_parameters
    lines.append(f"  # {len(graph.parameters)} parameter tensors, {total:,} values")
    for p in graph.parameters.values():
        kind = "buffer" if p.buffer else "param"
        lines.append(f"  {kind} {p.name}: {p.dtype}[{', '.join(map(str, p.shape))}]")
    for m in graph.modules.values():
        margs = ", ".join(f"{k}={format_value(v)}" for k, v in m.args.items())
        lines.append(f"  module {m.path}: {m.block}({margs})  # {_where(m.span)}")
    for node in graph.nodes:
        lines.append("  " + format_node(graph, node))
    for out_name, value in graph.outputs:
        lines.append(f"  out {out_name} = {value}: {graph.values[value].type}")
    return "\n".join(lines) + "\n"
