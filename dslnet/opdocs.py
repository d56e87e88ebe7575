"""The op reference, generated from the registry: `dslnet ops` and docs/ops.md.

Everything here is read from each op's definition: its doc, inputs and outputs,
attribute schema (types, defaults, descriptions, short names) and its examples.
Each example is compiled, so the shapes shown are what the shape rule infers and
the parameters what the op really creates; the text cannot drift from the code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from enum import Enum
from typing import Any

from dslnet.core.literals import format_value
from dslnet.ops import registry
from dslnet.ops.registry import OpDef, type_words

HEADER = """# Op reference

Generated from the op registry by `dslnet ops --markdown`; do not edit by hand (a test
fails when this file is not current). Each example is compiled: the types after `->`
are what the shape rule infers, and the parameters are the ones the op creates.

Each op's `call` line reads like a Python signature: the inputs, then the attributes a
call may give by position, then `*` and the keyword-only ones, with their defaults
(`conv2d(x, 16, 3, stride=2)`, not `conv2d(x, 16, 3, 2)`). The input sizes PyTorch's
constructors take (nn.Conv2d's in_channels, nn.BatchNorm2d's num_features) come from
the input and are never written.
"""


def op_names() -> list[str]:
    return list(registry.all_ops())


def op_list() -> str:
    """One line per op, by family: what `dslnet ops` prints."""
    lines = []
    for family, ops in _by_family(registry.all_ops().values()):
        lines.append(f"{family}:")
        lines += [f"  {op.name:30s} {_first_sentence(op.doc)}{_user_mark(op)}" for op in ops]
    return "\n".join(lines) + "\n"


def op_text(op: OpDef, heading: str = "##") -> str:
    """The reference of one op, as markdown (readable as plain text too)."""
    lines = [f"{heading} {op.name}", "", op.doc or "(no description)", ""]
    lines.append(f"- call: `{call_signature(op)}`")
    lines.append(f"- family: {op.family}")
    defined_by = _defined_by(op)
    if defined_by is not None:
        lines.append(f"- user op: {defined_by}")
    lines.append(f"- inputs: {_inputs(op)}")
    lines.append(f"- outputs: {', '.join(op.outputs)}")
    if op.aliases:
        short = ", ".join(f"`{k}` = {v}" for k, v in sorted(op.aliases.items()))
        lines.append(f"- short names: {short}")
    lines.append("")
    fields = op.Attrs.model_fields
    if fields:
        lines += ["| attribute | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, info in fields.items():
            default = "required" if info.is_required() else f"`{format_value(info.default)}`"
            meaning = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | {type_words(info.annotation)} | {default} | {meaning} |")
        lines.append("")
    for example in op.examples:
        lines += ["```", *_example(example), "```", ""]
    return "\n".join(lines)


def op_data(op: OpDef) -> dict[str, Any]:
    """One op as data (`dslnet ops --json`): defaults as JSON values, types in words."""
    return {
        "name": op.name,
        "family": op.family,
        "summary": _first_sentence(op.doc),
        "doc": op.doc,
        "inputs": list(op.inputs),
        "variadic": op.variadic,
        "optional_inputs": list(op.optional_inputs),
        "outputs": list(op.outputs),
        "attributes": [
            {
                "name": name,
                "type": type_words(info.annotation),
                "required": info.is_required(),
                "default": None if info.is_required() else _json_value(info.default),
                "doc": info.description or "",
            }
            for name, info in op.Attrs.model_fields.items()
        ],
        "positional": list(op.positional),
        "short_names": dict(sorted(op.aliases.items())),
        "examples": list(op.examples),
        "defined_by": _defined_by(op),  # None for a built-in op
    }


def _json_value(value: Any) -> Any:
    """A default as JSON: tuples as lists, enums (a dtype) by their value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return format_value(value)  # JSON has no inf or nan
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return format_value(value)


def reference() -> str:
    """docs/ops.md: every built-in op, by family (users' ops would make it depend on
    what is installed)."""
    parts = [HEADER]
    for family, ops in _by_family(registry.builtin_ops().values()):
        parts.append(f"## {family}\n")
        parts += [op_text(op, "###") for op in ops]
    return "\n".join(parts).rstrip() + "\n"


def _defined_by(op: OpDef) -> str | None:
    """Where a user's op comes from (its class, and plugin); None for a built-in."""
    origin = registry.origin(op.name)
    return None if origin is None or origin.builtin else str(origin)


def _user_mark(op: OpDef) -> str:
    """` [user op: mypkg 1.0]` after a user's op in the listing; nothing for a built-in."""
    origin = registry.origin(op.name)
    return "" if origin is None or origin.builtin else f"  [user op: {origin.source}]"


def _by_family(ops: Iterable[OpDef]) -> list[tuple[str, list[OpDef]]]:
    families: dict[str, list[OpDef]] = {}
    for op in ops:
        families.setdefault(op.family, []).append(op)
    return [(f, sorted(members, key=lambda o: o.name)) for f, members in sorted(families.items())]


def call_signature(op: OpDef) -> str:
    """How a call reads, Python's way: the inputs, the attributes a call may give by
    position, then `*` and the keyword-only ones with their defaults, e.g.
    `linear(x, features, *, bias=true)`."""
    parts = [*op.inputs, *(["..."] if op.variadic else [])]
    parts += [f"[{n}]" for n in op.optional_inputs]
    for index, (name, info) in enumerate(op.Attrs.model_fields.items()):
        if index == len(op.positional):
            parts.append("*")
        parts.append(name if info.is_required() else f"{name}={format_value(info.default)}")
    return f"{op.name}({', '.join(parts)})"


# A period that ends one of these words ends no sentence.
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)\.(?:\s|$)")


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.split())
    end = _SENTENCE_END.search(text)
    return text if end is None else text[: end.start() + 1]


def _inputs(op: OpDef) -> str:
    names = list(op.inputs)
    if op.variadic:
        names.append("...")
    names += [f"[{n}]" for n in op.optional_inputs]
    return ", ".join(names) or "none"


def _example(body: str) -> list[str]:
    """The example's lines, then what compiling it gives: output types, parameters."""
    import dslnet

    graph = dslnet.loads(f"network Example() {{\n{body}\n}}", filename="example.net").ir("Example")
    lines = body.splitlines()
    lines += [f"# -> {name}: {graph.type_of(value)}" for name, value in graph.outputs]
    for p in graph.parameters.values():
        kind = "buffer" if p.buffer else "param"
        lines.append(f"# {kind} {p.name}: [{', '.join(map(str, p.shape))}]")
    return lines
