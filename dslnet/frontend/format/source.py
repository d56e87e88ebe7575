"""What the parse tree leaves out of a source text: every token (keywords and
brackets included), the comments between them, and where the lines break."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_COMMENT = re.compile(r"#[^\r\n]*")
_BLANK = " \t\f\r\n;"  # what a line holds when it is empty to the reader


@dataclass(frozen=True)
class SourceToken:
    text: str
    start: int  # offset of its first character
    end: int  # offset just after it


@dataclass(frozen=True)
class SourceComment:
    pos: int  # offset of the '#'
    text: str  # from '#', without trailing blanks
    own_line: bool  # nothing but blanks before it on its line
    blank_before: bool  # an empty line separates it from what comes before


class SourceText:
    """A source text with its code tokens (statement separators left out, in order).

    Comments live only between tokens (a '#' inside a string is part of the string
    token), so they are found in the gaps, never by scanning strings by hand.
    """

    def __init__(self, text: str, tokens: Iterable[SourceToken]) -> None:
        self.text = text
        self.tokens = list(tokens)
        self.comments = self._find_comments()

    def _find_comments(self) -> list[SourceComment]:
        starts = [0, *(t.end for t in self.tokens)]
        ends = [*(t.start for t in self.tokens), len(self.text)]
        found = []
        for start, end in zip(starts, ends):
            for match in _COMMENT.finditer(self.text, start, end):
                pos = match.start()
                line_start = self.text.rfind("\n", 0, pos) + 1
                found.append(
                    SourceComment(
                        pos,
                        match.group().rstrip(),
                        not self.text[line_start:pos].strip(_BLANK),
                        self.blank_line_before(pos),
                    )
                )
        return found

    def blank_line_before(self, pos: int) -> bool:
        """Whether the text at `pos` starts its line and an empty line comes just before."""
        line_start = self.text.rfind("\n", 0, pos) + 1
        if line_start == 0 or self.text[line_start:pos].strip(_BLANK):
            return False
        previous_start = self.text.rfind("\n", 0, line_start - 1) + 1
        return not self.text[previous_start:line_start].strip(_BLANK)

    def breaks_between(self, start: int, end: int) -> bool:
        """Whether a line ends between the two offsets."""
        return "\n" in self.text[start:end]
