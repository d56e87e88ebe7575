"""Weights for a network from a checkpoint of another implementation, by structure
(`dslnet weights import`, `Program.import_weights`).

`dslnet.ir.weight_match` pairs the checkpoint's tensors with the network's parameters;
a map file (`dslnet.ir.weight_map`) pins or drops what it cannot infer, or first
changes a layout the network does not use (`dslnet.ir.weight_changes`). Everything
that does not fit is refused at once, in one list: ambiguous parameters with their
candidates, parameters nothing fills, checkpoint tensors nothing uses. Two leniencies
are asked for: `allow_unused` (a checkpoint with more than the network, e.g. a
classifier head the network replaces) and `allow_missing` (those parameters keep fresh
initial values). Integer and bool tensors are never learned (counters, index tables,
masks), so two more are always made, and listed: integer buffers a checkpoint lacks
(batchnorm's `num_batches_tracked`, absent from older files) get their initial values,
as torch's own loading gives them, and integer or bool checkpoint tensors nothing takes
(a relative-position index the spec computes as a constant) are left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dslnet.core.diagnostics import Diagnostic, did_you_mean
from dslnet.ir.graph import Graph
from dslnet.ir.weight_changes import apply_changes
from dslnet.ir.weight_map import WeightMap, dropped_by
from dslnet.ir.weight_match import Pair, match
from dslnet.ir.weight_sides import Offered, Slot, fits, offered_of, slots_of
from dslnet.ir.weights import Array, WeightsError, WeightsSource, init_weights, source_arrays


class WeightImportError(WeightsError):
    """A checkpoint that does not fit the network by structure; one line per problem,
    each located at the layer of the spec it concerns where there is one."""


@dataclass
class Imported:
    """The weights made for a network, and how: what `dslnet weights import` prints."""

    network: str
    weights: dict[str, Array]  # keyed and ordered like graph.parameters
    pairs: list[Pair]  # in the network's order
    initial: list[Slot] = field(default_factory=list)  # integer buffers the file lacks
    fresh: list[Slot] = field(default_factory=list)  # nothing fills them (allow_missing)
    unused: list[Offered] = field(default_factory=list)  # nothing uses them (allow_unused)
    dropped: list[Offered] = field(default_factory=list)  # the map file drops them
    skipped: list[Offered] = field(default_factory=list)  # integer or bool, nothing takes
    changed: dict[str, str] = field(default_factory=dict)  # by the map: how

    def mapping(self) -> dict[str, str]:
        """Checkpoint name to network name, for every tensor imported."""
        return {p.source.name: p.target.name for p in self.pairs}

    def render(self) -> str:
        """The mapping, one line a tensor, then what was left out or made fresh."""
        rows = [(p.source.name, p.target.name, _shapes(p), self._note(p)) for p in self.pairs]
        rows += [("(initial value)", s.name, _shape(s.shape), "") for s in self.initial]
        rows += [("(fresh: --allow-missing)", s.name, _shape(s.shape), "") for s in self.fresh]
        left = max((len(r[0]) for r in rows), default=0)
        middle = max((len(r[1]) for r in rows), default=0)
        lines = [
            f"{self.network}: {len(self.pairs)} of {len(self.weights)} tensors from the checkpoint"
        ]
        for source, target, shape, note in rows:
            lines.append(f"  {source:<{left}}  -> {target:<{middle}}  {shape} {note}".rstrip())
        for what, tensors in (
            ("unused (--allow-unused)", self.unused),
            ("dropped by the map", self.dropped),
            ("left out (integer or bool, not learned)", self.skipped),
        ):
            if tensors:
                names = ", ".join(f"{t.name} {_shape(t.shape)}" for t in tensors)
                lines.append(f"{what}: {names}")
        return "\n".join(lines) + "\n"

    def _note(self, pair: Pair) -> str:
        notes = ["map"] if pair.by == "map" else []
        if self.changed.get(pair.source.name) == "transposed":
            notes.append("transposed")
        return f"({', '.join(notes)})" if notes else ""


def import_weights(
    tensors: Mapping[str, Array],
    graph: Graph,
    weight_map: WeightMap | None = None,
    *,
    ordered: bool = True,
    allow_unused: bool = False,
    allow_missing: bool = False,
    seed: int = 0,
) -> Imported:
    """`graph`'s weights from the checkpoint `tensors` (numpy arrays by name, in file
    order; `ordered` when that is the modules' registration order, see
    `read_checkpoint`). Raises CompileError for a map that names what is not there, and
    WeightImportError listing every problem of the matching."""
    notes: dict[str, str] = {}
    if weight_map is not None and weight_map.changes:
        tensors, notes = apply_changes(tensors, weight_map)
    slots = slots_of(graph)
    offered = offered_of(((n, a.shape, a.dtype.kind) for n, a in tensors.items()), slots)
    pinned, dropped = _apply_map(weight_map, offered, slots, graph.name) if weight_map else ([], [])
    gone = {t.name for t in dropped}
    found = match(slots, [t for t in offered if t.name not in gone], pinned, ordered=ordered)
    initial = [s for s in found.unfilled if s.buffer and s.kind == "i"]
    missing = [s for s in found.unfilled if s not in initial]
    problems = [_ambiguous(a.target, a.candidates, a.scope, a.rivals) for a in found.ambiguous]
    if not allow_missing:
        problems += [_unfilled(s, found.unused) for s in missing]
    skipped = [t for t in found.unused if t.kind != "f"]
    unused = [t for t in found.unused if t.kind == "f"]
    if not allow_unused:
        problems += [_unused(t, graph.name) for t in unused]
    if problems:
        raise WeightImportError(problems)
    values = _values(graph, tensors, found.pairs, seed if initial or missing else None)
    return Imported(
        graph.name, values, found.pairs, initial, missing, unused, dropped, skipped, notes
    )


def read_checkpoint(source: WeightsSource) -> tuple[dict[str, Array], bool]:
    """A checkpoint's tensors as numpy arrays, and whether their order is the one their
    modules were registered in (`ordered` for `import_weights`): so for a state_dict (a
    mapping, a `.pt`/`.pth` file). A `.safetensors` file keeps no order (it sorts by
    dtype and name): its names are put in natural order (`layers.2` before
    `layers.10`), which only numbered modules can be trusted to follow. WeightsError
    when it cannot be read."""
    arrays = source_arrays(source)
    if isinstance(source, Mapping) or not str(source).lower().endswith(".safetensors"):
        return arrays, True
    return {name: arrays[name] for name in sorted(arrays, key=natural_key)}, False


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort key of a dotted name whose numbers compare as numbers."""
    return [
        (1, int(run)) if run.isdigit() else (0, run)
        for part in name.split(".")
        for run in re.findall(r"\d+|\D+", part) or [""]
    ]


