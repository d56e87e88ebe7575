"""Embedding dslnet in another tool: load a spec, pick sizes, walk the typed IR.

Run: .venv/bin/python examples/embed.py
"""

from __future__ import annotations

from pathlib import Path

import dslnet
from dslnet.ir.printer import print_graph

SPEC = Path(__file__).resolve().parents[1] / "specs" / "mlp.net"


def main() -> None:
    prog = dslnet.load(SPEC)
    print("networks:", ", ".join(prog.networks))

    # Override network parameters like a CLI user would with --set.
    graph = prog.ir("ResidualMLP", hidden=128, blocks=2)
    print(f"{graph.name}: {len(graph.nodes)} nodes, {graph.num_parameters:,} parameters")
    for out_name, value in graph.outputs:
        print(f"  output {out_name}: {graph.type_of(value)}")

    # A tool can walk the nodes (op, attributes, inferred types)...
    widest = max(graph.nodes, key=lambda n: graph.type_of(n.outputs[0]).shape[-1])
    print(f"  widest layer: {widest.name} -> {graph.type_of(widest.outputs[0])}")
    # ...or take a networkx view of the same graph.
    print(f"  graph view: {graph.to_networkx().number_of_edges()} edges")

    # Errors are values with locations, not tracebacks.
    try:
        dslnet.loads(
            "network Bad() {\n  in x: float32[N, 4]\n  out y = x -> lineer(3)\n}\n",
            filename="bad.net",
        ).ir("Bad")
    except dslnet.CompileError as err:
        first = err.diagnostics[0]
        print(f"  error at {first.span}: {first.message}")

    print(print_graph(prog.ir("MLP", depth=1)), end="")


if __name__ == "__main__":
    main()
