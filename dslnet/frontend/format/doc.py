"""Layout documents and their printer.

A Wadler-style pretty printer: a document says where a line may break, the
printer decides, breaking only what does not fit in `WIDTH` columns. `Fill`
packs items on a line and breaks between them only where needed; `Choice`
takes its flat form when that fits on the line, else its broken form. A
`Comment` ends its line, so whatever follows starts a new one. Trailing
comments on consecutive lines are aligned in one column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH = 100
INDENT = 4


# Each document knows whether it holds a comment or a forced newline (`hard`): then it
# cannot be laid out flat.


@dataclass(frozen=True)
class Text:
    text: str  # never a newline
    hard: bool = field(default=False, init=False)


@dataclass(frozen=True)
class Line:
    """`flat` when its group is flat, else a newline."""

    flat: str = " "
    hard: bool = field(default=False, init=False)


@dataclass(frozen=True)
class HardLine:
    """A newline (several in a row make one); `blank` leaves an empty line before what follows."""

    blank: bool = False
    hard: bool = field(default=True, init=False)


@dataclass(frozen=True)
class Comment:
    """`# ...`: after the code of the current line, or on a line of its own."""

    text: str
    own_line: bool
    hard: bool = field(default=True, init=False)


@dataclass(frozen=True)
class Concat:
    parts: tuple[Doc, ...]
    hard: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hard", any(p.hard for p in self.parts))


@dataclass(frozen=True)
class Indent:
    """Lines that break inside `doc` start INDENT columns further in."""

    doc: Doc
    hard: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hard", self.doc.hard)


@dataclass(frozen=True)
class Align:
    """Lines that break inside `doc` start at the column where `doc` starts."""

    doc: Doc
    hard: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hard", self.doc.hard)


@dataclass(frozen=True)
class Choice:
    """`flat` on one line when it fits (and holds no comment or forced newline), else
    `broken`."""

    flat: Doc
    broken: Doc
    hard: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hard", self.flat.hard)


@dataclass(frozen=True)
class Fill:
    """Items separated by `sep`: as many on a line as fit. An item that holds a comment
    or a forced newline before its end starts a line of its own, so that the text
    formats the same again (where the newlines a long item got are forced ones)."""

    items: tuple[Doc, ...]
    sep: Doc = Line()
    hard: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hard", self.sep.hard or any(i.hard for i in self.items))


Doc = Text | Line | HardLine | Comment | Concat | Indent | Align | Choice | Fill


def concat(*parts: Doc) -> Doc:
    return parts[0] if len(parts) == 1 else Concat(parts)


def group(doc: Doc) -> Doc:
    """`doc` with its line breaks all taken, or none."""
    return Choice(doc, doc)


def render(doc: Doc, width: int = WIDTH) -> str:
    """The text of `doc`, ending in one newline (or empty)."""
    printer = _Printer(width)
    printer.print(doc)
    return _join(printer.finish())


def _breaks_inside(doc: Doc) -> bool:
    """Whether `doc` holds a comment or a forced newline before its end (comments that
    end it only end its last line)."""
    while isinstance(doc, Concat):
        parts = list(doc.parts)
        while parts and _is_comment(parts[-1]):
            parts.pop()
        if not parts:
            return False
        if any(p.hard for p in parts[:-1]):
            return True
        doc = parts[-1]
    return doc.hard and not _is_comment(doc)


def _is_comment(doc: Doc) -> bool:
    while isinstance(doc, (Indent, Align)):
        doc = doc.doc
    return isinstance(doc, Comment)


# --- printer ----------------------------------------------------------------------


@dataclass(frozen=True)
class _FillRest:
    """What is left of a `Fill` being printed: `items[index:]`, each after a `sep`."""

    items: tuple[Doc, ...]
    index: int
    sep: Doc


_Command = tuple[int, bool, "Doc | _FillRest"]  # indent, broken?, what


class _Printer:
    def __init__(self, width: int) -> None:
        self.width = width
        self.lines: list[tuple[str, str]] = []  # (code, trailing comment)
        self.code = ""  # the current line, its indentation included once it has text
        self.comment = ""
        self.indent = 0  # where text on the current line starts
        self.pending = False  # a comment ended the line: the next text goes on a new one
        self.stack: list[_Command] = []

    def print(self, doc: Doc) -> None:
        self.stack = [(0, True, doc)]
        while self.stack:
            indent, broken, item = self.stack.pop()
            self.step(indent, broken, item)

    def step(self, indent: int, broken: bool, item: Doc | _FillRest) -> None:
        push = self.stack.append
        if isinstance(item, Text):
            self.text(item.text, indent)
        elif isinstance(item, Line):
            if broken or self.pending:
                self.newline(indent)
            else:
                self.text(item.flat, indent)
        elif isinstance(item, HardLine):
            self.newline(indent)
            if item.blank and self.lines and self.lines[-1] != ("", ""):
                self.lines.append(("", ""))
        elif isinstance(item, Comment):
            self.put_comment(item, indent)
        elif isinstance(item, Concat):
            self.stack.extend((indent, broken, p) for p in reversed(item.parts))
        elif isinstance(item, Indent):
            push((indent + INDENT, broken, item.doc))
        elif isinstance(item, Align):
            push((self.next_column(indent), broken, item.doc))
        elif isinstance(item, Choice):
            if item.flat.hard:
                push((indent, True, item.broken))
            elif not broken or self.fits_flat(item.flat, indent):
                push((indent, False, item.flat))
            else:
                push((indent, True, item.broken))
        elif isinstance(item, Fill):
            if not broken:
                for k in range(len(item.items) - 1, -1, -1):
                    push((indent, False, item.items[k]))
                    if k:
                        push((indent, False, item.sep))
                return
            if len(item.items) > 1:
                push((indent, True, _FillRest(item.items, 1, item.sep)))
            first = item.items[0]
            # Flat only if all of it fits (a comment or forced newline stops the measure).
            push((indent, first.hard or not self.fits_flat(first, indent), first))
        else:
            self.fill_rest(indent, item)

    def fill_rest(self, indent: int, rest: _FillRest) -> None:
        """The next item of a Fill: on this line if it fits after the separator and
        holds no comment or forced newline before its end."""
        nxt = rest.items[rest.index]
        if rest.index + 1 < len(rest.items):
            self.stack.append((indent, True, _FillRest(rest.items, rest.index + 1, rest.sep)))
        same_line = (
            not self.pending
            and not _breaks_inside(nxt)
            and self.fits_flat(Concat((rest.sep, nxt)), indent)
        )
        # The item decides its own layout once the separator is printed.
        self.stack.append((indent, True, group(nxt)))
        self.stack.append((indent, not same_line, rest.sep))

    # --- measuring ---

    def next_column(self, indent: int) -> int:
        if self.pending:
            return indent
        return len(self.code) if self.code else self.indent

    def fits_flat(self, doc: Doc, indent: int) -> bool:
        """Whether `doc`, flat, and what follows it fit up to the next line break (a
        comment is one: a trailing comment may run past the width)."""
        left = self.width - self.next_column(indent)
        work: list[tuple[bool, Doc | _FillRest]] = [(False, doc)]
        rest = len(self.stack) - 1
        while True:
            if not work:
                if rest < 0:
                    return True
                _, broken, item = self.stack[rest]
                rest -= 1
                work.append((broken, item))
                continue
            broken, item = work.pop()
            if isinstance(item, Text):
                left -= len(item.text)
                if left < 0:
                    return False
            elif isinstance(item, Line):
                if broken:
                    return True
                left -= len(item.flat)
                if left < 0:
                    return False
            elif isinstance(item, (HardLine, Comment, _FillRest)):
                return True
            elif isinstance(item, Concat):
                work.extend((broken, p) for p in reversed(item.parts))
            elif isinstance(item, (Indent, Align)):
                work.append((broken, item.doc))
            elif isinstance(item, Choice):
                # Not decided yet. Inside `doc`: flat, as `doc` is. In what follows it
                # (broken): broken, as it will be if it does not fit, so it may end the
                # line at its first break (a later group must not break an earlier one).
                if item.flat.hard or broken:
                    work.append((True, item.broken))
                else:
                    work.append((False, item.flat))
            elif broken:
                work.append((True, HardLine()))
                work.append((True, item.items[0]))
            else:
                for k in range(len(item.items) - 1, -1, -1):
                    work.append((False, item.items[k]))
                    if k:
                        work.append((False, item.sep))

    # --- output ---

    def text(self, text: str, indent: int) -> None:
        if not text:
            return
        if self.pending:
            self.newline(indent)
        if not self.code:
            text = text.lstrip()  # a separator's blank does not indent a line
            if not text:
                return
            self.code = " " * self.indent
        self.code += text

    def newline(self, indent: int) -> None:
        if self.code or self.comment:
            self.lines.append((self.code.rstrip(), self.comment))
        self.code, self.comment = "", ""
        self.indent = indent
        self.pending = False

    def put_comment(self, comment: Comment, indent: int) -> None:
        if comment.own_line or not self.code or self.comment:
            if self.code or self.comment:
                self.newline(indent)
            self.code = " " * self.indent + comment.text
        else:
            self.comment = comment.text
        self.pending = True

    def finish(self) -> list[tuple[str, str]]:
        self.newline(0)
        while self.lines and self.lines[-1] == ("", ""):
            self.lines.pop()
        return self.lines


def _join(lines: list[tuple[str, str]]) -> str:
    """The lines as text; trailing comments of consecutive lines share a column."""
    out: list[str] = []
    k = 0
    while k < len(lines):
        if not lines[k][1]:
            out.append(lines[k][0])
            k += 1
            continue
        end = k
        while end < len(lines) and lines[end][1]:
            end += 1
        column = max(len(code) for code, _ in lines[k:end]) + 2
        out += [code.ljust(column) + comment for code, comment in lines[k:end]]
        k = end
    return "".join(line + "\n" for line in out)
