"""Errors after the front end, reported where the spec wrote the node they are about.

Every IR node keeps its span and the chain of block calls it was expanded through,
so an error found late (a graph that does not verify, a pass that refuses a layer, a
lowering that raised) still reads like a front-end one: `file:line:col: error: ...`,
the source line with a caret, then a note per call site, innermost first.

Two kinds, told apart by the command line's exit code:
- `LocatedError`: the user's to fix (a pass cannot do what was asked of a layer): 1.
- `InternalError`: a bug in dslnet (a broken graph, a lowering or pass that raised):
  worded "internal error", with where the cause was raised, and exit 3.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from dslnet.core.diagnostics import Diagnostic, Note, Severity, SourceMap, Span
from dslnet.fileio.regular import FileProblem, open_regular
from dslnet.ir.graph import CallFrame, Node

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding dslnet/


def call_chain_notes(chain: Sequence[CallFrame]) -> list[Note]:
    """One note per block call on the way to a node, innermost first."""
    return [Note(f"in block '{frame.block}' called here", frame.span) for frame in reversed(chain)]


class LocatedError(Exception):
    """An error about the IR after the front end, at `span` after the block calls of
    `chain` (by default the `node`'s own), with `notes` after the call sites.

    `str()` is the rendered report (as for CompileError); `message` the bare text.
    Without a span (a request refused for the whole network) it is the message alone.
    """

    internal: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        node: Node | None = None,
        *,
        span: Span | None = None,
        chain: Sequence[CallFrame] | None = None,
        notes: Sequence[Note] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.span = span if span is not None or node is None else node.span
        if chain is None:
            chain = node.chain if node is not None else ()
        self.chain = tuple(chain)
        self.notes = tuple(notes)
        self.sources: SourceMap | None = None  # a driver may give the texts it read

    def diagnostic(self) -> Diagnostic | None:
        if self.span is None:
            return None
        message = f"internal error: {self.message}" if self.internal else self.message
        notes = (*call_chain_notes(self.chain), *self.notes)
        return Diagnostic(Severity.ERROR, message, self.span, notes)

    def source_map(self) -> SourceMap:
        """The texts given, else the lines shown of the files the diagnostic points into,
        read now (a file gone or no longer a regular one: no excerpt)."""
        if self.sources is not None:
            return self.sources
        sources = SourceMap()
        diagnostic = self.diagnostic()
        spans = [diagnostic.span, *(n.span for n in diagnostic.notes)] if diagnostic else []
        last: dict[str, int] = {}
        for span in spans:
            if span is not None:
                last[span.file] = max(last.get(span.file, 0), span.line)
        for file, lines in last.items():
            with suppress(FileProblem, OSError), open_regular(file) as f:
                head = b"".join(f.readline() for _ in range(lines))
                sources.add(file, head.decode("utf-8", errors="replace"))
        return sources

    def render(self, color: bool = False) -> str:
        diagnostic = self.diagnostic()
        if diagnostic is None:
            return f"internal error: {self.message}" if self.internal else self.message
        return diagnostic.render(self.source_map(), color)

    def __str__(self) -> str:
        return self.render()


class InternalError(LocatedError, RuntimeError):
    """A bug in dslnet found after the front end, located at the node concerned."""

    internal = True


def caused_by(
    err: BaseException, doing: str, node: Node | None = None, span: Span | None = None
) -> InternalError:
    """`doing` failed with `err`, a bug: the message names the cause, a note the frame
    that raised it (what a bug report needs, without the whole traceback)."""
    message = f"{doing} failed: {type(err).__name__}: {err}"
    return InternalError(message, node, span=span, notes=_raised_at(err.__traceback__))


def _raised_at(tb: TracebackType | None) -> list[Note]:
    frames = traceback.extract_tb(tb)
    if not frames:
        return []
    last = frames[-1]
    path = Path(last.filename)
    if path.is_relative_to(_PACKAGE_ROOT):
        path = path.relative_to(_PACKAGE_ROOT)
    return [Note(f"raised in {last.name}() at {path}:{last.lineno}")]


@contextmanager
def lowering_node(node: Node, backend: str) -> Iterator[None]:
    """Errors raised while `backend` lowers `node` become an InternalError at the node
    (one already located passes through)."""
    try:
        yield
    except (LocatedError, MemoryError):
        raise
    except Exception as err:
        doing = f"{backend} lowering of {node.op} '{node.name}'"
        raise caused_by(err, doing, node) from err


def node_in_traceback(tb: TracebackType | None) -> Node | None:
    """The node the innermost frame handling one was at when an exception was raised:
    where a pass that raised was in the graph (a frame's `node` first, then any Node)."""
    found: Node | None = None
    while tb is not None:
        local = tb.tb_frame.f_locals
        named = local.get("node")
        if isinstance(named, Node):
            found = named
        else:
            found = next((v for v in local.values() if isinstance(v, Node)), found)
        tb = tb.tb_next
    return found
