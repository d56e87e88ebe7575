"""Map files: what weight import cannot infer, said by hand.

One rule a line; `#` starts a comment; blank lines are skipped:

    conv1.weight = stem1.conv2d1.weight    # this checkpoint tensor fills this parameter
    fc.* = -                               # leave these checkpoint tensors out
    transpose h.*.attn.c_attn.weight       # stored [in, out]: transpose, then match
    concat *.query.weight, *.key.weight, *.value.weight   # one [3D, D] tensor each

The left side of `=` is a tensor of the checkpoint, the right side a parameter (or
buffer) of the network, both by their full names. `-` on the right drops the tensor;
a dropped name may hold `*` (any characters) and `?` (one). `transpose` and `concat`
change checkpoint tensors before they are matched by structure: `transpose` turns the
matrices a pattern names, `concat` joins along the first axis the tensors its patterns
name wherever their `*` parts agree (`bert.encoder.layer.0` for each of the three
above), into one tensor named by what differs (`...self.query+key+value.weight`).
Every name must exist and every rule must apply: a typo is an error, located in the
map file, not a silent no-op.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from dslnet.core.diagnostics import CompileError, Diagnostic, Severity, SourceMap, Span
from dslnet.fileio.regular import FileProblem, read_bytes

DROP = "-"


@dataclass(frozen=True)
class Rule:
    source: str  # a checkpoint name, or a pattern when target is None
    target: str | None  # None: drop the source tensors
    source_span: Span
    target_span: Span


@dataclass(frozen=True)
class Change:
    """`transpose PATTERN...` or `concat PATTERN, PATTERN...`: checkpoint tensors
    changed before matching."""

    kind: str  # "transpose" or "concat"
    patterns: tuple[str, ...]
    spans: tuple[Span, ...]


CHANGES = ("transpose", "concat")


@dataclass(frozen=True)
class WeightMap:
    rules: tuple[Rule, ...]
    file: str
    sources: SourceMap
    changes: tuple[Change, ...] = ()

    def error(self, message: str, span: Span) -> Diagnostic:
        return Diagnostic(Severity.ERROR, message, span)

    def fail(self, diagnostics: list[Diagnostic]) -> CompileError:
        return CompileError(diagnostics, self.sources)


def parse_map(text: str, file: str) -> WeightMap:
    """The rules of a map file's text; CompileError locating every malformed line."""
    sources = SourceMap()
    sources.add(file, text)
    rules: list[Rule] = []
    changes: list[Change] = []
    problems: list[Diagnostic] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("#", 1)[0].rstrip().removesuffix("\r")
        if not line.strip():
            continue
        keyword = line.split()[0]
        if keyword in CHANGES and "=" not in line:
            change = _change(keyword, line, file, number)
            if isinstance(change, Diagnostic):
                problems.append(change)
            else:
                changes.append(change)
            continue
        left, equals, right = line.partition("=")
        start = len(line) - len(line.lstrip()) + 1
        if not equals or not left.strip() or not right.strip() or len(right.split()) > 1:
            span = Span(file, number, start, number, len(line) + 1)
            problems.append(
                Diagnostic(
                    Severity.ERROR,
                    "expected 'CHECKPOINT_NAME = NETWORK_NAME' (or '= -' to leave the "
                    "checkpoint tensor out)",
                    span,
                )
            )
            continue
        source, target = left.strip(), right.strip()
        source_col = line.index(source) + 1
        target_col = len(left) + 1 + right.index(target) + 1
        source_span = Span(file, number, source_col, number, source_col + len(source))
        target_span = Span(file, number, target_col, number, target_col + len(target))
        if target != DROP and any(c in source for c in "*?["):
            problems.append(
                Diagnostic(
                    Severity.ERROR,
                    "a pattern only drops tensors ('= -'); name each one a parameter fills",
                    source_span,
                )
            )
            continue
        rules.append(Rule(source, None if target == DROP else target, source_span, target_span))
    if problems:
        raise CompileError(problems, sources)
    return WeightMap(tuple(rules), file, sources, tuple(changes))


def _change(keyword: str, line: str, file: str, number: int) -> Change | Diagnostic:
    start = line.index(keyword) + len(keyword)
    patterns: list[str] = []
    spans: list[Span] = []
    for match in re.finditer(r"[^\s,]+", line[start:]):
        col = start + match.start() + 1
        patterns.append(match.group())
        spans.append(Span(file, number, col, number, col + len(match.group())))
    wanted = 2 if keyword == "concat" else 1
    if len(patterns) < wanted:
        col = line.index(keyword) + 1
        span = Span(file, number, col, number, len(line) + 1)
        what = "two names or more to join" if keyword == "concat" else "the names to transpose"
        return Diagnostic(Severity.ERROR, f"'{keyword}' needs {what}", span)
    return Change(keyword, tuple(patterns), tuple(spans))


def read_map(path: str | os.PathLike[str]) -> WeightMap:
    """The rules of a map file; FileProblem when it cannot be read, CompileError when a
    line is malformed."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileProblem(path, f"not UTF-8 text (byte {err.start})") from None
    return parse_map(text, str(path))


def map_from(pairs: Mapping[str, str | None]) -> WeightMap:
    """A map given in Python: checkpoint name to network name, None (or '-') to drop."""
    lines = [f"{source} = {DROP if target is None else target}" for source, target in pairs.items()]
    return parse_map("\n".join(lines) + "\n", "<mapping>")


def dropped_by(rule: Rule, name: str) -> bool:
    return rule.target is None and fnmatch.fnmatchcase(name, rule.source)
