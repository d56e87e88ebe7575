"""Runs passes in order, checking the graph and weights after each one.

After every pass the manager runs the verifier (every op's shape rule again,
against the types the pass recorded) and checks that every parameter has a
value of its shape, so a broken pass fails at once with its name. It records,
per pass, the parameter and FLOP counts before and after, and the per-block
deltas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dslnet.backends.weights import input_types, resolve_op
from dslnet.core import symbolic
from dslnet.core.symbolic import Dim, dim_str
from dslnet.ir.graph import Graph
from dslnet.ir.verifier import VerifyError, verify
from dslnet.passes.base import Model, Pass, check_weights
from dslnet.summary import summarize


@dataclass(frozen=True)
class PassRecord:
    name: str
    modified: bool
    notes: list[str]
    params_before: int
    params_after: int
    flops_before: int | str
    flops_after: int | str
    flops_ratio: float  # after / before (symbols at 1)
    blocks: dict[str, tuple[int, int]]  # block instance -> (params before, after)


@dataclass
class Report:
    records: list[PassRecord] = field(default_factory=list)

    def render(self) -> str:
        """One line per pass (what it did, parameters and MACs before -> after)."""
        lines = []
        for r in self.records:
            what = "; ".join(r.notes) or ("changed" if r.modified else "no change")
            lines.append(
                f"{r.name}: {what}; params {r.params_before:,} -> {r.params_after:,}"
                f" ({_ratio(r.params_after, r.params_before)}), MACs "
                f"{_num(r.flops_before)} -> {_num(r.flops_after)}"
                f" ({r.flops_ratio:.1%})"
            )
            for block, (before, after) in r.blocks.items():
                if before != after:
                    lines.append(f"  {block}: params {before:,} -> {after:,}")
        return "\n".join(lines) + ("\n" if lines else "")


def _num(value: int | str) -> str:
    return f"{value:,}" if isinstance(value, int) else value


def _ratio(after: int | str, before: int | str) -> str:
    if isinstance(after, int) and isinstance(before, int):
        return f"{after / before:.1%}" if before else "-"
    return "symbolic"


def total_flops(graph: Graph) -> Dim:
    """Multiply-accumulates of one forward pass, as a symbolic dimension."""
    total: Dim = 0
    for node in graph.nodes:
        op, attrs = resolve_op(node)
        outs = [graph.type_of(v) for v in node.outputs]
        total = symbolic.add(total, op.flops(attrs, input_types(graph, node), outs))
    return total


def flops_ratio(after: Dim, before: Dim) -> float:
    """after / before with every symbol at 1 (both are linear in the batch size)."""
    names: set[str] = set()
    for d in (after, before):
        if not isinstance(d, int):
            names |= d.free_symbols()
    env = dict.fromkeys(names, 1)
    a = after if isinstance(after, int) else after.evaluate(env)
    b = before if isinstance(before, int) else before.evaluate(env)
    return a / b if b else 1.0


class PassManager:
    def __init__(self, passes: Sequence[Pass]) -> None:
        self.passes = list(passes)

    def run(self, model: Model) -> tuple[Model, Report]:
        report = Report()
        # Each pass's "after" is the next one's "before": summarised once.
        before, flops_before = summarize(model.graph), total_flops(model.graph)
        for p in self.passes:
            result = p.run(model)
            model = result.model
            try:
                verify(model.graph)
                check_weights(model.graph, model.weights)
            except (VerifyError, AssertionError) as err:
                raise RuntimeError(f"pass '{p.name}' left a broken graph: {err}") from err
            after, flops_after = summarize(model.graph), total_flops(model.graph)
            report.records.append(
                PassRecord(
                    p.name,
                    result.modified,
                    result.notes,
                    before["params"],
                    after["params"],
                    _count(flops_before),
                    _count(flops_after),
                    flops_ratio(flops_after, flops_before),
                    _block_deltas(before, after),
                )
            )
            before, flops_before = after, flops_after
        return model, report


def _count(d: Dim) -> int | str:
    return d if isinstance(d, int) else dim_str(d)


def _block_deltas(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Parameters of each of the network's own block instances, before and after."""
    old = {b["instance"]: b["params"] for b in before["blocks"] if b["depth"] == 1}
    new = {b["instance"]: b["params"] for b in after["blocks"] if b["depth"] == 1}
    return {name: (old.get(name, 0), new.get(name, 0)) for name in {**old, **new}}
