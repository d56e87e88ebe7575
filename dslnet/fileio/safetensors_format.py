"""The one reader of `.safetensors` files (--weights, load_weights:, checkpoints).

The format: an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and [begin, end) byte range in the data that follows, and an optional
`__metadata__` of strings. Every claim is checked against the file's real size before
anything is allocated: the header length, each tensor's byte count (shape times item size),
ranges that must tile the data exactly (no gap, no overlap, none outside), known
dtypes, names given once.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dslnet.fileio.regular import FileProblem, file_size, open_regular, os_reason

if TYPE_CHECKING:
    import torch

MAX_HEADER_BYTES = 100_000_000  # the limit of the safetensors library itself

# dtype -> (bytes per element, numpy dtype or None when numpy has none)
DTYPES: dict[str, tuple[int, str | None]] = {
    "BOOL": (1, "bool"),
    "U8": (1, "<u1"),
    "I8": (1, "<i1"),
    "I16": (2, "<i2"),
    "U16": (2, "<u2"),
    "F16": (2, "<f2"),
    "BF16": (2, None),
    "I32": (4, "<i4"),
    "U32": (4, "<u4"),
    "F32": (4, "<f4"),
    "I64": (8, "<i8"),
    "U64": (8, "<u8"),
    "F64": (8, "<f8"),
}


@dataclass(frozen=True)
class Entry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass
class SafetensorsFile:
    """A checked file: its tensors' entries, the data they point into, its metadata."""

    path: str
    entries: dict[str, Entry]
    data: bytearray
    metadata: dict[str, str]

    def numpy(self) -> dict[str, np.ndarray[Any, Any]]:
        """Every tensor as a numpy array (bfloat16 widened to float32)."""
        return {name: self._array(entry) for name, entry in self.entries.items()}

    def torch(self) -> dict[str, torch.Tensor]:
        """Every tensor as a CPU torch tensor of its own dtype."""
        import torch

        names = {"BOOL": "bool", "BF16": "bfloat16"}
        out: dict[str, torch.Tensor] = {}
        for name, e in self.entries.items():
            dtype = getattr(torch, names.get(e.dtype) or str(np.dtype(DTYPES[e.dtype][1])))
            raw = self.data[e.begin : e.end]  # a copy: aligned, and owned by the tensor
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            out[name] = flat.reshape(e.shape)
        return out

    def _array(self, e: Entry) -> np.ndarray[Any, Any]:
        raw = np.frombuffer(self.data, np.uint8, e.end - e.begin, e.begin)
        numpy_dtype = DTYPES[e.dtype][1]
        if numpy_dtype is None:  # bfloat16: the high half of a float32
            wide = raw.view("<u2").astype(np.uint32) << 16
            return wide.view(np.float32).reshape(e.shape)
        dtype = np.dtype(numpy_dtype)
        return raw.view(dtype).astype(dtype.newbyteorder("="), copy=False).reshape(e.shape)


def read_safetensors(
    path: str | os.PathLike[str], roots: list[Path] | None = None
) -> SafetensorsFile:
    """Read and check a `.safetensors` file; FileProblem naming what is wrong."""
    with open_regular(path, roots) as f:
        size = file_size(f)
        if size < 8:
            raise FileProblem(path, f"not a safetensors file: {size} bytes, too short")
        try:
            head = f.read(8)
            length = int.from_bytes(head, "little")
            if length > min(size - 8, MAX_HEADER_BYTES):
                raise FileProblem(
                    path,
                    f"not a safetensors file: its header claims {length} bytes, the file "
                    f"holds {size - 8} after the length",
                )
            header = f.read(length)
            data = bytearray(size - 8 - length)
            got = f.readinto(data)
        except OSError as err:
            raise FileProblem(path, f"cannot read: {os_reason(err)}") from None
    if len(header) != length or got != len(data):
        raise FileProblem(path, "the file changed size while it was read")
    entries, metadata = _parse_header(path, header, len(data))
    return SafetensorsFile(str(path), entries, data, metadata)


def _parse_header(
    path: str | os.PathLike[str], header: bytes, data_size: int
) -> tuple[dict[str, Entry], dict[str, str]]:
    try:
        parsed = json.loads(header.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FileProblem(path, f"not a safetensors file: its header is not JSON ({err})") from None
    if not isinstance(parsed, dict):
        raise FileProblem(path, "not a safetensors file: its header is not a JSON object")
    metadata = parsed.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FileProblem(path, "the safetensors __metadata__ must map names to strings")
    entries = {name: _entry(path, name, value) for name, value in parsed.items()}
    end = 0
    for name, e in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if e.begin != end:
            what = "overlaps the tensor before it" if e.begin < end else "leaves a gap before it"
            raise FileProblem(path, f"tensor '{name}': its data range {what}")
        end = e.end
    if end != data_size:
        raise FileProblem(
            path,
            f"the tensors' data ranges end at byte {end}, the data holds {data_size} bytes",
        )
    return entries, metadata


def _entry(path: str | os.PathLike[str], name: str, value: Any) -> Entry:
    def bad(problem: str) -> FileProblem:
        return FileProblem(path, f"tensor '{name}': {problem}")

    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise bad("expected an object with dtype, shape and data_offsets")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if dtype not in DTYPES:
        known = ", ".join(DTYPES)
        raise bad(f"dtype {dtype!r} is not one dslnet reads (it reads {known})")
    if not isinstance(shape, list) or not all(_natural(d) for d in shape):
        raise bad(f"shape {shape!r} is not a list of non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_natural(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise bad(f"data_offsets {offsets!r} is not a [begin, end] pair of byte offsets")
    nbytes = math.prod(shape) * DTYPES[dtype][0]
    if offsets[1] - offsets[0] != nbytes:
        raise bad(
            f"shape {shape} of {dtype} needs {nbytes} bytes, its data_offsets span "
            f"{offsets[1] - offsets[0]}"
        )
    return Entry(dtype, tuple(shape), offsets[0], offsets[1])


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the name {key!r} is given twice")
        found[key] = value
    return found
