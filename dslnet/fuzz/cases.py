"""Fuzz cases: what each one is, where its text comes from, and how case `index` of a
run is made (deterministically: a case is made again from its seed and index).

A case is a spec written by the generator (dslnet.fuzz.generate), that spec mutated,
or a real spec mutated (dslnet.fuzz.mutate): the repository's library, its error
corpus, every registered op's examples.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dslnet.fuzz.generate import SpecGenerator
from dslnet.fuzz.mutate import mutate
from dslnet.fuzz.opprofiles import example_network
from dslnet.ops import registry


@dataclass(frozen=True)
class Seed:
    """A real spec to mutate: `filename` is where cases made from it claim to live
    (imports resolve from its directory)."""

    name: str
    text: str
    filename: str


@dataclass(frozen=True)
class Case:
    index: int
    origin: str  # "generated", or the seed and the mutations applied
    text: str
    filename: str


def seeds_from_files(paths: Sequence[Path]) -> list[Seed]:
    """Each spec file as a seed named by its path, as given."""
    return [Seed(str(p), p.read_text("utf-8"), str(p)) for p in paths]


def op_example_seeds(directory: Path) -> list[Seed]:
    """Every registered op's examples, each inside a network (names under `directory`)."""
    return [
        Seed(f"op {name} example {k}", example_network(body), str(directory / f"{name}{k}.net"))
        for name, op in registry.all_ops().items()
        for k, body in enumerate(op.examples)
    ]


def make_case(seed: int, index: int, seeds: Sequence[Seed], directory: Path) -> Case:
    """Case `index` of the run with `seed`: generated or mutated. Generated specs claim to
    live in `directory`, so that their imports of its files resolve."""
    rng = random.Random(f"dslnet-fuzz:{seed}:{index}")
    filename = str(directory / "generated.net")
    roll = rng.random()
    if roll < 0.35 or not seeds:
        return Case(index, "generated", SpecGenerator(rng, directory).spec(), filename)
    if roll < 0.5:
        text = SpecGenerator(rng, directory).spec()
        mutated, applied = mutate(text, rng, [s.text for s in seeds])
        return Case(index, f"generated, then {', '.join(applied)}", mutated, filename)
    chosen = rng.choice(seeds)
    mutated, applied = mutate(chosen.text, rng, [s.text for s in seeds])
    return Case(index, f"{chosen.name}: {', '.join(applied)}", mutated, chosen.filename)
