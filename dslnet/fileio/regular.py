"""Opening a file a user names: once, without blocking, and checking what was opened.

Checks made on a path before opening it can be beaten by a swap between the check and
the open (a symbolic link put in place of a file). So the file is opened first, with
O_NONBLOCK (a FIFO must not block the open), and then the open descriptor is checked:
fstat says whether it is a regular file, and its real path (/proc/self/fd, or the
path's realpath confirmed by device and inode) whether it lies below the allowed
directories. The content is then read from that same descriptor.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileProblem(Exception):
    """A named file that cannot be used: missing, unreadable, not a regular file,
    outside the allowed directories, or malformed. `str()` names the file first."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def os_reason(err: OSError) -> str:
    """The system's reason for `err` ("no such file", "too many levels of symbolic links")."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


def open_regular(
    path: str | os.PathLike[str], roots: Sequence[Path] | None = None
) -> io.BufferedReader:
    """`path` opened for binary reading; FileProblem unless it is a regular file (and,
    with `roots`, one whose real location is below one of them)."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as err:
        raise FileProblem(path, f"cannot open: {os_reason(err)}") from None
    except ValueError as err:  # an embedded NUL byte
        raise FileProblem(repr(str(path)), f"not a usable file name ({err})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileProblem(path, _not_regular(mode))
        if roots is not None:
            where = opened_path(fd, path)
            if not any(where.is_relative_to(root) for root in roots):
                shown = ", ".join(str(r) for r in roots)
                raise FileProblem(path, f"leads to {where}, outside {shown}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    return f"is {kind}, not a regular file"


def why_unusable(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be read as a regular file ("is a FIFO (named pipe), not a
    regular file", "too many levels of symbolic links"); None when it can."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return os_reason(err)
    except ValueError as err:  # an embedded NUL byte
        return str(err)
    return None if stat.S_ISREG(mode) else _not_regular(mode)


def opened_path(fd: int, path: str | os.PathLike[str]) -> Path:
    """Where the file open as `fd` really is. /proc/self/fd names it on Linux; elsewhere
    the realpath of `path` counts only when it is the same file (device and inode)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass
    real = os.path.realpath(path)
    opened, found = os.fstat(fd), os.stat(real)
    if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino):
        raise FileProblem(path, "changed while it was being opened")
    return Path(real)


def read_bytes(path: str | os.PathLike[str], roots: Sequence[Path] | None = None) -> bytes:
    """The whole content of a regular file (see `open_regular`)."""
    with open_regular(path, roots) as f:
        try:
            return f.read()
        except OSError as err:
            raise FileProblem(path, f"cannot read: {os_reason(err)}") from None


def file_size(f: io.BufferedReader) -> int:
    return os.fstat(f.fileno()).st_size
