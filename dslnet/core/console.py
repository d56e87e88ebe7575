"""Terminal output shared by the commands: the colour decision, ANSI styles, rich
consoles and progress bars.

Colour (and rich layout such as tables) is on when the stream is a terminal,
unless `--color` (set through `set_color`) or the environment says otherwise:
`NO_COLOR` turns it off, `FORCE_COLOR` / `CLICOLOR_FORCE` turn it on even when
piped; `--color always|never` wins over both. Progress bars go to stderr, only
on a terminal unless `DSLNET_PROGRESS=1` (or `0`) forces them on (off), so piped
output and test logs stay clean.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import TYPE_CHECKING, Literal, TextIO, TypeVar, get_args

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

T = TypeVar("T")
ColorChoice = Literal["auto", "always", "never"]
COLOR_CHOICES: tuple[str, ...] = get_args(ColorChoice)

_color: ColorChoice = "auto"
_FORCE = ("FORCE_COLOR", "CLICOLOR_FORCE")  # set and not "0": colour even on a pipe

# SGR codes of the styles diagnostics and tables use.
_SGR = {
    "bold": "1",
    "ok": "1;32",
    "error": "1;31",
    "warning": "1;33",
    "note": "1;36",
    "gutter": "34",
}


def set_color(choice: ColorChoice) -> None:
    """The `--color` choice, for the rest of the process."""
    global _color
    _color = choice


def use_color(stream: TextIO) -> bool:
    """Whether to style what goes to `stream`: --color, then NO_COLOR, then
    FORCE_COLOR / CLICOLOR_FORCE, then whether it is a terminal."""
    if _color != "auto":
        return _color == "always"
    if os.environ.get("NO_COLOR", ""):
        return False
    if any(os.environ.get(name, "0") not in ("", "0") for name in _FORCE):
        return True
    return _isatty(stream)


def style(text: str, name: str, on: bool) -> str:
    """`text` in the style `name` (a severity, "bold" or "gutter") when `on`."""
    return f"\x1b[{_SGR[name]}m{text}\x1b[0m" if on and text else text


def console(stream: TextIO) -> Console:
    """A rich console on `stream` that follows the colour decision."""
    from rich.console import Console

    styled = use_color(stream)
    return Console(
        file=stream,
        force_terminal=styled,
        no_color=not styled,
        markup=False,  # shapes like [n, 4] are text, not style tags
        highlight=False,
        soft_wrap=False,
    )


def print_table(table: Table, stream: TextIO) -> None:
    """Print a rich table: on a terminal fitted to its width (but never narrower than
    the table's minimum, where columns would vanish: the terminal wraps the lines
    instead), elsewhere (colour forced on a pipe) at the table's own width, so that
    nothing is cut."""
    from rich.measure import Measurement

    out = console(stream)
    wide = Measurement.get(out, out.options.update_width(10_000), table)
    if not _isatty(stream):
        out.width = wide.maximum
    elif wide.minimum > out.width:
        out.width = wide.minimum
    out.print(table)


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


# --- progress ---------------------------------------------------------------------------

_active: Progress | None = None  # the bar on screen; nested loops add a line to it
_REFRESH_S = 0.1  # redraw at most this often: no thread, cheap for fast loops


def progress_enabled(enabled: bool | None = None) -> bool:
    """`enabled` if given, else DSLNET_PROGRESS=0/1, else whether stderr is a terminal."""
    if enabled is not None:
        return enabled
    forced = os.environ.get("DSLNET_PROGRESS", "")
    if forced in ("0", "1"):
        return forced == "1"
    return _isatty(sys.stderr)


def progress(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    *,
    enabled: bool | None = None,
    status: Callable[[], str] | None = None,
) -> Iterator[T]:
    """Yield `items`, showing a progress bar on stderr while they are consumed.

    total: the number of items when `items` has no length (a generator).
    enabled: force the bar on or off (default: see `progress_enabled`).
    status: text shown after the description, asked again at every refresh (a
        running loss).
    A loop inside one that shows a bar adds its own line to it.
    """
    global _active
    if _active is not None and enabled is not False:  # the bar on screen says yes
        yield from _track(_active, items, description, total, status)
        return
    if not progress_enabled(enabled):
        yield from items
        return
    bar = _new_bar()
    _active = bar
    try:
        with bar:
            yield from _track(bar, items, description, total, status)
    finally:
        _active = None


def _new_bar() -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    stream = sys.stderr
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        # force_terminal: a bar forced on over a pipe still draws, so it can be seen.
        console=Console(file=stream, force_terminal=True, no_color=not use_color(stream)),
        transient=True,
        auto_refresh=False,  # no refresh thread: it would steal time from benchmarks
        # Prints on a terminal go above the bar; stdout sent elsewhere stays there.
        redirect_stdout=_isatty(sys.stdout),
    )


def _track(
    bar: Progress,
    items: Iterable[T],
    description: str,
    total: int | None,
    status: Callable[[], str] | None = None,
) -> Iterator[T]:
    if total is None and isinstance(items, Sized):
        total = len(items)
    task: TaskID = bar.add_task(description, total=total)
    bar.refresh()
    last = time.monotonic()
    try:
        for item in items:
            yield item
            bar.advance(task)
            now = time.monotonic()
            if now - last >= _REFRESH_S:
                if status is not None:
                    bar.update(task, description=f"{description}  {status()}")
                bar.refresh()
                last = now
    finally:
        bar.remove_task(task)
        bar.refresh()
