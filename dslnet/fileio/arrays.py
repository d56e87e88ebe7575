"""The one reader of NumPy files (`.npz` archives and `.npy` arrays): training and
validation data, calibration data.

Only arrays of numbers are read (booleans, integers, floats): strings, objects,
structured records, datetimes and complex numbers are refused by their header, before
any data is read, as are arrays whose shape claims more bytes than the file (or the
archive member) holds. No pickle is ever loaded. Arrays come back in native byte order.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from dslnet.fileio.regular import FileProblem, file_size, open_regular

Array = np.ndarray[Any, Any]

NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 10_000  # numpy's own default bound on an array header
# Deflate cannot expand data more than about 1032 times: a member claiming more than
# that of its compressed size lies about its size.
MAX_EXPANSION = 1100
_REFUSED_KINDS = {
    "U": "strings",
    "S": "byte strings",
    "O": "Python objects",
    "M": "datetimes",
    "m": "time deltas",
    "V": "structured records",
    "c": "complex numbers",
}
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def read_npz(path: str | os.PathLike[str], roots: list[Path] | None = None) -> dict[str, Array]:
    """The arrays of a `.npz` archive by name; FileProblem naming what is wrong."""
    with open_regular(path, roots) as f:
        if f.read(len(NPY_MAGIC)) == NPY_MAGIC:
            raise FileProblem(
                path, "is a .npy file (one unnamed array); expected a .npz archive of named arrays"
            )
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as archive:
                return _members(path, archive)
        except (*_ZIP_ERRORS, OSError, ValueError) as err:
            raise FileProblem(path, f"not a readable .npz archive ({err})") from None


def read_npy(path: str | os.PathLike[str], roots: list[Path] | None = None) -> Array:
    """The array of a `.npy` file; FileProblem naming what is wrong."""
    with open_regular(path, roots) as f:
        try:
            return _array(path, "the array", f, file_size(f))
        except (OSError, ValueError) as err:
            raise FileProblem(path, f"not a readable .npy file ({err})") from None


def _members(path: str | os.PathLike[str], archive: zipfile.ZipFile) -> dict[str, Array]:
    arrays: dict[str, Array] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = info.filename.removesuffix(".npy")
        if name == info.filename:
            raise FileProblem(path, f"holds {info.filename!r}, which is not a .npy array")
        if name in arrays:
            raise FileProblem(path, f"holds the array {name!r} twice")
        if info.file_size > info.compress_size * MAX_EXPANSION + 4096:
            raise FileProblem(
                path,
                f"array {name!r} claims {info.file_size} bytes from {info.compress_size} "
                f"compressed ones: a damaged or malicious archive",
            )
        with archive.open(info) as member:
            arrays[name] = _array(path, f"array {name!r}", member, info.file_size)
            if member.read(1):  # also reaches the end, where the CRC is checked
                raise FileProblem(path, f"array {name!r} has bytes after its data")
    return arrays


def _array(path: str | os.PathLike[str], label: str, fp: IO[bytes], size: int) -> Array:
    """One array from `fp` (a `.npy` stream of `size` bytes), checked before it is read."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fp, max_header_size=MAX_HEADER_BYTES)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(fp, max_header_size=MAX_HEADER_BYTES)
    else:
        raise FileProblem(path, f"{label} is in .npy format {version}, which is not read")
    refused = _REFUSED_KINDS.get(dtype.kind) or ("structured records" if dtype.fields else None)
    if refused or dtype.hasobject:
        raise FileProblem(
            path,
            f"{label} holds {refused or 'Python objects'} ({dtype}), not numbers "
            f"(booleans, integers or floats)",
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if fp.tell() + nbytes != size:
        raise FileProblem(
            path,
            f"{label} claims shape {list(shape)} of {dtype} ({nbytes} bytes), but "
            f"{size - fp.tell()} bytes follow its header",
        )
    data = bytearray(nbytes)
    if fp.readinto(data) != nbytes:  # type: ignore[attr-defined]
        raise FileProblem(path, f"{label} is truncated")
    flat = np.frombuffer(data, dtype)
    array = flat.reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="), copy=False)
