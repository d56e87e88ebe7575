"""Writing outputs whole or not at all, and locking a run directory.

Each file goes to a temporary one beside its target, named `.NAME.tmp-PID-RANDOM`,
is flushed to disk, and only when every file is complete are they renamed over their
targets (and the directory flushed, so that the renames last too). A process killed
mid-write leaves its temporary files behind; the next write into that directory
removes those whose process is gone. New files get the mode a plain open() gives under
the umask; a file written over keeps its mode.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

_TEMP = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}$")


def write_all(files: Mapping[Path, bytes]) -> list[Path]:
    """Write every file, or none. Missing directories on the way are created; the list
    of those created, outermost first, is returned. On an OSError the targets are as they
    were, the temporary files and created directories are removed, and the error's
    `filename` is the path that failed. A target that is a symbolic link is written
    where the link points."""
    written: list[tuple[Path, Path]] = []  # (temporary file, target)
    created: list[Path] = []
    current = Path()  # the path being written, for the error
    try:
        targets = {Path(os.path.realpath(path)): data for path, data in files.items()}
        for directory in dict.fromkeys(target.parent for target in targets):
            current = directory
            created += make_directories(directory)
            remove_stale(directory)
        for target, data in targets.items():
            current = target
            written.append((write_temporary(target, data), target))
        for tmp, target in written:
            current = target
            os.replace(tmp, target)
        for directory in {target.parent for target in targets}:
            sync_directory(directory)
    except OSError as err:
        _remove([tmp for tmp, _ in written])
        remove_directories(created)
        err.filename = str(current)
        raise
    except BaseException:
        _remove([tmp for tmp, _ in written])
        remove_directories(created)
        raise
    return created


def make_directories(directory: Path) -> list[Path]:
    """Create `directory` and the missing ones above it; those created, outermost first."""
    missing = [d for d in (*reversed(directory.parents), directory) if not d.exists()]
    for each in missing:
        each.mkdir()
    return missing


def remove_directories(directories: list[Path]) -> None:
    """Undo `make_directories` where nothing else was put there since."""
    for directory in reversed(directories):
        with contextlib.suppress(OSError):
            directory.rmdir()


def temporary_name(target: Path) -> Path:
    """`.NAME.tmp-PID-RANDOM` beside `target`: whose it is, and recognisably temporary."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def write_temporary(target: Path, data: bytes) -> Path:
    """`data` in a new temporary file beside `target`, flushed to disk; its path."""
    tmp = temporary_name(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a plain open()
    try:
        with contextlib.suppress(FileNotFoundError):
            os.fchmod(fd, os.stat(target).st_mode & 0o7777)  # a file written over keeps its mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the bytes do
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def remove_stale(directory: Path) -> None:
    """Remove the temporary files in `directory` left by processes that are gone."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = _TEMP.match(name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(directory / name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # someone else's process, or not a pid
        return True
    return True


def sync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename) to disk, where the system allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory
        pass
    finally:
        os.close(fd)


def _remove(paths: list[Path]) -> None:
    for tmp in paths:
        with contextlib.suppress(OSError):
            tmp.unlink()


class DirectoryBusy(Exception):
    """Another process holds the lock of a directory; `pid` is its process id, if known."""

    def __init__(self, directory: Path, pid: str) -> None:
        self.directory = directory
        self.pid = pid
        held = f"another run (pid {pid})" if pid else "another run"
        super().__init__(f"{directory} is in use by {held}")


LOCK_NAME = ".dslnet.lock"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (flock on DIR/.dslnet.lock, which keeps the
    holder's pid) for the block; DirectoryBusy at once when another process holds it.
    The lock goes with the process, however it ends; the file stays."""
    import fcntl

    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise DirectoryBusy(directory, _holder(f)) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                if created and os.listdir(directory) == [LOCK_NAME]:  # nothing was written
                    path.unlink()
                    directory.rmdir()


def _holder(f: IO[str]) -> str:
    f.seek(0)
    text = f.read(32).strip()
    return text if text.isdigit() else ""
