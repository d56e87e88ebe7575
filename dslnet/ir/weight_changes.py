"""A map file's `transpose` and `concat` lines (`dslnet.ir.weight_map`) applied to a
checkpoint's tensors before they are matched by structure: a layout the network does
not use (GPT-2's `Conv1D` stores [in, out]) or one tensor kept as several (BERT's
query, key and value, which attention packs into one `in_proj_weight`)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from dslnet.core.diagnostics import Diagnostic
from dslnet.ir.weight_map import Change, WeightMap
from dslnet.ir.weights import Array


def apply_changes(
    tensors: Mapping[str, Array], weight_map: WeightMap
) -> tuple[dict[str, Array], dict[str, str]]:
    """The tensors after the map's changes, in file order (a joined tensor where its
    first part was), and a note for each changed one. CompileError, located in the map,
    for a pattern that names no tensor, a tensor to transpose that is not a matrix, or
    tensors that cannot be joined."""
    arrays = dict(tensors)
    order = list(tensors)
    notes: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for change in weight_map.changes:
        if change.kind == "transpose":
            problems += _transpose(change, weight_map, arrays, order, notes)
        else:
            problems += _concat(change, weight_map, arrays, order, notes)
    if problems:
        raise weight_map.fail(problems)
    return {name: arrays[name] for name in order}, notes


def _transpose(
    change: Change,
    weight_map: WeightMap,
    arrays: dict[str, Array],
    order: list[str],
    notes: dict[str, str],
) -> list[Diagnostic]:
    problems = []
    for pattern, span in zip(change.patterns, change.spans):
        hits = [name for name in order if _regex(pattern).fullmatch(name)]
        if not hits:
            problems.append(weight_map.error(f"'{pattern}' matches no tensor", span))
        for name in hits:
            if arrays[name].ndim != 2:
                shape = list(arrays[name].shape)
                message = f"'{name}' is {shape}: only a matrix is transposed"
                problems.append(weight_map.error(message, span))
            else:
                arrays[name] = arrays[name].T
                notes[name] = "transposed"
    return problems


def _concat(
    change: Change,
    weight_map: WeightMap,
    arrays: dict[str, Array],
    order: list[str],
    notes: dict[str, str],
) -> list[Diagnostic]:
    """Join, along the first axis, the tensors the patterns name wherever their `*`
    and `?` parts agree."""
    bindings = []
    for pattern, span in zip(change.patterns, change.spans):
        found: dict[tuple[str, ...], str] = {}
        for name in order:
            match = _regex(pattern).fullmatch(name)
            if match:
                found[match.groups()] = name
        if not found:
            return [weight_map.error(f"'{pattern}' matches no tensor", span)]
        bindings.append(found)
    first = bindings[0]
    for pattern, span, found in zip(change.patterns[1:], change.spans[1:], bindings[1:]):
        if set(found) != set(first):
            message = (
                f"'{pattern}' does not match a tensor for each one '{change.patterns[0]}' "
                f"matches ({len(found)} and {len(first)}), their '*' parts agreeing"
            )
            return [weight_map.error(message, span)]
    problems = []
    for key in first:
        names = [found[key] for found in bindings]
        parts = [arrays[name] for name in names]
        if len({(p.ndim, p.shape[1:], p.dtype.kind) for p in parts}) != 1 or parts[0].ndim == 0:
            shapes = ", ".join(f"'{n}' {list(p.shape)}" for n, p in zip(names, parts))
            message = f"cannot join {shapes} along their first axis"
            problems.append(weight_map.error(message, change.spans[0]))
            continue
        joined = _joined_name(names)
        if joined in arrays:
            message = f"the joined tensor's name '{joined}' is taken in the checkpoint"
            problems.append(weight_map.error(message, change.spans[0]))
            continue
        arrays[joined] = np.concatenate(parts, axis=0)
        order[order.index(names[0])] = joined
        for name in names:
            del arrays[name]
            if name in order:
                order.remove(name)
        notes[joined] = "joined: " + ", ".join(names)
    return problems


def _regex(pattern: str) -> re.Pattern[str]:
    """`*` any characters, `?` one; each a group, so that matches can be compared."""
    return re.compile(
        "".join("(.*)" if c == "*" else "(.)" if c == "?" else re.escape(c) for c in pattern)
    )


def _joined_name(names: list[str]) -> str:
    """`a.query+key+value.weight` for `a.query.weight`, `a.key.weight`, `a.value.weight`:
    the one component where they differ, joined by `+`; else all of them joined."""
    split = [name.split(".") for name in names]
    if len({len(s) for s in split}) == 1:
        differ = [i for i in range(len(split[0])) if len({s[i] for s in split}) > 1]
        if len(differ) == 1:
            i = differ[0]
            return ".".join([*split[0][:i], "+".join(s[i] for s in split), *split[0][i + 1 :]])
    return "+".join(names)
