"""What the spec generator knows of each registered op: how its first example calls it.

A call copied from an op's example (its attribute arguments, the rank of the input it
takes, how many values it binds) is one that compiles; the generator builds specs
that compile out of such calls, and spoils some on purpose.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from dslnet.ops import registry


def example_network(body: str) -> str:
    """An op example's body (`in x: ...`, `out y = ...`) as a spec: network `Example`."""
    inner = "\n".join("    " + line for line in body.splitlines())
    return f"network Example() {{\n{inner}\n}}\n"


@dataclass(frozen=True)
class OpProfile:
    """How an op's first example calls it: what a call that compiles looks like."""

    name: str
    inputs: int  # tensors the example passes
    rank: int  # of the example's first input
    dtype: str  # of the example's first input
    out_rank: int  # of the example's first output (its input rank when unknown)
    targets: int  # values the example's statement binds (lstm: y, h, c)
    args: str  # the example's attribute arguments, e.g. `8, k=3, p=1`
    compiles: bool  # whether the example compiles (the registry's examples should)
    fields: tuple[tuple[str, Any], ...]  # every attribute and its annotation
    aliases: tuple[str, ...]


_IN = re.compile(r"^in (\w+): (\w+)\[([^\]]*)\]$")


@functools.cache
def op_profiles() -> tuple[OpProfile, ...]:
    """A profile of every registered op (compiles each op's first example once)."""
    return tuple(_profile(name) for name in registry.all_ops())


def _profile(name: str) -> OpProfile:
    import dslnet

    op = registry.get(name)
    assert op is not None
    body = op.examples[0] if op.examples else ""
    lines = [line.strip() for line in body.splitlines()]
    inputs = {m.group(1): m for m in map(_IN.match, lines) if m}
    first = next(iter(inputs.values()), None)
    rank = len(first.group(3).split(",")) if first else 2
    call = next((line for line in lines if re.search(rf"\b{name}\b", line)), "")
    targets = (
        len(call.split("=")[0].split(",")) if "=" in call and not call.startswith("out") else 1
    )
    args = _call_args(call, name)
    tensors = 1 if f"-> {name}" in call else 0
    while args and args[0] in inputs:
        args.pop(0)
        tensors += 1
    out_rank, compiles = rank, False
    try:
        graph = dslnet.loads(example_network(body)).ir("Example")
        out_rank = graph.type_of(graph.outputs[0][1]).rank
        compiles = True
    except Exception:  # an op whose example fails is still fuzzed, with random arguments
        pass
    fields = tuple((f, info.annotation) for f, info in op.Attrs.model_fields.items())
    dtype = first.group(2) if first else "float32"
    return OpProfile(
        name,
        tensors,
        rank,
        dtype,
        out_rank,
        targets,
        ", ".join(args),
        compiles,
        fields,
        tuple(op.aliases),
    )


def _call_args(line: str, name: str) -> list[str]:
    """The top-level arguments of the call of `name` in `line`, as text."""
    start = line.find(f"{name}(")
    if start < 0:
        return []
    depth, parts, current = 0, [], ""
    for ch in line[start + len(name) + 1 :]:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [p for p in [*parts, current.strip()] if p]
