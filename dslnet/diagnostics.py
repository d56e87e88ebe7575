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

    def render(self, sources: SourceMap) -> str:
        lines = [_header(self.span, self.severity.value, self.message)]
        lines += _excerpt(self.span, sources)
        for note in self.notes:
            if note.span is None:
                lines.append(f"note: {note.message}")
            else:
                lines.append(_header(note.span, "note", note.message))
                lines += _excerpt(note.span, sources)
        return "\n".join(lines)


def _header(span: Span, kind: str, message: str) -> str:
    if span.line <= 0:
        return f"{span.file}: {kind}: {message}"
    return f"{span}: {kind}: {message}"


def _excerpt(span: Span, sources: SourceMap) -> list[str]:
    text = sources.line(span.file, span.line)
    if text is None:
        return []
    text = text.expandtabs(1)
    width = span.end_col - span.col if span.end_line == span.line else len(text) - span.col + 1
    width = max(1, width)
    gutter = f"{span.line:>4} | "
    return [gutter + text, " " * (len(gutter) + span.col - 1) + "^" * width]


@dataclass
class SourceMap:
    """The text of every file read in one compilation, for excerpts."""

    texts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, file: str, text: str) -> None:
        self.texts[file] = text.splitlines()

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

    def render(self) -> str:
        return "\n".join(d.render(self.sources) for d in self.diagnostics)


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
