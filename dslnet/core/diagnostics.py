"""Source spans, located diagnostics and their rendering.

Every error a user sees goes through here: `path:line:col: error: message`,
the source line, a caret under the span, then notes (the chain of block
call sites when the error sits inside an expanded block).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dslnet.core.console import style


@dataclass(frozen=True, order=True)
class Span:
    """A range of source text; lines and columns are 1-based, `end_col` exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def contains(self, other: Span) -> bool:
        """Whether `other` lies within this span (same file)."""
        start, end = (self.line, self.col), (self.end_line, self.end_col)
        return (
            self.file == other.file
            and start <= (other.line, other.col)
            and (other.end_line, other.end_col) <= end
        )

    @staticmethod
    def unknown(file: str = "<unknown>") -> Span:
        return Span(file, 0, 0, 0, 0)


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Note:
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    message: str
    span: Span
    notes: tuple[Note, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def render(self, sources: SourceMap, color: bool = False) -> str:
        """The text users read; `color` adds ANSI styles (the text is otherwise the same)."""
        kind = self.severity.value
        lines = [_header(self.span, kind, self.message, color)]
        lines += _excerpt(self.span, sources, kind, color)
        for note in self.notes:
            if note.span is None:
                lines.append(f"{style('note', 'note', color)}: {note.message}")
            else:
                lines.append(_header(note.span, "note", note.message, color))
                lines += _excerpt(note.span, sources, "note", color)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """As data for editors: lines and columns 1-based, `end` exclusive (as in `Span`);
        `range` is null when the position is unknown, e.g. a file that cannot be read."""
        return {
            "file": self.span.file,
            "severity": self.severity.value,
            "message": self.message,
            "range": _range(self.span),
            "notes": [
                {
                    "message": n.message,
                    "file": n.span.file if n.span else None,
                    "range": _range(n.span) if n.span else None,
                }
                for n in self.notes
            ],
        }


def _range(span: Span) -> dict[str, dict[str, int]] | None:
    if span.line <= 0:
        return None
    return {
        "start": {"line": span.line, "col": span.col},
        "end": {"line": span.end_line, "col": span.end_col},
    }


# What one diagnostic shows at most: a message naming a 3 MB string, or the line of a
# spec written on one line, must not print megabytes.
MAX_MESSAGE_CHARS = 1000
EXCERPT_CHARS = 200  # of a long source line, around the caret
EXCERPT_BEFORE = 60  # of those, before the caret


def elide(text: str, limit: int) -> str:
    """`text`, or its start and end around a count of what was left out."""
    if len(text) <= limit:
        return text
    keep = max(limit // 2 - 20, 1)
    return f"{text[:keep]}... ({len(text) - 2 * keep} characters) ...{text[-keep:]}"


def _header(span: Span, kind: str, message: str, color: bool) -> str:
    where = f"{span.file}:" if span.line <= 0 else f"{span}:"
    message = elide(message, MAX_MESSAGE_CHARS)
    return f"{style(where, 'bold', color)} {style(kind, kind, color)}: {message}"


def _excerpt(span: Span, sources: SourceMap, kind: str, color: bool) -> list[str]:
    text = sources.line(span.file, span.line)
    if text is None:
        return []
    text = text.expandtabs(1)
    col = span.col
    width = span.end_col - col if span.end_line == span.line else len(text) - col + 1
    if len(text) > EXCERPT_CHARS:  # a window of the line around the caret
        left = max(0, col - 1 - EXCERPT_BEFORE)
        right = min(len(text), left + EXCERPT_CHARS)
        left = max(0, min(left, right - EXCERPT_CHARS))
        shown = text[left:right]
        width = min(width, right - (col - 1))
        if left:
            shown, col = "..." + shown, col - left + 3
        text = shown + ("..." if right < len(text) else "")
    width = max(1, width)
    gutter = f"{span.line:>4} | "
    return [
        style(gutter, "gutter", color) + text,
        " " * (len(gutter) + col - 1) + style("^" * width, kind, color),
    ]


@dataclass
class SourceMap:
    """The text of every file read in one compilation, for excerpts."""

    texts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, file: str, text: str) -> None:
        # Lines as the parser counts them: only '\n' ends one (str.splitlines would also
        # split at form feeds, '\x85', '\u2028'..., and show the wrong line after them).
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the text's last newline ends a line; it starts none
        self.texts[file] = [line.removesuffix("\r") for line in lines]

    def line(self, file: str, line: int) -> str | None:
        lines = self.texts.get(file)
        if lines is None or not 1 <= line <= len(lines):
            return None
        return lines[line - 1]


class CompileError(Exception):
    """Raised by the API when a spec has errors; `.diagnostics` holds them all."""

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: SourceMap | None = None):
        self.diagnostics = list(diagnostics)
        self.sources = sources or SourceMap()
        super().__init__(self.render())

    def render(self, color: bool = False) -> str:
        return "\n".join(d.render(self.sources, color) for d in self.diagnostics)


class Diagnostics:
    """Collects diagnostics for one compilation.

    The same error reached through several expansions of a block (same span,
    same message) is reported once, with the call-site notes of each.
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[Severity, Span, str], Diagnostic] = {}

    def add(self, diagnostic: Diagnostic) -> None:
        key = (diagnostic.severity, diagnostic.span, diagnostic.message)
        seen = self._by_key.get(key)
        if seen is None:
            self._by_key[key] = diagnostic
            return
        extra = tuple(n for n in diagnostic.notes if n not in seen.notes)
        if extra:
            self._by_key[key] = Diagnostic(
                seen.severity, seen.message, seen.span, seen.notes + extra
            )

    def error(self, message: str, span: Span, notes: Iterable[Note] = ()) -> None:
        self.add(Diagnostic(Severity.ERROR, message, span, tuple(notes)))

    def warning(self, message: str, span: Span, notes: Iterable[Note] = ()) -> None:
        self.add(Diagnostic(Severity.WARNING, message, span, tuple(notes)))

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self._by_key.values())

    def sorted(self) -> list[Diagnostic]:
        """In source order: by file, position, then message."""
        return sorted(self._by_key.values(), key=lambda d: (d.span, d.severity.value, d.message))

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.sorted() if d.is_error]


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate `name` is most likely a misspelling of, if any."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return close[0]
    lowered = {c.lower(): c for c in candidates}
    return lowered.get(name.lower())


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close candidate exists, else ''."""
    close = closest(name, candidates)
    return f" (did you mean '{close}'?)" if close else ""