def _values(
    graph: Graph, tensors: Mapping[str, Array], pairs: Sequence[Pair], seed: int | None
) -> dict[str, Array]:
    fresh = init_weights(graph, seed) if seed is not None else {}
    by_target = {p.target.name: p.source.name for p in pairs}
    values = {}
    for name, param in graph.parameters.items():
        dtype = np.dtype(param.dtype.value)
        if name in by_target:
            array = np.asarray(tensors[by_target[name]]).reshape(param.shape)
            values[name] = np.array(array, dtype=dtype, order="C")  # a copy, 0-d kept
        else:
            values[name] = fresh[name]
    return values


def _apply_map(
    weight_map: WeightMap, offered: Sequence[Offered], slots: Sequence[Slot], network: str
) -> tuple[list[Pair], list[Offered]]:
    """The map's pinned pairs and dropped tensors; CompileError for a rule naming what
    does not exist, a name used twice or shapes that do not fit."""
    by_source = {t.name: t for t in offered}
    by_target = {s.name: s for s in slots}
    problems: list[Diagnostic] = []
    pinned: list[Pair] = []
    dropped: dict[str, Offered] = {}
    seen_sources: set[str] = set()
    seen_targets: set[str] = set()
    for rule in weight_map.rules:
        if rule.target is None:
            hits = [t for t in offered if dropped_by(rule, t.name)]
            if not hits:
                message = f"'{rule.source}' matches no tensor of the checkpoint"
                problems.append(
                    weight_map.error(
                        message + did_you_mean(rule.source, by_source), rule.source_span
                    )
                )
            dropped.update((t.name, t) for t in hits)
            continue
        source, target = by_source.get(rule.source), by_target.get(rule.target)
        if source is None:
            message = f"'{rule.source}' is not a tensor of the checkpoint"
            problems.append(
                weight_map.error(message + did_you_mean(rule.source, by_source), rule.source_span)
            )
        if target is None:
            message = f"'{rule.target}' is not a parameter of network '{network}'"
            problems.append(
                weight_map.error(message + did_you_mean(rule.target, by_target), rule.target_span)
            )
        if source is None or target is None:
            continue
        if source.name in seen_sources or target.name in seen_targets:
            twice = source.name if source.name in seen_sources else target.name
            span = rule.source_span if twice == source.name else rule.target_span
            problems.append(weight_map.error(f"'{twice}' is mapped twice", span))
            continue
        if not fits(source, target):
            message = (
                f"'{source.name}' is {_kind(source.kind)} {_shape(source.shape)}, "
                f"'{target.name}' is {_kind(target.kind)} {_shape(target.shape)}: only size-1 "
                "axes may differ (dslnet never transposes or cuts a tensor)"
            )
            problems.append(weight_map.error(message, rule.target_span))
            continue
        seen_sources.add(source.name)
        seen_targets.add(target.name)
        pinned.append(Pair(source, target, "map"))
    if problems:
        raise weight_map.fail(problems)
    pinned_names = {p.source.name for p in pinned}
    return pinned, [t for n, t in dropped.items() if n not in pinned_names]


