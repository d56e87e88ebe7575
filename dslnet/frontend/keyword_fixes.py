"""Recovery from a misspelt keyword: after `netwrok Net() {` is reported, the parser
reads `netwrok` as `network` (the post-lexer re-types that one token, which keeps its
text and position), so the declaration's body is parsed and checked like any other
and its own errors are reported in the same run, at their own line:col.

Each fix is on trial until a parse gets past its line. If that line breaks again
(`netwrok = 3`), the keyword meant does not fit there either: the fix is dropped and
the statement blanked, as any broken statement is, so no error follows from a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from lark.exceptions import UnexpectedCharacters, UnexpectedInput

from dslnet.frontend.syntax_hints import KeywordTypo


@dataclass(frozen=True)
class Trial:
    """A fix not yet proven: the typo's start, its line, and the statement to blank
    if the keyword meant does not fit."""

    start: int
    line_end: int
    line: int
    region: tuple[int, int] | None


class KeywordFixes:
    """The misspelt keywords read as the keyword meant, by start position."""

    def __init__(self, keywords: dict[int, str]) -> None:
        self.keywords = keywords  # the post-lexer's own: start -> keyword token type
        self.trial: Trial | None = None
        self.fixed_lines: set[int] = set()  # lines of typos whose statement stayed whole

    def try_keyword(
        self, typo: KeywordTypo, token_type: str, text: str, region: tuple[int, int] | None
    ) -> None:
        self.keywords[typo.start] = token_type
        line_end = text.find("\n", typo.start)
        line = text.count("\n", 0, typo.start) + 1
        end = len(text) if line_end < 0 else line_end
        self.trial = Trial(typo.start, end, line, region)

    def judge(self, err: UnexpectedInput | None, text: str) -> Trial | None:
        """After a parse that ended in `err` (None: no syntax error), the trial that
        failed, its fix dropped; None when it passed, waits or there is none."""
        trial = self.trial
        if trial is None:
            return None
        if err is not None and trial.start <= _error_pos(err, text) <= trial.line_end:
            if isinstance(err, UnexpectedCharacters):
                return None  # a stray character: the line is not parsed to its end yet
            del self.keywords[trial.start]
            self.trial = None
            return trial
        self.fixed_lines.add(trial.line)
        self.trial = None
        return None

    def shift(self, at: int, by: int) -> None:
        """`by` characters were inserted at `at`: the typos after it moved."""
        moved = {pos + by if pos >= at else pos: kind for pos, kind in self.keywords.items()}
        self.keywords.clear()
        self.keywords.update(moved)


def _error_pos(err: UnexpectedInput, text: str) -> int:
    if isinstance(err, UnexpectedCharacters):
        return err.pos_in_stream or 0
    start = getattr(err, "token").start_pos  # noqa: B009 (UnexpectedToken and UnexpectedEOF)
    if start is None:  # the end of the file: where its last character is
        return max(len(text.rstrip()) - 1, 0)
    return int(start)
