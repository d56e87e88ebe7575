"""Names in the generated torch source: safe identifiers for spec names, and the class
name of every block variant, all decided before any source is written."""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dslnet.core.literals import format_value

_RESERVED = {"self", "torch", "nn", "F", "super"} | set(dir(builtins))


def identifier(name: str) -> str:
    """A safe Python identifier for a spec name (never a keyword, builtin or dunder)."""
    text = re.sub(r"^_+", "", re.sub(r"\W+", "_", name, flags=re.ASCII)) or "v"
    if text[0].isdigit():
        text = "v_" + text
    if keyword.iskeyword(text) or keyword.issoftkeyword(text) or text in _RESERVED:
        text += "_"
    return text


def class_identifier(name: str) -> str:
    text = identifier(name)
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class ClassRequest:
    """A class to be named: the name its block wants and, for a block call, the call's
    arguments (None for the network's class and calls of no recorded module)."""

    wanted: str
    args: Mapping[str, Any] | None


def class_names(requests: Sequence[ClassRequest], reserved: set[str]) -> list[str]:
    """The name of each class, in emission order (dependencies first).

    The first class of a block takes the block's name and later variants a number
    (`BasicBlock2`), avoiding `reserved` (the ops' helpers). When a block has several
    variants, each is then named by the arguments that tell them apart
    (`BasicBlock_c128_stride2`); a variant keeps its numbered name when that name is
    taken or no argument differs."""
    numbered: list[str] = []
    taken = set(reserved)
    for request in requests:
        name, k = request.wanted, 1
        while name in taken:
            k += 1
            name = f"{request.wanted}{k}"
        taken.add(name)
        numbered.append(name)
    variants: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, request in enumerate(requests):
        if request.args is not None:
            variants.setdefault(request.wanted, []).append((index, request.args))
    names = list(numbered)
    descriptive: set[str] = set()
    for wanted, members in variants.items():
        if len(members) < 2:
            continue
        first = members[0][1]
        keys = [k for k in first if len({format_value(a.get(k)) for _, a in members}) > 1]
        if not keys:
            continue
        for index, args in members:
            suffix = "_".join(identifier(f"{k}{format_value(args[k])}") for k in keys)
            name = f"{wanted}_{suffix}"
            if name not in taken and name not in descriptive:
                names[index] = name
                descriptive.add(name)
    return names