# --- problems ------------------------------------------------------------------------


def _where(slot: Slot) -> str:
    return f"{slot.span}: " if slot.span is not None and slot.span.line else ""


def _ambiguous(slot: Slot, candidates: Sequence[Offered], scope: str, rivals: Sequence[str]) -> str:
    inside = f" inside '{scope}'" if scope else ""
    shown = ", ".join(f"'{t.name}' {_shape(t.shape)}" for t in candidates[:8])
    more = f" and {len(candidates) - 8} more" if len(candidates) > 8 else ""
    where = f"{_where(slot)}'{slot.name}' {_shape(slot.shape)} ({slot.op})"
    hint = f"name the right one in a map file (--map), 'CHECKPOINT_NAME = {slot.name}'"
    if len(candidates) == 1:
        others = ", ".join(f"'{r}'" for r in rivals[:8])
        return (
            f"{where}: its one candidate{inside}, {shown}, fits {others} as well, and "
            f"neither the layers around them nor their names tell which it is: {hint}"
        )
    return (
        f"{where} could be any of {len(candidates)} checkpoint tensors{inside}: "
        f"{shown}{more}; the shapes are the same and neither the layers around them nor "
        f"their names tell them apart: {hint}"
    )


def _unfilled(slot: Slot, unused: Sequence[Offered]) -> str:
    hint = ""
    transposed = [
        t
        for t in unused
        if len(t.shape) == 2 and t.shape == slot.shape[::-1] and t.kind == slot.kind
    ]
    if len(slot.shape) == 2 and transposed:
        hint = (
            f"; '{transposed[0].name}' {_shape(transposed[0].shape)} is its transpose "
            "(a [in, out] layout): dslnet never transposes, transpose it in the checkpoint"
        )
    return (
        f"{_where(slot)}'{slot.name}' {_shape(slot.shape)} ({slot.op}): no tensor of the "
        f"checkpoint fills it{hint} (--allow-missing keeps fresh values)"
    )


def _unused(tensor: Offered, network: str) -> str:
    return (
        f"checkpoint tensor '{tensor.name}' {_shape(tensor.shape)} fills no parameter of "
        f"'{network}' (--allow-unused leaves it out; a map file drops it: '{tensor.name} = -')"
    )


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _shapes(pair: Pair) -> str:
    if pair.source.shape == pair.target.shape:
        return _shape(pair.target.shape)
    return f"{_shape(pair.source.shape)} as {_shape(pair.target.shape)}"


def _kind(kind: str) -> str:
    return {"f": "float", "i": "integer", "b": "bool"}.get(kind, kind)
