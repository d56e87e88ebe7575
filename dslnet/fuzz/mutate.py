"""Mutations of spec text for fuzzing: each turns a real spec into a near miss.

Token-level edits (delete, duplicate, swap, replace a number or a name), character-level
ones (unicode, control characters, truncation) and stress shapes (nesting thousands of
levels deep, very long lines, very long numbers). `mutate` applies one to four of them
and says which.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from dslnet.ops.activation import ReLU
from dslnet.ops.linear import Linear

# Numbers that break assumptions: zero, negatives, the edges of int64 and float64, more
# digits than Python converts by default, and sizes that are large but not absurd.
NUMBERS = (
    "0",
    "-1",
    "1",
    "2",
    "3",
    "0.0",
    "-0.0",
    "0.5",
    "1.",
    ".5",
    "1e-320",
    "1e308",
    "1e309",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "1_000_000",
    "65536",
    "100000",
    "9" * 40,
    "9" * 5000,
)
STRINGS = ('""', '"a b"', '"\\""', '"\\\\"', '"\\n\\t"', '"é🙂"', '"\\x00"', '"%s{}"')
# Characters a file may hold by accident or malice: non-ASCII letters, bidi controls,
# zero-width ones, a BOM, NUL, a lone surrogate (what surrogateescape makes of a bad
# byte), emoji, a combining accent, and the line breaks that only some tools count.
UNICODE = (
    "é",
    "Ä",
    "名",
    "\u202e",
    "\u200f",
    "\u200b",
    "\ufeff",
    "\x00",
    "\udcff",
    "\U0001f642",
    "\u0301",
    "\r",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x85",
    "\u2028",
    "\t",
)
NAMES = (  # identifiers swapped in: two ops, keywords, builtins, names torch users write
    "x",
    "N",
    ReLU.name,
    Linear.name,
    "in",
    "out",
    "layer",
    "block",
    "network",
    "for",
    "repeat",
    "if",
    "else",
    "true",
    "range",
    "len",
    "size",
    "floor",
    "round",
    "int",
    "shape",
    "self",
    "torch",
    "__import__",
    "Ünïcode",
    "a" * 300,
    "float16",
    "bfloat16",
    "float64",
    "int8",
    "uint8",
    "int64",
    "bool",
)
NESTING = 10_000

_TOKEN = re.compile(
    r"""\s+|"(?:[^"\\\n]|\\.)*"|\#[^\n]*|[A-Za-z_]\w*|\d[\d_]*(?:\.\d*)?(?:[eE][-+]?\d+)?"""
    r"""|\.\d+|->|//|\*\*|==|!=|<=|>=|.""",
    re.S,
)
_NUMBER = re.compile(r"[\d.][\d_.]*(?:[eE][-+]?\d+)?")
_NAME = re.compile(r"[A-Za-z_]\w*")

Mutation = Callable[[list[str], random.Random, Sequence[str]], None]


def tokens(text: str) -> list[str]:
    """`text` cut into tokens, whitespace and comments included: they join back to it."""
    return _TOKEN.findall(text)


def _solid(toks: list[str]) -> list[int]:
    """Indices of the tokens that are not whitespace."""
    return [i for i, t in enumerate(toks) if not t.isspace()] or [0]


