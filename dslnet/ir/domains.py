"""Which values each graph input must hold, from the ops that read it.

An op declares the domain of its inputs that consume data (OpDef.input_domains,
dslnet.ops.domains: class labels, probabilities, table indices). `domain_uses` finds
every such read of a graph input and resolves it against its call (how many classes
or rows, which label is skipped); `input_domains` sums those up, one domain per input,
for whatever makes data for a network: the training data generator, benchmark and
calibration feeds, `dslnet.testing`'s random inputs, the differential fuzzer. A file
of data is checked read by read (`domain_uses`), so that an error names the op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from dslnet.core.types import DType, TensorType
from dslnet.ir.graph import Graph, Node
from dslnet.ir.oplookup import input_types, resolve_op
from dslnet.ops.domains import ClassLabels, Domain, Probabilities

__all__ = ["DomainUse", "InputDomain", "domain_uses", "input_domains"]

Kind = Literal["labels", "probabilities", "indices"]


@dataclass(frozen=True)
class DomainUse:
    """One read of a graph input by an op that declares its domain."""

    value: str  # the graph input read
    node: Node
    position: int  # which input of the node
    domain: Domain
    limit: int | None  # the number of valid values (classes, rows); None: not fixed
    skipped: int | None  # a label the op leaves out (its ignore_index), or None

    @property
    def kind(self) -> Kind:
        return _kind(self.domain)


@dataclass(frozen=True)
class InputDomain:
    """What one graph input must hold for every op that reads it: integers in
    [0, limit) ("labels", "indices"; limit None when no reader fixes it) or values in
    [0, 1] ("probabilities")."""

    kind: Kind
    limit: int | None


def domain_uses(
    graphs: Graph | Iterable[Graph], names: Iterable[str] | None = None
) -> list[DomainUse]:
    """The reads of inputs whose domain the reading op declares, in graph order.

    names: the values to look for (default: each graph's inputs). An integer domain
    (labels, indices) applies to an integer input only: an op may take floats in the
    same place with another meaning (an embedding used as a tied projection)."""
    found: list[DomainUse] = []
    for graph in [graphs] if isinstance(graphs, Graph) else graphs:
        wanted = set(graph.inputs if names is None else names)
        for node in graph.nodes:
            if not wanted.intersection(node.inputs):
                continue
            op, attrs = resolve_op(node)
            if not op.input_domains:
                continue
            types = input_types(graph, node)
            for position, value in enumerate(node.inputs):
                domain = _declared(op.input_domains, op.inputs, op.optional_inputs, position)
                if value not in wanted or domain is None:
                    continue
                if domain.integer and not _is_integer(types[position]):
                    continue
                limit = domain.limit(op, attrs, types)
                found.append(DomainUse(value, node, position, domain, limit, domain.skipped(attrs)))
    return found


def input_domains(
    graphs: Graph | Iterable[Graph], names: Iterable[str] | None = None
) -> dict[str, InputDomain]:
    """One domain per input that some op reads in a declared domain: the narrowest
    its readers agree on (the fewest classes or rows). Labels win over indices, and
    both over probabilities, where readers disagree on the kind."""
    by_input: dict[str, list[DomainUse]] = {}
    for use in domain_uses(graphs, names):
        by_input.setdefault(use.value, []).append(use)
    summed: dict[str, InputDomain] = {}
    for name, uses in by_input.items():
        kind = min((use.kind for use in uses), key=_PRECEDENCE.index)
        limits = [use.limit for use in uses if use.kind == kind and use.limit is not None]
        summed[name] = InputDomain(kind, min(limits) if limits else None)
    return summed


_PRECEDENCE: tuple[Kind, ...] = ("labels", "indices", "probabilities")


def _kind(domain: Domain) -> Kind:
    if isinstance(domain, ClassLabels):
        return "labels"
    if isinstance(domain, Probabilities):
        return "probabilities"
    return "indices"


def _declared(
    declared: Mapping[str, Domain],
    inputs: tuple[str, ...],
    optional: tuple[str, ...],
    position: int,
) -> Domain | None:
    names = (*inputs, *optional)
    return declared.get(names[position]) if position < len(names) else None


def _is_integer(ttype: TensorType) -> bool:
    return not ttype.dtype.is_float and ttype.dtype != DType.bool
