"""Runs passes in order, checking the graph and weights after each one.

After every pass the manager runs the verifier (every op's shape rule again,
against the types the pass recorded) and checks that every parameter has a
value of its shape, so a broken pass fails at once with its name, as an internal
error at the node concerned (dslnet.ir.located; so is any exception a pass raises
that is not a PassError). It records,
per pass, the parameter and FLOP counts before and after, and the per-block
deltas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dslnet.core.symbolic import Dim, dim_str
from dslnet.ir.cost import node_costs, top_block_params, total_macs
from dslnet.ir.graph import Graph
from dslnet.ir.located import InternalError, LocatedError, caused_by, node_in_traceback
from dslnet.ir.verifier import VerifyError, verify
from dslnet.passes.base import Model, Pass, PassResult, check_weights


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


@dataclass(frozen=True)
class _Counts:
    """What the report compares before and after a pass."""

    params: int
    macs: Dim
    blocks: dict[str, int]  # the network's own block instances -> parameters

    @classmethod
    def of(cls, graph: Graph) -> _Counts:
        costs = node_costs(graph)
        return cls(graph.num_parameters, total_macs(costs), top_block_params(costs))


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
        # Each pass's "after" is the next one's "before": counted once.
        before = _Counts.of(model.graph)
        for p in self.passes:
            result = _run_located(p, model)
            model = result.model
            _check_result(p.name, model)
            after = _Counts.of(model.graph)
            report.records.append(
                PassRecord(
                    p.name,
                    result.modified,
                    result.notes,
                    before.params,
                    after.params,
                    _count(before.macs),
                    _count(after.macs),
                    flops_ratio(after.macs, before.macs),
                    _block_deltas(before.blocks, after.blocks),
                )
            )
            before = after
        return model, report


def _run_located(p: Pass, model: Model) -> PassResult:
    """Run `p`; an exception that is not a located one is a bug in the pass, reported
    at the node it was working on when it can be told (else at the network)."""
    try:
        return p.run(model)
    except (LocatedError, MemoryError):  # a PassError, an error already located
        raise
    except Exception as err:
        node = node_in_traceback(err.__traceback__)
        span = None if node is not None else model.graph.span
        raise caused_by(err, f"pass '{p.name}'", node, span) from err


def _check_result(name: str, model: Model) -> None:
    """The graph a pass left verifies and its weights fit: else an internal error."""
    try:
        verify(model.graph)
    except VerifyError as err:
        raise VerifyError(
            f"pass '{name}' left a broken graph: {err.message}",
            err.node,
            span=err.span,
            chain=err.chain,
            notes=err.notes,
        ) from err
    try:
        check_weights(model.graph, model.weights)
    except AssertionError as err:
        raise InternalError(
            f"pass '{name}' left a broken graph: {err}", span=model.graph.span
        ) from err


def _count(d: Dim) -> int | str:
    return d if isinstance(d, int) else dim_str(d)


def _block_deltas(old: dict[str, int], new: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Parameters of each of the network's own block instances, before and after."""
    return {name: (old.get(name, 0), new.get(name, 0)) for name in {**old, **new}}