def delete_token(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    del toks[rng.choice(_solid(toks))]


def duplicate_token(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    i = rng.choice(_solid(toks))
    toks.insert(i, toks[i] + rng.choice((" ", "")))


def swap_tokens(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    solid = _solid(toks)
    i, j = rng.choice(solid), rng.choice(solid)
    toks[i], toks[j] = toks[j], toks[i]


def replace_number(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    numbers = [i for i, t in enumerate(toks) if _NUMBER.fullmatch(t)]
    i = rng.choice(numbers or _solid(toks))
    if rng.random() < 0.7:
        toks[i] = rng.choice(NUMBERS)
    else:  # any size, any sign
        value = rng.choice((rng.randint(-5, 64), rng.randint(-(2**70), 2**70)))
        toks[i] = str(value) if rng.random() < 0.8 else f"{value / 7:.6g}"


def replace_name(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    names = [i for i, t in enumerate(toks) if _NAME.fullmatch(t)]
    i = rng.choice(names or _solid(toks))
    others = [toks[k] for k in names] or ["x"]
    toks[i] = rng.choice(others) if rng.random() < 0.5 else rng.choice(NAMES)


def insert_unicode(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    i = rng.randrange(len(toks) + 1)
    toks.insert(i, "".join(rng.choice(UNICODE) for _ in range(rng.randint(1, 3))))


def insert_string(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    i = rng.choice(_solid(toks))
    toks[i] = rng.choice(STRINGS)


def truncate(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    text = "".join(toks)
    cut = rng.randrange(len(text) + 1)
    toks[:] = [text[:cut]]


def deep_nesting(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    """An operand wrapped thousands of levels deep: parentheses, brackets, signs, calls."""
    i = rng.choice(_solid(toks))
    opener, closer = rng.choice((("(", ")"), ("[", "]"), ("-", ""), ("not ", ""), ("relu(", ")")))
    depth = rng.choice((NESTING, 100, 300, 1000))
    if rng.random() < 0.2:  # a long chain rather than a deep one
        toks[i] = toks[i] + rng.choice((" -> relu", " + x", " * 1", " ** 1")) * depth
    else:
        toks[i] = opener * depth + toks[i] + closer * depth


def long_line(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    i = rng.choice(_solid(toks))
    filler = rng.choice((" " * 200_000, "a" * 100_000, "1" * 100_000, "# " + "c" * 200_000))
    toks.insert(i, filler)


def duplicate_line(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    lines = "".join(toks).split("\n")
    k = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[k])
    toks[:] = ["\n".join(lines)]


def delete_line(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    lines = "".join(toks).split("\n")
    del lines[rng.randrange(len(lines))]
    toks[:] = ["\n".join(lines)]


def windows_newlines(toks: list[str], rng: random.Random, _: Sequence[str]) -> None:
    """Every line ended by '\r\n', as a file saved on Windows."""
    toks[:] = ["".join(toks).replace("\r\n", "\n").replace("\n", "\r\n")]


def splice(toks: list[str], rng: random.Random, others: Sequence[str]) -> None:
    """Lines of another spec pasted in: constructs meet in ways no single spec has."""
    if not others:
        return
    donor = rng.choice(others).split("\n")
    start = rng.randrange(len(donor))
    piece = donor[start : start + rng.randint(1, 8)]
    lines = "".join(toks).split("\n")
    at = rng.randrange(len(lines) + 1)
    toks[:] = ["\n".join(lines[:at] + piece + lines[at:])]


MUTATIONS: dict[str, tuple[Mutation, float]] = {
    "delete token": (delete_token, 3),
    "duplicate token": (duplicate_token, 2),
    "swap tokens": (swap_tokens, 2),
    "replace number": (replace_number, 4),
    "replace name": (replace_name, 3),
    "insert unicode": (insert_unicode, 1.5),
    "insert string": (insert_string, 1),
    "truncate": (truncate, 1),
    "deep nesting": (deep_nesting, 0.5),
    "long line": (long_line, 0.3),
    "duplicate line": (duplicate_line, 1.5),
    "delete line": (delete_line, 1.5),
    "splice": (splice, 1),
    "windows newlines": (windows_newlines, 0.5),
}


def mutate(text: str, rng: random.Random, others: Sequence[str] = ()) -> tuple[str, list[str]]:
    """`text` with one to four random mutations (`others`: texts to splice from), and the
    names of those applied."""
    toks = tokens(text) or [""]
    names = list(MUTATIONS)
    weights = [MUTATIONS[n][1] for n in names]
    applied = rng.choices(names, weights, k=rng.choice((1, 1, 1, 2, 2, 3, 4)))
    for name in applied:
        MUTATIONS[name][0](toks, rng, others)
        if not toks:
            toks.append("")
        elif len(toks) == 1:  # a line-level edit joined them: cut again for the next
            toks[:] = tokens(toks[0]) or [""]
    return "".join(toks), applied
