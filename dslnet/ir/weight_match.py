"""Which tensor of a foreign checkpoint fills which parameter of a network, found by
structure: a reference implementation's state_dict never uses the spec's names.

The network's side is `graph.parameters`: layers (a node's module) in graph order,
each with its parameters and buffers in role order, inside block instances. The
checkpoint's side is its tensors in file order, grouped into modules by their name
prefixes (`layer1.0.conv1.weight` is `weight` of module `layer1.0.conv1`); see
`dslnet.ir.weight_sides`.

0. Blocks to modules. A block instance and a checkpoint module holding tensors of the
   same signature (the multiset of float shapes, size-1 axes dropped) pair, in order
   where a signature has as many of each: the module's name is the block's prefix.
1. Layers to modules. The layers of one signature pair with the modules of that
   signature in order, when there are as many of each: graph order is the evidence,
   and reorderings between layers of different signatures (a class token registered
   before the patch projection, a layer scale first, a reduction before its norm)
   cannot confuse it; where the checkpoint's names pair a layer's module with its
   neighbour's (`transform.dense` beside the `transform.LayerNorm` reading it), they
   overrule the order. Within a pair, tensors pair by shape, then by name (`weight`,
   `running_mean`, `gamma` for a weight...), then in order.
2. Block boundaries. Each block instance without a module from step 0 takes the common
   prefix of the modules paired inside it. Signatures with unequal counts are paired
   again block by block (deepest first), among the modules under the block's prefix
   and outside every other block's; last the network's own layers, outside them all.
3. Loose tensors. What is left pairs tensor by tensor inside the innermost block that
   offers a candidate of the right shape, when the candidate is the only one (or the
   only one whose name fits) and no other parameter claims it; everything else is
   ambiguous, unfilled or unused, and reported with its candidates.

A `.safetensors` file keeps no order (`ordered=False`): "in order" then holds only
among modules whose names number them (`layers.2` < `layers.10`, `conv1` < `conv2`);
inside a block, a layer may also take the module its names put right after the
module of the layer it reads (`bn1` after `conv1`, `downsample.1` after
`downsample.0`). Anything else is left to step 3, which never guesses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from dslnet.ir.weight_sides import (
    Offered,
    Slot,
    all_ordered,
    block_prefixes,
    blocks_of,
    common_prefix,
    fits,
    name_fits,
    next_to,
    parts,
    signature,
    strictly_under,
    under,
)


@dataclass(frozen=True)
class Pair:
    source: Offered
    target: Slot
    by: str  # "layer", "block" (a loose tensor inside a block) or "map"


@dataclass(frozen=True)
class Ambiguity:
    target: Slot
    candidates: tuple[Offered, ...]
    scope: str  # the source prefix searched ("" for the whole file)
    rivals: tuple[str, ...] = ()  # the other parameters these candidates fit


@dataclass
class Matching:
    pairs: list[Pair] = field(default_factory=list)
    ambiguous: list[Ambiguity] = field(default_factory=list)
    unfilled: list[Slot] = field(default_factory=list)
    unused: list[Offered] = field(default_factory=list)


def match(
    slots: Sequence[Slot],
    offered: Sequence[Offered],
    pinned: Sequence[Pair],
    *,
    ordered: bool = True,
) -> Matching:
    """Pair `offered` with `slots` by structure, after the `pinned` pairs (a map file's).
    `ordered`: `offered` is in the order its modules were registered (a state_dict's);
    else (a .safetensors file) order is evidence only where the names number modules."""
    state = _State(slots, offered, pinned, ordered)
    state.pair_layers(list(state.layers), list(state.groups), "layer")
    for _ in range(2):  # prefixes found by one round let the next pair more
        state.pair_inside_blocks()
    state.pair_loose_tensors()
    return state.result()


class _State:
    def __init__(
        self,
        slots: Sequence[Slot],
        offered: Sequence[Offered],
        pinned: Sequence[Pair],
        ordered: bool,
    ) -> None:
        self.ordered = ordered
        self.slots = list(slots)
        self.by_name = {s.name: s for s in slots}
        self.pairs: dict[str, Pair] = {p.target.name: p for p in pinned}
        self.taken = {p.source.name for p in pinned}
        self.layers: dict[str, list[Slot]] = defaultdict(list)
        for slot in slots:
            self.layers[slot.layer].append(slot)
        self.groups: dict[str, list[Offered]] = defaultdict(list)
        for tensor in offered:
            self.groups[tensor.group].append(tensor)
        self.offered = list(offered)
        self.paired_layers: set[str] = set()
        self.paired_groups: set[str] = set()
        self.layer_group: dict[str, str] = {}  # the module each paired layer took
        self.after = {s.layer: s.after for s in slots if s.after}
        self.readers: dict[str, list[str]] = defaultdict(list)  # the layers reading each
        for layer, before in self.after.items():
            self.readers[before].append(layer)
        self.blocks = blocks_of(self.layers)
        self.block_prefixes = block_prefixes(self.slots, self.offered, self.blocks, ordered)
        self.ambiguous: list[Ambiguity] = []

    # --- 1 and 2: whole layers, by signature, then inside blocks -----------------------

    def pair_layers(self, layers: list[str], groups: list[str], by: str) -> None:
        """Pair the layers with the modules of the same signature, in order, where a
        signature has as many of each. Then a layer with nested roles (attention's
        `out_proj.weight`) may be a module together with its sub-modules (`attn`,
        `attn.qkv`, `attn.proj`): those pair the same way, as one."""
        free = [g for g in groups if g not in self.paired_groups]
        self._pair_by_signature(layers, {g: [g] for g in free}, by)
        nested = [
            layer
            for layer in layers
            if layer not in self.paired_layers and any("." in s.role for s in self.layers[layer])
        ]
        if nested:
            free = [g for g in free if g not in self.paired_groups]
            merged = {g: [h for h in free if under(h, g)] for g in free}
            self._pair_by_signature(nested, {g: m for g, m in merged.items() if len(m) > 1}, by)

    def _pair_by_signature(self, layers: list[str], groups: dict[str, list[str]], by: str) -> None:
        by_signature: dict[tuple[object, ...], tuple[list[str], list[str]]] = defaultdict(
            lambda: ([], [])
        )
        for layer in layers:
            if layer not in self.paired_layers:
                wanted = signature(s for s in self.layers[layer] if s.name not in self.pairs)
                if wanted:
                    by_signature[wanted][0].append(layer)
        for key, members in groups.items():
            found = signature(t for g in members for t in self._free(g))
            if found:
                by_signature[found][1].append(key)
        # What is certain first (a signature of one layer), then the repeated structure:
        # what they pair is evidence for the odd layers' neighbours.
        classes = sorted(by_signature.values(), key=lambda c: (len(c[1]) > 1, -len(c[1])))
        for these_layers, keys in classes:
            if not these_layers or len(these_layers) != len(keys):
                continue
            if self._in_order(keys):
                picks = self._neighbour_picks(these_layers, keys, surest=True)
                in_order = dict(zip(these_layers, keys))
                if all(in_order[layer] == key for layer, key in picks.items()):
                    picks = in_order  # the names' neighbours agree with the order
            elif by == "block":
                picks = self._neighbour_picks(these_layers, keys, surest=False)
            else:
                continue  # sorted names, and the whole network: nothing to go by
            left = [k for k in keys if k not in picks.values()]
            rest = [layer for layer in these_layers if layer not in picks]
            if len(left) == 1 and len(rest) == 1:
                picks[rest[0]] = left[0]
            for layer, key in picks.items():
                if not any(g in self.paired_groups for g in groups[key]):
                    self._pair_within(layer, key, groups[key], by)

    def _neighbour_picks(self, layers: list[str], keys: list[str], surest: bool) -> dict[str, str]:
        """The module each layer's neighbours name for it: the one the checkpoint's
        names put right after the module of the layer it reads (`bn1` after `conv1`,
        `downsample.1` after `downsample.0`), or right before the module of a layer
        reading it; only in the same block, and only where one module fits and no
        other layer is given it. `surest`: only neighbours in a sequence or named
        without numbers (strong enough to overrule the registration order, which a
        pooler registered before the head it follows in the graph gets wrong), not
        siblings sharing a number."""
        least = 2 if surest else 1
        picks: dict[str, str] = {}
        for layer in layers:
            found: set[str] = set()
            before = self.after.get(layer)
            if before in self.layer_group and self._same_block(before, layer):
                first = self.layer_group[before]
                found.update(k for k in keys if next_to(first, k) >= least)
            for reader in self.readers.get(layer, []):
                if reader in self.layer_group and self._same_block(reader, layer):
                    then = self.layer_group[reader]
                    found.update(k for k in keys if next_to(k, then) >= least)
            if len(found) == 1:
                picks[layer] = found.pop()
        chosen = list(picks.values())
        return {layer: key for layer, key in picks.items() if chosen.count(key) == 1}

    def _same_block(self, a: str, b: str) -> bool:
        return self.blocks[a][:1] == self.blocks[b][:1]

    def _in_order(self, names: Sequence[str]) -> bool:
        """Whether the order of these modules (or tensors) of the checkpoint is known."""
        return self.ordered or len(names) < 2 or all_ordered(names)

    def _free(self, group: str) -> list[Offered]:
        return [t for t in self.groups[group] if t.name not in self.taken]

    def _pair_within(self, layer: str, key: str, groups: list[str], by: str) -> None:
        self.paired_layers.add(layer)
        self.layer_group[layer] = key
        self.paired_groups.update(groups)
        targets = [s for s in self.layers[layer] if s.name not in self.pairs]
        members = set(groups)
        sources = [t for t in self.offered if t.group in members and t.name not in self.taken]
        for target in targets:  # names first: `running_mean` is never `weight`
            named = [t for t in sources if fits(t, target) and name_fits(t, target)]
            if len(named) == 1:
                self._add(Pair(named[0], target, by))
                sources.remove(named[0])
        for target in targets:  # then order, among what has the same shape
            same = [t for t in sources if fits(t, target)]
            if target.name not in self.pairs and same and self._in_order([t.name for t in same]):
                self._add(Pair(same[0], target, by))
                sources.remove(same[0])

    def pair_inside_blocks(self) -> None:
        """Step 2: the signatures left, paired inside each block (deepest first), among
        the modules under its prefix and not under another block's; last the network's
        own layers with the modules outside every block's prefix."""
        prefixes = self.prefixes()
        for block in sorted(prefixes, key=lambda b: -len(parts(b))):
            prefix = prefixes[block]
            if block == "":
                known = [p for b, p in prefixes.items() if b]
                layers = [layer for layer in self.layers if not self.blocks[layer]]
                layers += [
                    layer
                    for layer in self.layers
                    if self.blocks[layer] and not any(b in prefixes for b in self.blocks[layer])
                ]
                groups = [g for g in self.groups if not any(under(g, p) for p in known if p)]
            else:
                foreign = [
                    p
                    for other, p in prefixes.items()
                    if not (under(other, block) or under(block, other))
                    and strictly_under(p, prefix)
                ]
                layers = [layer for layer in self.layers if under(layer, block)]
                groups = [
                    g
                    for g in self.groups
                    if under(g, prefix) and not any(under(g, p) for p in foreign)
                ]
            self.pair_layers(layers, groups, "block")

    def prefixes(self) -> dict[str, str]:
        """Each block instance's source prefix: the module step 0 paired it with, else
        the common prefix of the modules paired with layers inside it; the network's
        own (`""`) is the whole file."""
        found: dict[str, list[str]] = defaultdict(list)
        for pair in self.pairs.values():
            for block in self.blocks[pair.target.layer]:
                found[block].append(pair.source.group)
        prefixes = {block: common_prefix(groups) for block, groups in found.items()}
        prefixes.update(self.block_prefixes)
        prefixes[""] = ""
        return prefixes

    # --- 3: loose tensors ----------------------------------------------------------------

    def pair_loose_tensors(self) -> None:
        while True:
            candidates = self._candidates()
            claims: dict[str, list[str]] = defaultdict(list)
            for target, (_, found) in candidates.items():
                for source in found:
                    claims[source.name].append(target)
            progress = False
            for target, (_, found) in candidates.items():
                slot = self._slot(target)
                pick = None
                if len(found) == 1 and claims[found[0].name] == [target]:
                    pick = found[0]
                else:
                    named = [t for t in found if name_fits(t, slot)]
                    rivals = (
                        [c for c in claims[named[0].name] if name_fits(named[0], self._slot(c))]
                        if len(named) == 1
                        else []
                    )
                    if rivals == [target]:
                        pick = named[0]
                if pick is not None and pick.name not in self.taken:
                    self._add(Pair(pick, slot, "block"))
                    progress = True
            if not progress:
                self.ambiguous = [
                    Ambiguity(self._slot(t), tuple(found), scope, _rivals(t, found, claims))
                    for t, (scope, found) in candidates.items()
                    if found
                ]
                return

    def _candidates(self) -> dict[str, tuple[str, list[Offered]]]:
        """For each unfilled slot, the innermost block offering tensors of its shape:
        that block's source prefix and those tensors."""
        prefixes = self.prefixes()
        free = [t for t in self.offered if t.name not in self.taken]
        found: dict[str, tuple[str, list[Offered]]] = {}
        for slot in self.slots:
            if slot.name in self.pairs:
                continue
            fitting = [t for t in free if fits(t, slot)]
            found[slot.name] = ("", [])
            for block in [*self.blocks[slot.layer], ""]:
                if block not in prefixes:
                    continue
                prefix = prefixes[block]
                foreign = [
                    p
                    for other, p in prefixes.items()
                    if not under(slot.layer, other) and strictly_under(p, prefix)
                ]
                here = [
                    t
                    for t in fitting
                    if under(t.group, prefix) and not any(under(t.group, p) for p in foreign)
                ]
                if here:
                    found[slot.name] = (prefix, here)
                    break
        return found

    # --- bookkeeping ------------------------------------------------------------------

    def _add(self, pair: Pair) -> None:
        self.pairs[pair.target.name] = pair
        self.taken.add(pair.source.name)

    def _slot(self, name: str) -> Slot:
        return self.by_name[name]

    def result(self) -> Matching:
        ambiguous_names = {a.target.name for a in self.ambiguous}
        # a candidate of an ambiguity is reported there, not again as unused
        candidates = {t.name for a in self.ambiguous for t in a.candidates}
        return Matching(
            pairs=[self.pairs[s.name] for s in self.slots if s.name in self.pairs],
            ambiguous=self.ambiguous,
            unfilled=[
                s for s in self.slots if s.name not in self.pairs and s.name not in ambiguous_names
            ],
            unused=[
                t for t in self.offered if t.name not in self.taken and t.name not in candidates
            ],
        )


def _rivals(target: str, found: Sequence[Offered], claims: dict[str, list[str]]) -> tuple[str, ...]:
    names = {c for t in found for c in claims[t.name] if c != target}
    return tuple(sorted(names))
