"""ONNX models past protobuf's 2 GiB limit: the weights as external data.

No protobuf message may reach 2 GiB, so a larger model keeps its initializers' bytes
in a second file beside it, `F.data` for `F` (the ONNX convention): each moved
TensorProto has `data_location = EXTERNAL` and `external_data` entries `location`
(the data file's base name, so that the pair can be moved together), `offset` and
`length`. Offsets are aligned to 4096 bytes so that a runtime can map the file;
tensors under 1 KiB stay inline, as onnx's own converter leaves them.

`save_onnx` writes a ModelProto (from `Program.onnx(...)`) this way when it must or
when asked; `model_files` gives the bytes of the pair without writing them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import onnx

from dslnet.fileio import atomic

PROTOBUF_LIMIT = 2**31
"""Bytes a serialized model must stay under (protobuf's limit); tests lower it."""
ALIGNMENT = 4096
INLINE_BELOW = 1024


class ModelTooLarge(ValueError):
    """The model cannot be one protobuf: its weights must go to external data."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(
            f"the model is {size / 2**30:.2f} GiB, at or over protobuf's "
            f"{PROTOBUF_LIMIT / 2**30:.2f} GiB limit: its weights must be written as "
            "external data, in a file beside the model"
        )


@dataclass(frozen=True)
class OnnxFiles:
    """A serialized model and, when its weights are external, their data file's bytes."""

    model: bytes
    data: bytes | None = None


def data_file_name(model_path: str | os.PathLike[str]) -> str:
    """The external data file's base name for a model written at `model_path`."""
    return Path(model_path).name + ".data"


def over_limit(size: int) -> bool:
    return size >= PROTOBUF_LIMIT


def external_tensor(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    """Point `tensor` at `length` bytes at `offset` of the file `location`."""
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)


class DataLayout:
    """The data file as it is laid out: chunks with aligned offsets, copied once at the end."""

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.size = 0

    def append(self, data: bytes | memoryview) -> int:
        """Add `data` at the next aligned offset; that offset."""
        padding = -self.size % ALIGNMENT
        if padding:
            self.chunks.append(bytes(padding))
        offset = self.size + padding
        self.chunks.append(data)
        self.size = offset + len(data)
        return offset

    def join(self) -> bytes:
        return b"".join(self.chunks)


def model_files(model: onnx.ModelProto, data_name: str, external: bool = False) -> OnnxFiles:
    """`model` serialized, its weights moved to external data (named `data_name`) when
    `external` or when it would reach the limit. `model` is left as it was."""
    if not external:
        whole = _whole(model)
        if whole is not None:
            return OnnxFiles(whole)
    layout = DataLayout()
    moved: list[tuple[onnx.TensorProto, bytes]] = []
    try:
        for tensor in _movable(model.graph.initializer):
            raw = tensor.raw_data
            moved.append((tensor, raw))
            tensor.ClearField("raw_data")
            external_tensor(tensor, data_name, layout.append(raw), len(raw))
        return OnnxFiles(model.SerializeToString(), layout.join())
    finally:
        for tensor, raw in moved:  # restored, so that the caller's model still runs
            tensor.ClearField("external_data")
            tensor.ClearField("data_location")
            tensor.raw_data = raw


def _whole(model: onnx.ModelProto) -> bytes | None:
    """`model` serialized, or None when one protobuf cannot hold it. Serialized first
    and measured after: protobuf computes a size by serializing, so asking for the
    size first would serialize a model that fits twice."""
    try:
        data = model.SerializeToString()
    except ValueError:  # what protobuf raises for a message of 2 GiB or more
        if over_limit(model.ByteSize()):
            return None
        raise
    return None if over_limit(len(data)) else data


def _movable(tensors: Iterable[onnx.TensorProto]) -> Iterable[onnx.TensorProto]:
    return [t for t in tensors if t.HasField("raw_data") and len(t.raw_data) >= INLINE_BELOW]


def file_map(path: Path, files: OnnxFiles) -> dict[Path, bytes]:
    """The files to write for a model at `path`: it, and its data file if any."""
    written = {path: files.model}
    if files.data is not None:
        written[path.with_name(data_file_name(path))] = files.data
    return written


def save_onnx(
    model: onnx.ModelProto, path: str | os.PathLike[str], *, external: bool = False
) -> list[Path]:
    """Write `model` to `path`, all or nothing; its weights go to `PATH.data` beside it
    when `external` or when one protobuf could not hold them (2 GiB). Load the result
    with `onnx.load(path)` or `onnxruntime.InferenceSession(path)`: both read the data
    file through the model's reference to it. The paths written are returned."""
    target = Path(path)
    files = file_map(target, model_files(model, data_file_name(target), external))
    atomic.write_all(files)
    return list(files)
